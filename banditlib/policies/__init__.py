"""Bandit policies: one algorithm per module, all behind the :class:`~banditlib.policies.base.Policy` API."""

from __future__ import annotations

from banditlib.policies.base import Policy, Selection, load
from banditlib.policies.baselines import EpsilonGreedy, Greedy, Random
from banditlib.policies.linear import LinTS, LinUCB

__all__ = ["EpsilonGreedy", "Greedy", "LinTS", "LinUCB", "Policy", "Random", "Selection", "load"]
