"""Run policies x environments x seeds, one decision per round, in parallel processes.

One task is one (environment, policy, seed) run of ``horizon`` rounds: ``env.reset(seed=seed)`` and
``policy = spec.build(dim, arms, seed)``, so a run is a pure function of its task and the results do not depend
on ``jobs`` or on the order in which workers finish. Each round the policy sees the observation as a numpy
array (the policies' single-row numpy path), plays ``sel.actions.item()``, and learns from the noisy reward;
the pseudo-regret ``max_a mu_a - mu_{a_t}`` comes from ``info["expected_rewards"]``.

Workers are started with ``fork`` on Linux and ``spawn`` elsewhere (see `start_method`) and run with
``torch.set_num_threads(1)``: the parallelism is across runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from banditlib.experiments import theory
from banditlib.experiments.specs import EnvSpec, PolicySpec, arm_model

__all__ = ["RunResult", "Task", "Trajectory", "play", "pseudo_regret", "run_task", "run_tasks", "start_method"]


def pseudo_regret(expected: Any, actions: Any) -> NDArray[np.float64]:
    """Cumulative pseudo-regret ``R(t) = sum_{s<=t} (max_a mu_{s,a} - mu_{s,a_s})``.

    Args:
        expected: ``(T, K)`` expected rewards of every arm in every round.
        actions: ``(T,)`` played arms.

    Returns:
        ``(T,)`` float64, the regret after each round.

    Examples:
        >>> pseudo_regret([[1.0, 0.0], [0.2, 0.5], [0.3, 0.3]], [1, 1, 0]).tolist()
        [1.0, 1.0, 1.0]
    """
    mu = np.asarray(expected, dtype=np.float64)
    a = np.asarray(actions, dtype=np.int64)
    return np.cumsum(mu.max(axis=1) - mu[np.arange(mu.shape[0]), a])


@dataclass(frozen=True)
class Trajectory:
    """What one run recorded.

    Attributes:
        actions: ``(T,)`` int64 played arms.
        rewards: ``(T,)`` observed rewards.
        regret: ``(T,)`` per-round pseudo-regret (from ``info["regret"]``).
        features: ``(T, d)`` played feature vectors (shared-parameter envs) or ``None``.
        seconds: wall time of the loop.
    """

    actions: NDArray[np.int64]
    rewards: NDArray[np.float64]
    regret: NDArray[np.float64]
    features: NDArray[np.float64] | None
    seconds: float


def play(env: Any, policy: Any, horizon: int, seed: int, *, record_features: bool = False) -> Trajectory:
    """Play ``horizon`` rounds of ``policy`` on ``env`` after ``env.reset(seed=seed)``.

    Args:
        env: a bandit environment (the `banditlib.envs` contract).
        policy: anything with ``select(contexts)`` and ``update(contexts, actions, rewards)``.
        horizon: rounds ``T``.
        seed: the reset seed.
        record_features: keep the played feature vector ``obs[a]`` of every round (``(K, d)`` observations).
    """
    obs, _ = env.reset(seed=seed)
    actions = np.empty(horizon, dtype=np.int64)
    rewards = np.empty(horizon)
    regret = np.empty(horizon)
    features = np.empty((horizon, obs.shape[-1])) if record_features and obs.ndim == 2 else None
    start = time.perf_counter()
    for t in range(horizon):
        a = int(policy.select(obs[None]).actions.item())
        next_obs, reward, _, _, info = env.step(a)
        r = float(reward)
        policy.update(obs[None], np.array([[a]]), np.array([[r]]))
        actions[t], rewards[t], regret[t] = a, r, info["regret"]
        if features is not None:
            features[t] = obs[a]
        obs = next_obs
    return Trajectory(actions, rewards, regret, features, time.perf_counter() - start)


@dataclass(frozen=True)
class Task:
    """One run: an environment, a policy, a seed, a horizon, and the ``delta`` of the theory checks."""

    env: EnvSpec
    policy: PolicySpec
    seed: int
    horizon: int
    delta: float = 0.05


@dataclass(frozen=True)
class RunResult:
    """The outcome of one `Task`.

    Attributes:
        env: environment label.
        policy: policy label.
        policy_class: the policy's class name.
        seed: the seed.
        horizon: rounds.
        regret: ``(T,)`` cumulative pseudo-regret.
        seconds: wall time of the loop (not deterministic).
        theory: per-run theory figures when the environment exposes a linear model, else ``None``.
    """

    env: str
    policy: str
    policy_class: str
    seed: int
    horizon: int
    regret: NDArray[np.float64]
    seconds: float
    theory: dict[str, Any] | None


def _policy_reg(policy: Any) -> float:
    """The ridge regulariser the theory checks use: the policy's ``reg`` when it has one, else 1."""
    reg = getattr(policy, "reg", None)
    return float(reg) if isinstance(reg, (int, float)) and not isinstance(reg, bool) and reg > 0 else 1.0


