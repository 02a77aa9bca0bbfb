"""Linear contextual bandits: banditlib against a plain-numpy loop and peer libraries, in one run.

1. Online, ``K`` disjoint arms, one ``select`` + one ``update`` per round: decisions/s of banditlib LinUCB
   (float32, float64), a plain-numpy Sherman-Morrison LinUCB, MABWiser, contextualbandits and Vowpal Wabbit
   ``--cb_explore_adf``, with banditlib LinTS, EpsilonGreedy, Greedy and Random in the same loop.
2. The cumulative pseudo-regret of each in that same run: speed is never bought with worse decisions.
3. Batch: ``N`` contexts against ``K`` disjoint arms, ``select`` and ``disjoint_score_torch`` alone vs
   MABWiser ``predict``, after both learned the same observations.
4. Shared model: ``N`` arms with ``d = 64`` in one ``select`` and in ``shared_score_torch`` alone, as a
   fraction of the rate of a float32 GEMM ``(N, d) @ (d, d)`` timed alongside (``2 N d^2`` flops each).

Problem: ``theta_a ~ N(0, I/d)``, ``x_t ~ N(0, I_d)``, reward ``x_t^T theta_a + e_t``, ``e_t ~ N(0, 0.1^2)``,
drawn once by a seeded numpy Generator; every library gets the same float64 contexts and the same noise.
Contenders take turns within each repeat; tables give the median and the best (minimum-time) repeat and the
ratios from each (absolute times on a noisy machine are unreliable); targets are judged on the median.

Fairness. Online loops are timed from the first ``select`` to the last ``update``; construction is not.
MABWiser refuses ``predict`` before ``fit``, so it is fitted (untimed) on zero observations: the same prior
state (``A = lambda I``, ``b = 0``) as everyone else. contextualbandits runs with ``fit_intercept=False`` so
it fits the same model (its default ``use_float=True`` matches banditlib's float32). VW has no LinUCB: it
runs ``--cb_explore_adf`` (epsilon-greedy) with ``-q sa`` (per-arm weights on the context), samples from its
pmf with a seeded generator, and formats each context's text line inside the timed loop. torch and (through
threadpoolctl, when installed) numpy's BLAS get the same ``--threads``.

Usage: ``python benchmarks/bench_linear.py [--quick] [--out DIR] [--threads N]``.
"""

from __future__ import annotations

import argparse
import bisect
import gc
import importlib
import importlib.metadata
import itertools
import json
import math
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

import banditlib
from banditlib.kernels import disjoint_score_torch, shared_score_torch

DISTS = ("torch", "numpy", "mabwiser", "contextualbandits", "vowpalwabbit")
ARMS, DIM, NOISE, SEED = 10, 20, 0.1, 0
ALPHA, REG, EPSILON, VW_EPSILON = 1.0, 1.0, 0.1, 0.05
LINTS_SCALE = NOISE  # the posterior scale v of LinTS matches the reward noise, as its analysis assumes
REFERENCE, NUMPY_LOOP = "banditlib LinUCB float32", "numpy Sherman-Morrison LinUCB"
TARGET_ONLINE = {"MABWiser LinUCB": 20.0, NUMPY_LOOP: 1.0}  # REFERENCE / peer, from the issue
TARGET_BATCH = 10.0  # banditlib select / MABWiser predict, from the issue
PEERS = {"mabwiser": "mabwiser.mab", "contextualbandits": "contextualbandits.online",
         "vowpalwabbit": "vowpalwabbit"}  # fmt: skip

Runner = Callable[["Problem"], tuple[np.ndarray, float]]


# Problem sizes and repeat counts of a full run and of a --quick one (the CI smoke test).
FULL = {"rounds": 5000, "repeats": 3, "warmup_rounds": 200, "train_n": 4000, "batch_n": 100_000,
        "shared_n": 100_000, "shared_d": 64, "score_repeats": 10}  # fmt: skip
QUICK = {"rounds": 300, "repeats": 1, "warmup_rounds": 20, "train_n": 1000, "batch_n": 10_000,
         "shared_n": 10_000, "shared_d": 64, "score_repeats": 3}  # fmt: skip


@dataclass(frozen=True)
class Problem:
    """A pre-drawn run: ``contexts`` ``(T, d)``, ``expected`` rewards ``x_t^T theta_a`` and observed
    ``rewards`` (``expected`` plus the round's noise), both ``(T, K)``, all float64."""

    contexts: np.ndarray
    expected: np.ndarray
    rewards: np.ndarray

    def head(self, n: int) -> Problem:
        """The first ``n`` rounds."""
        return Problem(self.contexts[:n], self.expected[:n], self.rewards[:n])


