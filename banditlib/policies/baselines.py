"""Baselines: the greedy and epsilon-greedy rules over the ridge estimator, and uniform random choice."""

from __future__ import annotations

import numpy as np
import torch

from banditlib import _random
from banditlib.policies.base import Policy
from banditlib.policies.ridge import RidgeEstimator
from banditlib.policies.rules import EpsilonGreedyRule, GreedyRule

__all__ = ["EpsilonGreedy", "Greedy", "Random"]


class Greedy(GreedyRule, RidgeEstimator):
    """Greedy: play the arm with the highest ridge estimate ``x^T theta`` (exact ties broken at random).

    Examples:
        >>> import torch, banditlib
        >>> policy = banditlib.Greedy(dim=2, arms=3, seed=0)
        >>> policy.update(torch.ones(1, 2), torch.tensor([[2]]), torch.tensor([[1.0]]))
        >>> policy.select(torch.ones(1, 2)).actions.tolist()
        [[2]]
    """


class EpsilonGreedy(EpsilonGreedyRule, RidgeEstimator):
    """Epsilon-greedy over the ridge estimator: with probability ``epsilon`` a row explores, otherwise it is greedy.

    An exploring row ranks its arms by independent uniform draws, so its ``k`` arms are a uniformly random
    subset of the available ones; ``bonus`` is then ``draw - mean`` (``scores = mean + bonus`` holds).

    Examples:
        >>> import torch, banditlib
        >>> policy = banditlib.EpsilonGreedy(dim=2, arms=4, epsilon=1.0, seed=0)
        >>> policy.select(torch.ones(3, 2), k=2).actions.shape
        torch.Size([3, 2])

    References:
        Sutton, Barto. Reinforcement Learning: An Introduction, 2nd ed., section 2.2. MIT Press 2018.
    """


class Random(Policy):
    """Uniformly random choice among the available arms; learns nothing.

    ``mean`` is zero and ``scores = bonus`` are independent uniform draws, so the ``k`` chosen arms are a
    uniformly random subset of the unmasked ones. ``update`` validates its input and changes nothing.

    Examples:
        >>> import torch, banditlib
        >>> banditlib.Random(dim=2, arms=5, seed=1).select(torch.zeros(2, 2), k=3).actions.shape
        torch.Size([2, 3])
    """

    _scores_use_contexts = False
    propensity_rule = "uniform"

    def _score(self, x: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        K = self.arms if self.arms is not None else x.shape[1]
        draws = _random.uniform(self.seed, _random.STREAM_EXPLORE, rows, K).to(self.dtype)
        return torch.zeros_like(draws), draws

    def _score_row(self, x: np.ndarray, row: int) -> tuple[np.ndarray, np.ndarray]:
        K = self.arms if self.arms is not None else x.shape[0]
        draws = _random.uniform_np(self.seed, _random.STREAM_EXPLORE, row, K).astype(self._np_dtype)
        return np.zeros_like(draws), draws

    def _learn_row(
        self, x: np.ndarray, models: np.ndarray | tuple[int, ...], rewards: np.ndarray | tuple[float, ...]
    ) -> bool:
        return bool(np.isfinite(x).all() and np.isfinite(rewards).all())

    def _learn(
        self, x: torch.Tensor, model: torch.Tensor, rewards: torch.Tensor, steps: torch.Tensor, num_steps: int
    ) -> None:
        return None
