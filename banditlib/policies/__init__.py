"""Bandit policies, each an exploration rule over an estimator, all behind the [`Policy`][banditlib.Policy] API.

The rules ([`UCBRule`][banditlib.policies.UCBRule], [`ThompsonRule`][banditlib.policies.ThompsonRule],
[`GreedyRule`][banditlib.policies.GreedyRule], [`EpsilonGreedyRule`][banditlib.policies.EpsilonGreedyRule]) and
the estimators ([`RidgeEstimator`][banditlib.policies.RidgeEstimator],
[`GradientEstimator`][banditlib.policies.GradientEstimator],
[`NeuralLinearEstimator`][banditlib.policies.NeuralLinearEstimator]) are public so that a new rule or estimator
combines with the others (see docs/concepts.md, "Writing your own policy").
"""

from __future__ import annotations

from banditlib.policies._params import REQUIRED, Param
from banditlib.policies.base import Policy, Prediction, Selection, load
from banditlib.policies.baselines import EpsilonGreedy, Greedy, Random
from banditlib.policies.eenet import EENet
from banditlib.policies.linear import LinTS, LinUCB
from banditlib.policies.neural import GradientEstimator, NeuralEpsilonGreedy, NeuralTS, NeuralUCB
from banditlib.policies.neural_linear import NeuralLinearEstimator, NeuralLinTS, NeuralLinUCB
from banditlib.policies.ridge import RidgeEstimator
from banditlib.policies.rules import EpsilonGreedyRule, GreedyRule, ThompsonRule, UCBRule

__all__ = [
    "REQUIRED",
    "EENet",
    "EpsilonGreedy",
    "EpsilonGreedyRule",
    "GradientEstimator",
    "Greedy",
    "GreedyRule",
    "LinTS",
    "LinUCB",
    "NeuralEpsilonGreedy",
    "NeuralLinTS",
    "NeuralLinUCB",
    "NeuralLinearEstimator",
    "NeuralTS",
    "NeuralUCB",
    "Param",
    "Policy",
    "Prediction",
    "Random",
    "RidgeEstimator",
    "Selection",
    "ThompsonRule",
    "UCBRule",
    "load",
]
