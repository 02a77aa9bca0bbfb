"""Scoring hot paths: per op a torch reference (also the CPU path) and a dispatcher.

Kernels hold no state and never validate user input: the policies do that at their boundary. The
dispatchers take ``backend="auto" | "torch" | "triton"``; this release ships the torch path only, so
``"triton"`` raises :class:`~banditlib.errors.BackendUnavailableError` instead of falling back silently.
"""

from __future__ import annotations

from banditlib.kernels.dispatch import resolve_backend
from banditlib.kernels.linear_score import (
    disjoint_score,
    disjoint_score_torch,
    shared_score,
    shared_score_torch,
)

__all__ = [
    "disjoint_score",
    "disjoint_score_torch",
    "resolve_backend",
    "shared_score",
    "shared_score_torch",
]
