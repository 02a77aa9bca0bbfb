"""A small RLVR world for measuring rollout schedulers on a CPU: task, policy, verifier, GRPO, loop, oracle, and
the comparison of schedulers across verifier-fault worlds (`.comparison`, tables and figure in `.report`).

See ``docs/rlvr.md``. Pure torch; a run of 100 steps takes seconds on one core.
"""

from __future__ import annotations

from .comparison import Comparison, compare
from .contenders import WORLDS, ablation_schedulers, comparison_schedulers
from .loop import RunResult, SchedulerLike, Simulator, run
from .train import grpo_advantages, ppo_step
from .world import SimConfig, World, expected_accuracy, generate

__all__ = [
    "WORLDS", "Comparison", "RunResult", "SchedulerLike", "SimConfig", "Simulator", "World", "ablation_schedulers",
    "compare", "comparison_schedulers", "expected_accuracy", "generate", "grpo_advantages", "ppo_step", "run",
]  # fmt: skip
