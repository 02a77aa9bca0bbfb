"""Neural bandits: one-pass gradient bonuses against a per-arm-backward loop, and regret on NeuralUCB's functions.

1. Speed and memory of one ``select``: ``K`` arms (shared-parameter model, contexts ``(1, K, d)`` float32,
   ``d = 20``, one hidden layer of width 100, so ``p = 2201`` parameters), banditlib ``NeuralUCB`` (one
   forward, one backward, small matrix products) against the published reference code's way
   (``uclaml/NeuralUCB``, ``learner_diag.py``): an ``nn.Sequential(Linear(20, 100), ReLU(), Linear(100, 1))``
   scores all arms in one forward, then per arm ``zero_grad``, ``f[a].backward(retain_graph=True)`` and
   ``g = cat(p.grad)``, stacked into ``(K, p)``, and ``sigma = sqrt(sum(lambda nu g^2 / U))`` (each of those
   backward passes runs through the whole ``K``-arm graph, as in the reference code, so the loop costs
   ``O(K^2 p)``). Before timing, the policy makes ``train_updates`` single-row ``update`` calls on random data
   so that ``Z`` is not the identity; the reference gets a copy of the policy's parameters and
   ``U = Z_diag_`` (``lambda = nu = 1`` there, ``reg = gamma = 1`` here), and the same run checks that both
   give the same bonuses (max relative difference), means and argmax. Arms/s come from the median and the
   best (minimum) of interleaved repeats (more repeats for the cheaper small ``K``).
   Peak memory: the highest total of live tensor bytes during one call (after a warm-up call), relative to
   its start, from the allocation and free events that torch's CPU allocator reports to
   ``torch.profiler`` (``profile_memory=True``), summed in time order. This counts real tensor allocations
   (autograd's saved tensors and ``.grad`` included) to the byte. Peak RSS was not used: it measures glibc's
   heap as well (with its default dynamic mmap threshold, the reference's transient per-arm buffers
   fragment the heap and inflate its RSS several-fold; with ``MALLOC_MMAP_THRESHOLD_`` fixed, RSS increases
   agree with these figures), and its high-water mark hides anything below an earlier peak. Bytes per arm,
   divided by ``4 width`` and by ``4 p``, show the growth: ``O(K width)`` for banditlib, ``O(K p)`` for the
   reference.
2. Regret on the NeuralUCB paper's synthetic functions ``h1(x) = 10 (x^T a)^2``, ``h2(x) = x^T A^T A x``,
   ``h3(x) = cos(3 x^T a)`` with ``d = 20``, ``K = 4``, ``a`` uniform on the unit sphere, ``A`` with ``N(0, 1)``
   entries, contexts uniform in the unit ball and reward ``h(x) + N(0, 0.1^2)`` (one noise draw per round,
   the same for every policy: common random numbers). Each policy (defaults, ``seed = s``) runs a loop of
   single-row ``select`` + ``update`` calls on numpy inputs; the table gives the cumulative pseudo-regret
   after ``T`` rounds (mean and sample std over seeds) and the time per round. These loops are latency-bound
   and run with ``torch.set_num_threads(1)`` (and BLAS capped at 1 thread).

Threads. The speed part runs with ``--threads`` torch (and BLAS) threads, default 1, unlike the other
benchmarks: one ``select`` at these sizes is latency-bound, and on a shared machine an intra-op worker that is
descheduled stalls every parallel op, which then times the machine's load rather than the code (and makes
the per-arm loop at ``K = 4096`` take minutes). Pass ``--threads 2`` on an idle machine to see what it gains.

Usage: ``python benchmarks/bench_neural.py [--quick] [--out DIR] [--threads N]``; writes
``DIR/bench_neural.json`` and prints markdown tables.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _common import machine_info, ms_cells, ratio_cells, speedup, summary, table, thread_limits, time_interleaved
from torch import nn
from torch.profiler import ProfilerActivity, profile

import banditlib
from banditlib.envs.base import sample_ball, sample_sphere

DISTS = ("torch", "numpy")
DIM, WIDTH, ARMS, NOISE = 20, 100, 4, 0.1
LAMBDA, NU = 1.0, 1.0  # the reference's defaults; banditlib's reg = lambda and gamma = sqrt(lambda nu) = 1
TRAIN_ARMS = 8  # arms per row of the random data the speed benchmark's policy is trained on
TARGET_SPEEDUP, TARGET_K = 100.0, 512  # banditlib select >= 100x the per-arm loop at K = 512 (the issue)
BANDITLIB, REFERENCE = "banditlib NeuralUCB.select", "per-arm backward (learner_diag.py)"
FULL = {"speed_arms": [64, 512, 4096], "speed_repeats": [21, 11, 5], "train_updates": 300, "rounds": 400,
        "seeds": [0, 1, 2]}  # fmt: skip
QUICK = {"speed_arms": [64, 512], "speed_repeats": [5, 3], "train_updates": 50, "rounds": 60, "seeds": [0]}

Function = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
FUNCTIONS: dict[str, Function] = {
    "h1 = 10 (x^T a)^2": lambda x, a, A: 10.0 * (x @ a) ** 2,
    "h2 = x^T A^T A x": lambda x, a, A: np.sum((x @ A.T) ** 2, axis=-1),
    "h3 = cos(3 x^T a)": lambda x, a, A: np.cos(3.0 * (x @ a)),
}


# ---------------------------------------------------------------------------------------- 1. speed, memory


def trained_policy(updates: int, rng: np.random.Generator) -> banditlib.NeuralUCB:
    """``NeuralUCB(dim=20, hidden=(100,), seed=0)`` after ``updates`` single-row updates on random data."""
    policy = banditlib.NeuralUCB(dim=DIM, hidden=(WIDTH,), seed=0)
    for _ in range(updates):
        x = sample_ball(rng, (1, TRAIN_ARMS), DIM)
        policy.update(x, rng.integers(0, TRAIN_ARMS, (1, 1)), rng.standard_normal((1, 1)))
    return policy


def reference_net(policy: banditlib.NeuralUCB) -> nn.Sequential:
    """The reference code's network holding a copy of ``policy``'s parameters."""
    first, last = nn.Linear(DIM, WIDTH), nn.Linear(WIDTH, 1)
    with torch.no_grad():
        for (W, b), linear in zip(policy.net.layers(), (first, last), strict=True):
            linear.weight.copy_(W)
            linear.bias.copy_(b)
    return nn.Sequential(first, nn.ReLU(), last)


def reference_select(net: nn.Sequential, U: torch.Tensor, X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Means and bonuses ``(K,)`` of arms ``X`` ``(K, d)`` with a backward pass per arm, as learner_diag.py."""
    f = net(X).squeeze(-1)
    grads = []
    for a in range(X.shape[0]):
        net.zero_grad()
        f[a].backward(retain_graph=True)
        grads.append(torch.cat([p.grad.flatten() for p in net.parameters()]))  # type: ignore[union-attr]
    g = torch.stack(grads)  # (K, p): the tensor banditlib never forms
    return f.detach(), torch.sqrt(torch.sum(LAMBDA * NU * g * g / U, dim=1))


