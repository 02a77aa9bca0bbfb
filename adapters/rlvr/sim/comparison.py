"""Schedulers compared across verifier-fault worlds and seeds, paired seed by seed: what ``bench_rlvr.py`` runs.

[`compare`][banditlib.adapters.rlvr.sim.comparison.compare] trains the simulator's policy under every scheduler in
every world for ``steps`` rounds on seeds ``0..seeds-1`` ([`run`][banditlib.adapters.rlvr.sim.run]); the same seed
gives every scheduler the same world, initial policy and first batch, so differences are paired seed by seed.
Runs go to worker processes through ``banditlib.experiments.runner.run_tasks`` (its start method, one
torch thread a worker, its progress bar); a run is a pure function of its world, scheduler and seed, so results
do not depend on ``jobs``. Per world ([`summarise_world`][banditlib.adapters.rlvr.sim.comparison.summarise_world]):
final held-out accuracy (mean exact expected accuracy over the last `LAST` steps), paired differences to uniform
GRPO and to the world's best peer with 95% intervals
([`paired_difference`][banditlib.adapters.rlvr.sim.intervals.paired_difference]), accuracy at uniform's number of
rows trained, steps to target, the kept share and the misleading shares of the kept rows, scheduler time.
Tables and the figure: [`sim.report`][banditlib.adapters.rlvr.sim.report].
"""

from __future__ import annotations

import pickle
import statistics
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import torch

from banditlib.errors import InvalidInputError
from banditlib.experiments.runner import run_tasks

from .contenders import DEFAULT, UNIFORM, WORLDS, SchedulerFactory, WorldSpec, comparison_schedulers, is_peer
from .intervals import first_at, mean_ci, paired_difference, smooth
from .loop import RunResult, Simulator, run
from .oracle import one_step_gain
from .world import SimConfig

__all__ = ["LAST", "Comparison", "at_equal_backward", "compare", "label_snr", "summarise_world", "verdict"]

LAST = 10
""""Final" accuracy is the mean held-out accuracy over the last ``LAST`` steps (it moves step to step)."""


# ---------------------------------------------------------------------------------------- runs (in workers)


@dataclass(frozen=True)
class _Task:
    world: str
    name: str
    factory: Any
    seed: int
    steps: int
    config: SimConfig
    true_gain: bool


def _true_gain(sim: Simulator, b: Any, s: Any, rows: Any, w: torch.Tensor) -> dict[str, Any]:
    return {"true_gain": one_step_gain(sim, rows, w)}


def _record(task: _Task, res: RunResult) -> dict[str, Any]:
    rounds, acc = res.rounds, res.accuracy
    return {
        "world": task.world, "name": task.name, "seed": task.seed, "accuracy": [round(a, 5) for a in acc],
        "backward": res.backward, "final": float(np.mean(acc[-LAST:])), "last": acc[-1],
        "greedy_final": res.greedy_final,
        "kept_share": statistics.mean(r["kept_share"] for r in rounds),
        "rows_per_round": statistics.mean(r["n_fresh"] + r["n_replay"] for r in rounds),
        "lucky_share_kept": statistics.mean(r["lucky_share_kept"] for r in rounds),
        "lucky_share_all": statistics.mean(r["lucky_share_all"] for r in rounds),
        "missed_share_kept": statistics.mean(r["missed_share_kept"] for r in rounds),
        "missed_share_all": statistics.mean(r["missed_share_all"] for r in rounds),
        "schedule_ms": res.schedule_seconds / task.steps * 1e3, "wall_s": res.wall_seconds,
        "observed_gain": [r.get("observed_gain") for r in rounds],
        "true_gain": [r.get("true_gain") for r in rounds] if task.true_gain else None,
    }  # fmt: skip


def _run_task(task: _Task) -> dict[str, Any]:
    hook = _true_gain if task.true_gain else None
    return _record(task, run(task.factory(task.seed), task.seed, task.steps, task.config, hook=hook))


# ---------------------------------------------------------------------------------------- the comparison


