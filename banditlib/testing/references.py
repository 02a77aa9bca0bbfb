"""Slow, obvious float64 references that the fast paths are tested against.

Nothing here is clever: the ridge statistics are rebuilt from the full list of observations and inverted
from scratch every time they are asked for.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["LinearReference", "linear_score_reference", "neural_bonus_reference", "per_sample_gradients"]


@dataclass
class LinearReference:
    """Ridge regression with forgetting, recomputed from scratch in float64.

    ``A_m = reg I + sum_t gamma^(R-1-t) x x^T`` and ``b_m = sum_t gamma^(R-1-t) r x`` over the observations of
    model ``m``, where ``R`` rounds have passed and ``t`` is an observation's round (the prior is not
    discounted: see `banditlib.policies.ridge`).

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
        """Same contract as [`banditlib.Policy.update`][banditlib.Policy.update], one round per row."""
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
        """Same contract as [`banditlib.Policy.update_features`][banditlib.Policy.update_features]."""
        for xi, ri in zip(np.asarray(x, np.float64), np.asarray(rewards, np.float64), strict=True):
            self.observations.append((0, xi.copy(), float(ri), self.rounds))
            self.rounds += 1

    def stats(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``A (M, d, d)``, ``b (M, d)``, ``A^-1 (M, d, d)`` and ``theta (M, d)``, from scratch."""
        M, d, g = self.num_models, self.dim, self.forget
        A = np.stack([np.eye(d) * self.reg for _ in range(M)])
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


def linear_score_reference(X: Any, A_inv: Any, theta: Any) -> tuple[np.ndarray, np.ndarray]:
    """``mean[n, k] = x_n . theta_k`` and ``var[n, k] = x_n^T A_k^-1 x_n`` by explicit float64 loops.

    Args:
        X: ``(N, d)``; A_inv: ``(K, d, d)``; theta: ``(K, d)`` (tensors of any dtype, or arrays).
    """
    X, A_inv, theta = (_f64(v) for v in (X, A_inv, theta))
    N, K = X.shape[0], A_inv.shape[0]
    mean, var = np.zeros((N, K)), np.zeros((N, K))
    for n in range(N):
        for k in range(K):
            mean[n, k] = X[n] @ theta[k]
            var[n, k] = X[n] @ A_inv[k] @ X[n]
    return mean, var


def neural_bonus_reference(delta: Any, h: Any, Z_inv: Any) -> np.ndarray:
    """``sum_o sum_i delta_no^2 Z_inv_oi h_ni^2``, the diagonal bonus of one layer, by explicit float64 loops
    over the per-sample weight gradient ``g = delta_n h_n^T``: ``sum_oi g_oi^2 Z_inv_oi``."""
    delta, h, Z_inv = (_f64(v) for v in (delta, h, Z_inv))
    return np.array([np.sum(np.outer(delta[n], h[n]) ** 2 * Z_inv) for n in range(h.shape[0])])


def _f64(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):
        return np.asarray(value.detach().to("cpu").double().numpy())
    return np.asarray(value, dtype=np.float64)


def per_sample_gradients(net: Any, X: Any) -> Any:
    """``(N, p)``: the gradient of ``net(x_n)`` with respect to the flat parameter vector ``net.params``, one
    sample at a time with its own backward pass (the reference code's per-arm loop)."""
    import torch

    rows = []
    for n in range(X.shape[0]):
        params = net.params.detach().clone().requires_grad_(True)
        h = X[n : n + 1]
        layers = net.layers(params)
        for i, (W, c) in enumerate(layers):
            h = torch.nn.functional.linear(h, W, c)
            if i < len(layers) - 1:
                h = net.act(h)
        (g,) = torch.autograd.grad(h.sum(), [params])
        rows.append(g)
    return torch.stack(rows)
