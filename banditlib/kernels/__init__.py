"""Scoring hot paths: per op a torch reference (also the CPU path), a Triton kernel, and a dispatcher.

Kernels hold no state and never validate user input: the policies do that at their boundary. Every
dispatcher takes ``backend="auto" | "torch" | "triton"`` (see `banditlib.kernels.dispatch`). Triton is
imported lazily, on the first Triton call.
"""

from __future__ import annotations

from banditlib.kernels.dispatch import interpreting, resolve_backend, triton_available
from banditlib.kernels.linear_score import (
    disjoint_score,
    disjoint_score_torch,
    disjoint_score_triton,
    shared_score,
    shared_score_torch,
    shared_score_triton,
)
from banditlib.kernels.neural_bonus import neural_bonus, neural_bonus_torch, neural_bonus_triton
from banditlib.kernels.topk import masked_topk, masked_topk_torch, masked_topk_triton

__all__ = [
    "disjoint_score",
    "disjoint_score_torch",
    "disjoint_score_triton",
    "interpreting",
    "masked_topk",
    "masked_topk_torch",
    "masked_topk_triton",
    "neural_bonus",
    "neural_bonus_torch",
    "neural_bonus_triton",
    "resolve_backend",
    "shared_score",
    "shared_score_torch",
    "shared_score_triton",
    "triton_available",
]
