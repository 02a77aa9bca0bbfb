"""A small built-in regret comparison: LinUCB, LinTS, EpsilonGreedy and Random on a linear problem.

The problem (shared-parameter model): each round offers ``K`` arms whose features are drawn uniformly on the
unit sphere in ``R^d``; arm ``a`` pays ``x_a^T theta* + eps`` with ``||theta*|| = 1`` and
``eps ~ N(0, noise^2)``. Pseudo-regret counts expected rewards only, so it is exact. Each policy plays
``horizon`` rounds one decision at a time, for several seeds; the summary gives the final regret (mean and
standard deviation over seeds) and the growth exponent, the slope of ``log R(t)`` against ``log t`` over the
second half of the horizon (sublinear regret means a slope below 1).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import banditlib
from banditlib.policies.base import Policy

__all__ = ["DemoProblem", "growth_exponent", "run_demo"]

POLICIES: dict[str, Callable[[int, int], Policy]] = {
    "LinUCB": lambda d, seed: banditlib.LinUCB(d, alpha=1.0, seed=seed),
    "LinTS": lambda d, seed: banditlib.LinTS(d, scale=0.5, seed=seed),
    "EpsilonGreedy": lambda d, seed: banditlib.EpsilonGreedy(d, epsilon=0.1, seed=seed),
    "Random": lambda d, seed: banditlib.Random(d, seed=seed),
}


@dataclass(frozen=True)
class DemoProblem:
    """The synthetic linear problem; the same seed gives the same ``theta*``, contexts and noise."""

    dim: int = 10
    arms: int = 10
    noise: float = 0.5

    def sample(self, seed: int, horizon: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``contexts (T, K, d)``, expected rewards ``(T, K)`` and noise ``(T, K)`` for one seed."""
        rng = np.random.default_rng(seed)
        theta = rng.normal(size=self.dim)
        theta /= np.linalg.norm(theta)
        x = rng.normal(size=(horizon, self.arms, self.dim))
        x /= np.linalg.norm(x, axis=-1, keepdims=True)
        return x, x @ theta, rng.normal(scale=self.noise, size=(horizon, self.arms))


def growth_exponent(regret: np.ndarray) -> float:
    """Least-squares slope of ``log R(t)`` on ``log t`` over the second half of ``regret`` ``(T,)``."""
    t = np.arange(1, regret.shape[0] + 1)
    half = slice(regret.shape[0] // 2, None)
    r = np.maximum(regret[half], 1e-12)
    return float(np.polyfit(np.log(t[half]), np.log(r), 1)[0])


def _play(
    make: Callable[[int, int], Policy], problem: DemoProblem, seed: int, horizon: int
) -> tuple[np.ndarray, float]:
    """Cumulative pseudo-regret ``(T,)`` of one policy on one seed, and seconds per decision."""
    contexts, expected, noise = problem.sample(seed, horizon)
    policy = make(problem.dim, seed)
    best = expected.max(axis=1)
    regret = np.empty(horizon)
    start = time.perf_counter()
    for t in range(horizon):
        x = contexts[t : t + 1]
        a = int(policy.select(x).actions.item())
        policy.update(x, np.array([[a]]), np.array([[expected[t, a] + noise[t, a]]]))
        regret[t] = best[t] - expected[t, a]
    return np.cumsum(regret), (time.perf_counter() - start) / horizon


def _progress(total: int, desc: str) -> Any:
    try:
        from tqdm.auto import tqdm
    except ImportError:  # tqdm is in the `envs` extra; without it, run silently
        return None
    return tqdm(total=total, desc=desc, unit="run")


def _runs(problem: DemoProblem, horizon: int, seeds: int) -> Iterator[tuple[str, int, np.ndarray, float]]:
    bar = _progress(len(POLICIES) * seeds, "banditlib demo")
    for name, make in POLICIES.items():
        for seed in range(seeds):
            regret, per_decision = _play(make, problem, seed, horizon)
            if bar is not None:
                bar.update(1)
            yield name, seed, regret, per_decision
    if bar is not None:
        bar.close()


def run_demo(horizon: int = 2000, seeds: int = 5, out: str | Path | None = "demo-results") -> dict[str, Any]:
    """Run the comparison, print a markdown table, and write ``results.json`` and ``regret.png`` to ``out``.

    Args:
        horizon: rounds per run.
        seeds: runs per policy (seed ``s`` fixes the problem instance and the policy's generator).
        out: output folder, or ``None`` to write nothing.

    Returns:
        ``{"runs": [...], "summary": [...]}`` as written to ``results.json``.
    """
    problem = DemoProblem()
    runs: list[dict[str, Any]] = []
    curves: dict[str, list[np.ndarray]] = {name: [] for name in POLICIES}
    speed: dict[str, list[float]] = {name: [] for name in POLICIES}
    for name, seed, regret, per_decision in _runs(problem, horizon, seeds):
        runs.append({"policy": name, "seed": seed, "horizon": horizon, "regret": regret.tolist()})
        curves[name].append(regret)
        speed[name].append(per_decision)
    summary = []
    for name, rs in curves.items():
        finals = np.array([r[-1] for r in rs])
        summary.append(
            {
                "policy": name,
                "final_regret_mean": float(finals.mean()),
                "final_regret_std": float(finals.std(ddof=1)) if len(finals) > 1 else 0.0,
                "growth_exponent": growth_exponent(np.mean(rs, axis=0)),
                "us_per_decision": 1e6 * float(np.median(speed[name])),
            }
        )
    result = {
        "problem": vars(problem) | {"horizon": horizon, "seeds": seeds},
        "runs": runs,
        "summary": summary,
    }
    print(format_table(summary, problem, horizon, seeds))
    if out is not None:
        folder = Path(out)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "results.json").write_text(json.dumps(result))
        if _plot(curves, folder / "regret.png"):
            print(f"\nwrote {folder / 'results.json'} and {folder / 'regret.png'}")
        else:
            print(f"\nwrote {folder / 'results.json'} (install matplotlib for the plot)")
    return result


def format_table(summary: list[dict[str, Any]], problem: DemoProblem, horizon: int, seeds: int) -> str:
    """The markdown table printed at the end of :func:`run_demo`."""
    lines = [
        f"Linear problem: d={problem.dim}, K={problem.arms}, noise={problem.noise}, T={horizon}, {seeds} seeds",
        "",
        "| policy | final regret (mean ± std) | growth exponent | µs / decision |",
        "|---|---:|---:|---:|",
    ]
    for row in summary:
        lines.append(
            f"| {row['policy']} | {row['final_regret_mean']:.1f} ± {row['final_regret_std']:.1f} "
            f"| {row['growth_exponent']:.2f} | {row['us_per_decision']:.0f} |"
        )
    return "\n".join(lines)


def _plot(curves: dict[str, list[np.ndarray]], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, (lin, log) = plt.subplots(1, 2, figsize=(11, 4))
    for name, rs in curves.items():
        arr = np.stack(rs)
        t = np.arange(1, arr.shape[1] + 1)
        mean, std = arr.mean(0), arr.std(0)
        for ax in (lin, log):
            ax.plot(t, mean, label=name)
            ax.fill_between(t, mean - std, mean + std, alpha=0.2)
    lin.set(xlabel="round t", ylabel="cumulative pseudo-regret", title="Regret (mean ± std over seeds)")
    log.set(xscale="log", yscale="log", xlabel="round t", title="log-log: slope < 1 is sublinear")
    lin.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True
