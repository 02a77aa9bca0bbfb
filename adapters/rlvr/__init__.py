"""banditlib.adapters.rlvr: learned rollout scheduling for RL with verifiable rewards, framework-free.

Plain tensors and dataclasses, no trainer imports: rollout records (:class:`RolloutBatch`), their features
(:class:`RolloutFeaturizer`) and answer consistency (:class:`AnswerStats`), a FIFO buffer of recent rounds
(:class:`RolloutBuffer`), selection rules (:class:`TopFraction`, :class:`Threshold`, :class:`SoftWeights`),
labels (:class:`RoundGain`, :class:`BaselinedGain`, :class:`InfluenceLabel`, :class:`ConsistencyLabel`), the
learned scheduler (:class:`RolloutScheduler`: its default, and CBS as published with ``preset="paper"``) and
the peers it is judged against, all behind one :class:`Scheduler` interface (``schedule`` / ``observe`` /
``save`` / ``load``).
"""

from __future__ import annotations

from banditlib.errors import StateError

from ._base import Schedule, Scheduler
from .baselines import (
    DynamicSamplingFilter,
    MaxVarianceScheduler,
    RecencyReplay,
    ThresholdScheduler,
    UniformScheduler,
)
from .batch import RolloutBatch
from .buffer import RolloutBuffer
from .consistency import AnswerStats
from .features import ALL_FEATURES, CONSISTENCY_FEATURES, DEFAULT_FEATURES, PAPER_FEATURES, RolloutFeaturizer
from .labels import BaselinedGain, ConsistencyLabel, InfluenceLabel, RolloutLabel, RoundGain
from .peers import ConsistencyFilter, InfluenceFilter, OverlongFilter, PriorityReplay
from .reward import GainReward
from .rules import SelectionRule, SoftWeights, Threshold, TopFraction
from .scheduler import PRESETS, RolloutScheduler

__all__ = [
    "ALL_FEATURES",
    "CONSISTENCY_FEATURES",
    "DEFAULT_FEATURES",
    "PAPER_FEATURES",
    "PRESETS",
    "AnswerStats",
    "BaselinedGain",
    "ConsistencyFilter",
    "ConsistencyLabel",
    "DynamicSamplingFilter",
    "GainReward",
    "InfluenceFilter",
    "InfluenceLabel",
    "MaxVarianceScheduler",
    "OverlongFilter",
    "PriorityReplay",
    "RecencyReplay",
    "RolloutBatch",
    "RolloutBuffer",
    "RolloutFeaturizer",
    "RolloutLabel",
    "RolloutScheduler",
    "RoundGain",
    "Schedule",
    "Scheduler",
    "SelectionRule",
    "SoftWeights",
    "StateError",
    "Threshold",
    "ThresholdScheduler",
    "TopFraction",
    "UniformScheduler",
]
