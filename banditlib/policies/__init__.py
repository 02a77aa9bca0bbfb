"""Bandit policies: one algorithm per module, all behind the [`Policy`][banditlib.Policy] API."""

from __future__ import annotations

from banditlib.policies.base import Policy, Selection, load
from banditlib.policies.baselines import EpsilonGreedy, Greedy, Random
from banditlib.policies.eenet import EENet
from banditlib.policies.linear import LinTS, LinUCB
from banditlib.policies.neural import NeuralTS, NeuralUCB
from banditlib.policies.neural_linear import NeuralLinTS, NeuralLinUCB

__all__ = [
    "EENet",
    "EpsilonGreedy",
    "Greedy",
    "LinTS",
    "LinUCB",
    "NeuralLinTS",
    "NeuralLinUCB",
    "NeuralTS",
    "NeuralUCB",
    "Policy",
    "Random",
    "Selection",
    "load",
]
