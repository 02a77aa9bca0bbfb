"""linalg against direct float64 inversion."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import banditlib
from banditlib import linalg
from banditlib.errors import NumericalError


def _spd(M: int, d: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(M, 3 * d, d, generator=g, dtype=torch.float64)
    return X.transpose(1, 2) @ X + torch.eye(d, dtype=torch.float64)


@pytest.mark.parametrize("scale", [1.0, 0.9])
@pytest.mark.parametrize("M,d", [(1, 1), (3, 5), (2, 17)])
def test_sherman_morrison_matches_direct_inverse(M: int, d: int, scale: float) -> None:
    A = _spd(M, d, 0)
    x = torch.randn(M, d, dtype=torch.float64)
    got = linalg.sherman_morrison(torch.linalg.inv(A), x, scale)
    want = torch.linalg.inv(scale * A + x[:, :, None] * x[:, None, :])
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("scale", [1.0, 0.5])
@pytest.mark.parametrize("M,n,d", [(1, 2, 4), (3, 4, 6), (2, 7, 7), (2, 9, 3)])
def test_woodbury_matches_direct_inverse_with_zero_padding(M: int, n: int, d: int, scale: float) -> None:
    A = _spd(M, d, 1)
    U = torch.randn(M, n, d, dtype=torch.float64)
    U[0, -1] = 0.0  # padding rows change nothing
    got = linalg.woodbury(torch.linalg.inv(A), U, scale)
    want = torch.linalg.inv(scale * A + U.transpose(1, 2) @ U)
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-11)
    torch.testing.assert_close(got, got.transpose(1, 2), rtol=0, atol=0)


def test_rank_and_vector_updates() -> None:
    A, b = _spd(2, 3, 2), torch.randn(2, 3, dtype=torch.float64)
    U, c = torch.randn(2, 4, 3, dtype=torch.float64), torch.randn(2, 4, dtype=torch.float64)
    torch.testing.assert_close(linalg.rank_update(A, U, 0.7), 0.7 * A + U.transpose(1, 2) @ U)
    torch.testing.assert_close(linalg.vector_update(b, U, c, 0.7), 0.7 * b + torch.einsum("mn,mnd->md", c, U))


def test_discount_weights_compose_per_round() -> None:
    w, scale = linalg.discount_weights(torch.tensor([0, 0, 1, 2]), 3, 0.5)
    torch.testing.assert_close(w, torch.tensor([0.25, 0.25, 0.5, 1.0], dtype=torch.float64))
    assert scale == 0.125
    w, scale = linalg.discount_weights(torch.tensor([0, 1]), 2, 1.0)
    assert scale == 1.0 and bool((w == 1).all())


def test_forgetting_sequence_matches_recomputation() -> None:
    """Rank-1 updates with A <- gamma A + x x^T, applied to the inverse, equal a direct recomputation."""
    gamma, d = 0.8, 4
    A = torch.eye(d, dtype=torch.float64)[None] * 2.0
    A_inv = torch.linalg.inv(A)
    for _ in range(50):
        x = torch.randn(1, d, dtype=torch.float64)
        A_inv = linalg.sherman_morrison(A_inv, x, gamma)
        A = gamma * A + x[:, :, None] * x[:, None, :]
    torch.testing.assert_close(A_inv, torch.linalg.inv(A), rtol=1e-8, atol=1e-10)


def test_refresh_inverse_and_residual() -> None:
    A = _spd(3, 6, 3).to(torch.float32)
    inv = linalg.refresh_inverse(A)
    assert inv.dtype == torch.float32
    torch.testing.assert_close(inv.double(), torch.linalg.inv(A.double()), rtol=1e-5, atol=1e-6)
    assert float(linalg.inverse_residual(A.double(), inv).max()) < linalg.drift_tolerance(torch.float32)
    bad = inv.clone()
    bad[1] *= 1.01
    res = linalg.inverse_residual(A.double(), bad)
    assert float(res[1]) > linalg.drift_tolerance(torch.float32) > float(res[0])


def test_refresh_rejects_indefinite_matrix() -> None:
    with pytest.raises(NumericalError, match="not positive definite"):
        linalg.refresh_inverse(torch.diag(torch.tensor([1.0, -1.0]))[None])


def test_quad_form() -> None:
    A = _spd(2, 3, 4)
    X = torch.randn(2, 5, 3, dtype=torch.float64)
    want = torch.stack([torch.stack([x @ A[m] @ x for x in X[m]]) for m in range(2)])
    torch.testing.assert_close(linalg.quad_form(X, A), want)


@pytest.mark.slow
def test_million_float32_updates_with_forgetting_do_not_drift() -> None:
    """1e6 rank-1 float32 updates with forgetting keep A^-1 within 1e-4 of a float64 recomputation."""
    d, n, gamma = 8, 1_000_000, 0.999
    policy = banditlib.LinUCB(d, forget=gamma, seed=0)
    rng = np.random.default_rng(0)
    A64 = np.eye(d)
    X = rng.normal(size=(n, d)).astype(np.float32)
    R = rng.normal(size=n)
    for i in range(n):
        x = X[i : i + 1]
        policy.update_features(x, R[i : i + 1])
        A64 = gamma * A64 + np.outer(x[0], x[0]).astype(np.float64)
    want = np.linalg.inv(A64)
    got = policy.A_inv_[0].double().numpy()
    assert np.linalg.norm(got - want) / np.linalg.norm(want) < 1e-4
