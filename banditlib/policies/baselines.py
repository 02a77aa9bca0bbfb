"""Baselines: greedy and epsilon-greedy over the ridge estimator, and uniform random choice."""

from __future__ import annotations

import numpy as np
import torch

from banditlib import _random
from banditlib import _validation as V
from banditlib.policies.base import Policy
from banditlib.policies.ridge import _RidgePolicy

__all__ = ["EpsilonGreedy", "Greedy", "Random"]


class Greedy(_RidgePolicy):
    """Greedy: play the arm with the highest ridge estimate ``x^T theta`` (exact ties broken at random).

    Args:
        dim: feature dimension ``d``.
        arms: ``None`` (shared-parameter model, contexts ``(B, K, d)``) or ``K`` disjoint arms (``(B, d)``).
        reg: ridge regularizer ``lambda > 0``.
        forget: forgetting factor in ``(0, 1]``.
        refresh_every: observations of a model between exact refreshes of ``A^-1``.
        seed: seed of the policy's generator (ties).
        dtype: ``torch.float32`` or ``torch.float64``.
        device: device of the state and outputs.
        backend: ``"auto"``, ``"torch"`` or ``"triton"`` for the scoring kernels and top-k.

    Examples:
        >>> import torch, banditlib
        >>> policy = banditlib.Greedy(dim=2, arms=3, seed=0)
        >>> policy.update(torch.ones(1, 2), torch.tensor([[2]]), torch.tensor([[1.0]]))
        >>> policy.select(torch.ones(1, 2)).actions.tolist()
        [[2]]
    """

    propensity_rule = "argmax"

    def __init__(
        self,
        dim: int,
        arms: int | None = None,
        *,
        reg: float = 1.0,
        forget: float = 1.0,
        refresh_every: int = 1000,
        seed: int | None = None,
        dtype: torch.dtype | str = torch.float32,
        device: torch.device | str = "cpu",
        backend: str = "auto",
    ) -> None:
        super().__init__(
            dim=dim, arms=arms, reg=reg, forget=forget, refresh_every=refresh_every,
            seed=seed, dtype=dtype, device=device, backend=backend,
        )  # fmt: skip

    def _score(self, x: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean = self._mean(x)
        return mean, torch.zeros_like(mean)

    def _score_row(self, x: np.ndarray, row: int) -> tuple[np.ndarray, np.ndarray]:
        mean = self._mean_row(x)
        return mean, np.zeros_like(mean)


class EpsilonGreedy(_RidgePolicy):
    """Epsilon-greedy: with probability ``epsilon`` a row explores, otherwise it is greedy.

    An exploring row ranks its arms by independent uniform draws, so its ``k`` arms are a uniformly random
    subset of the available ones; ``bonus`` is then ``draw - mean`` (``scores = mean + bonus`` holds).

    Args:
        dim: feature dimension ``d``.
        arms: ``None`` (shared-parameter model) or the number of disjoint arms ``K``.
        epsilon: exploration probability in ``[0, 1]``.
        reg: ridge regularizer ``lambda > 0``.
        forget: forgetting factor in ``(0, 1]``.
        refresh_every: observations of a model between exact refreshes of ``A^-1``.
        seed: seed of the policy's generator (exploration coins, random arms, ties).
        dtype: ``torch.float32`` or ``torch.float64``.
        device: device of the state and outputs.
        backend: ``"auto"``, ``"torch"`` or ``"triton"`` for the scoring kernels and top-k.

    Examples:
        >>> import torch, banditlib
        >>> policy = banditlib.EpsilonGreedy(dim=2, arms=4, epsilon=1.0, seed=0)
        >>> policy.select(torch.ones(3, 2), k=2).actions.shape
        torch.Size([3, 2])

    References:
        Sutton, Barto. Reinforcement Learning: An Introduction, 2nd ed., section 2.2. MIT Press 2018.
    """

    propensity_rule = "epsilon"

    def __init__(
        self,
        dim: int,
        arms: int | None = None,
        *,
        epsilon: float = 0.1,
        reg: float = 1.0,
        forget: float = 1.0,
        refresh_every: int = 1000,
        seed: int | None = None,
        dtype: torch.dtype | str = torch.float32,
        device: torch.device | str = "cpu",
        backend: str = "auto",
    ) -> None:
        super().__init__(
            dim=dim, arms=arms, reg=reg, forget=forget, refresh_every=refresh_every,
            seed=seed, dtype=dtype, device=device, backend=backend,
        )  # fmt: skip
        self.epsilon = V.check_float(epsilon, f"{type(self).__name__}()", "epsilon", low=0.0, high=1.0)
        self._config["epsilon"] = self.epsilon

    def _score(self, x: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean = self._mean(x)
        bonus = torch.zeros_like(mean)
        if self.epsilon == 0.0:
            return mean, bonus
        K = mean.shape[1]
        draws = _random.uniform(self.seed, _random.STREAM_EXPLORE, rows, K + 1)
        explore = draws[:, 0] < self.epsilon
        if bool(explore.any()):
            bonus[explore] = draws[explore, 1:].to(mean.dtype) - mean[explore]
        return mean, bonus

    def _score_row(self, x: np.ndarray, row: int) -> tuple[np.ndarray, np.ndarray]:
        mean = self._mean_row(x)
        if self.epsilon == 0.0:
            return mean, np.zeros_like(mean)
        draws = _random.uniform_np(self.seed, _random.STREAM_EXPLORE, row, mean.shape[0] + 1)
        if draws[0] < self.epsilon:
            return mean, draws[1:].astype(mean.dtype) - mean
        return mean, np.zeros_like(mean)


class Random(Policy):
    """Uniformly random choice among the available arms; learns nothing.

    ``mean`` is zero and ``scores = bonus`` are independent uniform draws, so the ``k`` chosen arms are a
    uniformly random subset of the unmasked ones. ``update`` validates its input and changes nothing.

    Args:
        dim: feature dimension ``d`` (checked against the contexts).
        arms: ``None`` (shared-parameter contexts ``(B, K, d)``) or ``K`` disjoint arms (``(B, d)``).
        seed: seed of the policy's generator.
        dtype: ``torch.float32`` or ``torch.float64``.
        device: device of the outputs.
        backend: ``"auto"``, ``"torch"`` or ``"triton"`` for the top-k selection.

    Examples:
        >>> import torch, banditlib
        >>> banditlib.Random(dim=2, arms=5, seed=1).select(torch.zeros(2, 2), k=3).actions.shape
        torch.Size([2, 3])
    """

    _scores_use_contexts = False

    propensity_rule = "uniform"

    def __init__(
        self,
        dim: int,
        arms: int | None = None,
        *,
        seed: int | None = None,
        dtype: torch.dtype | str = torch.float32,
        device: torch.device | str = "cpu",
        backend: str = "auto",
    ) -> None:
        super().__init__(dim=dim, arms=arms, seed=seed, dtype=dtype, device=device, backend=backend)

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
