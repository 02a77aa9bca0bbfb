"""RLVR rollout schedulers across verifier-fault worlds: the default scheduler against plain GRPO and the peers.

1. Worlds x schedulers x seeds. Every scheduler trains the simulator's policy
   (``banditlib.adapters.rlvr.sim``: digit strings, a shared-parameter MLP policy, GRPO with PPO clipping,
   ``B = 32`` prompts x ``G = 8`` rollouts a round) for ``steps`` rounds in every fault world (the verifier
   misleads i.i.d., through a deterministic loophole, by cutting correct answers off, as a judge biased to
   the policy's own mistakes, all at once, or not at all). Same seed, same world, initial policy and first
   batch for every scheduler, so differences are paired seed by seed. Reported per world: final held-out
   accuracy (mean exact expected accuracy over the last 10 steps: no sampling noise, but it moves step to
   step), paired differences to uniform GRPO and to the world's best peer with 95% intervals, steps to
   target (uniform's mean 5-step-average accuracy at half the steps; never reached counts as ``steps + 1``),
   kept share of the fresh rollouts, the lucky share of kept positives and the missed share of kept
   negatives, and scheduler milliseconds per round.
2. ``--ablation``: the default's ingredients swapped one at a time (rule, label, features, model, replay), on
   the same worlds and seeds.
3. ``--paper-scale``: B = 256 prompts x G = 16 (slow; not in CI): the paper preset, the default and uniform,
   with the round label's signal-to-noise (std of the observed round gain against the std of the true
   one-step gain of the selection, and their correlation) at that scale and at B = 32.
4. Timing: ``schedule()`` and ``observe()`` at 512 prompts x 16 rollouts with a 65,536-rollout buffer (8
   rounds), one thread, every mode of the default and of the paper preset and the peers.

Runs go to ``--workers`` processes (one torch thread each). Usage:
``python benchmarks/bench_rlvr.py [--quick] [--out DIR] [--workers N] [--seeds N] [--steps N] [--worlds W ...]
[--only NAME ...] [--ablation] [--paper-scale] [--timing P G R] [--no-timing]``; writes ``DIR/bench_rlvr.json``
(``{"worlds": {world: {"schedulers": {name: {"final": [...], ...}}, "diff_uniform": ..., ...}}, ...}``),
``DIR/rlvr_worlds.png`` and prints markdown tables. The paper's own claims (regret, the buffer oracle) are
measured by ``benchmarks/bench_rlvr_claims.py``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _common import machine_info, table
from _rlvr_common import band, ci, compact_json, first_at, fmt_ci, paired, run_pool, smooth

import banditlib
from banditlib.adapters import rlvr
from banditlib.adapters.rlvr.sim import SimConfig, run
from banditlib.adapters.rlvr.sim.oracle import one_step_gain

DISTS = ("torch", "numpy", "scipy")
WORLDS: dict[str, tuple[dict[str, Any], str]] = {
    "none": ({"fault": "none"}, "a perfect verifier"),
    "iid": ({"fault": "iid", "false_positive": 0.2}, "a wrong answer passes with probability 0.2, each time anew"),
    "loophole": ({"fault": "loophole", "loophole_fraction": 0.5},
                 "on half the prompts any prefix of the right answer passes, always"),
    "truncation": ({"fault": "truncation", "truncation_rate": 0.5},
                   "answers cut before their end token, up to half of them on the longest prompts"),
    "judge": ({"fault": "judge", "judge_bias": 0.6}, "a wrong answer passes with 0.6 x the policy's own confidence"),
    "mixture": ({"fault": "mixture", "false_positive": 0.1, "loophole_fraction": 0.25, "truncation_rate": 0.25},
                "iid at 0.1, the loophole on a quarter of the prompts and truncation at 0.25, at once"),
}  # fmt: skip
REUSE, BUFFER_ROUNDS = 128, 4
FULL = {"seeds": 12, "steps": 150, "timing": [512, 16, 8], "timing_repeats": 11, "paper_seeds": 4, "paper_steps": 100}
QUICK = {"seeds": 3, "steps": 40, "timing": [512, 16, 8], "timing_repeats": 3, "paper_seeds": 1, "paper_steps": 10}
LAST = 10  # "final" accuracy: the mean over the last LAST steps
DEFAULT = "default"


def makers() -> dict[str, Callable[[int], Any]]:
    """The comparison: the default scheduler, plain GRPO, the paper's CBS and every built-in peer."""
    return {
        DEFAULT: lambda s: rlvr.RolloutScheduler(seed=s),
        "uniform": lambda s: rlvr.UniformScheduler(),
        "paper (cbs-group)": lambda s: rlvr.RolloutScheduler(preset="paper", seed=s),
        "pods": lambda s: rlvr.MaxVarianceScheduler(keep_fraction=0.5),
        "dapo": lambda s: rlvr.DynamicSamplingFilter(),
        "threshold": lambda s: rlvr.ThresholdScheduler(),
        "recency": lambda s: rlvr.RecencyReplay(reuse=REUSE, buffer_rounds=BUFFER_ROUNDS),
        "priority-replay": lambda s: rlvr.PriorityReplay(seed=s),
        "consistency": lambda s: rlvr.ConsistencyFilter(),
        "overlong": lambda s: rlvr.OverlongFilter(),
        "influence (trusted probe)": lambda s: rlvr.InfluenceFilter(),
    }


