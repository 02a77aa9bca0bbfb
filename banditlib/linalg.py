"""Stateless linear algebra for ridge-regression bandits.

The statistics of a ridge model with forgetting factor ``gamma`` after observations ``(x_i, r_i)``:

    A <- gamma A + x x^T,    b <- gamma b + r x,    theta = A^-1 b,    A_0 = lambda I, b_0 = 0.

Everything here is batched over models: ``A`` and ``A_inv`` are ``(M, d, d)`` (``M = 1`` for the
shared-parameter model, ``M = K`` for disjoint arms), ``b`` is ``(M, d)``. ``A^-1`` is kept by
Sherman-Morrison (rank 1) or Woodbury (rank n) updates, which cost ``O(d^2)`` and ``O(n d^2 + n^3)``
instead of ``O(d^3)``, and is refreshed exactly from ``A`` by a float64 Cholesky factorisation on a schedule
and whenever [`inverse_residual`][banditlib.linalg.inverse_residual] says it has drifted. Nothing here validates user
input or keeps state.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import torch

from banditlib.errors import NumericalError

__all__ = [
    "RidgeFold",
    "cholesky_factor",
    "discount_weights",
    "drift_tolerance",
    "grouped_gram",
    "grown_inverse",
    "inverse_factor",
    "inverse_residual",
    "pad_groups",
    "probe_vector",
    "quad_form",
    "rank_update",
    "refresh_inverse",
    "ridge_fold",
    "ridge_solution",
    "sherman_morrison",
    "vector_update",
    "woodbury",
]


def discount_weights(steps: torch.Tensor, num_steps: int, gamma: float) -> tuple[torch.Tensor, float]:
    """Weights of observations made at ``steps`` within a call of ``num_steps`` rounds.

    Applying ``A <- gamma A + x x^T`` once per round for ``num_steps`` rounds gives
    ``gamma^num_steps A + sum_i gamma^(num_steps - 1 - step_i) x_i x_i^T``.

    Args:
        steps: ``(N,)`` int64 round index of each observation, in ``[0, num_steps)``.
        num_steps: number of rounds in the call.
        gamma: forgetting factor in ``(0, 1]``.

    Returns:
        ``(weights (N,) float64, scale)`` with ``scale = gamma^num_steps`` the factor on the old statistics.
    """
    if gamma == 1.0:
        return torch.ones(steps.shape, dtype=torch.float64, device=steps.device), 1.0
    exponent = (num_steps - 1 - steps).to(torch.float64)
    return torch.pow(torch.tensor(gamma, dtype=torch.float64), exponent), gamma**num_steps


def sherman_morrison(A_inv: torch.Tensor, x: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """Inverse of ``scale * A + x x^T`` from ``A^-1`` (rank-1 Sherman-Morrison).

    ``(S + x x^T)^-1 = S^-1 - (S^-1 x)(S^-1 x)^T / (1 + x^T S^-1 x)`` with ``S = scale * A`` symmetric.

    Args:
        A_inv: ``(M, d, d)`` symmetric positive definite inverses.
        x: ``(M, d)`` one vector per model.
        scale: factor on ``A`` (``gamma`` for one round of forgetting).

    Returns:
        ``(M, d, d)`` updated inverses.

    Raises:
        NumericalError: ``x^T (scale A)^-1 x`` is not finite.

    Examples:
        >>> import torch
        >>> A = torch.eye(2, dtype=torch.float64)[None] * 2.0
        >>> x = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
        >>> round(sherman_morrison(torch.linalg.inv(A), x)[0, 0, 0].item(), 12)  # 1 / (2 + 1)
        0.333333333333
    """
    M = A_inv / scale if scale != 1.0 else A_inv
    Mx = torch.bmm(M, x.unsqueeze(-1)).squeeze(-1)
    denom = 1.0 + (x * Mx).sum(-1)
    if not bool(torch.isfinite(denom).all()):
        raise NumericalError("sherman_morrison(): x^T A^-1 x overflowed; the update would lose its correction.")
    return M - Mx.unsqueeze(-1) * (Mx / denom.unsqueeze(-1)).unsqueeze(-2)


def woodbury(A_inv: torch.Tensor, U: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """Inverse of ``scale * A + U^T U`` from ``A^-1`` (rank-n Woodbury identity).

    ``(S + U^T U)^-1 = S^-1 - S^-1 U^T (I + U S^-1 U^T)^-1 U S^-1``; the ``n x n`` system is solved by
    Cholesky. Weighted observations enter as rows ``sqrt(w_i) x_i`` of ``U``; zero rows (padding) are harmless.

    Args:
        A_inv: ``(M, d, d)`` symmetric positive definite inverses.
        U: ``(M, n, d)`` rows to add.
        scale: factor on ``A``.

    Returns:
        ``(M, d, d)`` updated inverses, symmetrised.
    """
    M = A_inv / scale if scale != 1.0 else A_inv
    MU = torch.matmul(M, U.transpose(-1, -2))  # (M, d, n)
    C = torch.matmul(U, MU)
    C.diagonal(dim1=-2, dim2=-1).add_(1.0)
    L, info = torch.linalg.cholesky_ex(C)
    if bool((info != 0).any()) or not bool(torch.isfinite(C).all()):
        raise NumericalError("woodbury(): the capacitance matrix I + U A^-1 U^T is not positive definite.")
    out = M - torch.matmul(MU, torch.cholesky_solve(MU.transpose(-1, -2), L))
    return 0.5 * (out + out.transpose(-1, -2))


def rank_update(A: torch.Tensor, U: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """``scale * A + U^T U`` for ``A`` ``(M, d, d)`` and ``U`` ``(M, n, d)``."""
    out = torch.matmul(U.transpose(-1, -2), U)
    return out.add_(A, alpha=scale) if scale != 1.0 else out.add_(A)


def vector_update(b: torch.Tensor, x: torch.Tensor, coef: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """``scale * b + x^T coef`` per model: ``b`` ``(M, d)``, ``x`` ``(M, n, d)``, ``coef`` ``(M, n)``."""
    out = torch.matmul(coef.unsqueeze(-2), x).squeeze(-2)
    return out.add_(b, alpha=scale) if scale != 1.0 else out.add_(b)


def cholesky_factor(A: torch.Tensor, what: str = "A") -> torch.Tensor:
    """Lower Cholesky factor of symmetric positive definite ``A`` ``(..., d, d)``, computed in float64.

    Raises:
        NumericalError: ``A`` is not positive definite (or not finite).
    """
    A64 = A.to(torch.float64)
    L, info = torch.linalg.cholesky_ex(0.5 * (A64 + A64.transpose(-1, -2)))
    if bool((info != 0).any()) or not bool(torch.isfinite(L).all()):
        raise NumericalError(
            f"{what} is not positive definite in float64; the statistics are degenerate (a regularizer "
            "`reg` > 0 and finite inputs keep them positive definite)."
        )
    return L


def inverse_factor(A_inv: torch.Tensor, A: torch.Tensor, what: str = "A_inv_") -> torch.Tensor:
    """Lower Cholesky factor of ``A^-1`` ``(..., d, d)`` in float64, from the stored inverse ``A_inv`` if it is
    positive definite, else from the float64 statistics ``A`` themselves.

    A float32 ``A_inv`` of an ill-conditioned ``A`` (accepted by an update, with a warning) can lose definiteness
    in its small eigenvalues although ``A`` keeps it; Thompson sampling then factors ``A^-1`` from ``A`` (one
    float64 Cholesky of ``A`` and its inverse) rather than fail. Whenever ``A_inv`` factors, the result is
    exactly ``cholesky_factor(A_inv)``.

    Args:
        A_inv: ``(..., d, d)`` the stored inverse, any float dtype.
        A: ``(..., d, d)`` the statistics it inverts (float64 in every policy).
        what: the name in the error message.

    Raises:
        NumericalError: neither ``A_inv`` nor ``A`` is positive definite.

    Examples:
        >>> import torch
        >>> A = torch.tensor([[1.0, 0.0], [0.0, 1e12]], dtype=torch.float64)
        >>> bad = torch.tensor([[1.0, 0.0], [0.0, -1e-13]])   # a float32 inverse that lost its small eigenvalue
        >>> L = inverse_factor(bad, A)
        >>> torch.allclose(L @ L.T, torch.linalg.inv(A))
        True
    """
    try:
        return cholesky_factor(A_inv, what)
    except NumericalError:
        L_A = cholesky_factor(A, what.removesuffix("_inv_").removesuffix("_inv") or "A")
        return cholesky_factor(torch.cholesky_inverse(L_A), what)


def refresh_inverse(A: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Exact ``A^-1`` by a float64 Cholesky factorisation, returned in ``dtype`` (default: ``A``'s).

    Args:
        A: ``(M, d, d)`` symmetric positive definite.
        dtype: dtype of the result.

    Returns:
        ``(M, d, d)`` inverse, exactly symmetric.
    """
    inv = torch.cholesky_inverse(cholesky_factor(A))
    return (0.5 * (inv + inv.transpose(-1, -2))).to(dtype or A.dtype)


