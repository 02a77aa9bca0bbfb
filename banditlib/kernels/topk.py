"""Masked top-k over scores: the ``k`` best available arms of every row, best first.

``values, indices = topk(where(mask, scores, -inf), k)`` per row. Positions whose value is ``-inf`` (rows
with fewer than ``k`` available arms) carry unspecified, in-range indices. Among equal values the Triton
kernel returns the lowest index first; ``torch.topk`` does not specify an order (callers that care about
ties, like [`banditlib.Policy.select`][banditlib.Policy.select], resolve them themselves).

The Triton kernel reads each row once, applies the mask in registers and selects by ``k`` rounds of
max/argmin-index, one program per row and chunk of up to 4,096 arms; longer rows take a second pass over
the chunks' candidates. It handles ``k <= 64``; larger ``k`` goes to ``torch.topk``.
"""

from __future__ import annotations

import torch

from banditlib.kernels.dispatch import resolve_backend

__all__ = ["MAX_TRITON_K", "masked_topk", "masked_topk_torch", "masked_topk_triton"]

MAX_TRITON_K = 64


def masked_topk_torch(
    scores: torch.Tensor, k: int, mask: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Masked top-k, torch path: ``masked_fill`` then ``torch.topk``.

    Args:
        scores: ``(B, K)`` finite scores.
        k: how many per row, ``1 <= k <= K``.
        mask: optional ``(B, K)`` bool, ``True`` where an arm is available.

    Returns:
        ``values`` ``(B, k)`` (``-inf`` where fewer than ``k`` arms are available) and ``indices`` ``(B, k)``
        int64, best first.
    """
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    values, indices = scores.topk(k, dim=1)
    return values, indices


def masked_topk_triton(
    scores: torch.Tensor, k: int, mask: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Masked top-k, fused Triton kernel (same contract as [`masked_topk_torch`][banditlib.kernels.masked_topk_torch];
    float32 values)."""
    if k > MAX_TRITON_K:
        values, indices = masked_topk_torch(scores.float(), k, mask)
        return values, indices
    from banditlib.kernels._triton_topk import masked_topk_launch

    return masked_topk_launch(scores, k, mask)


def masked_topk(
    scores: torch.Tensor, k: int, mask: torch.Tensor | None = None, *, backend: str = "auto"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Masked top-k on the backend [`resolve_backend`][banditlib.kernels.resolve_backend] picks.

    Examples:
        >>> import torch
        >>> s = torch.tensor([[0.1, 0.9, 0.5, 0.7]])
        >>> m = torch.tensor([[True, False, True, True]])
        >>> masked_topk(s, 2, m, backend="torch")[1].tolist()
        [[3, 2]]
    """
    if resolve_backend(backend, scores, what="masked_topk") == "triton":
        return masked_topk_triton(scores, k, mask)
    return masked_topk_torch(scores, k, mask)
