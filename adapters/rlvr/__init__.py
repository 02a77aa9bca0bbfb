"""banditlib.adapters.rlvr: learned rollout scheduling for RL with verifiable rewards, framework-free.

Plain tensors and dataclasses, no trainer imports: rollout records
([`RolloutBatch`][banditlib.adapters.rlvr.RolloutBatch]), their features
([`RolloutFeaturizer`][banditlib.adapters.rlvr.RolloutFeaturizer]) and answer consistency
([`AnswerStats`][banditlib.adapters.rlvr.AnswerStats]), a FIFO buffer of recent rounds
([`RolloutBuffer`][banditlib.adapters.rlvr.RolloutBuffer]), selection rules
([`TopFraction`][banditlib.adapters.rlvr.TopFraction], [`Threshold`][banditlib.adapters.rlvr.Threshold],
[`SoftWeights`][banditlib.adapters.rlvr.SoftWeights]), labels ([`RoundGain`][banditlib.adapters.rlvr.RoundGain],
[`BaselinedGain`][banditlib.adapters.rlvr.BaselinedGain], [`InfluenceLabel`][banditlib.adapters.rlvr.InfluenceLabel],
[`ConsistencyLabel`][banditlib.adapters.rlvr.ConsistencyLabel]), the learned scheduler
([`RolloutScheduler`][banditlib.adapters.rlvr.RolloutScheduler]: its default, and CBS as published with
``preset="paper"``) and the peers it is judged against, all behind one [`Scheduler`][banditlib.adapters.rlvr.Scheduler]
interface (``schedule`` / ``observe`` / ``save`` / ``load``).
"""

from __future__ import annotations

from banditlib.errors import StateError

from ._base import Schedule, Scheduler, SchedulerLike
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
    "SchedulerLike",
    "SelectionRule",
    "SoftWeights",
    "StateError",
    "Threshold",
    "ThresholdScheduler",
    "TopFraction",
    "UniformScheduler",
]
