"""Run policies x environments x seeds, one decision per round, in parallel processes.

One task is one (environment, policy, seed) run of ``horizon`` rounds: ``env.reset(seed=seed)`` and
``policy = spec.build(dim, arms, seed)``, so a run is a pure function of its task and the results do not depend
on ``jobs`` or on the order in which workers finish. Each round the policy sees the observation as a numpy
array (the policies' single-row numpy path), plays ``sel.actions.item()``, and learns from the noisy reward;
the pseudo-regret ``max_a mu_a - mu_{a_t}`` comes from ``info["expected_rewards"]``.

**Seeds as one computation** (``batch_seeds=True``, the default): the seeds of one (environment, policy)
pair whose policy has a seed-batched form (`banditlib.policies._seeds`: NeuralUCB, NeuralTS,
NeuralEpsilonGreedy, NeuralLinUCB and NeuralLinTS) run in lockstep as one batched computation
(`banditlib.experiments.lockstep`), with the results of the separate runs bit for bit; a group is split into
as many parts as keep ``jobs`` workers busy. Every other policy, and a batch that must stop (a seed's own run
would raise), runs seed by seed.

Workers are started with ``fork`` on Linux and ``spawn`` elsewhere (see `start_method`) and run with
``torch.set_num_threads(1)``: the parallelism is across runs.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from banditlib.experiments import theory
from banditlib.experiments.specs import EnvSpec, PolicySpec, arm_model

__all__ = [
    "RunResult",
    "SeedGroup",
    "Task",
    "Trajectory",
    "play",
    "pseudo_regret",
    "run_group",
    "run_task",
    "run_tasks",
    "start_method",
]


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
        batched: whether the run was one seed of a batched computation (`run_group`); its ``seconds`` is then
            the batch's wall time divided by its seeds.
    """

    env: str
    policy: str
    policy_class: str
    seed: int
    horizon: int
    regret: NDArray[np.float64]
    seconds: float
    theory: dict[str, Any] | None
    batched: bool = False


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


def _result(task: Task, traj: Trajectory, facts: dict[str, Any] | None, batched: bool = False) -> RunResult:
    return RunResult(
        env=task.env.label,
        policy=task.policy.label,
        policy_class=task.policy.cls.__name__,
        seed=task.seed,
        horizon=task.horizon,
        regret=np.cumsum(traj.regret),
        seconds=traj.seconds,
        theory=facts,
        batched=batched,
    )


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
    return _result(task, traj, facts)


@dataclass(frozen=True)
class SeedGroup:
    """Tasks that differ only in their seed, to run as one batched computation (`run_group`)."""

    tasks: tuple[Task, ...]


def batchable(task: Task) -> bool:
    """Whether ``task``'s policy has a seed-batched form: its class, and its arguments, checked on a policy built
    with ``dim = 2`` (the environment's dimensions do not decide it)."""
    from banditlib.policies._seeds import BATCHED_CLASSES, unsupported

    return task.policy.cls in BATCHED_CLASSES and unsupported([task.policy.build(2, None, 0)]) is None


def run_group(group: SeedGroup) -> list[RunResult]:
    """Run the tasks of ``group`` (one environment, policy and horizon; distinct seeds) as one batched
    computation, `banditlib.experiments.lockstep.play_seeds`, or one by one with `run_task` when the policies
    cannot batch or the batch stops (a seed's own run would raise: it then raises from `run_task`). Either way
    each result equals ``run_task(task)``'s, but for ``seconds`` and ``batched``.

    Returns:
        One `RunResult` per task, in order.
    """
    from banditlib.experiments.lockstep import play_seeds
    from banditlib.policies._seeds import SeedBatchFallback

    tasks = group.tasks
    first = tasks[0]
    same = (first.env, first.policy, first.horizon, first.delta)
    if any((t.env, t.policy, t.horizon, t.delta) != same for t in tasks):
        raise ValueError("run_group(): the tasks of a group may differ in their seed only.")
    envs = [t.env.make() for t in tasks]
    try:
        dim, arms = arm_model(envs[0])
        policies = [t.policy.build(dim, arms, t.seed) for t in tasks]
        if len(tasks) > 1:  # play_seeds refuses policies without a batched form before it plays a round
            model = envs[0].unwrapped.linear_model() if hasattr(envs[0].unwrapped, "linear_model") else None
            seeds = [t.seed for t in tasks]
            try:
                trajs = play_seeds(envs, policies, first.horizon, seeds, record_features=model is not None)
            except SeedBatchFallback:
                trajs = None
            if trajs is not None:
                out = []
                for task, env, policy, traj in zip(tasks, envs, policies, trajs, strict=True):
                    facts = _run_theory(env, traj, _policy_reg(policy), task.delta, _is_oful_like(policy))
                    out.append(_result(task, traj, facts, batched=True))
                return out
    finally:
        for env in envs:
            env.close()
    return [run_task(t) for t in tasks]


