"""Triton kernel for masked top-k; imports triton (see [`banditlib.kernels.topk`][banditlib.kernels.topk])."""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from banditlib.kernels._triton_common import launch

__all__ = ["masked_topk_launch"]

_MAX_BLOCK = 4096


@triton.jit
def _masked_topk_kernel(
    scores, mask, values_out, index_out, K, chunks,
    KSEL: tl.constexpr, BLOCK_K: tl.constexpr, HAS_MASK: tl.constexpr,
):  # fmt: skip
    """One program: one row's chunk of ``BLOCK_K`` arms; ``KSEL`` rounds of max, then lowest index at the max."""
    row = tl.program_id(0)
    chunk = tl.program_id(1)
    cols = chunk * BLOCK_K + tl.arange(0, BLOCK_K)
    valid = cols < K
    s = tl.load(scores + row * K + cols, mask=valid, other=float("-inf")).to(tl.float32)
    if HAS_MASK:
        m = tl.load(mask + row * K + cols, mask=valid, other=0)
        s = tl.where(m != 0, s, float("-inf"))
    taken = cols >= K
    out = (row * chunks + chunk) * KSEL
    for j in tl.static_range(KSEL):
        cand = tl.where(taken, float("-inf"), s)
        v = tl.max(cand, axis=0)
        pick = tl.min(tl.where((cand == v) & (~taken), cols, 2147483647), axis=0)
        pick = tl.minimum(pick, K - 1)
        tl.store(values_out + out + j, v)
        tl.store(index_out + out + j, pick.to(tl.int64))
        taken = taken | (cols == pick)


def _select(scores: torch.Tensor, k: int, mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """One pass: per row and chunk, the chunk's top ``k``: ``(B, chunks * k)`` values and global indices."""
    B, K = scores.shape
    block = min(max(16, int(triton.next_power_of_2(K))), _MAX_BLOCK)
    chunks = triton.cdiv(K, block)
    values = torch.empty(B, chunks * k, device=scores.device, dtype=torch.float32)
    index = torch.empty(B, chunks * k, device=scores.device, dtype=torch.int64)
    mask_arg = mask.contiguous().view(torch.uint8) if mask is not None else scores
    launch(
        _masked_topk_kernel,
        lambda meta: (B, chunks),
        scores, mask_arg, values, index, K, chunks,
        KSEL=k, BLOCK_K=block, HAS_MASK=mask is not None,
        fixed={},
    )  # fmt: skip
    return values, index


def masked_topk_launch(scores: torch.Tensor, k: int, mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """``scores (B, K)``, optional bool ``mask (B, K)`` -> float32 ``values (B, k)``, int64 ``indices (B, k)``.

    Rows longer than one chunk take a second pass over the chunks' ``k`` candidates each; candidates are
    ordered by chunk, so ties still resolve to the lowest index.
    """
    scores = scores.contiguous()
    values, index = _select(scores, k, mask)
    while values.shape[1] > k:
        values, pos = _select(values, k, None)
        index = index.gather(1, pos)
    return values, index
