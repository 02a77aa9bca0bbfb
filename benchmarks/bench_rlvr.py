"""RLVR rollout schedulers across verifier-fault worlds: the default scheduler against plain GRPO and the peers.

A command line over ``banditlib.adapters.rlvr.sim.comparison`` (the runs and their summaries), ``.report`` (the
tables and the figure) and ``.timing``; from Python, ``compare(...)`` runs the same comparison (docs/rlvr.md).

1. Worlds x schedulers x seeds (``sim.WORLDS`` x ``sim.comparison_schedulers()``): every scheduler trains the
   simulator's policy (``B = 32`` prompts x ``G = 8`` rollouts a round) for ``steps`` rounds in every fault
   world; same seed, same world, initial policy and first batch for every scheduler, so differences are paired
   seed by seed (95% Student-t intervals). Per world: final held-out accuracy (mean over the last 10 steps),
   paired differences to uniform GRPO and to the world's best peer, accuracy at uniform's rows trained, steps
   to target, kept share, lucky share of kept positives, missed share of kept negatives, scheduler ms a round.
2. ``--ablation``: the default's ingredients swapped one at a time (``sim.ablation_schedulers()``).
3. ``--paper-scale``: B = 256 prompts x G = 16 (slow; not in CI) and B = 32 x G = 8 in the ``iid`` and
   ``mixture`` worlds: uniform, the default and the paper preset, with the paper preset's round-label
   signal-to-noise (``label_snr``).
4. Timing: ``schedule()`` and ``observe()`` at 512 prompts x 16 rollouts with a 65,536-rollout buffer (8
   rounds), one thread (``schedule_timing``).

Runs go to ``--workers`` processes (one torch thread each). Usage:
``python benchmarks/bench_rlvr.py [--quick] [--out DIR] [--workers N] [--seeds N] [--steps N] [--worlds W ...]
[--only NAME ...] [--ablation] [--paper-scale] [--timing P G R] [--no-timing] [--only-timing]``; writes
``DIR/bench_rlvr.json`` (``{"worlds": {world: {"schedulers": {name: {"final": [...], ...}}, "diff_uniform": ...,
...}}, ...}``), ``DIR/rlvr_worlds.png`` and prints markdown tables. The paper's own claims (regret, the buffer
oracle) are measured by ``benchmarks/bench_rlvr_claims.py``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch
from _common import machine_info
from _rlvr_common import compact_json

from banditlib.adapters.rlvr.sim import WORLDS, ablation_schedulers, compare, comparison_schedulers
from banditlib.adapters.rlvr.sim.comparison import label_snr
from banditlib.adapters.rlvr.sim.contenders import DEFAULT, UNIFORM
from banditlib.adapters.rlvr.sim.report import format_tables, plot_worlds, timing_table
from banditlib.adapters.rlvr.sim.timing import schedule_timing

DISTS = ("torch", "numpy", "scipy")
FULL = {"seeds": 12, "steps": 150, "timing": [512, 16, 8], "timing_repeats": 11, "paper_seeds": 4, "paper_steps": 100}
QUICK = {"seeds": 3, "steps": 40, "timing": [512, 16, 8], "timing_repeats": 3, "paper_seeds": 1, "paper_steps": 10}
PAPER = "paper (cbs-group)"


def _load(load_before: tuple[float, ...]) -> str:
    return f"load average {load_before[0]:.2f} before, {os.getloadavg()[0]:.2f} after"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run every measurement, print the tables, write the JSON and the plot; returns the report."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 seeds x 40 steps, a smoke run")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--seeds", type=int, default=None)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--paper-seeds", type=int, default=None)
    parser.add_argument("--paper-steps", type=int, default=None)
    parser.add_argument("--worlds", nargs="*", default=None, choices=list(WORLDS))
    parser.add_argument("--only", nargs="*", default=None, help="schedulers to run (uniform and the default always)")
    parser.add_argument("--ablation", action="store_true", help="add the ablation variants of the default")
    parser.add_argument("--paper-scale", action="store_true", help="add B = 256 x G = 16 runs (slow)")
    parser.add_argument("--timing", type=int, nargs=3, default=None, metavar=("PROMPTS", "G", "ROUNDS"))
    parser.add_argument("--no-timing", action="store_true")
    parser.add_argument("--only-timing", action="store_true", help="measure schedule() times only")
    args = parser.parse_args(argv)
    sizes = dict(QUICK if args.quick else FULL)
    for key in ("seeds", "steps", "paper_seeds", "paper_steps", "timing"):
        if getattr(args, key) is not None:
            sizes[key] = getattr(args, key)
    worlds = args.worlds or list(WORLDS)
    makers = comparison_schedulers()
    schedulers = {n: f for n, f in makers.items() if args.only is None or n in args.only or n in (UNIFORM, DEFAULT)}
    if args.ablation:
        schedulers.update(ablation_schedulers())
    start, load_before = time.perf_counter(), os.getloadavg()
    torch.set_num_threads(1)  # every run and the timing use one torch thread; the machine record says so
    args.out.mkdir(parents=True, exist_ok=True)
    if args.only_timing:
        timing = schedule_timing(*sizes["timing"], sizes["timing_repeats"])
        m = machine_info(1, DISTS)
        print(f"bench_rlvr (timing only): {m['cpu_model']}, {m['cores']} cores, 1 torch thread, {_load(load_before)}\n")
        print(timing_table(timing))
        out = {"benchmark": "bench_rlvr", "mode": "timing", "machine": m, "timing": timing, "argv": sys.argv,
               "load_average_before_after": [load_before, os.getloadavg()]}  # fmt: skip
        (args.out / "bench_rlvr_timing.json").write_text(compact_json(out))
        return out
    cmp = compare(schedulers, worlds, seeds=sizes["seeds"], steps=sizes["steps"], jobs=args.workers, progress=True)
    paper: dict[str, Any] = {}
    if args.paper_scale:
        scales = {(B, G): compare({n: makers[n] for n in (UNIFORM, DEFAULT, PAPER)}, ["iid", "mixture"],
                                  seeds=sizes["paper_seeds"], steps=sizes["paper_steps"], true_gain=[PAPER],
                                  config={"prompts_per_round": B, "group_size": G}, jobs=args.workers, progress=True)
                  for B, G in ((256, 16), (32, 8))}  # fmt: skip
        for w in ("iid", "mixture"):
            for (B, G), c in scales.items():
                paper[f"{w}, B={B} x G={G}"] = {**c.summaries[w], "snr": label_snr(c.runs[w][PAPER])}
    learn_s = time.perf_counter() - start
    timing = None if args.no_timing else schedule_timing(*sizes["timing"], sizes["timing_repeats"])
    report: dict[str, Any] = {
        "benchmark": "bench_rlvr", "mode": "quick" if args.quick else "full", "argv": sys.argv,
        "machine": machine_info(1, DISTS), "sizes": sizes, "workers": args.workers,
        "worlds_config": {w: WORLDS[w].overrides for w in worlds}, "worlds": cmp.summaries, "verdict": cmp.verdict(),
        "curves": cmp.curves(), "paper_scale": paper, "timing": timing, "learning_s": learn_s,
    }  # fmt: skip
    report["elapsed_s"] = time.perf_counter() - start
    report["load_average_before_after"] = [load_before, os.getloadavg()]
    m = report["machine"]
    print(f"bench_rlvr ({report['mode']}): {m['cpu_model']}, {m['cores']} cores, {args.workers} workers x 1 torch "
          f"thread, {_load(load_before)}, {report['elapsed_s']:.0f} s\n")  # fmt: skip
    print(format_tables(cmp, paper, timing))
    (args.out / "bench_rlvr.json").write_text(compact_json(report))
    report["plot"] = plot_worlds(cmp, args.out / "rlvr_worlds.png")
    print(f"\nwrote {args.out / 'bench_rlvr.json'} and {args.out / 'rlvr_worlds.png'}")
    return report


if __name__ == "__main__":
    main()