@dataclass(frozen=True)
class Comparison:
    """What [`compare`][banditlib.adapters.rlvr.sim.comparison.compare] measured, as plain Python values.

    Attributes:
        worlds: the worlds run, by name.
        names: the schedulers, in table order.
        seeds: seeds per scheduler and world (``0..seeds-1``).
        steps: training steps per run.
        runs: ``{world: {scheduler: [record per seed]}}``, seeds ascending; a record holds ``accuracy``
            (``steps + 1`` held-out accuracies, rounded to 5 digits), ``backward`` (rows trained so far),
            ``final``, ``last``, ``greedy_final``, the means over rounds of ``kept_share``, ``rows_per_round``,
            ``lucky_share_kept`` / ``_all``, ``missed_share_kept`` / ``_all``, ``schedule_ms`` (per round),
            ``wall_s``, ``observed_gain`` and ``true_gain`` (per round; ``None`` unless recorded).
        summaries: ``{world: summarise_world(runs[world], steps)}``.

    Examples:
        >>> c = compare({"uniform": comparison_schedulers()["uniform"]}, ["none"], seeds=1, steps=1,
        ...             config={"prompts_per_round": 4, "group_size": 4})
        >>> c.names, list(c.runs["none"]), len(c.curves()["none"]["uniform"][0])
        (['uniform'], ['uniform'], 2)
    """

    worlds: dict[str, WorldSpec]
    names: list[str]
    seeds: int
    steps: int
    runs: dict[str, dict[str, list[dict[str, Any]]]] = field(repr=False)
    summaries: dict[str, dict[str, Any]] = field(repr=False)

    def curves(self) -> dict[str, dict[str, list[list[float]]]]:
        """Held-out accuracy curves, ``{world: {scheduler: [seeds x (steps + 1)]}}``."""
        return {w: {n: [r["accuracy"] for r in rs] for n, rs in by.items()} for w, by in self.runs.items()}

    def verdict(self) -> dict[str, Any]:
        """[`verdict`][banditlib.adapters.rlvr.sim.comparison.verdict] over this comparison's worlds."""
        return verdict(self.summaries)