def peak_bytes(fn: Callable[[], object]) -> int:
    """Peak live tensor bytes during ``fn()``, relative to its start, from the CPU allocator's events."""
    gc.collect()
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    live = peak = 0
    for e in sorted(events, key=lambda e: e.start_ns()):
        live += e.nbytes()
        peak = max(peak, live)
    return peak


def bench_arms(policy: banditlib.NeuralUCB, net: nn.Sequential, K: int, repeats: int,
               rng: np.random.Generator) -> dict[str, Any]:  # fmt: skip
    """Timings, agreement and peak memory of one ``select`` over ``K`` arms, banditlib vs the reference."""
    X = torch.from_numpy(sample_ball(rng, (1, K), DIM).astype(np.float32))
    U = policy.Z_diag_.to(torch.float32)
    fns: dict[str, Callable[[], object]] = {
        BANDITLIB: lambda: policy.select(X),
        REFERENCE: lambda: reference_select(net, U, X[0]),
    }
    results = {name: summary(t, K) for name, t in time_interleaved(fns, repeats).items()}
    sel = policy.select(X)
    mean, sigma = reference_select(net, U, X[0])
    bonus = sel.bonus[0]
    p = policy.net.params.numel()
    net.zero_grad()  # frees the last arm's .grad now, not inside the profiled call
    peaks = {name: peak_bytes(fn) for name, fn in fns.items()}
    memory = {name: {"peak_bytes": b, "bytes_per_arm": b / K, "per_arm_in_width_floats": b / K / (4 * WIDTH),
                     "per_arm_in_p_floats": b / K / (4 * p)} for name, b in peaks.items()}  # fmt: skip
    return {
        "K": K, "d": DIM, "width": WIDTH, "p": p, "repeats": repeats, "results": results,
        "speedup": speedup(results[BANDITLIB], results[REFERENCE]),
        "target": TARGET_SPEEDUP if K == TARGET_K else None,
        "bonus_max_rel_diff": float(((bonus - sigma).abs() / sigma.abs()).max()),
        "mean_max_abs_diff": float((sel.mean[0] - mean).abs().max()),
        "same_argmax": int(sel.actions[0, 0]) == int(torch.argmax(mean + sigma)),
        "memory": memory, "memory_ratio": peaks[REFERENCE] / max(peaks[BANDITLIB], 1),
    }  # fmt: skip


