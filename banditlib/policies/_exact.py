"""Batched operations that give, for every seed, the bits of that seed's own single operation.

`banditlib.policies._seeds` runs several seeds of a policy as one computation and must reproduce each seed's
separate run bit for bit. Elementwise operations are exact in any layout; matrix products and reductions may
not be: a batched GEMM may block a small product differently from a single one, a matrix-vector product may
take a different kernel in its batched form, and BLAS can round differently at another memory alignment.
`Exact` decides, per operation, shapes, strides and alignment, whether a batched candidate gives the single
operation's bits, by comparing them on random inputs laid out like the real ones; when it does not, the seeds
go one by one, each laid out as its own policy lays it out. The pairs of single operations and batched
candidates the neural policies need are below it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

__all__ = [
    "Exact",
    "addmm_batched",
    "addmv_batched",
    "colsum",
    "colsum_batched",
    "column_batched",
    "mv_batched",
    "pad",
    "rowsum",
    "tmm",
    "tmm_batched",
]

_ALIGN = 64  # bytes: the CPU allocator's alignment; BLAS may round differently at other alignments


def pad(t: torch.Tensor) -> torch.Tensor:
    """``t`` ``(S, ...)`` (contiguous per seed) with each seed's block starting at a 64-byte boundary, as a
    fresh tensor of one seed does: ``t`` itself when its blocks already do."""
    per = t[0].numel()
    step = _ALIGN // t.element_size()
    padded = -(-per // step) * step
    if t.is_contiguous() and padded == per:
        return t
    out = torch.empty(t.shape[0], padded, dtype=t.dtype, device=t.device)[:, :per].view(t.shape)
    return out.copy_(t)


def _replica(a: torch.Tensor, offset: int, shape: Sequence[int], stride: Sequence[int]) -> torch.Tensor:
    """A fresh tensor of ``shape`` and ``stride`` at element ``offset`` of its own (64-byte aligned) storage,
    holding ``a``'s values: the memory layout, alignment included, that ``a`` has relative to its storage."""
    extent = 1 + sum((n - 1) * st for n, st in zip(shape, stride, strict=True) if n > 0)
    out = torch.empty(offset + extent, dtype=a.dtype, device=a.device).as_strided(shape, stride, offset)
    return out.copy_(a)


class Exact:
    """Matrix products and reductions in their batched form when it gives the single-seed bits, else per seed.

    ``op(name, single, batched, *args)``: ``args`` are batched tensors with the seed first; ``single(*a)`` is the
    policy's own operation on one seed's tensors, ``batched(*args)`` the candidate. A seed's tensors are run
    with the layout a separate policy gives them: its slice's strides, at its slice's offset from that seed's
    first element, in a fresh (64-byte aligned) storage, since BLAS can round differently at another alignment.
    Per ``(name, dtype, shapes, strides, alignments)`` the candidate is compared with ``single`` on random
    inputs laid out like ``args``, twice, and the answer kept; without a match the seeds go one by one."""

    def __init__(self, seeds: int) -> None:
        self.S = seeds
        self.verdict: dict[tuple[Any, ...], bool] = {}
        self.gen = torch.Generator().manual_seed(0)

    def __call__(self, name: str, single: Callable[..., torch.Tensor], batched: Callable[..., torch.Tensor],
                 *args: torch.Tensor) -> torch.Tensor:  # fmt: skip
        return self.pick(name, single, batched, *args)(*args)

    def pick(self, name: str, single: Callable[..., torch.Tensor], batched: Callable[..., torch.Tensor],
             *args: torch.Tensor) -> Callable[..., torch.Tensor]:  # fmt: skip
        """The function `__call__` would apply to ``args``, for reuse on tensors laid out the same way."""
        key = (name, args[0].dtype, *((tuple(a.shape), a.stride(), self._align(a)) for a in args))
        ok = self.verdict.get(key)
        if ok is None:
            ok = self.verdict[key] = self._probe(single, batched, args)
        if ok:
            return batched
        return lambda *a: torch.stack([single(*(self._seed(t, s) for t in a)) for s in range(self.S)])

    @staticmethod
    def _align(a: torch.Tensor) -> int:
        return int(a.storage_offset()) % (_ALIGN // a.element_size())

    def _seed(self, a: torch.Tensor, s: int) -> torch.Tensor:
        """Seed ``s``'s slice of ``a`` laid out as that seed's own policy lays it out."""
        offset = (int(a.storage_offset()) - a.stride(0) * s) % (_ALIGN // a.element_size()) if a.stride(0) else 0
        return _replica(a[s], offset, a.shape[1:], a.stride()[1:])

    def _probe(self, single: Callable[..., torch.Tensor], batched: Callable[..., torch.Tensor],
               args: Sequence[torch.Tensor]) -> bool:  # fmt: skip
        for _ in range(2):
            fake = [
                _replica(torch.randn(a.shape, generator=self.gen, dtype=a.dtype), self._align(a), a.shape, a.stride())
                for a in args
            ]
            got = batched(*fake)
            for s in range(self.S):
                if not torch.equal(got[s], single(*(self._seed(f, s) for f in fake))):
                    return False
        return True


# The policy's single-seed operations and their batched candidates (`Exact` checks each pair). A product whose
# result has one column is a matrix-vector product, computed by gemv; its batched candidate computes the
# transposed product, a row times a matrix, which gives gemv's bits where the plain batched product does not.


def addmm_batched(c: torch.Tensor, h: torch.Tensor, WT: torch.Tensor) -> torch.Tensor:
    return torch.baddbmm(c.unsqueeze(1), h, WT)


def addmv_batched(c: torch.Tensor, h: torch.Tensor, WT: torch.Tensor) -> torch.Tensor:
    return torch.baddbmm(c.unsqueeze(2), WT.transpose(1, 2), h.transpose(1, 2)).transpose(1, 2)


def mv_batched(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``(S, N, k) @ (S, k) -> (S, N)``."""
    return torch.bmm(b.unsqueeze(1), a.transpose(1, 2)).squeeze(1)


def column_batched(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``(S, N, k) @ (S, k, 1) -> (S, N, 1)``."""
    return torch.bmm(b.transpose(1, 2), a.transpose(1, 2)).transpose(1, 2)


def rowsum(a: torch.Tensor) -> torch.Tensor:
    return a.sum(-1)


def colsum(a: torch.Tensor) -> torch.Tensor:
    return torch.sum(a, 0)  # a bias gradient, a bias part of the diagonal Z's update


def colsum_batched(a: torch.Tensor) -> torch.Tensor:
    return a.sum(1)


def tmm(d: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    return d.t().mm(h)  # a weight gradient, a weight part of the diagonal Z's update


def tmm_batched(d: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    return torch.bmm(d.transpose(1, 2), h)
