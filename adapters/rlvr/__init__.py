"""banditlib.adapters.rlvr: contextual rollout bandits (CBS) for RL with verifiable rewards, framework-free.

Plain tensors and dataclasses, no trainer imports: rollout records (:class:`RolloutBatch`), their features
(:class:`RolloutFeaturizer`), a FIFO buffer of recent rounds (:class:`RolloutBuffer`), the performance-gain
reward (:class:`GainReward`), the bandit scheduler (:class:`RolloutScheduler`) and the baselines it is judged
against, all behind one :class:`Scheduler` interface (``schedule`` / ``observe`` / ``save`` / ``load``).
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
from .features import DEFAULT_FEATURES, RolloutFeaturizer
from .reward import GainReward
from .scheduler import RolloutScheduler

__all__ = [
    "DEFAULT_FEATURES",
    "DynamicSamplingFilter",
    "GainReward",
    "MaxVarianceScheduler",
    "RecencyReplay",
    "RolloutBatch",
    "RolloutBuffer",
    "RolloutFeaturizer",
    "RolloutScheduler",
    "Schedule",
    "Scheduler",
    "StateError",
    "ThresholdScheduler",
    "UniformScheduler",
]