def bench_speed(sizes: dict[str, Any]) -> dict[str, Any]:
    """Measurement 1 for every ``K`` in ``sizes["speed_arms"]``, with the matching ``sizes["speed_repeats"]``."""
    rng = np.random.default_rng(0)
    policy = trained_policy(sizes["train_updates"], rng)
    net = reference_net(policy)
    Z = policy.Z_diag_
    return {"train_updates": sizes["train_updates"], "Z_diag_min": float(Z.min()), "Z_diag_max": float(Z.max()),
            "arms": [bench_arms(policy, net, K, repeats, rng)
                     for K, repeats in zip(sizes["speed_arms"], sizes["speed_repeats"], strict=True)]}  # fmt: skip


# ---------------------------------------------------------------------------------------- 2. regret


@dataclass(frozen=True)
class Problem:
    """A pre-drawn run: arm contexts ``(T, K, d)``, expected rewards ``h(x)`` and observed rewards ``(T, K)``."""

    contexts: np.ndarray
    expected: np.ndarray
    rewards: np.ndarray


def make_problem(h: Function, rounds: int, seed: int) -> Problem:
    """``a`` on the unit sphere, ``A`` Gaussian, contexts in the unit ball, noise ``N(0, NOISE^2)`` per round."""
    rng = np.random.default_rng(seed)
    a, A = sample_sphere(rng, (), DIM), rng.standard_normal((DIM, DIM))
    contexts = sample_ball(rng, (rounds, ARMS), DIM)
    expected = h(contexts, a, A)
    noise = NOISE * rng.standard_normal(rounds)
    return Problem(contexts, expected, expected + noise[:, None])


def policy_makers() -> dict[str, Callable[[int], banditlib.Policy]]:
    """Every policy of the regret table by name (EENet only when banditlib has it), Random as a yardstick."""
    makers: dict[str, Callable[[int], banditlib.Policy]] = {
        "LinUCB": lambda s: banditlib.LinUCB(DIM, seed=s),
        "NeuralUCB": lambda s: banditlib.NeuralUCB(DIM, seed=s),
        "NeuralTS": lambda s: banditlib.NeuralTS(DIM, seed=s),
        "NeuralLinUCB": lambda s: banditlib.NeuralLinUCB(DIM, seed=s),
    }
    if hasattr(banditlib, "EENet"):
        makers["EENet"] = lambda s: banditlib.EENet(DIM, seed=s)
    makers["Random (yardstick)"] = lambda s: banditlib.Random(DIM, seed=s)
    return makers


