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


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("T,n,q", [(1, 1, 5), (3, 1, 4), (2, 3, 6), (2, 6, 6), (1, 9, 4)])
def test_ridge_fold_matches_a_direct_float64_fit(T: int, n: int, q: int, dtype: torch.dtype) -> None:
    """Gram, vector, inverse and theta after a fold equal the direct float64 computation, for one row
    (Sherman-Morrison), fewer rows than the dimension (Woodbury) and at least as many (exact refresh); the
    inputs are left as they were."""
    A, b = _spd(T, q, 3), torch.randn(T, q, dtype=torch.float64)
    A_inv = torch.linalg.inv(A).to(dtype)
    U, c = torch.randn(T, n, q, dtype=torch.float64), torch.randn(T, n, dtype=torch.float64)
    before = [t.clone() for t in (A, b, A_inv)]
    fold = linalg.ridge_fold(A, A_inv, b, U, c, dtype)
    A_want = A + U.transpose(1, 2) @ U
    b_want = b + (c[:, :, None] * U).sum(1)
    tol = {"rtol": 1e-9, "atol": 1e-11} if dtype == torch.float64 else {"rtol": 1e-4, "atol": 1e-5}
    torch.testing.assert_close(fold.A, A_want, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(fold.b, b_want, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(fold.A_inv.to(torch.float64), torch.linalg.inv(A_want), **tol)
    torch.testing.assert_close(fold.theta.to(torch.float64), torch.linalg.solve(A_want, b_want), **tol)
    assert fold.A_inv.dtype == fold.theta.dtype == dtype
    assert fold.refreshed.tolist() == [n >= q] * T
    for t, t0 in zip((A, b, A_inv), before, strict=True):
        assert torch.equal(t, t0)


def test_grown_inverse_refreshes_what_is_stale_or_drifted_and_checks_only_what_is_asked() -> None:
    """``stale`` models are recomputed exactly; a corrupted inverse is caught by the drift check where
    ``check`` asks for it and kept where it does not; the refreshed mask says which models were recomputed."""
    A = _spd(3, 4, 4)
    U = torch.randn(3, 1, 4, dtype=torch.float64)
    A_new = A + U.transpose(1, 2) @ U
    A_inv = torch.linalg.inv(A)
    A_inv[1] *= 1.5  # model 1's inverse is wrong: only a drift check can tell
    out, refreshed = linalg.grown_inverse(A_new, A_inv, U, torch.float64)
    assert refreshed.tolist() == [False, True, False]
    torch.testing.assert_close(out[1], torch.linalg.inv(A_new[1]), rtol=1e-10, atol=1e-12)
    check = torch.tensor([True, False, True])
    stale = torch.tensor([False, False, True])
    out, refreshed = linalg.grown_inverse(A_new, A_inv, U, torch.float64, check=check, stale=stale)
    assert refreshed.tolist() == [False, False, True]
    assert not torch.allclose(out[1], torch.linalg.inv(A_new[1]))  # not checked: the wrong inverse stays
    torch.testing.assert_close(out[2], linalg.refresh_inverse(A_new[2:3])[0], rtol=0, atol=0)


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