def make_problem(rounds: int, arms: int, dim: int, seed: int) -> Problem:
    """Draw ``theta_a ~ N(0, I/d)``, ``x_t ~ N(0, I_d)`` and noise ``N(0, NOISE^2)`` from one Generator."""
    rng = np.random.default_rng(seed)
    theta = rng.standard_normal((arms, dim)) / math.sqrt(dim)
    contexts = rng.standard_normal((rounds, dim))
    noise = NOISE * rng.standard_normal(rounds)
    expected = contexts @ theta.T
    return Problem(contexts, expected, expected + noise[:, None])


def pseudo_regret(problem: Problem, actions: np.ndarray) -> float:
    """Cumulative pseudo-regret: ``sum_t max_a E[r_t,a] - E[r_t,a_t]`` for ``actions`` ``(T,)``."""
    chosen = problem.expected[np.arange(actions.shape[0]), actions]
    return float(np.sum(problem.expected.max(axis=1) - chosen))


def banditlib_runner(make: Callable[[], banditlib.Policy]) -> Runner:
    """A loop of single-row ``select`` + ``update`` calls on a fresh policy from ``make``."""

    def run(problem: Problem) -> tuple[np.ndarray, float]:
        policy, X, R = make(), problem.contexts, problem.rewards
        actions = np.empty(X.shape[0], dtype=np.int64)
        start = time.perf_counter()
        for t in range(X.shape[0]):
            x = X[t : t + 1]
            sel = policy.select(x)
            a = actions[t] = sel.actions.item()
            policy.update(x, sel.actions, R[t : t + 1, a : a + 1])
        return actions, time.perf_counter() - start

    return run


def run_numpy(problem: Problem) -> tuple[np.ndarray, float]:
    """Disjoint LinUCB as a competent numpy user writes it: per-arm ``A^-1`` and ``b``, Sherman-Morrison."""
    X, R = problem.contexts, problem.rewards
    K, d = R.shape[1], X.shape[1]
    A_inv, b, theta = np.tile(np.eye(d) / REG, (K, 1, 1)), np.zeros((K, d)), np.zeros((K, d))
    actions = np.empty(X.shape[0], dtype=np.int64)
    start = time.perf_counter()
    for t in range(X.shape[0]):
        x = X[t]
        Ax = A_inv @ x
        a = actions[t] = int(np.argmax(theta @ x + ALPHA * np.sqrt(Ax @ x)))
        v = Ax[a]
        A_inv[a] -= np.outer(v, v) / (1.0 + x @ v)
        b[a] += R[t, a] * x
        theta[a] = A_inv[a] @ b[a]
    return actions, time.perf_counter() - start


def run_mabwiser(problem: Problem) -> tuple[np.ndarray, float]:
    """MABWiser LinUCB: ``predict`` one context, ``partial_fit`` one decision."""
    from mabwiser.mab import MAB, LearningPolicy

    X, R = problem.contexts, problem.rewards
    mab = MAB(list(range(R.shape[1])), LearningPolicy.LinUCB(alpha=ALPHA, l2_lambda=REG), seed=SEED)
    mab.fit(np.empty(0, dtype=np.int64), np.empty(0), np.empty((0, X.shape[1])))  # prior state, see docstring
    actions = np.empty(X.shape[0], dtype=np.int64)
    start = time.perf_counter()
    for t in range(X.shape[0]):
        x = X[t : t + 1]
        a = actions[t] = mab.predict(x)
        mab.partial_fit([a], R[t, a : a + 1], x)
    return actions, time.perf_counter() - start


def run_contextualbandits(problem: Problem) -> tuple[np.ndarray, float]:
    """contextualbandits LinUCB (Sherman-Morrison method): ``predict`` + ``partial_fit`` per round."""
    from contextualbandits.online import LinUCB

    X, R = problem.contexts, problem.rewards
    model = LinUCB(nchoices=R.shape[1], alpha=ALPHA, lambda_=REG, fit_intercept=False, random_state=SEED + 1)
    actions = np.empty(X.shape[0], dtype=np.int64)
    start = time.perf_counter()
    for t in range(X.shape[0]):
        x = X[t : t + 1]
        chosen = model.predict(x)
        a = actions[t] = int(chosen[0])
        model.partial_fit(x, chosen, R[t, a : a + 1])
    return actions, time.perf_counter() - start