def run_policy(policy: banditlib.Policy, problem: Problem) -> tuple[float, float]:
    """Cumulative pseudo-regret and seconds per round of a single-row ``select`` + ``update`` loop."""
    X, R = problem.contexts, problem.rewards
    T = X.shape[0]
    actions = np.empty(T, dtype=np.int64)
    start = time.perf_counter()
    for t in range(T):
        x = X[t : t + 1]
        a = actions[t] = policy.select(x).actions.item()
        policy.update(x, np.array([[a]]), R[t : t + 1, a : a + 1])
    seconds = time.perf_counter() - start
    regret = np.sum(problem.expected.max(axis=1) - problem.expected[np.arange(T), actions])
    return float(regret), seconds / T


def bench_regret(sizes: dict[str, Any]) -> dict[str, Any]:
    """Measurement 2: every policy on every function and seed, taking turns within each problem."""
    makers = policy_makers()
    out: dict[str, Any] = {name: {"regret": {h: [] for h in FUNCTIONS}, "s_per_round": []} for name in makers}
    for h_name, h in FUNCTIONS.items():
        for seed in sizes["seeds"]:
            problem = make_problem(h, sizes["rounds"], seed)
            for name, make in makers.items():
                gc.collect()
                regret, per_round = run_policy(make(seed), problem)
                out[name]["regret"][h_name].append(regret)
                out[name]["s_per_round"].append(per_round)
    for r in out.values():
        r["regret_mean"] = {h: statistics.mean(v) for h, v in r["regret"].items()}
        r["regret_std"] = {h: statistics.stdev(v) if len(v) > 1 else 0.0 for h, v in r["regret"].items()}
        r["s_per_round_median"], r["s_per_round_best"] = statistics.median(r["s_per_round"]), min(r["s_per_round"])
    shapes = {"rounds": sizes["rounds"], "arms": ARMS, "dim": DIM, "seeds": sizes["seeds"], "noise_std": NOISE}
    return {"shapes": shapes, "torch_threads": torch.get_num_threads(), "policies": out}


# ---------------------------------------------------------------------------------------- tables


def speed_table(speed: dict[str, Any], threads: int) -> str:
    """Arms/s of both methods, speed-up and agreement per ``K``."""
    rows = []
    for r in speed["arms"]:
        fast, slow = r["results"][BANDITLIB], r["results"][REFERENCE]
        rows.append([f"{r['K']:,}", f"{r['repeats']}", *ms_cells(fast), f"{fast['rate_median']:,.0f}", *ms_cells(slow),
                     f"{slow['rate_median']:,.0f}", *ratio_cells(r["speedup"], r["target"]),
                     f"{r['bonus_max_rel_diff']:.1e}", f"{r['mean_max_abs_diff']:.1e}",
                     "yes" if r["same_argmax"] else "NO"])  # fmt: skip
    first = speed["arms"][0]
    title = (f"One select, shared model: d={first['d']}, width {first['width']} (p={first['p']:,}), "
             f"interleaved repeats, torch threads: {threads}")  # fmt: skip
    headers = ["K", "repeats", "banditlib ms (median)", "(best)", "arms/s (median)", "reference ms (median)", "(best)",
               "arms/s (median)", "speed-up (median)", "(best)", "target", "bonus max rel. diff",
               "mean max abs. diff", "same argmax"]  # fmt: skip
    notes = [f"Reference: {REFERENCE}, parameters copied from the policy, U = Z_diag_. Z from "
             f"{speed['train_updates']} update calls on random data: diagonal in [{speed['Z_diag_min']:.3g}, "
             f"{speed['Z_diag_max']:.3g}]."]  # fmt: skip
    return table(title, headers, rows, notes)


