"""Linear scoring: predicted reward and posterior variance of every (row, arm) pair.

``mean = x^T theta`` and ``var = x^T A^-1 x``, for the shared-parameter model (one ``theta`` and ``A^-1``
for all rows) and for disjoint arms (one per arm, every row against every arm). The torch path works in
row chunks so that the ``X A^-1`` intermediate stays in cache.
"""

from __future__ import annotations

import torch

from banditlib.kernels.dispatch import resolve_backend

__all__ = ["disjoint_score", "disjoint_score_torch", "shared_score", "shared_score_torch"]

# Elements of the X A^-1 intermediate processed at once (1 MB in float32). Chunks that stay in cache matter:
# on the 2-core CI machine, 2^18 scored N=100,000 x K=10 x d=20 in 29 ms where 2^22 took 67 ms.
_CHUNK_ELEMENTS = 1 << 18


def shared_score_torch(X: torch.Tensor, A_inv: torch.Tensor, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Shared-parameter score, torch path.

    Args:
        X: ``(N, d)`` arm feature vectors.
        A_inv: ``(d, d)`` symmetric inverse Gram matrix.
        theta: ``(d,)`` ridge estimate.

    Returns:
        ``mean`` ``(N,)`` and ``var`` ``(N,)``, in ``X``'s dtype.
    """
    mean = X @ theta
    n, d = X.shape
    rows = max(1, _CHUNK_ELEMENTS // max(d, 1))
    if n <= rows:
        return mean, ((X @ A_inv) * X).sum(-1)
    var = torch.empty_like(mean)
    for start in range(0, n, rows):
        chunk = X[start : start + rows]
        torch.sum((chunk @ A_inv) * chunk, dim=-1, out=var[start : start + rows])
    return mean, var


def disjoint_score_torch(
    X: torch.Tensor, A_inv: torch.Tensor, theta: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Disjoint-arm score, torch path: every row against every arm.

    Args:
        X: ``(N, d)`` contexts.
        A_inv: ``(K, d, d)`` per-arm inverse Gram matrices.
        theta: ``(K, d)`` per-arm ridge estimates.

    Returns:
        ``mean`` ``(N, K)`` and ``var`` ``(N, K)``.
    """
    mean = X @ theta.T
    n, d = X.shape
    K = A_inv.shape[0]
    # (d, K*d): one GEMM gives X A_k^-1 for every arm at once.
    stacked = A_inv.permute(1, 0, 2).reshape(d, K * d)
    rows = max(1, _CHUNK_ELEMENTS // max(K * d, 1))
    if n <= rows:
        return mean, ((X @ stacked).view(n, K, d) * X.unsqueeze(1)).sum(-1)
    var = torch.empty_like(mean)
    for start in range(0, n, rows):
        chunk = X[start : start + rows]
        m = chunk.shape[0]
        torch.sum((chunk @ stacked).view(m, K, d) * chunk.unsqueeze(1), dim=-1, out=var[start : start + rows])
    return mean, var


def shared_score(
    X: torch.Tensor,
    A_inv: torch.Tensor,
    theta: torch.Tensor,
    *,
    backend: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Dispatcher for the shared-parameter score; see :func:`shared_score_torch` for shapes."""
    resolve_backend(backend, X.device)
    return shared_score_torch(X, A_inv, theta)


def disjoint_score(
    X: torch.Tensor,
    A_inv: torch.Tensor,
    theta: torch.Tensor,
    *,
    backend: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Dispatcher for the disjoint-arm score; see :func:`disjoint_score_torch` for shapes."""
    resolve_backend(backend, X.device)
    return disjoint_score_torch(X, A_inv, theta)