def run_vw(problem: Problem) -> tuple[np.ndarray, float]:
    """Vowpal Wabbit ``--cb_explore_adf``: text examples (shared context, a line per arm), learn per round."""
    import vowpalwabbit

    X, R = problem.contexts, problem.rewards
    vw = vowpalwabbit.Workspace(f"--cb_explore_adf -q sa --epsilon {VW_EPSILON} --random_seed {SEED} --quiet")
    rng = np.random.default_rng(SEED)
    arm_lines = [f"|a arm{k}" for k in range(R.shape[1])]
    actions = np.empty(X.shape[0], dtype=np.int64)
    start = time.perf_counter()
    for t in range(X.shape[0]):
        example = ["shared |s " + " ".join(f"{j}:{v:.6g}" for j, v in enumerate(X[t].tolist())), *arm_lines]
        pmf = vw.predict(example)
        cdf = list(itertools.accumulate(pmf))
        a = actions[t] = min(bisect.bisect_right(cdf, rng.random() * cdf[-1]), len(pmf) - 1)
        example[a + 1] = f"0:{-R[t, a]:.6g}:{pmf[a]:.6g} {arm_lines[a]}"  # VW minimises cost = -reward
        vw.learn(example)
    seconds = time.perf_counter() - start
    vw.finish()
    return actions, seconds


def online_runners(peers: dict[str, str | None]) -> dict[str, Runner | str]:
    """Every online contender: a runner, or the reason it is unavailable."""

    def policy(cls: type[banditlib.Policy], **kw: Any) -> Runner:
        return banditlib_runner(lambda: cls(dim=DIM, arms=ARMS, seed=SEED, **kw))

    return {
        REFERENCE: policy(banditlib.LinUCB, alpha=ALPHA, reg=REG),
        "banditlib LinUCB float64": policy(banditlib.LinUCB, alpha=ALPHA, reg=REG, dtype=torch.float64),
        NUMPY_LOOP: run_numpy,
        "MABWiser LinUCB": peers["mabwiser"] or run_mabwiser,
        "contextualbandits LinUCB": peers["contextualbandits"] or run_contextualbandits,
        "VW cb_explore_adf (eps-greedy)": peers["vowpalwabbit"] or run_vw,
        "banditlib LinTS": policy(banditlib.LinTS, scale=LINTS_SCALE, reg=REG),
        "banditlib EpsilonGreedy": policy(banditlib.EpsilonGreedy, epsilon=EPSILON, reg=REG),
        "banditlib Greedy": policy(banditlib.Greedy, reg=REG),
        "banditlib Random": policy(banditlib.Random),
    }


def bench_online(sizes: dict[str, int], peers: dict[str, str | None]) -> dict[str, Any]:
    """Measurements 1 and 2: decisions/s and pseudo-regret of every contender on the same rounds."""
    problem = make_problem(sizes["rounds"], ARMS, DIM, SEED)
    runners = online_runners(peers)
    ready = {name: run for name, run in runners.items() if not isinstance(run, str)}
    for run in ready.values():
        run(problem.head(sizes["warmup_rounds"]))
    seconds: dict[str, list[float]] = {name: [] for name in ready}
    regrets: dict[str, list[float]] = {name: [] for name in ready}
    for _ in range(sizes["repeats"]):
        for name, run in ready.items():  # taking turns, so slow drifts of the machine hit everyone alike
            gc.collect()
            actions, secs = run(problem)
            seconds[name].append(secs)
            regrets[name].append(pseudo_regret(problem, actions))
    results: dict[str, Any] = {name: {"available": False, "error": run} for name, run in runners.items()
                               if isinstance(run, str)}  # fmt: skip
    for name, regret in regrets.items():
        results[name] = {"available": True, **summary(seconds[name], sizes["rounds"]),
                         "regret": regret, "regret_median": statistics.median(regret)}  # fmt: skip
    ratios = {}
    for name in [n for n in ready if n != REFERENCE and REFERENCE in ready]:
        ratio, goal = speedup(results[REFERENCE], results[name]), TARGET_ONLINE.get(name)
        ratios[name] = {**ratio, "target": goal, "met": None if goal is None else ratio["median"] >= goal}
    shapes = {"rounds": sizes["rounds"], "arms": ARMS, "dim": DIM, "repeats": sizes["repeats"]}
    return {"shapes": shapes, "results": results, "speedup_of_reference": ratios, "reference": REFERENCE}


