"""Slow, obvious float64 references that the fast paths are tested against.

Nothing here is clever: the ridge statistics are rebuilt from the full list of observations and inverted
from scratch every time they are asked for.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["LinearReference"]


@dataclass
class LinearReference:
    """Ridge regression with forgetting, recomputed from scratch in float64.

    ``A_m = gamma^R reg I + sum_t gamma^(R-1-t) x x^T`` and ``b_m = sum_t gamma^(R-1-t) r x`` over the
    observations of model ``m``, where ``R`` rounds have passed and ``t`` is an observation's round.

    Args:
        dim: ``d``.
        arms: ``None`` for the shared-parameter model, else the number of disjoint arms.
        reg: ridge regularizer.
        forget: forgetting factor ``gamma``.
    """

    dim: int
    arms: int | None = None
    reg: float = 1.0
    forget: float = 1.0
    rounds: int = 0
    observations: list[tuple[int, np.ndarray, float, int]] = field(default_factory=list)

    @property
    def num_models(self) -> int:
        return 1 if self.arms is None else self.arms

    def update(self, contexts: np.ndarray, actions: np.ndarray, rewards: np.ndarray) -> None:
        """Same contract as :meth:`banditlib.Policy.update`, one round per row."""
        contexts, actions, rewards = (
            np.asarray(contexts, np.float64),
            np.asarray(actions),
            np.asarray(rewards),
        )
        for i in range(contexts.shape[0]):
            for j in range(actions.shape[1]):
                a = int(actions[i, j])
                x = contexts[i] if self.arms is not None else contexts[i, a]
                self.observations.append(
                    (a if self.arms is not None else 0, x.copy(), float(rewards[i, j]), self.rounds)
                )
            self.rounds += 1

    def update_features(self, x: np.ndarray, rewards: np.ndarray) -> None:
        """Same contract as :meth:`banditlib.Policy.update_features`."""
        for xi, ri in zip(np.asarray(x, np.float64), np.asarray(rewards, np.float64), strict=True):
            self.observations.append((0, xi.copy(), float(ri), self.rounds))
            self.rounds += 1

    def stats(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``A (M, d, d)``, ``b (M, d)``, ``A^-1 (M, d, d)`` and ``theta (M, d)``, from scratch."""
        M, d, g = self.num_models, self.dim, self.forget
        A = np.stack([np.eye(d) * self.reg * g**self.rounds for _ in range(M)])
        b = np.zeros((M, d))
        for m, x, r, t in self.observations:
            w = g ** (self.rounds - 1 - t)
            A[m] += w * np.outer(x, x)
            b[m] += w * r * x
        A_inv = np.linalg.inv(A)
        theta = np.stack([np.linalg.solve(A[m], b[m]) for m in range(M)])
        return A, b, A_inv, theta

    def mean_var(self, contexts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``x^T theta`` and ``x^T A^-1 x`` of every (row, arm), each ``(B, K)``, by explicit loops."""
        contexts = np.asarray(contexts, np.float64)
        _, _, A_inv, theta = self.stats()
        B = contexts.shape[0]
        K = self.arms if self.arms is not None else contexts.shape[1]
        mean, var = np.zeros((B, K)), np.zeros((B, K))
        for i in range(B):
            for a in range(K):
                m, x = (a, contexts[i]) if self.arms is not None else (0, contexts[i, a])
                mean[i, a] = x @ theta[m]
                var[i, a] = x @ A_inv[m] @ x
        return mean, var

    def ucb(self, contexts: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
        """LinUCB's mean and bonus ``alpha sqrt(x^T A^-1 x)``, each ``(B, K)``."""
        mean, var = self.mean_var(contexts)
        return mean, alpha * np.sqrt(var)