def memory_table(speed: dict[str, Any]) -> str:
    """Peak tensor memory of one call per ``K``, and per arm in units of ``width`` and ``p`` floats."""
    rows = []
    for r in speed["arms"]:
        fast, slow = r["memory"][BANDITLIB], r["memory"][REFERENCE]
        rows.append([f"{r['K']:,}", f"{fast['peak_bytes'] / 2**10:,.1f}", f"{fast['bytes_per_arm']:,.0f}",
                     f"{fast['per_arm_in_width_floats']:.2f}", f"{slow['peak_bytes'] / 2**10:,.1f}",
                     f"{slow['bytes_per_arm']:,.0f}", f"{slow['per_arm_in_p_floats']:.2f}",
                     f"{r['memory_ratio']:.1f}x"])  # fmt: skip
    headers = ["K", "banditlib peak KiB", "bytes/arm", "/ (4 width)", "reference peak KiB", "bytes/arm",
               "/ (4 p)", "reference / banditlib"]  # fmt: skip
    notes = [
        "Peak of live tensor bytes during one call, from the allocation and free events torch's CPU "
        "allocator reports to torch.profiler (profile_memory=True), summed in time order; inputs excluded. "
        "Constant bytes/arm means linear growth in K; its size in width or p floats per arm is the constant."
    ]
    return table("Peak memory of one select (torch CPU allocator)", headers, rows, notes)


def regret_table(regret: dict[str, Any]) -> str:
    """Final regret (mean ± std over seeds) per function and time per round of every policy."""
    rows = [[name, *[f"{r['regret_mean'][h]:.1f} ± {r['regret_std'][h]:.1f}" for h in FUNCTIONS],
             f"{r['s_per_round_median'] * 1e3:.2f}", f"{r['s_per_round_best'] * 1e3:.2f}"]
            for name, r in regret["policies"].items()]  # fmt: skip
    s = regret["shapes"]
    title = (f"Regret after T={s['rounds']:,} rounds: K={s['arms']}, d={s['dim']}, seeds {s['seeds']}, noise "
             f"sigma={s['noise_std']}, torch threads: {regret['torch_threads']}")  # fmt: skip
    headers = ["policy", *[f"{h}: regret" for h in FUNCTIONS], "ms/round (median)", "(best)"]
    notes = [
        "Cumulative pseudo-regret, mean ± sample std over seeds; ms/round over all functions and seeds. "
        "a uniform on the unit sphere, contexts uniform in the unit ball, defaults for every policy."
    ]
    return table(title, headers, rows, notes)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run both measurements, print the tables and write ``bench_neural.json``; returns the report."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, one seed (CI smoke test)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    parser.add_argument("--threads", type=int, default=1, help="torch and BLAS threads of the speed part")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    start, load_before = time.perf_counter(), os.getloadavg()
    with thread_limits(args.threads):
        report: dict[str, Any] = {
            "benchmark": "bench_neural", "mode": "quick" if args.quick else "full", "argv": sys.argv,
            "machine": machine_info(args.threads, DISTS), "sizes": sizes,
            "settings": {"lambda": LAMBDA, "nu": NU, "noise_std": NOISE, "regret_threads": 1,
                         "eenet_available": hasattr(banditlib, "EENet")},
        }  # fmt: skip
        report["speed"] = bench_speed(sizes)
    with thread_limits(1):  # the regret loops are latency-bound
        report["regret"] = bench_regret(sizes)
    report["elapsed_s"] = time.perf_counter() - start
    report["load_average_before_after"] = [load_before, os.getloadavg()]
    m, load_after = report["machine"], report["load_average_before_after"][1]
    print(f"bench_neural ({report['mode']}): {m['cpu_model']}, {m['cores']} cores, torch threads "
          f"{m['torch_num_threads']} (regret: 1), load average {load_before[0]:.2f} before, {load_after[0]:.2f} "
          f"after, {report['elapsed_s']:.0f} s\n")  # fmt: skip
    tables = [speed_table(report["speed"], args.threads), memory_table(report["speed"]),
              regret_table(report["regret"])]  # fmt: skip
    print("\n\n".join(tables))
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "bench_neural.json"
    path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"\nwrote {path}")
    return report


if __name__ == "__main__":
    main()
