"""The contenders of the scheduler comparison: the verifier-fault worlds and the schedulers, by table name.

`WORLDS` are the six worlds of ``bench_rlvr.py``; `comparison_schedulers` the default, plain GRPO, the paper's
CBS and every built-in peer; `ablation_schedulers` the default with one ingredient swapped at a time. The
factories are picklable (a name, looked up in the worker), so
[`compare`][banditlib.adapters.rlvr.sim.comparison.compare] can send them to worker processes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple, cast

import banditlib
from banditlib.adapters import rlvr

from .loop import SchedulerLike

__all__ = [
    "DEFAULT", "UNIFORM", "WORLDS", "SchedulerFactory", "WorldSpec", "ablation_schedulers", "comparison_schedulers",
    "is_peer",
]  # fmt: skip

SchedulerFactory = Callable[[int], SchedulerLike]
"""Builds a fresh scheduler for a run from the run's seed."""

DEFAULT, UNIFORM = "default", "uniform"
REUSE, BUFFER_ROUNDS = 128, 4


class WorldSpec(NamedTuple):
    """A verifier-fault world of the comparison: its [`SimConfig`][banditlib.adapters.rlvr.sim.SimConfig] fields.

    Attributes:
        overrides: ``SimConfig`` keyword arguments (``fault`` and its rates).
        description: one line for table titles and plot panels.

    Examples:
        >>> from banditlib.adapters.rlvr.sim import SimConfig
        >>> WORLDS["iid"].overrides, SimConfig(**WORLDS["iid"].overrides).false_positive
        ({'fault': 'iid', 'false_positive': 0.2}, 0.2)
    """

    overrides: dict[str, Any]
    description: str


WORLDS: dict[str, WorldSpec] = {
    "none": WorldSpec({"fault": "none"}, "a perfect verifier"),
    "iid": WorldSpec({"fault": "iid", "false_positive": 0.2},
                     "a wrong answer passes with probability 0.2, each time anew"),
    "loophole": WorldSpec({"fault": "loophole", "loophole_fraction": 0.5},
                          "on half the prompts any prefix of the right answer passes, always"),
    "truncation": WorldSpec({"fault": "truncation", "truncation_rate": 0.5},
                            "answers cut before their end token, up to half of them on the longest prompts"),
    "judge": WorldSpec({"fault": "judge", "judge_bias": 0.6},
                       "a wrong answer passes with 0.6 x the policy's own confidence"),
    "mixture": WorldSpec({"fault": "mixture", "false_positive": 0.1, "loophole_fraction": 0.25,
                          "truncation_rate": 0.25},
                         "iid at 0.1, the loophole on a quarter of the prompts and truncation at 0.25, at once"),
}  # fmt: skip
"""The six worlds of the benchmark by name (docs/rlvr.md, "Benchmark: schedulers across verifier-fault worlds")."""


