"""BanditGRPOTrainer in TRL on CPU: the adapter's overhead, and the schedulers on a tiny arithmetic task with
an exact and a faulty verifier.

1. Overhead. Seconds per optimizer step of ``trl.GRPOTrainer`` and of ``BanditGRPOTrainer`` with the
   ``UniformScheduler`` (which trains on exactly what GRPO trains on: the test suite checks equal losses) on
   the same tiny Llama, interleaved repeats, median and best, and their ratio: without answers
   (``answer_fn=None``), with the default ``answer_fn`` and with gradient sketches (``grad_sketch=64``). The
   adapter adds one forward pass under ``no_grad`` per generation (entropies, behaviour log-probs), the
   decoding of the round's completions for their answers, a gather of the round's rows and the scheduler's
   decision.
2. Sketch cost. The tiny model's head (16 x 32) says nothing about the sketch's cost at scale, so
   :func:`banditlib.adapters._trl_batch.lm_head_sketch` is timed on its own against the LM-head projection
   it has to recompute (logits and their log-softmax for the same tokens), at a vocabulary and width of a
   small LLM, for several sketch widths ``k``.
3. Schedulers. ``examples/trl_arithmetic.py`` (one-digit sums, 2-layer Llama warm-started with supervised
   steps, GRPO with G = 8, 16 completions per step), trained on the exact verifier and on the faulty one (on a
   fixed 40% of the training sums it also accepts the sum plus one, always: a deterministic false positive),
   by ``UniformScheduler``, ``RolloutScheduler()`` (the default), ``RolloutScheduler(preset="paper")``,
   ``ConsistencyFilter``, ``DynamicSamplingFilter``, ``OverlongFilter`` and ``PriorityReplay``, all through
   the real ``BanditGRPOTrainer`` with ``answer_fn`` = the completion's first word (what the verifier reads).
   Per scheduler and verifier: the greedy accuracy on all 25 sums at the end, scored by the TRUE verifier;
   the training reward over the last 10 steps as the training verifier scores it, and as the exact one
   would; the share of faulty sums greedily answered with the false positive; the share of fresh
   completions kept; and the paired difference to uniform over seeds (same seed: same warm-started model and
   prompt order) with a 95% Student-t interval. Every step generates the same number of completions
   whatever the scheduler, so equal steps are equal completions generated.

torch runs on one thread (``torch.set_num_threads(1)``): the matrices are tiny and a busy machine's extra
threads only add synchronisation.

Usage: ``python benchmarks/bench_trl.py [--quick] [--out DIR]``; writes ``DIR/bench_trl.json`` and prints
markdown tables.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import math
import os
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from _common import machine_info, summary, table, time_interleaved
from datasets import Dataset
from scipy import stats
from transformers.trainer_callback import PrinterCallback
from trl import GRPOConfig, GRPOTrainer

from banditlib.adapters import _trl_batch as tb
from banditlib.adapters.rlvr import UniformScheduler
from banditlib.adapters.rlvr.influence import sketch_matrices
from banditlib.adapters.trl import BanditGRPOTrainer

DISTS = ("torch", "trl", "transformers", "accelerate", "scipy")
ROOT = Path(__file__).resolve().parent.parent
# The compared schedulers (names of examples/trl_arithmetic.py's SCHEDULERS) and what each one is.
COMPARED = {
    "uniform": "UniformScheduler()",
    "default": "RolloutScheduler()",
    "cbs-group": 'RolloutScheduler(preset="paper")',
    "consistency": "ConsistencyFilter()",
    "dapo": "DynamicSamplingFilter()",
    "overlong": "OverlongFilter()",
    "priority": "PriorityReplay()",
}
OVERHEAD = {  # trainer -> BanditGRPOTrainer keywords (None: plain GRPOTrainer)
    "GRPOTrainer": None,
    "Bandit(uniform, answer_fn=None)": {"answer_fn": None},
    "Bandit(uniform)": {},
    "Bandit(uniform, grad_sketch=64)": {"grad_sketch": 64},
}


def load_example() -> Any:
    spec = importlib.util.spec_from_file_location("trl_arithmetic", ROOT / "examples" / "trl_arithmetic.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["trl_arithmetic"] = module
    spec.loader.exec_module(module)
    return module


def overhead(ex: Any, steps: int, repeats: int) -> dict[str, Any]:
    """Seconds per optimizer step of plain GRPOTrainer and of BanditGRPOTrainer(UniformScheduler) variants."""
    tok = ex.tokenizer()
    data = Dataset.from_dict({"prompt": [ex.prompt(a, b) for a, b in ex.TRAIN] * 8})

    def make(adapter: dict[str, Any] | None) -> Callable[[], None]:
        def go() -> None:
            with tempfile.TemporaryDirectory() as out:
                args = GRPOConfig(
                    output_dir=out, per_device_train_batch_size=16, num_generations=8, max_completion_length=3,
                    max_steps=steps, learning_rate=2e-3, use_cpu=True, report_to=[], logging_steps=steps,
                    save_strategy="no", seed=0, disable_tqdm=True,
                )  # fmt: skip
                kw = dict(model=ex.warm_model(0, tok, 0), reward_funcs=ex.reward_correct, args=args,
                          train_dataset=data, processing_class=tok)  # fmt: skip
                if adapter is None:
                    tr: Any = GRPOTrainer(**kw)
                else:
                    tr = BanditGRPOTrainer(scheduler=UniformScheduler(), **adapter, **kw)
                tr.remove_callback(PrinterCallback)
                tr.train()
                go.seconds.append(tr.state.log_history[-1]["train_runtime"] / steps)  # type: ignore[attr-defined]

        go.seconds = []  # type: ignore[attr-defined]
        return go

    fns = {name: make(adapter) for name, adapter in OVERHEAD.items()}
    time_interleaved(fns, repeats)  # the trainer's own train_runtime excludes construction
    res: dict[str, Any] = {name: summary(fn.seconds[1:], 1.0) for name, fn in fns.items()}  # type: ignore[attr-defined]
    base = res["GRPOTrainer"]
    for name in OVERHEAD:
        res[name]["ratio_median"] = res[name]["median_s"] / base["median_s"]
        res[name]["ratio_best"] = res[name]["best_s"] / base["best_s"]
    res["ratio_median"] = res["Bandit(uniform)"]["ratio_median"]  # the adapter as shipped (default answer_fn)
    res["ratio_best"] = res["Bandit(uniform)"]["ratio_best"]
    return res


def sketch_cost(vocab: int, hidden: int, tokens: int, widths: tuple[int, ...], repeats: int) -> dict[str, Any]:
    """Seconds of ``lm_head_sketch`` on ``tokens`` tokens against the head projection it recomputes."""
    g = torch.Generator().manual_seed(0)
    rows = 8
    h = torch.randn(rows, tokens // rows, hidden, generator=g)
    w = torch.randn(vocab, hidden, generator=g) / hidden**0.5
    y = torch.randint(0, vocab, (rows, tokens // rows), generator=g)
    mask = torch.ones(rows, tokens // rows, dtype=torch.bool)
    step = max(1, tb.SKETCH_TILE_ELEMENTS // vocab)
    flat = h.reshape(-1, hidden)

    def head() -> None:  # the logits and log-probs of the same tokens, in the same tiles
        for s in range(0, flat.shape[0], step):
            F.linear(flat[s : s + step], w).log_softmax(-1)

    fns: dict[str, Callable[[], object]] = {"head projection + log-softmax": head}
    for k in widths:
        side = math.isqrt(k)
        left, right = sketch_matrices(vocab, hidden, side, side, seed=0)
        fns[f"sketch k={k}"] = lambda left=left, right=right: tb.lm_head_sketch(h, y, mask, w, None, left, right)
    times = time_interleaved(fns, repeats)
    res: dict[str, Any] = {"vocab": vocab, "hidden": hidden, "tokens": tokens, "tile_tokens": min(step, tokens)}
    res["timings"] = {name: summary(t, tokens) for name, t in times.items()}
    base = res["timings"]["head projection + log-softmax"]["median_s"]
    for r in res["timings"].values():
        r["ratio_to_head"] = r["median_s"] / base
    tile = min(step, tokens) * vocab * 4
    res["extra_memory_bytes"] = {"tiles": 3 * tile, "per_completion": {k: 4 * k for k in widths}}  # logits, p, delta
    return res


def paired(
    runs: list[dict[str, Any]], name: str, faulty: bool, metric: Callable[[dict[str, Any]], float]
) -> dict[str, Any]:
    """Mean of ``metric(name) - metric(uniform)`` over the seeds both ran, with a 95% Student-t interval."""
    base = {r["seed"]: metric(r) for r in runs if r["scheduler"] == "uniform" and r["faulty"] == faulty}
    diffs = [metric(r) - base[r["seed"]] for r in runs
             if r["scheduler"] == name and r["faulty"] == faulty and r["seed"] in base]  # fmt: skip
    n = len(diffs)
    mean = statistics.fmean(diffs) if diffs else math.nan
    half = float(stats.t.ppf(0.975, n - 1)) * statistics.stdev(diffs) / math.sqrt(n) if n > 1 else math.nan
    return {"mean": mean, "low": mean - half, "high": mean + half, "seeds": n}


def tail(xs: list[float]) -> float:
    return statistics.fmean(xs[-10:])


METRICS: dict[str, Callable[[dict[str, Any]], float]] = {
    "greedy_acc": lambda r: r["greedy_acc_end"],
    "reward": lambda r: tail(r["reward"]),
    "true_reward": lambda r: tail(r["true_reward"]),
}


def compare(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per verifier and scheduler: means over seeds and paired differences to uniform."""
    rows = []
    for faulty in (False, True):
        for name in COMPARED:
            rs = [r for r in runs if r["scheduler"] == name and r["faulty"] == faulty]
            if not rs:
                continue
            row: dict[str, Any] = {"verifier": "faulty" if faulty else "exact", "scheduler": name,
                                   "what": COMPARED[name], "seeds": len(rs)}  # fmt: skip
            for key, metric in METRICS.items():
                row[key] = statistics.fmean(metric(r) for r in rs)
                row[f"{key}_vs_uniform"] = None if name == "uniform" else paired(runs, name, faulty, metric)
            row["greedy_acc_start"] = statistics.fmean(r["greedy_acc_start"] for r in rs)
            row["hacked"] = statistics.fmean(r["greedy_hacked"] for r in rs)
            row["kept_fraction"] = statistics.fmean(k for r in rs for k in r["kept_fraction"] if k is not None)
            row["seconds"] = statistics.fmean(r["seconds"] for r in rs)
            rows.append(row)
    return rows


