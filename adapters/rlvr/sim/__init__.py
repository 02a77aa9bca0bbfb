"""A small RLVR world for measuring rollout schedulers on a CPU: task, policy, verifier, GRPO, loop, oracle.

See ``docs/rlvr.md``. Pure torch; a run of 100 steps takes seconds on one core.
"""

from __future__ import annotations

from .loop import RunResult, SchedulerLike, Simulator, run
from .train import grpo_advantages, ppo_step
from .world import SimConfig, World, expected_accuracy, generate

__all__ = [
    "RunResult", "SchedulerLike", "SimConfig", "Simulator", "World", "expected_accuracy", "generate",
    "grpo_advantages", "ppo_step", "run",
]  # fmt: skip