def bench_batch(sizes: dict[str, int], peers: dict[str, str | None]) -> dict[str, Any]:
    """Measurement 3: disjoint scoring of ``batch_n`` contexts after learning ``train_n`` observations."""
    train = make_problem(sizes["train_n"], ARMS, DIM, SEED + 1)
    rng = np.random.default_rng(SEED + 2)
    arms = rng.integers(0, ARMS, sizes["train_n"])
    rewards = train.rewards[np.arange(sizes["train_n"]), arms]
    policy = banditlib.LinUCB(dim=DIM, arms=ARMS, alpha=ALPHA, reg=REG, seed=SEED)
    policy.update(train.contexts, arms[:, None], rewards[:, None])
    X = rng.standard_normal((sizes["batch_n"], DIM))
    Xt = torch.from_numpy(X.astype(np.float32))  # banditlib's native input; MABWiser gets its native float64
    fns: dict[str, Callable[[], object]] = {
        "banditlib select": lambda: policy.select(Xt),
        "disjoint_score_torch": lambda: disjoint_score_torch(Xt, policy.A_inv_, policy.theta_),
    }
    shapes = {"N": sizes["batch_n"], "K": ARMS, "d": DIM, "train_n": sizes["train_n"]}
    out: dict[str, Any] = {"shapes": shapes}
    if peers["mabwiser"] is None:
        from mabwiser.mab import MAB, LearningPolicy

        mab = MAB(list(range(ARMS)), LearningPolicy.LinUCB(alpha=ALPHA, l2_lambda=REG), seed=SEED)
        mab.fit(arms, rewards, train.contexts)
        fns["MABWiser predict"] = lambda: mab.predict(X)
        same = np.asarray(mab.predict(X)) == policy.select(Xt).actions[:, 0].numpy()
        out["same_arm_as_mabwiser"] = float(np.mean(same))
    else:
        out["mabwiser_error"] = peers["mabwiser"]
    times = time_interleaved(fns, sizes["score_repeats"])
    out["results"] = {name: summary(t, sizes["batch_n"]) for name, t in times.items()}
    if "MABWiser predict" in times:
        peer = out["results"]["MABWiser predict"]
        out["speedup_over_mabwiser"] = {name: speedup(r, peer) for name, r in out["results"].items()}
        out["target"] = TARGET_BATCH
    return out


def bench_shared(sizes: dict[str, int]) -> dict[str, Any]:
    """Measurement 4: ``shared_n`` arms of ``shared_d`` features in one ``select``, vs a float32 GEMM."""
    n, d = sizes["shared_n"], sizes["shared_d"]
    rng = np.random.default_rng(SEED + 3)
    X = rng.standard_normal((sizes["train_n"], d))
    w = rng.standard_normal(d) / math.sqrt(d)
    policy = banditlib.LinUCB(dim=d, alpha=ALPHA, reg=REG, seed=SEED)
    policy.update_features(X, X @ w + NOISE * rng.standard_normal(sizes["train_n"]))
    arms = torch.from_numpy(rng.standard_normal((1, n, d)).astype(np.float32))
    W = torch.from_numpy(rng.standard_normal((d, d)).astype(np.float32))
    A_inv, theta = policy.A_inv_[0], policy.theta_[0]
    fns: dict[str, Callable[[], object]] = {
        "banditlib select": lambda: policy.select(arms),
        "shared_score_torch": lambda: shared_score_torch(arms[0], A_inv, theta),
        "float32 GEMM": lambda: torch.mm(arms[0], W),
    }
    flops = 2 * n * d * d
    results = {name: summary(t, flops) for name, t in time_interleaved(fns, sizes["score_repeats"]).items()}
    fraction = {name: speedup(r, results["float32 GEMM"]) for name, r in results.items()}  # rate / GEMM rate
    shapes = {"contexts": [1, n, d], "gemm": [[n, d], [d, d]], "flops_counted": flops}
    return {"shapes": shapes, "results": results, "fraction_of_gemm_rate": fraction}