def diff_cell(d: dict[str, Any] | None, digits: int = 3) -> str:
    if d is None:
        return "-"
    return f"{d['mean']:+.{digits}f} [{d['low']:+.{digits}f}, {d['high']:+.{digits}f}]"


def markdown(rows: list[dict[str, Any]]) -> str:
    head = ["verifier", "scheduler", "greedy acc. (true)", "vs uniform [95% CI]", "train reward",
            "vs uniform [95% CI]", "true train reward", "hacked", "kept share", "s/run"]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["verifier"], f"{r['scheduler']} ({r['what']})", f"{r['greedy_acc']:.3f}",
                 diff_cell(r["greedy_acc_vs_uniform"]), f"{r['reward']:.3f}", diff_cell(r["reward_vs_uniform"]),
                 f"{r['true_reward']:.3f}", f"{r['hacked']:.2f}", f"{r['kept_fraction']:.2f}",
                 f"{r['seconds']:.1f}"]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps, seeds and repeats (a smoke run)")
    parser.add_argument("--out", default="benchmarks/results")
    opts = parser.parse_args()
    warnings.filterwarnings("ignore")
    logging.getLogger("transformers").setLevel(logging.ERROR)
    torch.set_num_threads(1)
    print(f"torch threads: {torch.get_num_threads()} (torch.set_num_threads(1); one process)\n")
    ex = load_example()
    if opts.quick:
        steps, seeds, repeats, lr = 10, 2, 2, 1e-3
        sketch_shape, sketch_repeats = (8192, 256, 256), 2
    else:
        steps, seeds, repeats, lr = 200, 10, 5, 1e-3
        sketch_shape, sketch_repeats = (32768, 1024, 512), 5
    start = time.perf_counter()

    over = overhead(ex, steps=8, repeats=repeats)
    cells = [[k, f"{over[k]['median_s']:.3f}", f"{over[k]['best_s']:.3f}", f"{over[k]['ratio_median']:.2f}x",
              f"{over[k]['ratio_best']:.2f}x"] for k in OVERHEAD]  # fmt: skip
    title = "Adapter overhead (seconds per optimizer step, tiny Llama V=16 H=32, 16 completions/step)"
    print(table(title, ["trainer", "median s", "best s", "ratio median", "ratio best"], cells,
                [f"interleaved repeats: {repeats} (first dropped); ratios against GRPOTrainer"]))  # fmt: skip

    widths = (16, 64, 256)
    sk = sketch_cost(*sketch_shape, widths=widths, repeats=sketch_repeats)
    cells = [[name, f"{r['median_s'] * 1e3:.1f}", f"{r['best_s'] * 1e3:.1f}", f"{r['ratio_to_head']:.2f}x"]
             for name, r in sk["timings"].items()]  # fmt: skip
    notes = [f"tiles of {sk['tile_tokens']} tokens; extra memory: {sk['extra_memory_bytes']['tiles'] / 2**20:.0f} MiB "
             "of tiles (logits, probabilities, delta), plus 4 k bytes per completion for the sketch itself (k = 64: "
             "256 B) and one micro-batch's hidden states, which the forward computes anyway"]  # fmt: skip
    title = (f"LM-head gradient sketch vs the head projection it recomputes (V={sk['vocab']}, H={sk['hidden']}, "
             f"{sk['tokens']} tokens)")  # fmt: skip
    print()
    print(table(title, ["computation", "median ms", "best ms", "vs head"], cells, notes))

    runs = []
    for seed in range(seeds):
        for faulty in (False, True):
            for name in COMPARED:
                runs.append(ex.run(name, seed, steps, lr=lr, faulty=faulty))
    rows = compare(runs)
    print()
    print(f"### Schedulers on one-digit sums, exact and faulty verifier ({steps} GRPO steps, lr {lr:g}, {seeds} "
          "seeds, 16 completions/step)\n")  # fmt: skip
    print(markdown(rows))
    print(f"\nfaulty verifier: on the training sums {sorted(ex.FAULTY)} (40%, fixed seed) it also accepts a + b + 1. "
          "greedy acc.: all 25 sums, exact verifier, at the end; train reward: last 10 steps as the training "
          "verifier scores it, true: as the exact one would; hacked: share of the faulty sums greedily answered "
          "a + b + 1; kept share: fresh completions kept per round; vs uniform: mean paired difference over seeds "
          f"[95% Student-t interval]. Wall time {time.perf_counter() - start:.0f} s.")  # fmt: skip
    os.makedirs(opts.out, exist_ok=True)
    path = os.path.join(opts.out, "bench_trl.json")
    with open(path, "w") as fh:
        json.dump({"machine": machine_info(1, DISTS), "steps": steps, "seeds": seeds, "lr": lr,
                   "faulty_sums": sorted(ex.FAULTY), "overhead": over, "sketch_cost": sk, "summary": rows,
                   "runs": runs}, fh, indent=1)  # fmt: skip
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
