"""BanditGRPOTrainer in TRL on CPU: the adapter's overhead, and the schedulers on a tiny arithmetic task.

1. Overhead. Seconds per optimizer step of ``trl.GRPOTrainer`` and of ``BanditGRPOTrainer`` with the
   ``UniformScheduler`` (which trains on exactly what GRPO trains on: the test suite checks equal losses) on
   the same tiny Llama, interleaved repeats, median and best, and their ratio. The adapter adds one forward
   pass under ``no_grad`` per generation (entropies, behaviour log-probs), a gather of the round's rows and
   the scheduler's decision.
2. Schedulers. ``examples/trl_arithmetic.py`` (one-digit sums, 2-layer Llama warm-started with supervised
   steps, GRPO with G = 8): per scheduler and seed, the training reward over the last 10 steps and the
   greedy accuracy on all 25 sums, plus the kept fraction and wall time. Every step generates the same
   number of completions whatever the scheduler, so reward at equal steps is reward at equal completions
   generated; rows trained (backward passes) differ and are reported as the kept fraction.

Usage: ``python benchmarks/bench_trl.py [--quick] [--out DIR]``; writes ``DIR/bench_trl.json`` and prints
markdown tables.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch
from _common import machine_info, summary, table, time_interleaved
from banditlib.adapters.rlvr import UniformScheduler
from banditlib.adapters.trl import BanditGRPOTrainer
from datasets import Dataset
from transformers.trainer_callback import PrinterCallback
from trl import GRPOConfig, GRPOTrainer

DISTS = ("torch", "trl", "transformers", "accelerate")
ROOT = Path(__file__).resolve().parent.parent


def load_example() -> Any:
    spec = importlib.util.spec_from_file_location("trl_arithmetic", ROOT / "examples" / "trl_arithmetic.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["trl_arithmetic"] = module
    spec.loader.exec_module(module)
    return module


def overhead(ex: Any, steps: int, repeats: int) -> dict[str, Any]:
    """Seconds per optimizer step, plain GRPOTrainer vs BanditGRPOTrainer(UniformScheduler)."""
    tok = ex.tokenizer()
    data = Dataset.from_dict({"prompt": [ex.prompt(a, b) for a, b in ex.TRAIN] * 8})

    def make(bandit: bool) -> Any:
        def go() -> None:
            with tempfile.TemporaryDirectory() as out:
                args = GRPOConfig(
                    output_dir=out, per_device_train_batch_size=16, num_generations=8, max_completion_length=3,
                    max_steps=steps, learning_rate=2e-3, use_cpu=True, report_to=[], logging_steps=steps,
                    save_strategy="no", seed=0, disable_tqdm=True,
                )  # fmt: skip
                kw = dict(model=ex.warm_model(0, tok, 0), reward_funcs=ex.reward_correct, args=args,
                          train_dataset=data, processing_class=tok)  # fmt: skip
                tr = BanditGRPOTrainer(scheduler=UniformScheduler(), **kw) if bandit else GRPOTrainer(**kw)
                tr.remove_callback(PrinterCallback)
                tr.train()
                go.seconds.append(tr.state.log_history[-1]["train_runtime"] / steps)  # type: ignore[attr-defined]

        go.seconds = []  # type: ignore[attr-defined]
        return go

    fns = {"GRPOTrainer": make(False), "BanditGRPOTrainer(uniform)": make(True)}
    time_interleaved(fns, repeats)  # the trainer's own train_runtime excludes construction
    res = {name: summary(fn.seconds[1:], 1.0) for name, fn in fns.items()}  # type: ignore[attr-defined]
    res["ratio_median"] = res["BanditGRPOTrainer(uniform)"]["median_s"] / res["GRPOTrainer"]["median_s"]
    res["ratio_best"] = res["BanditGRPOTrainer(uniform)"]["best_s"] / res["GRPOTrainer"]["best_s"]
    return res


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps, seeds and repeats")
    parser.add_argument("--out", default="benchmarks/results")
    opts = parser.parse_args()
    warnings.filterwarnings("ignore")
    logging.getLogger("transformers").setLevel(logging.ERROR)
    torch.set_num_threads(1)
    ex = load_example()
    steps, seeds, repeats = (10, 1, 2) if opts.quick else (100, 5, 5)
    over = overhead(ex, steps=8, repeats=repeats)
    cells = [[k, f"{over[k]['median_s']:.3f}", f"{over[k]['best_s']:.3f}"]
             for k in ("GRPOTrainer", "BanditGRPOTrainer(uniform)")]  # fmt: skip
    note = f"ratio (bandit / plain): median {over['ratio_median']:.2f}x, best {over['ratio_best']:.2f}x"
    title = "Adapter overhead (seconds per optimizer step, tiny Llama, 16 completions/step)"
    print(table(title, ["trainer", "median s", "best s"], cells, [note]))
    runs = [ex.run(name, seed, steps) for seed in range(seeds) for name in ex.SCHEDULERS]
    rows = ex.summarise(runs)
    print()
    print(f"### Schedulers on one-digit sums ({steps} GRPO steps, {seeds} seed(s), 16 completions/step)\n")
    print(ex.markdown(rows))
    os.makedirs(opts.out, exist_ok=True)
    path = os.path.join(opts.out, "bench_trl.json")
    with open(path, "w") as fh:
        json.dump({"machine": machine_info(1, DISTS), "steps": steps, "seeds": seeds, "overhead": over,
                   "summary": rows, "runs": runs}, fh, indent=1)  # fmt: skip
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