def _catalogue() -> dict[str, Callable[[int], Any]]:
    """Every built-in scheduler of the comparison and of the ablation by table name."""
    d = rlvr.RolloutFeaturizer().dim
    both = (*rlvr.PAPER_FEATURES, *rlvr.CONSISTENCY_FEATURES)
    both_dim = rlvr.RolloutFeaturizer(both).dim
    S = rlvr.RolloutScheduler
    return {
        DEFAULT: lambda s: S(seed=s),
        UNIFORM: lambda s: rlvr.UniformScheduler(),
        "paper (cbs-group)": lambda s: S(preset="paper", seed=s),
        "pods": lambda s: rlvr.MaxVarianceScheduler(keep_fraction=0.5),
        "dapo": lambda s: rlvr.DynamicSamplingFilter(),
        "threshold": lambda s: rlvr.ThresholdScheduler(),
        "recency": lambda s: rlvr.RecencyReplay(reuse=REUSE, buffer_rounds=BUFFER_ROUNDS),
        "priority-replay": lambda s: rlvr.PriorityReplay(seed=s),
        "consistency": lambda s: rlvr.ConsistencyFilter(),
        "overlong": lambda s: rlvr.OverlongFilter(),
        "influence (trusted probe)": lambda s: rlvr.InfluenceFilter(),
        "abl: rule = top half": lambda s: S(rule=rlvr.TopFraction(0.5), seed=s),
        "abl: rule = soft weights": lambda s: S(rule=rlvr.SoftWeights(0.0, 1.0), seed=s),
        "abl: label = round gain": lambda s: S(label=rlvr.RoundGain(), seed=s),
        "abl: label = baselined gain": lambda s: S(label=rlvr.BaselinedGain(), seed=s),
        "abl: label = influence (next batch)": lambda s: S(label=rlvr.InfluenceLabel("next"), seed=s),
        "abl: label = influence (trusted probe)": lambda s: S(label=rlvr.InfluenceLabel("trusted"), seed=s),
        "abl: features = paper's ten": lambda s: S(featurizer=rlvr.RolloutFeaturizer(rlvr.PAPER_FEATURES), seed=s),
        "abl: features = paper + consistency": lambda s: S(featurizer=rlvr.RolloutFeaturizer(both), seed=s,
                                                           policy=banditlib.LinUCB(dim=both_dim, alpha=1.0,
                                                                                   forget=0.99, seed=s)),
        "abl: model = LinTS": lambda s: S(policy=banditlib.LinTS(dim=d, forget=0.99, seed=s), seed=s),
        "abl: model = NeuralUCB": lambda s: S(policy=banditlib.NeuralUCB(dim=d, hidden=(16,), seed=s), seed=s),
        "abl: alpha = 0 (greedy)": lambda s: S(policy=banditlib.LinUCB(dim=d, alpha=0.0, forget=0.99, seed=s),
                                               seed=s),
        "abl: forget = 1": lambda s: S(policy=banditlib.LinUCB(dim=d, alpha=1.0, forget=1.0, seed=s), seed=s),
        "abl: replay = none (mode group)": lambda s: S(mode="group", seed=s),
        "abl: replay = by score (the paper's pick)": lambda s: S(replay="score", reuse=128, seed=s),
        "abl: replay = ages <= 10": lambda s: S(buffer_rounds=11, seed=s),
        "abl: replay = 1 N": lambda s: S(replay_ratio=1.0, seed=s),
    }  # fmt: skip


@dataclass(frozen=True)
class _Builtin:
    """A built-in scheduler factory by name: picklable (worker processes get the name, not a closure)."""

    name: str

    def __call__(self, seed: int) -> Any:
        return _catalogue()[self.name](seed)


def comparison_schedulers() -> dict[str, SchedulerFactory]:
    """The comparison's schedulers by table name: the default, plain GRPO, the paper's CBS and every built-in peer.

    ``"default"`` is ``RolloutScheduler(seed=s)``, ``"uniform"`` plain GRPO, ``"paper (cbs-group)"``
    ``RolloutScheduler(preset="paper")``; the peers use their published or documented defaults (``recency``:
    ``reuse=128``, ``buffer_rounds=4``). Factories pickle, so they run in worker processes.

    Returns:
        ``{name: seed -> scheduler}``, in table order.

    Examples:
        >>> s = comparison_schedulers()
        >>> list(s)[:4], type(s["pods"](0)).__name__
        (['default', 'uniform', 'paper (cbs-group)', 'pods'], 'MaxVarianceScheduler')
    """
    names = [n for n in _catalogue() if not n.startswith("abl:")]
    return {n: cast(SchedulerFactory, _Builtin(n)) for n in names}


def ablation_schedulers() -> dict[str, SchedulerFactory]:
    """The default with one ingredient swapped at a time (rule, label, features, model, replay), by table name.

    Every name starts with ``"abl: "`` (so `is_peer` is false for it). Factories pickle.

    Returns:
        ``{name: seed -> scheduler}``, 16 variants.

    Examples:
        >>> a = ablation_schedulers()
        >>> len(a), list(a)[0], a["abl: model = LinTS"](0).policy.__class__.__name__
        (16, 'abl: rule = top half', 'LinTS')
    """
    return {n: cast(SchedulerFactory, _Builtin(n)) for n in _catalogue() if n.startswith("abl:")}


def is_peer(name: str) -> bool:
    """Whether ``name`` is a peer: not the default, not plain GRPO, not an ablation variant (``"abl:"``).

    Args:
        name: a scheduler's table name.

    Returns:
        ``True`` for a peer (any scheduler you add counts as one).

    Examples:
        >>> is_peer("pods"), is_peer("default"), is_peer("uniform"), is_peer("abl: forget = 1")
        (True, False, False, False)
    """
    return name not in (DEFAULT, UNIFORM) and not name.startswith("abl:")