def _is_oful_like(policy: Any) -> bool:
    """LinUCB without forgetting: the policy the OFUL regret bound is compared with."""
    from banditlib.policies.linear import LinUCB

    return isinstance(policy, LinUCB) and policy.forget == 1.0


def _run_theory(env: Any, traj: Trajectory, reg: float, delta: float, oful: bool) -> dict[str, Any] | None:
    model = env.unwrapped.linear_model() if hasattr(env.unwrapped, "linear_model") else None
    if model is None or traj.features is None:
        return None
    d = traj.features.shape[1]
    potential = theory.elliptical_potential(traj.features, reg)
    coverage = theory.confidence_coverage(
        traj.features, traj.rewards, model.theta, reg=reg, noise=model.noise_std, delta=delta
    )
    T = traj.features.shape[0]
    return {
        "reg": reg,
        "delta": delta,
        "d": d,
        "noise": model.noise_std,
        "norm_bound": model.norm,
        "context_bound": model.context_bound,
        "potential_sum": potential.total,
        "potential_bound": potential.bound,
        "potential_holds": potential.holds,
        "coverage": coverage.fraction,
        "coverage_always": coverage.always,
        "coverage_max_ratio": float(np.max(coverage.distance / coverage.radius)),
        "beta_final": float(coverage.radius[-1]),
        "oful_applies": oful,
        "regret_bound": float(
            theory.oful_regret_bound(T, d, reg, model.noise_std, model.norm, model.context_bound, delta)
        ),
    }


def run_task(task: Task) -> RunResult:
    """Run one task (in a worker or in-process)."""
    env = task.env.make()
    try:
        dim, arms = arm_model(env)
        policy = task.policy.build(dim, arms, task.seed)
        model = env.unwrapped.linear_model() if hasattr(env.unwrapped, "linear_model") else None
        traj = play(env, policy, task.horizon, task.seed, record_features=model is not None)
        facts = _run_theory(env, traj, _policy_reg(policy), task.delta, _is_oful_like(policy))
    finally:
        env.close()
    return RunResult(
        env=task.env.label,
        policy=task.policy.label,
        policy_class=task.policy.cls.__name__,
        seed=task.seed,
        horizon=task.horizon,
        regret=np.cumsum(traj.regret),
        seconds=traj.seconds,
        theory=facts,
    )


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)


def _progress(total: int, enabled: bool) -> Any:
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:  # tqdm comes with the `envs` extra; without it, run silently
        return None
    return tqdm(total=total, desc="regret runs", unit="run", dynamic_ncols=True)


def start_method() -> str:
    """The process start method for the workers: ``fork`` on Linux, ``spawn`` elsewhere.

    ``fork`` needs no re-import of torch in each worker (seconds saved per worker) and works wherever the
    caller runs: a script without an ``if __name__ == "__main__":`` guard, ``python -`` reading stdin, a
    notebook. It is safe here because workers only run numpy and single-threaded torch
    (``torch.set_num_threads(1)``, as torch's own ``DataLoader`` workers do) and the pool is started before
    the progress bar's thread. macOS and Windows, where ``fork`` is unsafe or missing, use ``spawn``.
    """
    import multiprocessing
    import sys

    return "fork" if sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods() else "spawn"


def run_tasks(
    tasks: Sequence[Task],
    *,
    jobs: int = 1,
    progress: bool = True,
    worker: Callable[[Task], RunResult] = run_task,
    method: str | None = None,
) -> list[RunResult]:
    """Run every task, in ``jobs`` processes (``1``: in this process), with a tqdm bar over tasks.

    Args:
        tasks: the runs.
        jobs: worker processes, ``>= 1``; capped at ``len(tasks)``.
        progress: show the progress bar (on stderr).
        worker: the function run per task (module-level, so that it pickles).
        method: process start method (``None``: `start_method`).

    Returns:
        One `RunResult` per task, in the order of ``tasks``.
    """
    results: list[RunResult | None] = [None] * len(tasks)
    if jobs <= 1 or len(tasks) <= 1:
        bar = _progress(len(tasks), progress)
        try:
            for i, task in enumerate(tasks):
                results[i] = worker(task)
                if bar is not None:
                    bar.update(1)
        finally:
            if bar is not None:
                bar.close()
        return [r for r in results if r is not None]

    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    ctx = multiprocessing.get_context(method or start_method())
    with ProcessPoolExecutor(max_workers=min(jobs, len(tasks)), mp_context=ctx, initializer=_init_worker) as pool:
        futures = {pool.submit(worker, task): i for i, task in enumerate(tasks)}
        bar = _progress(len(tasks), progress)  # after the workers exist: no thread of its own is forked
        try:
            for future in as_completed(futures):
                results[futures[future]] = future.result()
                if bar is not None:
                    bar.update(1)
        except BaseException:
            for future in futures:
                future.cancel()
            raise
        finally:
            if bar is not None:
                bar.close()
    return [r for r in results if r is not None]


def default_jobs() -> int:
    """Worker processes to use by default: the machine's cores (``os.cpu_count()``), at least 1."""
    import os

    return max(1, os.cpu_count() or 1)