def online_table(online: dict[str, Any]) -> str:
    """Decisions/s, speed-ups of the reference, targets and regret of the online run."""
    s, ratios, rows, notes = online["shapes"], online["speedup_of_reference"], [], []
    for name, r in online["results"].items():
        if not r["available"]:
            notes.append(f"- {name}: {r['error']}")
            continue
        cells = ratio_cells(ratios.get(name), TARGET_ONLINE.get(name))
        rate = [f"{r['rate_median']:,.0f}", f"{r['rate_best']:,.0f}"]
        rows.append([name, *rate, *cells, f"{r['regret_median']:.1f}"])
    title = f"Online, disjoint: K={s['arms']}, d={s['dim']}, {s['rounds']:,} rounds, {s['repeats']} repeat(s)"
    headers = ["implementation", "decisions/s (median)", "decisions/s (best)", "f32 LinUCB / this (median)",
               "(best)", "target", "pseudo-regret"]  # fmt: skip
    return table(title, headers, rows, notes)


def batch_table(batch: dict[str, Any]) -> str:
    """Times, contexts/s and speed-ups over MABWiser of the batch scoring."""
    s, ratios = batch["shapes"], batch.get("speedup_over_mabwiser", {})
    rows = [[name, *ms_cells(r), f"{r['rate_median']:,.0f}",
             *ratio_cells(ratios.get(name), TARGET_BATCH if name == "banditlib select" else None)]
            for name, r in batch["results"].items()]  # fmt: skip
    notes = [f"- MABWiser: {batch['mabwiser_error']}"] if "mabwiser_error" in batch else []
    if "same_arm_as_mabwiser" in batch:
        notes.append(f"Same arm chosen by banditlib and MABWiser: {batch['same_arm_as_mabwiser']:.2%}.")
    title = f"Batch, disjoint: N={s['N']:,} contexts, K={s['K']}, d={s['d']}, trained on {s['train_n']:,}"
    headers = ["method", "ms (median)", "ms (best)", "contexts/s (median)", "speed-up over MABWiser (median)",
               "(best)", "target"]  # fmt: skip
    return table(title, headers, rows, notes)


def shared_table(shared: dict[str, Any]) -> str:
    """Times, GFLOP/s and fraction of the GEMM's rate of the shared-model scoring."""
    n, d = shared["shapes"]["contexts"][1:]
    frac = shared["fraction_of_gemm_rate"]
    rows = [[name, *ms_cells(r), f"{r['rate_median'] / 1e9:.1f}", f"{frac[name]['median']:.1%}",
             f"{frac[name]['best']:.1%}"] for name, r in shared["results"].items()]  # fmt: skip
    headers = ["method", "ms (median)", "ms (best)", "GFLOP/s (median)", "GEMM rate share (median)", "(best)"]
    return table(f"Shared model: {n:,} arms, d={d}, one call (2 N d^2 flops counted)", headers, rows, [])


def load_peers() -> dict[str, str | None]:
    """Import each peer library: ``None`` when it works, else the error (the peer is then skipped)."""
    status: dict[str, str | None] = {}
    for name, module in PEERS.items():
        try:
            importlib.import_module(module)
            status[name] = None
        except Exception as exc:  # any import failure means "unavailable", never a crash
            status[name] = f"unavailable: {type(exc).__name__}: {exc}"
    return status


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run every measurement, print the tables and write ``bench_linear.json``; returns the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes and one repeat (CI smoke test)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch and BLAS threads")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    peers = load_peers()  # first, so that the thread limits below also reach the peers' libraries
    start, load_before = time.perf_counter(), os.getloadavg()
    with thread_limits(args.threads):
        report: dict[str, Any] = {
            "benchmark": "bench_linear", "mode": "quick" if args.quick else "full", "argv": sys.argv,
            "machine": machine_info(args.threads, DISTS), "sizes": sizes, "peers": peers,
            "settings": {"alpha": ALPHA, "reg": REG, "noise_std": NOISE, "seed": SEED,
                         "lints_scale": LINTS_SCALE, "epsilon": EPSILON, "vw_epsilon": VW_EPSILON},
        }  # fmt: skip
        report["online"] = bench_online(sizes, peers)
        report["batch"] = bench_batch(sizes, peers)
        report["shared"] = bench_shared(sizes)
    report["elapsed_s"] = time.perf_counter() - start
    report["load_average_before_after"] = [load_before, os.getloadavg()]
    m = report["machine"]
    print(
        f"bench_linear ({report['mode']}): {m['cpu_model']}, {m['cores']} cores, torch threads "
        f"{m['torch_num_threads']}, load average {load_before[0]:.2f}, {report['elapsed_s']:.0f} s\n"
    )
    tables = [online_table(report["online"]), batch_table(report["batch"]), shared_table(report["shared"])]
    print("\n\n".join(tables))
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "bench_linear.json"
    path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"\nwrote {path}")
    return report


if __name__ == "__main__":
    main()