def ablation_makers() -> dict[str, Callable[[int], Any]]:
    """The default with one ingredient swapped (rule, label, features, model, replay)."""
    d = rlvr.RolloutFeaturizer().dim
    both = (*rlvr.PAPER_FEATURES, *rlvr.CONSISTENCY_FEATURES)
    both_dim = rlvr.RolloutFeaturizer(both).dim
    S = rlvr.RolloutScheduler
    return {
        "abl: rule = top half": lambda s: S(rule=rlvr.TopFraction(0.5), seed=s),
        "abl: rule = soft weights": lambda s: S(rule=rlvr.SoftWeights(0.0, 1.0), seed=s),
        "abl: label = round gain": lambda s: S(label=rlvr.RoundGain(), seed=s),
        "abl: label = baselined gain": lambda s: S(label=rlvr.BaselinedGain(), seed=s),
        "abl: label = influence (next batch)": lambda s: S(label=rlvr.InfluenceLabel("next"), seed=s),
        "abl: label = influence (trusted probe)": lambda s: S(label=rlvr.InfluenceLabel("trusted"), seed=s),
        "abl: features = paper's ten": lambda s: S(featurizer=rlvr.RolloutFeaturizer(rlvr.PAPER_FEATURES), seed=s),
        "abl: features = paper + consistency": lambda s: S(featurizer=rlvr.RolloutFeaturizer(both), seed=s,
                                                           policy=banditlib.LinUCB(dim=both_dim, alpha=1.0,
                                                                                   forget=0.99, seed=s)),
        "abl: model = LinTS": lambda s: S(policy=banditlib.LinTS(dim=d, forget=0.99, seed=s), seed=s),
        "abl: model = NeuralUCB": lambda s: S(policy=banditlib.NeuralUCB(dim=d, hidden=(16,), seed=s), seed=s),
        "abl: alpha = 0 (greedy)": lambda s: S(policy=banditlib.LinUCB(dim=d, alpha=0.0, forget=0.99, seed=s), seed=s),
        "abl: forget = 1": lambda s: S(policy=banditlib.LinUCB(dim=d, alpha=1.0, forget=1.0, seed=s), seed=s),
        "abl: replay = none (mode group)": lambda s: S(mode="group", seed=s),
        "abl: replay = by score (the paper's pick)": lambda s: S(replay="score", reuse=128, seed=s),
        "abl: replay = ages <= 10": lambda s: S(buffer_rounds=11, seed=s),
        "abl: replay = 1 N": lambda s: S(replay_ratio=1.0, seed=s),
    }  # fmt: skip


def is_peer(name: str) -> bool:
    """A built-in peer: not the default, not plain GRPO, not an ablation variant."""
    return name not in (DEFAULT, "uniform") and not name.startswith("abl:")


# ---------------------------------------------------------------------------------------- jobs (in workers)

