"""Seeds as one computation: what S seeds of one (environment, policy) pair cost against one seed.

Each repeat times, interleaved (so that a noisy machine's drift hits every contender alike), the regret runner
(`banditlib.experiments.runner.run_tasks`) on one environment and policy:

* ``one seed``: seed 0 alone, in this process;
* ``S separate``: seeds ``0 .. S-1`` one after another in this process (``batch_seeds=False``);
* ``S batched``: the same seeds as one batched computation in this process (the default);
* ``S separate, 2 jobs`` and ``S batched, 2 jobs``: the same over two worker processes (the batched seeds
  split in two groups), as ``banditlib regret --jobs 2`` runs them; these include starting the workers.

The table gives each contender's median seconds, its cost relative to one seed (the ratio of the medians, and
the range of the per-repeat ratios: a short one-seed run is the noisiest timing here, so the ratio of one
repeat can stray far) against the target of 2.5x for ten seeds, and whether every batched run's regret curve
equals its separate run's, bit for bit, in this same run.
Torch is pinned to one thread (BLAS too, with threadpoolctl), in this process and in the workers: the
parallelism is across runs.

Usage: ``python benchmarks/bench_seeds.py [--quick] [--out DIR] [--env NAME] [--policy NAME] [--horizon T]
[--seeds S] [--repeats R] [--tag TAG]``; writes ``DIR/bench_seeds.json`` (``DIR/bench_seeds_TAG.json``) and
prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _common import machine_info, table, thread_limits, time_interleaved

from banditlib.experiments.runner import RunResult, Task, run_tasks
from banditlib.experiments.specs import arm_model, parse_env, parse_policy
from banditlib.policies._seeds import seed_batch

DISTS = ("torch", "numpy", "gymnasium")
TARGET = 2.5  # issue 16: ten seeds of NeuralUCB at most 2.5x one seed
FULL = {"env": "Quadratic-v0", "policy": "neuralucb", "horizon": 2000, "seeds": 10, "repeats": 5}
QUICK = {"env": "Quadratic-v0:d=5", "policy": "neuralucb:hidden=(16,),train_steps=5", "horizon": 40, "seeds": 3,
         "repeats": 1}  # fmt: skip


def contenders(tasks: list[Task], out: dict[str, list[RunResult]]) -> dict[str, Callable[[], object]]:
    """The runs to time; each keeps its latest results in ``out`` for the equality check."""
    S = len(tasks)

    def runner(name: str, chosen: list[Task], jobs: int, batch: bool) -> Callable[[], object]:
        def run() -> None:
            out[name] = run_tasks(chosen, jobs=jobs, progress=False, batch_seeds=batch)

        return run

    return {
        "one seed": runner("one seed", tasks[:1], 1, False),
        f"{S} separate": runner("separate", tasks, 1, False),
        f"{S} batched": runner("batched", tasks, 1, True),
        f"{S} separate, 2 jobs": runner("separate_2", tasks, 2, False),
        f"{S} batched, 2 jobs": runner("batched_2", tasks, 2, True),
    }


def ratios(seconds: list[float], one: list[float]) -> dict[str, float]:
    """The ratio of the medians of ``seconds`` and ``one``, and the smallest and largest per-repeat ratio."""
    per = [t / o for t, o in zip(seconds, one, strict=True)]
    return {"median": statistics.median(seconds) / statistics.median(one), "low": min(per), "high": max(per)}


def bench(sizes: dict[str, Any]) -> dict[str, Any]:
    env, policy = parse_env(sizes["env"]), parse_policy(sizes["policy"])
    tasks = [Task(env, policy, seed=s, horizon=sizes["horizon"]) for s in range(sizes["seeds"])]
    out: dict[str, list[RunResult]] = {}
    times = time_interleaved(contenders(tasks, out), sizes["repeats"])
    one = times["one seed"]
    rows = {}
    for name, seconds in times.items():
        rows[name] = {"seconds": seconds, "median_s": statistics.median(seconds), "vs_one_seed": ratios(seconds, one)}
    same = {
        name: all(
            np.array_equal(a.regret, b.regret) and a.seed == b.seed
            for a, b in zip(out["separate"], out[name], strict=True)
        )
        for name in ("batched", "batched_2", "separate_2")
    }
    return {
        "contenders": rows,
        "identical_to_separate": same,
        "batched_flags": [r.batched for r in out["batched"]],
        "split": {str(S): split(sizes, S) for S in (1, sizes["seeds"])},
    }


def split(sizes: dict[str, Any], seeds: int) -> dict[str, float]:
    """Where a batched round goes: milliseconds per round in `SeedBatch.select`, in the environments' steps and
    in `SeedBatch.update`, over one run of ``seeds`` seeds (the loop of `play_seeds`, timed piece by piece)."""
    env_spec, policy_spec = parse_env(sizes["env"]), parse_policy(sizes["policy"])
    envs = [env_spec.make() for _ in range(seeds)]
    dim, arms = arm_model(envs[0])
    batch = seed_batch([policy_spec.build(dim, arms, s) for s in range(seeds)])
    obs = np.stack([env.reset(seed=s)[0] for s, env in enumerate(envs)])
    spent = {"select": 0.0, "environments": 0.0, "update": 0.0}
    for _ in range(sizes["horizon"]):
        t0 = time.perf_counter()
        x = torch.from_numpy(obs).to(batch.dtype)
        actions = batch.select(x)
        t1 = time.perf_counter()
        steps = [env.step(int(a)) for env, a in zip(envs, actions, strict=True)]
        t2 = time.perf_counter()
        batch.update(x, actions, torch.tensor([float(step[1]) for step in steps], dtype=torch.float64).to(batch.dtype))
        t3 = time.perf_counter()
        obs = np.stack([step[0] for step in steps])
        spent["select"] += t1 - t0
        spent["environments"] += t2 - t1
        spent["update"] += t3 - t2
    return {name: 1e3 * seconds / sizes["horizon"] for name, seconds in spent.items()}


def split_table(result: dict[str, Any], sizes: dict[str, Any]) -> str:
    rows = [[f"{S}", *(f"{result['split'][str(S)][k]:.3f}" for k in ("select", "environments", "update"))]
            for S in (1, sizes["seeds"])]  # fmt: skip
    notes = [f"One run each, T = {sizes['horizon']}, after the timed repeats; ms per round."]
    return table("Where a batched round goes", ["seeds", "select ms", "environments ms", "update ms"], rows, notes)


def report_table(result: dict[str, Any], sizes: dict[str, Any]) -> str:
    S = sizes["seeds"]
    rows = []
    for name, r in result["contenders"].items():
        v = r["vs_one_seed"]
        interval = "" if name == "one seed" else f" ({v['low']:.2f} to {v['high']:.2f})"
        verdict = ""
        if name != "one seed" and "batched" in name:
            applies = S == 10 and sizes["policy"] == FULL["policy"]  # the target: ten seeds of NeuralUCB
            verdict = f"<= {TARGET:g}x: {'met' if v['median'] <= TARGET else 'NOT met'}" if applies else ""
        rows.append([name, f"{r['median_s']:.2f}", f"{v['median']:.2f}x{interval}", verdict])
    same = result["identical_to_separate"]
    notes = [
        f"{sizes['policy']} on {sizes['env']}, T = {sizes['horizon']}, {sizes['repeats']} interleaved repeats; "
        "torch and BLAS pinned to 1 thread per process.",
        "Batched runs identical to the separate runs (every regret curve, bit for bit): "
        + ", ".join(f"{k} {'yes' if v else 'NO'}" for k, v in same.items())
        + f"; seeds batched: {sum(result['batched_flags'])} of {S}.",
    ]
    return table(
        "Seeds as one computation", ["runs", "median s", "cost / one seed (per-repeat range)", "target"], rows, notes
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the measurement, print the table and write ``bench_seeds.json``; returns the report."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, one repeat (CI smoke test)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    parser.add_argument("--tag", default="", help="write DIR/bench_seeds_TAG.json (for a case other than the default)")
    for key, kind in (("env", str), ("policy", str), ("horizon", int), ("seeds", int), ("repeats", int)):
        parser.add_argument(f"--{key}", type=kind, default=None, help=f"default {FULL[key]!r} ({QUICK[key]!r} quick)")
    args = parser.parse_args(argv)
    sizes = dict(QUICK if args.quick else FULL)
    sizes.update({k: v for k, v in vars(args).items() if k in sizes and v is not None})
    start, load_before = time.perf_counter(), os.getloadavg()
    with thread_limits(1):
        report: dict[str, Any] = {
            "benchmark": "bench_seeds", "mode": "quick" if args.quick else "full", "argv": sys.argv,
            "machine": machine_info(1, DISTS), "sizes": sizes,
        }  # fmt: skip
        report["result"] = bench(sizes)
    report["elapsed_s"] = time.perf_counter() - start
    report["load_average_before_after"] = [load_before, os.getloadavg()]
    m = report["machine"]
    print(f"bench_seeds ({report['mode']}): {m['cpu_model']}, {m['cores']} cores, torch threads "
          f"{m['torch_num_threads']}, load average {load_before[0]:.2f} before, "
          f"{report['load_average_before_after'][1][0]:.2f} after, {report['elapsed_s']:.0f} s\n")  # fmt: skip
    print(report_table(report["result"], sizes) + "\n\n" + split_table(report["result"], sizes))
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / (f"bench_seeds_{args.tag}.json" if args.tag else "bench_seeds.json")
    path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"\nwrote {path}")
    return report


if __name__ == "__main__":
    main()
