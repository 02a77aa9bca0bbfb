"""Hypothesis strategies for policies and their inputs (needs the ``dev`` extra)."""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import strategies as st

__all__ = ["arm_models", "batches", "contexts", "problems"]


def arm_models(max_arms: int = 6) -> st.SearchStrategy[int | None]:
    """``None`` (shared-parameter model) or a number of disjoint arms."""
    return st.one_of(st.none(), st.integers(1, max_arms))


def batches(max_batch: int = 5) -> st.SearchStrategy[int]:
    """Rows per call, 1 included (the single-row fast path)."""
    return st.integers(1, max_batch)


@st.composite
def contexts(draw: Any, batch: int, dim: int, arms: int | None, num_arms: int) -> np.ndarray:
    """Finite float64 contexts of the right shape: ``(B, d)`` disjoint, ``(B, K, d)`` shared."""
    shape = (batch, dim) if arms is not None else (batch, num_arms, dim)
    seed = draw(st.integers(0, 2**32 - 1))
    scale = draw(st.sampled_from([1e-3, 1.0, 30.0]))
    return np.random.default_rng(seed).normal(scale=scale, size=shape)


@st.composite
def problems(draw: Any, max_dim: int = 6, max_arms: int = 6) -> dict[str, Any]:
    """A policy configuration: dim, arm model, number of arms per row, reg, forget."""
    arms = draw(arm_models(max_arms))
    return {
        "dim": draw(st.integers(1, max_dim)),
        "arms": arms,
        "num_arms": arms if arms is not None else draw(st.integers(1, max_arms)),
        "reg": draw(st.sampled_from([0.1, 1.0, 5.0])),
        "forget": draw(st.sampled_from([1.0, 0.97, 0.6])),
    }