Job = tuple[str, str, int, int, dict[str, Any]]  # world, scheduler, seed, steps, SimConfig overrides


def _true_gain_hook(records: list[float]) -> Any:
    def hook(sim: Any, b: Any, s: Any, rows: Any, w: torch.Tensor) -> dict[str, Any]:
        g = one_step_gain(sim, rows, w)
        records.append(g)
        return {"true_gain": g}

    return hook


def _job(job: Job) -> dict[str, Any]:
    world, name, seed, steps, extra = job
    torch.set_num_threads(1)
    config = SimConfig(**{**WORLDS[world][0], **extra.get("config", {})})
    sch = {**makers(), **ablation_makers()}[name](seed)
    hook = _true_gain_hook([]) if extra.get("true_gain") else None
    res = run(sch, seed, steps, config, hook=hook)
    rounds = res.rounds
    acc = res.accuracy
    return {
        "world": world, "name": name, "seed": seed, "accuracy": [round(a, 5) for a in acc], "backward": res.backward,
        "final": float(np.mean(acc[-LAST:])), "last": acc[-1], "greedy_final": res.greedy_final,
        "kept_share": statistics.mean(r["kept_share"] for r in rounds),
        "rows_per_round": statistics.mean(r["n_fresh"] + r["n_replay"] for r in rounds),
        "lucky_share_kept": statistics.mean(r["lucky_share_kept"] for r in rounds),
        "lucky_share_all": statistics.mean(r["lucky_share_all"] for r in rounds),
        "missed_share_kept": statistics.mean(r["missed_share_kept"] for r in rounds),
        "missed_share_all": statistics.mean(r["missed_share_all"] for r in rounds),
        "schedule_ms": res.schedule_seconds / steps * 1e3, "wall_s": res.wall_seconds,
        "observed_gain": [r.get("observed_gain") for r in rounds],
        "true_gain": [r.get("true_gain") for r in rounds] if hook else None,
    }  # fmt: skip


# ---------------------------------------------------------------------------------------- summaries