def _run_unit(unit: Task | SeedGroup) -> list[RunResult]:
    return run_group(unit) if isinstance(unit, SeedGroup) else [run_task(unit)]


def _units(tasks: Sequence[Task], jobs: int) -> list[tuple[list[int], Task | SeedGroup]]:
    """The work: each batchable (environment, policy, horizon, delta) group of tasks as `SeedGroup` parts (split
    until there are about ``jobs`` units, when there are fewer), every other task alone; with the task indices."""
    groups: dict[tuple[Any, ...], list[int]] = {}
    singles: list[int] = []
    can: dict[str, bool] = {}  # by policy spec
    for i, t in enumerate(tasks):
        key = repr(t.policy)
        if key not in can:
            can[key] = batchable(t)
        if can[key]:
            groups.setdefault((repr(t.env), repr(t.policy), t.horizon, t.delta), []).append(i)  # specs hold dicts
        else:
            singles.append(i)
    n_units = len(groups) + len(singles)
    parts = max(1, -(-jobs // n_units)) if n_units else 1
    units: list[tuple[list[int], Task | SeedGroup]] = [([i], tasks[i]) for i in singles]
    for idx in groups.values():
        k = min(parts, len(idx))
        for j in range(k):
            chunk = idx[j::k]
            units.append((chunk, SeedGroup(tuple(tasks[i] for i in chunk)) if len(chunk) > 1 else tasks[chunk[0]]))
    units.sort(key=lambda u: u[0][0])
    return units


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
    worker: Callable[[Task], RunResult] | None = None,
    method: str | None = None,
    batch_seeds: bool = True,
) -> list[RunResult]:
    """Run every task, in ``jobs`` processes (``1``: in this process), with a tqdm bar over tasks.

    Args:
        tasks: the runs.
        jobs: worker processes, ``>= 1``; capped at the number of work units.
        progress: show the progress bar (on stderr).
        worker: a function run per task instead of `run_task` (module-level, so that it pickles); it turns
            ``batch_seeds`` off.
        method: process start method (``None``: `start_method`).
        batch_seeds: run the seeds of each (environment, policy) pair whose policy has a seed-batched form
            (the neural policies but EE-Net) as one computation, `run_group`; the results are the
            same either way, bit for bit, but for the recorded ``seconds`` and ``batched``.

    Returns:
        One `RunResult` per task, in the order of ``tasks``.
    """
    results: list[RunResult | None] = [None] * len(tasks)
    if worker is not None or not batch_seeds:
        units: list[tuple[list[int], Any]] = [([i], t) for i, t in enumerate(tasks)]
        fn: Callable[[Any], list[RunResult]] = functools.partial(_run_single, worker or run_task)
    else:
        units, fn = _units(tasks, jobs), _run_unit
    if jobs <= 1 or len(units) <= 1:
        bar = _progress(len(tasks), progress)
        try:
            for idx, unit in units:
                for i, r in zip(idx, fn(unit), strict=True):
                    results[i] = r
                if bar is not None:
                    bar.update(len(idx))
        finally:
            if bar is not None:
                bar.close()
        return [r for r in results if r is not None]

    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    ctx = multiprocessing.get_context(method or start_method())
    with ProcessPoolExecutor(max_workers=min(jobs, len(units)), mp_context=ctx, initializer=_init_worker) as pool:
        # the largest units first, so that a long batch does not start last
        order = sorted(range(len(units)), key=lambda u: -len(units[u][0]))
        futures = {pool.submit(fn, units[u][1]): units[u][0] for u in order}
        bar = _progress(len(tasks), progress)  # after the workers exist: no thread of its own is forked
        try:
            for future in as_completed(futures):
                idx = futures[future]
                for i, r in zip(idx, future.result(), strict=True):
                    results[i] = r
                if bar is not None:
                    bar.update(len(idx))
        except BaseException:
            for future in futures:
                future.cancel()
            raise
        finally:
            if bar is not None:
                bar.close()
    return [r for r in results if r is not None]


def _run_single(worker: Callable[[Task], RunResult], task: Task) -> list[RunResult]:
    return [worker(task)]


def default_jobs() -> int:
    """Worker processes to use by default: the machine's cores (``os.cpu_count()``), at least 1."""
    import os

    return max(1, os.cpu_count() or 1)
