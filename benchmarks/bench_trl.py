"""BanditGRPOTrainer in TRL on CPU: the adapter's overhead, and the schedulers on a tiny arithmetic task with
an exact and a faulty verifier.

1. Overhead. Seconds per optimizer step of ``trl.GRPOTrainer`` and of ``BanditGRPOTrainer`` with the
   ``UniformScheduler`` (which trains on exactly what GRPO trains on: the test suite checks equal losses) on
   the same tiny Llama, in four cases (``OVERHEAD_CASES``): transformers generation with TRL's defaults (the
   adapter runs its own no-grad forward), ``steps_per_generation=2`` (TRL scores ``old_per_token_logps``
   itself and the adapter reuses that pass), and ``use_vllm=True`` with and without the importance-sampling
   correction, generation going through the CPU stand-in for vLLM of ``tests/adapters/trl_fake_vllm.py``
   (vLLM needs a GPU). Variants: without answers (``answer_fn=None``), with gradient sketches
   (``grad_sketch=64``), with ``entropy="exact"``. The trainers of a case take turns (interleaved repeats);
   per repeat, each variant's time is divided by GRPOTrainer's, and the geometric mean of these ratios is
   reported with a 95% Student-t interval (on their logs), next to the number of extra forwards per
   generation the adapter logged. ``--compare-adapter before=MODULE`` times another version of the adapter
   (``MODULE.BanditGRPOTrainer``, e.g. a saved copy of an earlier commit on ``PYTHONPATH``) in the same
   rotation; a case it rejects is marked so.
2. Sketch cost. The tiny model's head (16 x 32) says nothing about the sketch's cost at scale, so
   :func:`banditlib.adapters._trl_sketch.lm_head_sketch` is timed on its own against the LM-head projection
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
4. Entropy definition. The schedulers whose decisions read the entropy statistic (``ENTROPY_COMPARED``: CBS's
   features and gain, the default's features) again with ``entropy="sampled"`` (the sampled-token estimate
   ``-mean log p(y_t)`` instead of the mean token entropy), paired by seed with their section-3 runs.

torch runs on one thread (``torch.set_num_threads(1)``): the matrices are tiny and a busy machine's extra
threads only add synchronisation.

Usage: ``python benchmarks/bench_trl.py [--quick] [--out DIR] [--sections overhead,sketch,schedulers,entropy]
[--repeats N] [--compare-adapter TAG=MODULE]``; writes ``DIR/bench_trl.json`` and prints markdown tables.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib
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

from banditlib.adapters._trl_sketch import SKETCH_TILE_ELEMENTS, lm_head_sketch
from banditlib.adapters.rlvr import UniformScheduler
from banditlib.adapters.rlvr.influence import sketch_matrices
from banditlib.errors import InvalidInputError

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
# Overhead cases: GRPOConfig settings, whether generation goes through the vLLM stand-in, and the trainers
# compared (label -> BanditGRPOTrainer keywords; None: plain GRPOTrainer). The first case is `overhead` in the JSON.
OVERHEAD_CASES: dict[str, tuple[dict[str, Any], bool, dict[str, dict[str, Any] | None]]] = {
    "transformers generation": ({}, False, {
        "GRPOTrainer": None, "Bandit(uniform, answer_fn=None)": {"answer_fn": None}, "Bandit(uniform)": {},
        "Bandit(uniform, grad_sketch=64)": {"grad_sketch": 64}}),
    "steps_per_generation=2 (TRL scores pi_old)": ({"steps_per_generation": 2}, False, {
        "GRPOTrainer": None, "Bandit(uniform)": {}, "Bandit(uniform, grad_sketch=64)": {"grad_sketch": 64}}),
    "vLLM stand-in, IS correction (TRL default)": ({"use_vllm": True}, True, {
        "GRPOTrainer": None, "Bandit(uniform)": {}}),
    "vLLM stand-in, no IS correction": ({"use_vllm": True, "vllm_importance_sampling_correction": False}, True, {
        "GRPOTrainer": None, "Bandit(uniform)": {}, 'Bandit(uniform, entropy="exact")': {"entropy": "exact"}}),
}  # fmt: skip
# Schedulers whose decisions read the entropy statistic, compared under entropy="sampled" (section 4).
ENTROPY_COMPARED = ("cbs-group", "default")


def load_module(path: Path, name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def ratio_interval(num: list[float], den: list[float]) -> dict[str, float]:
    """Geometric mean of the paired ratios ``num_i / den_i`` with a 95% Student-t interval (on their logs)."""
    logs = [math.log(a / b) for a, b in zip(num, den, strict=True)]
    n, mean = len(logs), statistics.fmean(logs)
    half = float(stats.t.ppf(0.975, n - 1)) * statistics.stdev(logs) / math.sqrt(n) if n > 1 else math.nan
    return {"ratio": math.exp(mean), "low": math.exp(mean - half), "high": math.exp(mean + half), "pairs": n}


def load_example() -> Any:
    return load_module(ROOT / "examples" / "trl_arithmetic.py", "trl_arithmetic")


def overhead(ex: Any, adapters: dict[str, Any], steps: int, repeats: int) -> dict[str, Any]:
    """Seconds per optimizer step of plain GRPOTrainer and of BanditGRPOTrainer(UniformScheduler) variants, per
    case, with each variant's ratio to GRPOTrainer (paired by repeat: the trainers take turns). ``adapters``:
    tag -> a BanditGRPOTrainer class (the tag ``""`` is the current one; others label their rows)."""
    fake = load_module(ROOT / "tests" / "adapters" / "trl_fake_vllm.py", "trl_fake_vllm")
    tok = ex.tokenizer()
    data = Dataset.from_dict({"prompt": [ex.prompt(a, b) for a, b in ex.TRAIN] * 8})

    def make(extra: dict[str, Any], vllm: bool, adapter: dict[str, Any] | None, trainer_cls: Any) -> Callable[[], None]:
        def go(train: bool = True) -> None:
            with tempfile.TemporaryDirectory() as out, fake.fake_vllm() if vllm else contextlib.nullcontext():
                args = GRPOConfig(
                    output_dir=out, per_device_train_batch_size=16, num_generations=8, max_completion_length=3,
                    max_steps=steps, learning_rate=2e-3, use_cpu=True, report_to=[], logging_steps=steps,
                    save_strategy="no", seed=0, disable_tqdm=True, **extra,
                )  # fmt: skip
                kw = dict(model=ex.warm_model(0, tok, 0), reward_funcs=ex.reward_correct, args=args,
                          train_dataset=data, processing_class=tok)  # fmt: skip
                tr = GRPOTrainer(**kw) if adapter is None else trainer_cls(scheduler=UniformScheduler(), **adapter,
                                                                           **kw)  # fmt: skip
                if not train:
                    return
                tr.remove_callback(PrinterCallback)
                cpu = time.process_time()
                tr.train()
                go.cpu.append((time.process_time() - cpu) / steps)  # type: ignore[attr-defined]
            go.seconds.append(tr.state.log_history[-1]["train_runtime"] / steps)  # type: ignore[attr-defined]
            xf = [h["scheduler/extra_forward"] for h in tr.state.log_history if "scheduler/extra_forward" in h]
            go.extra_forward = statistics.fmean(xf) if xf else None  # type: ignore[attr-defined]

        go.seconds, go.cpu, go.extra_forward = [], [], None  # type: ignore[attr-defined]
        return go

    res: dict[str, Any] = {}
    for case, (extra, vllm, trainers) in OVERHEAD_CASES.items():
        fns, unsupported, order = {}, {}, []
        variants: list[tuple[str, dict[str, Any] | None, Any]] = [("GRPOTrainer", None, None)]
        for tag, cls in adapters.items():
            variants += [(f"{name} [{tag}]" if tag else name, adapter, cls)
                         for name, adapter in trainers.items() if adapter is not None]  # fmt: skip
        for name, adapter, cls in variants:
            order.append(name)
            fn = make(extra, vllm, adapter, cls)
            try:
                fn(train=False)  # type: ignore[call-arg]  # an older adapter (--adapter) may reject the case
            except (InvalidInputError, TypeError) as exc:
                unsupported[name] = f"{type(exc).__name__}: {str(exc)[:160]}"
                continue
            fns[name] = fn
        time_interleaved(fns, repeats)  # the trainer's own train_runtime excludes construction
        out: dict[str, Any] = {"settings": extra, "vllm_stand_in": vllm, "unsupported": unsupported, "order": order}
        base, base_cpu = fns["GRPOTrainer"].seconds[1:], fns["GRPOTrainer"].cpu[1:]  # type: ignore[attr-defined]
        for name, fn in fns.items():
            secs, cpu = fn.seconds[1:], fn.cpu[1:]  # type: ignore[attr-defined]  (the first call: the warm-up)
            out[name] = summary(secs, 1.0)
            out[name]["ratio_median"] = out[name]["median_s"] / statistics.median(base)
            out[name]["ratio_best"] = out[name]["best_s"] / min(base)
            out[name]["ratio_paired"] = ratio_interval(secs, base)
            out[name]["cpu_s"] = cpu
            out[name]["cpu_median_s"] = statistics.median(cpu)
            out[name]["cpu_ratio_paired"] = ratio_interval(cpu, base_cpu)
            out[name]["extra_forward_per_generation"] = fn.extra_forward  # type: ignore[attr-defined]
        res[case] = out
    return res


def sketch_cost(vocab: int, hidden: int, tokens: int, widths: tuple[int, ...], repeats: int) -> dict[str, Any]:
    """Seconds of ``lm_head_sketch`` on ``tokens`` tokens against the head projection it recomputes."""
    g = torch.Generator().manual_seed(0)
    rows = 8
    h = torch.randn(rows, tokens // rows, hidden, generator=g)
    w = torch.randn(vocab, hidden, generator=g) / hidden**0.5
    y = torch.randint(0, vocab, (rows, tokens // rows), generator=g)
    mask = torch.ones(rows, tokens // rows, dtype=torch.bool)
    step = max(1, SKETCH_TILE_ELEMENTS // vocab)
    flat = h.reshape(-1, hidden)

    def head() -> None:  # the logits and log-probs of the same tokens, in the same tiles
        for s in range(0, flat.shape[0], step):
            F.linear(flat[s : s + step], w).log_softmax(-1)

    fns: dict[str, Callable[[], object]] = {"head projection + log-softmax": head}
    for k in widths:
        side = math.isqrt(k)
        left, right = sketch_matrices(vocab, hidden, side, side, seed=0)
        fns[f"sketch k={k}"] = lambda left=left, right=right: lm_head_sketch(h, y, mask, w, None, left, right)
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


def sampled_entropy_runs(ex: Any, seeds: int, steps: int, lr: float) -> list[dict[str, Any]]:
    """The ``ENTROPY_COMPARED`` runs again with ``entropy="sampled"`` (the example's trainer, keyword added)."""
    original = ex.BanditGRPOTrainer
    ex.BanditGRPOTrainer = functools.partial(original, entropy="sampled")
    try:
        return [{**ex.run(name, seed, steps, lr=lr, faulty=faulty), "entropy": "sampled"}
                for seed in range(seeds) for faulty in (False, True) for name in ENTROPY_COMPARED]  # fmt: skip
    finally:
        ex.BanditGRPOTrainer = original


def entropy_compare(exact: list[dict[str, Any]], sampled: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per scheduler and verifier: ``metric(sampled) - metric(exact)`` paired by seed, 95% Student-t interval."""
    rows = []
    for faulty in (False, True):
        for name in ENTROPY_COMPARED:
            row: dict[str, Any] = {"verifier": "faulty" if faulty else "exact", "scheduler": name}
            for key, metric in METRICS.items():
                ref = {r["seed"]: metric(r) for r in exact if r["scheduler"] == name and r["faulty"] == faulty}
                diffs = [metric(r) - ref[r["seed"]] for r in sampled
                         if r["scheduler"] == name and r["faulty"] == faulty and r["seed"] in ref]  # fmt: skip
                n, mean = len(diffs), statistics.fmean(diffs) if diffs else math.nan
                half = float(stats.t.ppf(0.975, n - 1)) * statistics.stdev(diffs) / math.sqrt(n) if n > 1 else math.nan
                row[key] = {"mean": mean, "low": mean - half, "high": mean + half, "seeds": n}
            rows.append(row)
    return rows


def overhead_markdown(over: dict[str, Any], repeats: int, steps: int, adapters: dict[str, str]) -> str:
    cells = []
    for case, res in over.items():
        for name in res["order"]:
            if name in res["unsupported"]:
                cells.append([case, name, "rejected", "-", "-", "-", "-"])
                continue
            r, xf = res[name], res[name]["extra_forward_per_generation"]
            cells.append([case, name, f"{r['cpu_median_s'] * 1e3:.1f}", ratio_cell(r["cpu_ratio_paired"]),
                          f"{r['median_s'] * 1e3:.1f}", ratio_cell(r["ratio_paired"]),
                          "-" if xf is None else f"{xf:.0f}"])  # fmt: skip
    tags = "; ".join(f"[{tag}]: {module}" for tag, module in adapters.items() if tag)
    title = "Adapter overhead (ms per optimizer step, tiny Llama, 16 completions/step)"
    title += f"; {tags}" if tags else ""
    notes = [f"{repeats} interleaved repeats after a warm-up, {steps} optimizer steps each; CPU: process "
             "CPU time (one torch thread; insensitive to other processes on a shared machine), wall: TRL's "
             "train_runtime; ratios: geometric mean of the per-repeat ratios to GRPOTrainer in the same case [95% "
             "Student-t interval]; extra forward: the adapter's own no-grad forward passes per generation "
             "(`scheduler/extra_forward`)"]  # fmt: skip
    head = ["case", "trainer", "CPU ms/step", "CPU vs GRPOTrainer [95% CI]", "wall ms/step", "wall vs GRPOTrainer",
            "extra forward"]  # fmt: skip
    return table(title, head, cells, notes)


def ratio_cell(q: dict[str, float]) -> str:
    return f"{q['ratio']:.2f}x [{q['low']:.2f}, {q['high']:.2f}]"


SECTIONS = ("overhead", "sketch", "schedulers", "entropy")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps, seeds and repeats (a smoke run)")
    parser.add_argument("--out", default="benchmarks/results")
    parser.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated subset of {SECTIONS}")
    parser.add_argument("--repeats", type=int, default=None, help="overhead repeats (default: 2 quick, 12 full)")
    compare_help = ("also time the BanditGRPOTrainer of MODULE, rows labelled [TAG], interleaved with the current "
                    "one (e.g. before=old_copy.trl: a saved earlier version on PYTHONPATH)")  # fmt: skip
    parser.add_argument("--compare-adapter", action="append", default=[], metavar="TAG=MODULE", help=compare_help)
    opts = parser.parse_args()
    sections = set(opts.sections.split(","))
    if not sections <= set(SECTIONS):
        parser.error(f"--sections must be a subset of {SECTIONS}; got {sorted(sections - set(SECTIONS))}")
    warnings.filterwarnings("ignore")
    logging.getLogger("transformers").setLevel(logging.ERROR)
    torch.set_num_threads(1)
    print(f"torch threads: {torch.get_num_threads()} (torch.set_num_threads(1); one process)\n")
    ex = load_example()
    if opts.quick:
        steps, seeds, repeats, lr, overhead_steps = 6, 2, 2, 1e-3, 4  # a smoke run: every code path, no claim
        sketch_shape, sketch_repeats = (8192, 256, 256), 2
    else:
        steps, seeds, repeats, lr, overhead_steps = 200, 10, 12, 1e-3, 48
        sketch_shape, sketch_repeats = (32768, 1024, 512), 5
    repeats = opts.repeats or repeats
    start = time.perf_counter()
    result: dict[str, Any] = {"machine": machine_info(1, DISTS), "steps": steps, "seeds": seeds, "lr": lr,
                              "faulty_sums": sorted(ex.FAULTY)}  # fmt: skip

    if "overhead" in sections:
        modules = {"": "banditlib.adapters.trl", **dict(a.split("=", 1) for a in opts.compare_adapter)}
        classes = {tag: importlib.import_module(m).BanditGRPOTrainer for tag, m in modules.items()}
        cases = overhead(ex, classes, steps=overhead_steps, repeats=repeats)
        first = cases[next(iter(OVERHEAD_CASES))]
        over = {k: v for k, v in first.items() if isinstance(v, dict) and "median_s" in v}
        over["ratio_median"] = over["Bandit(uniform)"]["ratio_median"]  # the adapter as shipped (default answer_fn)
        over["ratio_best"] = over["Bandit(uniform)"]["ratio_best"]
        result["overhead"], result["overhead_cases"], result["overhead_adapters"] = over, cases, modules
        print(overhead_markdown(cases, repeats, overhead_steps, modules))

    if "sketch" in sections:
        widths = (16, 64, 256)
        sk = sketch_cost(*sketch_shape, widths=widths, repeats=sketch_repeats)
        cells = [[name, f"{r['median_s'] * 1e3:.1f}", f"{r['best_s'] * 1e3:.1f}", f"{r['ratio_to_head']:.2f}x"]
                 for name, r in sk["timings"].items()]  # fmt: skip
        notes = [f"tiles of {sk['tile_tokens']} tokens; extra memory: {sk['extra_memory_bytes']['tiles'] / 2**20:.0f} "
                 "MiB of tiles (logits, probabilities, delta), plus 4 k bytes per completion for the sketch itself "
                 "(k = 64: 256 B) and one micro-batch's hidden states, which the forward computes anyway"]  # fmt: skip
        title = (f"LM-head gradient sketch vs the head projection it recomputes (V={sk['vocab']}, H={sk['hidden']}, "
                 f"{sk['tokens']} tokens)")  # fmt: skip
        print()
        print(table(title, ["computation", "median ms", "best ms", "vs head"], cells, notes))
        result["sketch_cost"] = sk

    runs: list[dict[str, Any]] = []
    if sections & {"schedulers", "entropy"}:
        names = COMPARED if "schedulers" in sections else ("uniform", *ENTROPY_COMPARED)
        runs = [ex.run(name, seed, steps, lr=lr, faulty=faulty)
                for seed in range(seeds) for faulty in (False, True) for name in names]  # fmt: skip
        rows = compare(runs)
        print()
        print(f"### Schedulers on one-digit sums, exact and faulty verifier ({steps} GRPO steps, lr {lr:g}, {seeds} "
              "seeds, 16 completions/step)\n")  # fmt: skip
        print(markdown(rows))
        print(f"\nfaulty verifier: on the training sums {sorted(ex.FAULTY)} (40%, fixed seed) it also accepts "
              "a + b + 1. greedy acc.: all 25 sums, exact verifier, at the end; train reward: last 10 steps as the "
              "training verifier scores it, true: as the exact one would; hacked: share of the faulty sums greedily "
              "answered a + b + 1; kept share: fresh completions kept per round; vs uniform: mean paired difference "
              "over seeds [95% Student-t interval].")  # fmt: skip
        result["summary"], result["runs"] = rows, runs

    if "entropy" in sections:
        sampled = sampled_entropy_runs(ex, seeds, steps, lr)
        rows = entropy_compare(runs, sampled)
        head = ["verifier", "scheduler", "greedy acc.", "train reward", "true train reward"]
        cells = [[r["verifier"], r["scheduler"], *(diff_cell(r[k]) for k in METRICS)] for r in rows]
        print()
        title = f'entropy="sampled" minus entropy="exact" (paired by seed, {seeds} seeds, {steps} steps)'
        notes = [
            "mean paired difference [95% Student-t interval]; the sampled-token estimate -mean log p(y_t) "
            "replaces the mean token entropy in the features and the gain"
        ]
        print(table(title, head, cells, notes))
        result["entropy_sampled_vs_exact"], result["runs_entropy_sampled"] = rows, sampled

    print(f"\nWall time {time.perf_counter() - start:.0f} s.")
    os.makedirs(opts.out, exist_ok=True)
    path = os.path.join(opts.out, "bench_trl.json")
    with open(path, "w") as fh:
        json.dump(result, fh, indent=1)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