def _check_int(value: Any, name: str, low: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise InvalidInputError(f"compare(): `{name}` must be an int >= {low}; got {value!r}.")
    return value


def _worlds(worlds: Sequence[str] | Mapping[str, WorldSpec] | None) -> dict[str, WorldSpec]:
    if worlds is None:
        return dict(WORLDS)
    if isinstance(worlds, Mapping):
        return {w: WorldSpec(dict(s[0]), str(s[1])) for w, s in worlds.items()}
    if isinstance(worlds, str):
        raise InvalidInputError(f"compare(): `worlds` must be a list of names, not the string {worlds!r}.")
    unknown = [w for w in worlds if w not in WORLDS]
    if unknown:
        raise InvalidInputError(f"compare(): unknown worlds {unknown}; known: {list(WORLDS)} (or pass a mapping "
                                "of names to WorldSpec).")  # fmt: skip
    return {w: WORLDS[w] for w in worlds}


def compare(
    schedulers: Mapping[str, SchedulerFactory] | None = None,
    worlds: Sequence[str] | Mapping[str, WorldSpec] | None = None,
    *,
    seeds: int = 3,
    steps: int = 40,
    config: Mapping[str, Any] | None = None,
    true_gain: Collection[str] = (),
    jobs: int = 1,
    progress: bool = False,
) -> Comparison:
    """Run every scheduler in every world on seeds ``0..seeds-1`` and summarise each world, paired by seed.

    Args:
        schedulers: ``{name: seed -> scheduler}`` (``None``: `comparison_schedulers`); must include
            ``"uniform"``, the reference of the paired differences, the target and the row budget. With
            ``jobs > 1`` the factories must pickle (module-level functions, classes, ``functools.partial``).
        worlds: names of `WORLDS`, or ``{name: WorldSpec}`` (``None``: all six).
        seeds: seeds per scheduler and world, ``>= 1`` (intervals need 2).
        steps: training steps per run, ``>= 1``.
        config: ``SimConfig`` fields applied on top of every world's (e.g. ``prompts_per_round``, ``group_size``).
        true_gain: schedulers whose runs also record the true one-step gain of their selection every round
            ([`one_step_gain`][banditlib.adapters.rlvr.sim.oracle.one_step_gain]; slow), for `label_snr`.
        jobs: worker processes, ``>= 1`` (1: in this process).
        progress: show a progress bar over runs (needs tqdm).

    Returns:
        The [`Comparison`][banditlib.adapters.rlvr.sim.comparison.Comparison].

    Raises:
        InvalidInputError: ``"uniform"`` missing from ``schedulers``, an unknown world, a ``SimConfig`` field
            that is not valid, ``seeds``, ``steps`` or ``jobs`` not an int ``>= 1``, a ``true_gain`` name not in
            ``schedulers``, or, with ``jobs > 1``, a factory that does not pickle.

    Examples:
        >>> makers = comparison_schedulers()
        >>> c = compare({n: makers[n] for n in ("uniform", "default")}, ["iid"], seeds=2, steps=2,
        ...             config={"prompts_per_round": 4, "group_size": 4})
        >>> s = c.summaries["iid"]
        >>> list(s["schedulers"]), list(s["diff_uniform"]), len(s["schedulers"]["default"]["final"])
        (['uniform', 'default'], ['default'], 2)
        >>> m, lo, hi = s["diff_uniform"]["default"]  # mean and 95% interval of default - uniform over seeds
        >>> lo <= m <= hi
        True
    """
    factories = dict(comparison_schedulers() if schedulers is None else schedulers)
    if UNIFORM not in factories:
        raise InvalidInputError(f"compare(): `schedulers` must include {UNIFORM!r}, the reference of the paired "
                                f"differences; got {list(factories)}.")  # fmt: skip
    chosen = _worlds(worlds)
    seeds, steps, jobs = _check_int(seeds, "seeds", 1), _check_int(steps, "steps", 1), _check_int(jobs, "jobs", 1)
    extra = dict(config or {})
    if isinstance(true_gain, str) or set(true_gain) - set(factories):
        raise InvalidInputError(f"compare(): `true_gain` must name schedulers of `schedulers`; got {true_gain!r}.")
    configs = {w: SimConfig(**{**spec.overrides, **extra}) for w, spec in chosen.items()}
    if jobs > 1:
        for name, make in factories.items():
            try:
                pickle.dumps(make)
            except Exception as exc:  # pickling raises many types (PicklingError, AttributeError, TypeError)
                raise InvalidInputError(
                    f"compare(): with `jobs` = {jobs} every factory must pickle to reach the worker processes; "
                    f"`schedulers[{name!r}]` does not ({exc}). Use a module-level function, a class or "
                    "functools.partial, or jobs=1."
                ) from exc
    tasks = [_Task(w, n, factories[n], s, steps, configs[w], n in true_gain)
             for w in chosen for s in range(seeds) for n in factories]  # fmt: skip
    # run_tasks is typed for the regret runs; it only calls `worker` on each task, in order.
    records = cast(list[dict[str, Any]], run_tasks(cast(Any, tasks), jobs=jobs, progress=progress,
                                                   worker=cast(Any, _run_task)))  # fmt: skip
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {w: {n: [] for n in factories} for w in chosen}
    for task, rec in zip(tasks, records, strict=True):
        runs[task.world][task.name].append(rec)
    summaries = {w: summarise_world(runs[w], steps) for w in chosen}
    return Comparison(chosen, list(factories), seeds, steps, runs, summaries)


# ---------------------------------------------------------------------------------------- summaries


def at_equal_backward(record: Mapping[str, Any], budget: float) -> float:
    """Accuracy (mean over the `LAST` steps ending there) at the first step by which a run has trained on
    ``budget`` rows; a run that trains on fewer is read at its end.

    Args:
        record: a run's record (``accuracy`` and ``backward``, ``steps + 1`` each; see `Comparison`).
        budget: rows trained (uniform GRPO's whole run in `summarise_world`).

    Returns:
        The accuracy.

    Examples:
        >>> at_equal_backward({"accuracy": [0.0, 0.25, 0.5, 0.75], "backward": [0, 8, 16, 24]}, budget=16)
        0.25
    """
    b = record["backward"]
    t = next((i for i, x in enumerate(b) if x >= budget), len(b) - 1)
    acc = record["accuracy"]
    return float(np.mean(acc[max(0, t - LAST + 1) : t + 1]))


_MEANS = ("kept_share", "rows_per_round", "lucky_share_kept", "lucky_share_all", "missed_share_kept",
          "missed_share_all", "schedule_ms")  # fmt: skip


def summarise_world(runs: Mapping[str, Sequence[Mapping[str, Any]]], steps: int) -> dict[str, Any]:
    """One world's summary: per scheduler finals and intervals; paired differences to uniform and the best peer.

    Target: uniform's mean `smooth`-ed accuracy at step ``steps // 2``; steps to target: the first step whose
    smoothed accuracy reaches it (never: counted as ``steps + 1`` in the interval). Budget: uniform's mean rows
    trained in its whole run (`at_equal_backward`). The best peer (`is_peer`) has the highest lower 95% bound
    on its final accuracy.

    Args:
        runs: ``{scheduler: [record per seed]}`` with ``"uniform"`` among them (`Comparison.runs[world]`),
            every scheduler on the same seeds.
        steps: steps per run.

    Returns:
        ``target``, ``best_peer`` (``None`` without peers), ``schedulers`` (per name: ``final`` per seed,
        ``final_ci``, ``at_equal_backward`` and its ``_ci``, ``steps_to_target`` (``None``: never), ``steps_ci``,
        ``reached``, ``n`` and the means over seeds of the record's shares and ``schedule_ms``),
        ``diff_uniform``, ``diff_best_peer``, ``diff_uniform_equal_backward`` (``{name: (mean, low, high)}``)
        and ``backward_budget``.

    Raises:
        InvalidInputError: ``runs`` has no ``"uniform"`` or no runs for it.

    Examples:
        >>> shares = dict.fromkeys(["kept_share", "rows_per_round", "lucky_share_kept", "lucky_share_all",
        ...                         "missed_share_kept", "missed_share_all", "schedule_ms"], 0.0)
        >>> def rec(seed, acc):
        ...     return {"seed": seed, "accuracy": acc, "backward": [0, 4, 8], "final": acc[-1], **shares}
        >>> s = summarise_world({"uniform": [rec(0, [0.1, 0.2, 0.3]), rec(1, [0.1, 0.3, 0.4])],
        ...                      "pods": [rec(0, [0.1, 0.3, 0.5]), rec(1, [0.1, 0.4, 0.5])]}, steps=2)
        >>> s["best_peer"], [round(x, 3) for x in s["diff_uniform"]["pods"]]
        ('pods', [0.15, -0.485, 0.785])
    """
    if not runs.get(UNIFORM):
        raise InvalidInputError(f"summarise_world(): `runs` must hold runs of {UNIFORM!r}; got {list(runs)}.")
    by_seed = {n: sorted(r, key=lambda x: x["seed"]) for n, r in runs.items()}
    uni = np.array([r["accuracy"] for r in by_seed[UNIFORM]])
    target = float(np.mean([smooth(c) for c in uni], axis=0)[steps // 2])
    budget = float(np.mean([r["backward"][-1] for r in by_seed[UNIFORM]]))
    out: dict[str, Any] = {}
    for name, rs in by_seed.items():
        hits = [first_at(r["accuracy"], target) for r in rs]
        at_budget = [at_equal_backward(r, budget) for r in rs]
        out[name] = {
            "final": [r["final"] for r in rs], "final_ci": mean_ci([r["final"] for r in rs]),
            "at_equal_backward": at_budget, "at_equal_backward_ci": mean_ci(at_budget),
            "steps_to_target": hits, "steps_ci": mean_ci([steps + 1 if h is None else h for h in hits]),
            "reached": sum(h is not None for h in hits), "n": len(rs),
            **{k: statistics.mean(r[k] for r in rs) for k in _MEANS},
        }  # fmt: skip
    peers = [n for n in out if is_peer(n)]
    best = max(peers, key=lambda n: out[n]["final_ci"][0]) if peers else None
    uni_f, uni_b = out[UNIFORM]["final"], out[UNIFORM]["at_equal_backward"]
    return {
        "target": target, "best_peer": best, "schedulers": out,
        "diff_uniform": {n: paired_difference(out[n]["final"], uni_f) for n in out if n != UNIFORM},
        "diff_best_peer": {n: paired_difference(out[n]["final"], out[best]["final"]) for n in out
                           if best and n != best},
        "diff_uniform_equal_backward": {n: paired_difference(out[n]["at_equal_backward"], uni_b) for n in out
                                        if n != UNIFORM},
        "backward_budget": budget,
    }  # fmt: skip


def verdict(summaries: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The benchmark's test of the default: not significantly below uniform in any world, significantly above
    in at least two, and no peer significantly above it in more than one world (95% paired intervals).

    Args:
        summaries: ``{world: summarise_world(...)}``; worlds without ``"default"`` are skipped.

    Returns:
        ``below_uniform`` and ``above_uniform`` (lists of worlds), ``peers_significantly_above``
        (``{peer: [worlds]}``) and ``met`` (bool).

    Examples:
        >>> s = {"w": {"diff_uniform": {"default": (0.1, 0.05, 0.15)}, "schedulers": {}}}
        >>> verdict(s)
        {'below_uniform': [], 'above_uniform': ['w'], 'peers_significantly_above': {}, 'met': False}
    """
    below: list[str] = []
    above: list[str] = []
    beaten: dict[str, list[str]] = {}
    for w, s in summaries.items():
        d = s["diff_uniform"].get(DEFAULT)
        if d is None:
            continue
        if d[2] < 0:
            below.append(w)
        if d[1] > 0:
            above.append(w)
        for peer in s["schedulers"]:
            if is_peer(peer):
                dp = paired_difference(s["schedulers"][peer]["final"], s["schedulers"][DEFAULT]["final"])
                if dp[1] > 0:
                    beaten.setdefault(peer, []).append(w)
    worst = max((len(v) for v in beaten.values()), default=0)
    return {"below_uniform": below, "above_uniform": above, "peers_significantly_above": beaten,
            "met": not below and len(above) >= 2 and worst <= 1}  # fmt: skip


def label_snr(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Signal-to-noise of a round label: the std of the observed round gain (what ``observe`` returned) against
    the std of the true one-step gain of the selection, and their correlation, over every round of ``records``.

    Args:
        records: runs recorded with ``true_gain`` (`compare`'s argument), e.g. ``Comparison.runs[w][name]``.

    Returns:
        ``observed_std``, ``true_std``, ``corr`` (``None`` when undefined) and ``rounds`` (rounds with both).

    Examples:
        >>> snr = label_snr([{"observed_gain": [0.1, 0.3, None, 0.2], "true_gain": [0.01, 0.03, 0.0, 0.01]}])
        >>> {k: round(v, 4) for k, v in snr.items()}  # std over every round with a value; corr over pairs
        {'observed_std': 0.0816, 'true_std': 0.0109, 'corr': 0.866, 'rounds': 3}
    """
    obs = np.array([g for r in records for g in r["observed_gain"] if g is not None], dtype=float)
    true = np.array([g for r in records for g in (r["true_gain"] or []) if g is not None], dtype=float)
    n = min(obs.size, true.size)
    pairs = [(o, t) for r in records for o, t in zip(r["observed_gain"], r["true_gain"] or [], strict=False)
             if o is not None and t is not None]  # fmt: skip
    o, t = (np.array(x, dtype=float) for x in zip(*pairs, strict=True)) if pairs else (obs[:0], true[:0])
    corr = float(np.corrcoef(o, t)[0, 1]) if n > 2 and o.std() > 0 and t.std() > 0 else None
    return {"observed_std": float(obs.std()) if obs.size else None,
            "true_std": float(true.std()) if true.size else None,
            "corr": corr, "rounds": len(pairs)}  # fmt: skip