def probe_vector(d: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """A fixed unit vector with no special structure (cosines of multiples of the golden angle)."""
    v = torch.cos(torch.arange(1, d + 1, dtype=torch.float64) * 2.399963229728653)
    return (v / v.norm()).to(dtype=dtype, device=device)


def inverse_residual(A: torch.Tensor, A_inv: torch.Tensor) -> torch.Tensor:
    """Cheap drift check: ``|| A (A^-1 u) - u ||`` for a fixed unit vector ``u``, per model.

    Two matrix-vector products per model (``O(d^2)``), against ``O(d^3)`` for a full check.

    Args:
        A: ``(M, d, d)`` Gram matrices; the residual is computed in their dtype.
        A_inv: ``(M, d, d)`` inverses to check, of any floating dtype.

    Returns:
        ``(M,)`` residual norms; an exact inverse gives about ``cond(A) * eps`` of ``A_inv``'s dtype.
    """
    u = _cached_probe(A.shape[-1], A.dtype, A.device)
    v = torch.matmul(A, torch.matmul(A_inv.to(A.dtype), u).unsqueeze(-1)).squeeze(-1)
    return (v - u).norm(dim=-1)


@functools.lru_cache(maxsize=16)
def _cached_probe(d: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """`probe_vector`, made once per shape (read only; an ordinary tensor even if first asked for in inference
    mode, so later calls outside it may use it)."""
    with torch.inference_mode(False):
        return probe_vector(d, dtype, device)


def grown_inverse(
    A_new: torch.Tensor,
    A_inv: torch.Tensor,
    U: torch.Tensor,
    dtype: torch.dtype,
    check: torch.Tensor | None = None,
    stale: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The inverses of ``A_new = A + U^T U`` from ``A^-1``: the one inverse update of every ridge model here.

    An exact refresh when the ``n`` rows are at least the dimension ``q`` (then it costs no more than an
    update); else Sherman-Morrison (``n = 1``) or Woodbury, followed by an exact refresh of the models that are
    ``stale`` and of those whose drift check ([`inverse_residual`][banditlib.linalg.inverse_residual]) is asked
    for by ``check`` and fails.

    Args:
        A_new: ``(T, q, q)`` float64 Gram matrices after the rows were added.
        A_inv: ``(T, q, q)`` inverses of the matrices before.
        U: ``(T, n, q)`` the rows added, in ``dtype`` (zero rows, as padding, are harmless).
        dtype: the inverses' dtype.
        check: ``(T,)`` bool, the models whose drift is checked (default: every model).
        stale: ``(T,)`` bool, the models refreshed exactly whatever their drift (default: none).

    Returns:
        ``(A_inv_new, refreshed)``: ``(T, q, q)`` inverses of ``A_new`` in ``dtype``, and ``(T,)`` bool, the
        models whose inverse was recomputed exactly.

    Examples:
        >>> import torch
        >>> A, U = torch.eye(3, dtype=torch.float64)[None], torch.ones(1, 1, 3, dtype=torch.float64)
        >>> A_inv, refreshed = grown_inverse(A + U.mT @ U, torch.eye(3, dtype=torch.float64)[None], U, torch.float64)
        >>> torch.allclose(A_inv @ (A + U.mT @ U), torch.eye(3, dtype=torch.float64)), refreshed.tolist()
        (True, [False])
    """
    T, n, q = U.shape
    if n >= q:
        return refresh_inverse(A_new, dtype), torch.ones(T, dtype=torch.bool, device=U.device)
    out = sherman_morrison(A_inv, U[:, 0]) if n == 1 else woodbury(A_inv, U)
    redo = torch.zeros(T, dtype=torch.bool, device=U.device) if stale is None else stale.clone()
    if check is None or bool(check.any()):
        drifted = ~(inverse_residual(A_new, out) <= drift_tolerance(dtype))
        redo |= drifted if check is None else check & drifted
    if bool(redo.any()):
        s = torch.nonzero(redo).squeeze(1)
        out[s] = refresh_inverse(A_new[s], dtype)
    return out, redo


def ridge_solution(A_inv: torch.Tensor, b: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``theta = A^-1 b`` per model, computed in float64: ``A_inv`` ``(T, q, q)``, ``b`` ``(T, q)`` -> ``(T, q)``
    in ``dtype``."""
    return torch.bmm(A_inv.to(torch.float64), b.to(torch.float64).unsqueeze(-1)).squeeze(-1).to(dtype)


class RidgeFold(NamedTuple):
    """Ridge statistics after [`ridge_fold`][banditlib.linalg.ridge_fold] added rows (nothing committed).

    Attributes:
        A: ``(T, q, q)`` float64 Gram matrices.
        A_inv: ``(T, q, q)`` their inverses, in the model's dtype.
        b: ``(T, q)`` float64 ``sum r x``.
        theta: ``(T, q)`` ``A^-1 b`` in the model's dtype.
        refreshed: ``(T,)`` bool, the models whose inverse was recomputed exactly.
    """

    A: torch.Tensor
    A_inv: torch.Tensor
    b: torch.Tensor
    theta: torch.Tensor
    refreshed: torch.Tensor


def ridge_fold(
    A: torch.Tensor,
    A_inv: torch.Tensor,
    b: torch.Tensor,
    U: torch.Tensor,
    c: torch.Tensor,
    dtype: torch.dtype,
    check: torch.Tensor | None = None,
    stale: torch.Tensor | None = None,
) -> RidgeFold:
    """Rows ``U`` (and their coefficients ``c``) folded into ridge statistics: ``A + U^T U``, ``b + U^T c``,
    the inverse by [`grown_inverse`][banditlib.linalg.grown_inverse] and ``theta``: the one ridge update of the
    ridge estimator's accumulating path and of the neural-linear features' statistics (NeuralUCB's last-layer
    ``Z``, a Gram matrix with no ``b``, takes ``rank_update`` and ``grown_inverse`` alone). Sums in float64,
    inverses in ``dtype``; the inputs are not modified.

    Args:
        A: ``(T, q, q)`` float64 Gram matrices.
        A_inv: ``(T, q, q)`` their inverses.
        b: ``(T, q)`` float64 ``sum r x`` so far.
        U: ``(T, n, q)`` float64 rows (zero rows pad models with fewer rows).
        c: ``(T, n)`` float64 coefficients (rewards) of the rows.
        dtype: the inverses' and ``theta``'s dtype.
        check: as in [`grown_inverse`][banditlib.linalg.grown_inverse].
        stale: likewise.

    Returns:
        A [`RidgeFold`][banditlib.linalg.RidgeFold].

    Examples:
        >>> import torch
        >>> eye = torch.eye(2, dtype=torch.float64)[None]
        >>> U, c = torch.tensor([[[1.0, 0.0]]], dtype=torch.float64), torch.tensor([[2.0]], dtype=torch.float64)
        >>> fold = ridge_fold(eye, eye, torch.zeros(1, 2, dtype=torch.float64), U, c, torch.float64)
        >>> fold.theta.tolist()  # (I + e1 e1^T)^-1 (2 e1)
        [[1.0, 0.0]]
    """
    A_new = rank_update(A, U)
    A_inv_new, refreshed = grown_inverse(A_new, A_inv, U.to(dtype), dtype, check, stale)
    b_new = vector_update(b, U, c)
    return RidgeFold(A_new, A_inv_new, b_new, ridge_solution(A_inv_new, b_new, dtype), refreshed)


def drift_tolerance(dtype: torch.dtype) -> float:
    """Residual above which [`inverse_residual`][banditlib.linalg.inverse_residual] triggers a refresh: ``sqrt(eps)`` of
    the dtype."""
    return math.sqrt(torch.finfo(dtype).eps)


def quad_form(X: torch.Tensor, A_inv: torch.Tensor) -> torch.Tensor:
    """``x^T A^-1 x`` for every row: ``X`` ``(M, n, d)`` against ``A_inv`` ``(M, d, d)`` -> ``(M, n)``."""
    return (torch.matmul(X, A_inv) * X).sum(-1)


def pad_groups(
    U: torch.Tensor,
    c: torch.Tensor,
    order: torch.Tensor,
    inverse: torch.Tensor,
    counts: torch.Tensor,
    n_max: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Scatter rows into ``(T, n_max, d)`` by group, zero-padded (zero rows change no statistic), for a batched
    Woodbury update of ``T`` models with at most ``n_max`` rows each.

    Args:
        U: ``(N, d)`` rows.
        c: ``(N,)`` coefficients.
        order: ``(N,)`` the rows sorted by group (a stable argsort of ``inverse``).
        inverse: ``(N,)`` group of each row in ``[0, T)``.
        counts: ``(T,)`` rows per group.
        n_max: the largest count.

    Returns:
        ``(T, n_max, d)`` rows and ``(T, n_max)`` coefficients.
    """
    group = inverse[order]
    offsets = torch.cumsum(counts, 0) - counts
    pos = torch.arange(U.shape[0], device=U.device) - offsets[group]
    U3 = U.new_zeros(counts.shape[0], n_max, U.shape[1])
    c2 = c.new_zeros(counts.shape[0], n_max)
    U3[group, pos] = U[order]
    c2[group, pos] = c[order]
    return U3, c2


def grouped_gram(
    A: torch.Tensor,
    b: torch.Tensor,
    U: torch.Tensor,
    c: torch.Tensor,
    order: torch.Tensor | None,
    counts: torch.Tensor,
    scale: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``scale A_t + U_t^T U_t`` and ``scale b_t + U_t^T c_t`` per group ``t``, one GEMM per group.

    Args:
        A: ``(T, d, d)`` Gram matrices.
        b: ``(T, d)`` vectors.
        U: ``(N, d)`` rows.
        c: ``(N,)`` coefficients.
        order: ``(N,)`` the rows sorted by group (``None``: a single group holding every row).
        counts: ``(T,)`` rows per group.
        scale: the discount applied to ``A`` and ``b`` first.

    Returns:
        The new ``A`` ``(T, d, d)`` and ``b`` ``(T, d)``.
    """
    if order is None:
        return rank_update(A, U.unsqueeze(0), scale), vector_update(b, U.unsqueeze(0), c.unsqueeze(0), scale)
    U, c = U[order], c[order]
    A_new, b_new = A * scale, b * scale
    start = 0
    for t, n in enumerate(counts.tolist()):
        Ug, cg = U[start : start + n], c[start : start + n]
        A_new[t] += Ug.T @ Ug
        b_new[t] += cg @ Ug
        start += n
    return A_new, b_new