def summarise_world(runs: dict[str, list[dict[str, Any]]], steps: int) -> dict[str, Any]:
    """Per scheduler: finals, intervals, steps to target, shares; paired differences to uniform and the best peer."""
    by_seed = {n: sorted(r, key=lambda x: x["seed"]) for n, r in runs.items()}
    uni = np.array([r["accuracy"] for r in by_seed["uniform"]])
    target = float(np.mean([smooth(c) for c in uni], axis=0)[steps // 2])
    budget = float(np.mean([r["backward"][-1] for r in by_seed["uniform"]]))  # uniform's rows trained
    out: dict[str, Any] = {}
    for name, rs in by_seed.items():
        hits = [first_at(r["accuracy"], target) for r in rs]
        at_budget = [at_equal_backward(r, budget) for r in rs]
        out[name] = {
            "final": [r["final"] for r in rs], "final_ci": ci([r["final"] for r in rs]),
            "at_equal_backward": at_budget, "at_equal_backward_ci": ci(at_budget),
            "steps_to_target": hits, "steps_ci": ci([steps + 1 if h is None else h for h in hits]),
            "reached": sum(h is not None for h in hits), "n": len(rs),
            **{k: statistics.mean(r[k] for r in rs) for k in ("kept_share", "rows_per_round", "lucky_share_kept",
                                                               "lucky_share_all", "missed_share_kept",
                                                               "missed_share_all", "schedule_ms")},
        }  # fmt: skip
    peers = [n for n in out if is_peer(n)]
    best = max(peers, key=lambda n: out[n]["final_ci"][0]) if peers else None
    uni_f = out["uniform"]["final"]
    diff_uniform = {n: paired(out[n]["final"], uni_f) for n in out if n != "uniform"}
    diff_best = {n: paired(out[n]["final"], out[best]["final"]) for n in out if best and n != best}
    uni_b = out["uniform"]["at_equal_backward"]
    diff_backward = {n: paired(out[n]["at_equal_backward"], uni_b) for n in out if n != "uniform"}
    return {"target": target, "best_peer": best, "schedulers": out, "diff_uniform": diff_uniform,
            "diff_best_peer": diff_best, "diff_uniform_equal_backward": diff_backward,
            "backward_budget": budget}  # fmt: skip


def at_equal_backward(r: dict[str, Any], budget: float) -> float:
    """Accuracy (mean over the LAST steps ending there) at the first step by which the run has trained on as
    many rows as uniform GRPO in the whole run; a run that trains on fewer rows is read at its end."""
    t = next((i for i, b in enumerate(r["backward"]) if b >= budget), len(r["backward"]) - 1)
    acc = r["accuracy"]
    return float(np.mean(acc[max(0, t - LAST + 1) : t + 1]))


def verdict(worlds: dict[str, Any]) -> dict[str, Any]:
    """The issue's test: the default not significantly below uniform anywhere, significantly above in >= 2
    worlds, and no built-in peer significantly above it in more than one world."""
    below, above, beaten = [], [], {}
    for w, s in worlds.items():
        d = s["diff_uniform"].get(DEFAULT)
        if d is None:
            continue
        if d[2] < 0:
            below.append(w)
        if d[1] > 0:
            above.append(w)
        for peer in s["schedulers"]:
            if is_peer(peer):
                dp = paired(s["schedulers"][peer]["final"], s["schedulers"][DEFAULT]["final"])
                if dp[1] > 0:
                    beaten.setdefault(peer, []).append(w)
    worst = max((len(v) for v in beaten.values()), default=0)
    return {"below_uniform": below, "above_uniform": above, "peers_significantly_above": beaten,
            "met": not below and len(above) >= 2 and worst <= 1}  # fmt: skip


def label_snr(rs: list[dict[str, Any]]) -> dict[str, Any]:
    """Std of the observed round gain against the std of the true one-step gain of the selection."""
    obs = np.array([g for r in rs for g in r["observed_gain"] if g is not None], dtype=float)
    true = np.array([g for r in rs for g in (r["true_gain"] or []) if g is not None], dtype=float)
    n = min(obs.size, true.size)
    pairs = [(o, t) for r in rs for o, t in zip(r["observed_gain"], r["true_gain"] or [], strict=False)
             if o is not None and t is not None]  # fmt: skip
    o, t = (np.array(x, dtype=float) for x in zip(*pairs, strict=True)) if pairs else (obs[:0], true[:0])
    corr = float(np.corrcoef(o, t)[0, 1]) if n > 2 and o.std() > 0 and t.std() > 0 else None
    return {"observed_std": float(obs.std()) if obs.size else None,
            "true_std": float(true.std()) if true.size else None,
            "corr": corr, "rounds": len(pairs)}  # fmt: skip


# ---------------------------------------------------------------------------------------- timing


def bench_timing(prompts: int, group: int, rounds: int, repeats: int) -> dict[str, Any]:
    """Milliseconds of ``schedule()`` and ``observe()`` at ``prompts x group`` rollouts a round after the buffer
    holds ``rounds`` rounds of them; logprobs, answers and a token payload of 16 columns ride along."""
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(0)
    N = prompts * group

    def batch(t: int) -> Any:
        return rlvr.RolloutBatch.from_tensors(
            group=torch.arange(prompts).repeat_interleave(group), reward=(torch.rand(N, generator=gen) < 0.4).float(),
            entropy=torch.rand(N, generator=gen), clip_ratio=torch.rand(N, generator=gen) * 0.1,
            length=torch.randint(1, 512, (N,), generator=gen).float(), truncated=torch.rand(N, generator=gen) < 0.05,
            round=t, logprobs=-torch.rand(N, 16, generator=gen), answer=torch.randint(0, 4, (N,), generator=gen),
            payload={"tokens": torch.zeros(N, 16, dtype=torch.long)},
        )  # fmt: skip

    S = rlvr.RolloutScheduler
    specs: dict[str, Callable[[], Any]] = {
        "default": lambda: S(buffer_rounds=rounds, seed=0),  # mode both, priority replay of 0.5 N
        **{f"default-{m}": (lambda m=m: S(mode=m, buffer_rounds=rounds, seed=0)) for m in ("group", "global")},
        **{f"paper-{m}": (lambda m=m: S(preset="paper", mode=m, reuse=REUSE, buffer_rounds=rounds, seed=0))
           for m in ("group", "global", "both")},
        "uniform": rlvr.UniformScheduler, "pods": lambda: rlvr.MaxVarianceScheduler(keep_fraction=0.5),
        "dapo": rlvr.DynamicSamplingFilter, "recency": lambda: rlvr.RecencyReplay(reuse=REUSE, buffer_rounds=rounds),
        "priority-replay": lambda: rlvr.PriorityReplay(max_age=rounds - 1), "consistency": rlvr.ConsistencyFilter,
        "overlong": rlvr.OverlongFilter,
    }  # fmt: skip
    out: dict[str, Any] = {"prompts": prompts, "group": group, "buffer_rollouts": N * rounds, "repeats": repeats}
    for name, make in specs.items():
        sch, t = make(), 0
        for _ in range(rounds):  # fill the buffer
            sch.schedule(batch(t))
            t += 1
            sch.observe(b := batch(t))
        sched, obs = [], []
        for _ in range(repeats):
            start = time.perf_counter()
            sch.schedule(b)
            sched.append(time.perf_counter() - start)
            t += 1
            b = batch(t)
            start = time.perf_counter()
            sch.observe(b)
            obs.append(time.perf_counter() - start)
        out[name] = {"schedule_ms_median": statistics.median(sched) * 1e3, "schedule_ms_best": min(sched) * 1e3,
                     "observe_ms_median": statistics.median(obs) * 1e3}  # fmt: skip
    return out


# ---------------------------------------------------------------------------------------- tables, plot


def world_table(world: str, s: dict[str, Any], sizes: dict[str, Any]) -> str:
    best = s["best_peer"]
    rows = []
    for name, r in s["schedulers"].items():
        du = s["diff_uniform"].get(name)
        db = s["diff_best_peer"].get(name)
        rows.append([
            f"**{name}**" if name == DEFAULT else name, fmt_ci(r["final_ci"]),
            "-" if du is None else fmt_ci(du, signed=True), "-" if db is None else fmt_ci(db, signed=True),
            "-" if name == "uniform" else fmt_ci(s["diff_uniform_equal_backward"][name], signed=True),
            fmt_ci(r["steps_ci"], 1), f"{r['reached']}/{r['n']}", f"{r['kept_share']:.2f}",
            f"{r['rows_per_round']:.0f}", f"{r['lucky_share_kept']:.3f}", f"{r['missed_share_kept']:.3f}",
            f"{r['schedule_ms']:.2f}",
        ])  # fmt: skip
    u = s["schedulers"]["uniform"]
    headers = ["scheduler", "final held-out acc. [95% CI]", "vs uniform (paired)", f"vs best peer ({best})",
               "vs uniform at equal backward passes", "steps to target", "reached", "kept share", "rows/round",
               "lucky share of kept +", "missed share of kept -", "ms/round"]  # fmt: skip
    title = f"World `{world}` ({WORLDS[world][1]}): {sizes['seeds']} seeds x {sizes['steps']} steps"
    notes = [f"Target {s['target']:.3f}; among all generated rows: lucky share of positives "
             f"{u['lucky_share_all']:.3f}, missed share of negatives {u['missed_share_all']:.3f}. Equal backward "
             f"passes: accuracy when a run has trained on {s['backward_budget']:,.0f} rows (uniform's whole run; "
             "a run training on fewer is read at its end)."]  # fmt: skip
    return table(title, headers, rows, notes)


def summary_table(worlds: dict[str, Any], names: list[str]) -> str:
    """One row per scheduler: paired difference to uniform in every world, significant ones marked."""
    rows = []
    for name in names:
        if name == "uniform":
            continue
        cells = [f"**{name}**" if name == DEFAULT else name]
        for s in worlds.values():
            d = s["diff_uniform"].get(name)
            mark = "" if d is None or (d[1] <= 0 <= d[2]) else (" (+)" if d[1] > 0 else " (-)")
            cells.append("-" if d is None else f"{d[0]:+.3f}{mark}")
        rows.append(cells)
    rows.append(["best peer"] + [f"{s['best_peer']}" for s in worlds.values()])
    notes = ["(+)/(-): the 95% interval of the paired difference excludes 0."]
    return table("Final held-out accuracy minus uniform's, paired over seeds", ["scheduler", *worlds], rows, notes)


def timing_table(timing: dict[str, Any]) -> str:
    rows = [[name, f"{r['schedule_ms_median']:.2f}", f"{r['schedule_ms_best']:.2f}", f"{r['observe_ms_median']:.2f}",
             "yes" if r["schedule_ms_median"] <= 10 else "NO"]
            for name, r in timing.items() if isinstance(r, dict)]  # fmt: skip
    title = (f"schedule() time: {timing['prompts']} prompts x {timing['group']} rollouts, buffer "
             f"{timing['buffer_rollouts']:,} rollouts, {timing['repeats']} repeats, 1 thread")  # fmt: skip
    return table(title, ["scheduler", "schedule ms (median)", "(best)", "observe ms (median)", "<= 10 ms"], rows, [])


def paper_table(paper: dict[str, Any]) -> str:
    rows = []
    for key, p in paper.items():
        for name, r in p["schedulers"].items():
            d = p["diff_uniform"].get(name)
            rows.append([key, name, fmt_ci(r["final_ci"]), "-" if d is None else fmt_ci(d, signed=True),
                         f"{r['kept_share']:.2f}"])  # fmt: skip
    notes = []
    for key, p in paper.items():
        snr = p["snr"]
        if snr["observed_std"] is None or snr["true_std"] is None:
            continue
        corr = "-" if snr["corr"] is None else f"{snr['corr']:.2f}"
        notes.append(f"{key}: the paper preset's round label: std of the observed r_t {snr['observed_std']:.4f}, std "
                     f"of the true one-step gain of its selection {snr['true_std']:.4f}, correlation {corr} "
                     f"({snr['rounds']} rounds).")  # fmt: skip
    return table("Paper scale", ["setting", "scheduler", "final held-out acc.", "vs uniform (paired)", "kept share"],
                 rows, notes)  # fmt: skip


def plot(worlds: dict[str, Any], runs: dict[str, dict[str, list[dict[str, Any]]]], path: Path) -> bool:
    """Per world: held-out accuracy of uniform, the default and the world's best peer (mean, 95% band)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    n = len(worlds)
    cols = 3
    fig, axes = plt.subplots((n + cols - 1) // cols, cols, figsize=(13, 3.6 * ((n + cols - 1) // cols)), squeeze=False)
    styles = {"uniform": ("#555555", "--"), DEFAULT: ("#1f77b4", "-"), "best": ("#d62728", ":")}
    for ax, (w, s) in zip(axes.flat, worlds.items(), strict=False):
        for key, name in (("uniform", "uniform"), (DEFAULT, DEFAULT), ("best", s["best_peer"])):
            if name is None or name not in runs[w]:
                continue
            acc = np.array([r["accuracy"] for r in runs[w][name]])
            m, lo, hi = band(acc)
            c, ls = styles[key]
            label = f"best peer: {name}" if key == "best" else name
            ax.plot(np.arange(acc.shape[1]), m, color=c, ls=ls, lw=1.5, label=label)
            ax.fill_between(np.arange(acc.shape[1]), lo, hi, color=c, alpha=0.12, lw=0)
        ax.set_title("\n".join(textwrap.wrap(f"{w}: {WORLDS[w][1]}", 58)), fontsize=8)
        ax.set_xlabel("training steps")
        ax.set_ylabel("held-out accuracy")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, frameon=False, loc="lower right")
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


# ---------------------------------------------------------------------------------------- main


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
    names = [n for n in makers() if args.only is None or n in args.only or n in ("uniform", DEFAULT)]
    if args.ablation:
        names += list(ablation_makers())
    start, load_before = time.perf_counter(), os.getloadavg()
    if args.only_timing:
        timing = bench_timing(*sizes["timing"], sizes["timing_repeats"])
        m = machine_info(1, DISTS)
        print(f"bench_rlvr (timing only): {m['cpu_model']}, {m['cores']} cores, 1 torch thread, load average "
              f"{load_before[0]:.2f} before, {os.getloadavg()[0]:.2f} after\n")  # fmt: skip
        print(timing_table(timing))
        args.out.mkdir(parents=True, exist_ok=True)
        out = {"benchmark": "bench_rlvr", "mode": "timing", "machine": m, "timing": timing, "argv": sys.argv,
               "load_average_before_after": [load_before, os.getloadavg()]}  # fmt: skip
        (args.out / "bench_rlvr_timing.json").write_text(compact_json(out))
        return out
    jobs: list[Job] = [(w, n, s, sizes["steps"], {}) for w in worlds for s in range(sizes["seeds"]) for n in names]
    paper_jobs: list[Job] = []
    if args.paper_scale:
        for w in ("iid", "mixture"):
            for B, G in ((256, 16), (32, 8)):
                for n in ("uniform", DEFAULT, "paper (cbs-group)"):
                    extra = {"config": {"prompts_per_round": B, "group_size": G}, "true_gain": n.startswith("paper"),
                             "key": f"{w}, B={B} x G={G}"}  # fmt: skip
                    paper_jobs += [(w, n, s, sizes["paper_steps"], extra) for s in range(sizes["paper_seeds"])]
    results = run_pool(_job, jobs + paper_jobs, args.workers, progress="bench_rlvr runs")
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {w: {n: [] for n in names} for w in worlds}
    paper_runs: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for job, r in zip(jobs + paper_jobs, results, strict=True):
        if job[4]:
            paper_runs.setdefault(job[4]["key"], {}).setdefault(job[1], []).append(r)
        else:
            runs[r["world"]][r["name"]].append(r)
    learn_s = time.perf_counter() - start
    summaries = {w: summarise_world(runs[w], sizes["steps"]) for w in worlds}
    paper = {}
    for key, pr in paper_runs.items():
        p = summarise_world(pr, sizes["paper_steps"])
        p["snr"] = label_snr(pr["paper (cbs-group)"])
        paper[key] = p
    timing = None if args.no_timing else bench_timing(*sizes["timing"], sizes["timing_repeats"])
    report: dict[str, Any] = {
        "benchmark": "bench_rlvr", "mode": "quick" if args.quick else "full", "argv": sys.argv,
        "machine": machine_info(1, DISTS), "sizes": sizes, "workers": args.workers,
        "worlds_config": {w: WORLDS[w][0] for w in worlds}, "worlds": summaries, "verdict": verdict(summaries),
        "curves": {w: {n: [r["accuracy"] for r in rs] for n, rs in runs[w].items()} for w in worlds},
        "paper_scale": paper, "timing": timing, "learning_s": learn_s,
    }  # fmt: skip
    report["elapsed_s"] = time.perf_counter() - start
    report["load_average_before_after"] = [load_before, os.getloadavg()]
    m = report["machine"]
    print(f"bench_rlvr ({report['mode']}): {m['cpu_model']}, {m['cores']} cores, {args.workers} workers x 1 torch "
          f"thread, load average {load_before[0]:.2f} before, {os.getloadavg()[0]:.2f} after, "
          f"{report['elapsed_s']:.0f} s\n")  # fmt: skip
    tables = [summary_table(summaries, names)] + [world_table(w, summaries[w], sizes) for w in worlds]
    v = report["verdict"]
    tables.append(
        f"Verdict (default vs uniform and the peers): below uniform in {v['below_uniform'] or 'no world'}; above in "
        f"{v['above_uniform'] or 'no world'}; peers significantly above it: {v['peers_significantly_above'] or 'none'}"
        f" -> {'met' if v['met'] else 'NOT met'}."
    )
    if paper:
        tables.append(paper_table(paper))
    if timing:
        tables.append(timing_table(timing))
    print("\n\n".join(tables))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench_rlvr.json").write_text(compact_json(report))
    report["plot"] = plot(summaries, runs, args.out / "rlvr_worlds.png")
    print(f"\nwrote {args.out / 'bench_rlvr.json'} and {args.out / 'rlvr_worlds.png'}")
    return report


if __name__ == "__main__":
    main()
