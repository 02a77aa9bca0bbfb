"""The single-round fast path: one ``select`` or ``update`` of one row on the CPU, in numpy.

A torch operator costs several microseconds of dispatch before it does any work; the classic online loop
(select one, update one, with ``K = 10`` and ``d = 20``) needs dozens of them per round and would spend
nearly all its time in overhead. For a single row on the CPU the policies therefore compute on numpy views
that share memory with their torch buffers, with the same formulas as the batched path (tested to agree
with it and with the float64 references). Only inputs of the right shapes and dtypes take this path, and
finiteness is not checked up front: a NaN or infinite input makes the results non-finite, which the fast
path detects at its end, before committing anything, and then hands the call to the batched path. So every
error message comes from the batched path, and the happy path pays for no separate check.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from banditlib import _random

__all__ = ["MAX_ROW_WORK", "as_actions", "as_rewards", "as_row", "top_k"]

# Rows whose scoring costs more than this many multiply-adds (K d^2) go to the batched torch path, which is
# multithreaded: beyond it the numpy path's saving on dispatch no longer matters.
MAX_ROW_WORK = 1 << 18


_NUMPY_DTYPES = (torch.float64, torch.float32, torch.float16, torch.int64, torch.int32, torch.int16, torch.int8)


def _plain_array(value: Any) -> np.ndarray | None:
    """A numpy view of ``value`` when it is cheap and unambiguous to get one, else ``None``."""
    if isinstance(value, np.ndarray):
        return np.asarray(value)  # a subclass (np.matrix) indexes differently: use the plain array
    if isinstance(value, torch.Tensor):
        ok = (
            value.device.type == "cpu" and value.layout == torch.strided and not value.requires_grad
            and value.dtype in _NUMPY_DTYPES
        )  # fmt: skip
        return value.numpy() if ok else None
    if isinstance(value, (list, tuple)):
        try:
            return np.asarray(value)
        except (ValueError, TypeError):  # ragged: the batched path explains the problem
            return None
    return None


def as_row(value: Any, dim: int, shared: bool, dtype: np.dtype[Any]) -> np.ndarray | None:
    """The single row of ``value`` as ``(K, d)`` (``shared``: input ``(1, K, d)``) or ``(d,)`` (input
    ``(1, d)``), or ``None`` if ineligible."""
    arr = _plain_array(value)
    if arr is None or arr.dtype.kind != "f" or arr.shape[0:1] != (1,):
        return None
    if (shared and (arr.ndim != 3 or arr.shape[2] != dim or arr.shape[1] == 0)) or (
        not shared and arr.shape != (1, dim)
    ):
        return None
    with np.errstate(over="ignore"):  # a value beyond float32 becomes inf, which the batched path then rejects
        return arr[0].astype(dtype, copy=False)


def as_actions(value: Any, num_arms: int) -> np.ndarray | None:
    """``(1, k)`` distinct in-range integer actions as ``(k,)`` int64, or ``None``."""
    arr = _plain_array(value)
    if arr is None or arr.dtype.kind not in "iu" or arr.ndim != 2 or arr.shape[0] != 1 or arr.shape[1] == 0:
        return None
    a = arr[0].astype(np.int64, copy=False)
    if a.shape[0] == 1:
        return a if 0 <= int(a[0]) < num_arms else None
    if a.min() < 0 or a.max() >= num_arms or (a.shape[0] > 1 and np.unique(a).shape[0] != a.shape[0]):
        return None
    return a


def as_rewards(value: Any, shape: tuple[int, ...], dtype: np.dtype[Any]) -> np.ndarray | None:
    """Rewards of exactly ``shape`` (``(1, k)`` or ``(1,)``) as a flat ``(k,)`` array, or ``None``."""
    arr = _plain_array(value)
    if arr is None or arr.dtype.kind not in "fiu" or arr.shape != shape:
        return None
    with np.errstate(over="ignore"):
        return arr.reshape(-1).astype(dtype, copy=False)


def top_k(scores: np.ndarray, k: int, seed: int, row: int) -> np.ndarray | None:
    """Top-``k`` of one row, best first, exact ties ordered by the generator exactly as the batched path.

    Args:
        scores: ``(K,)`` scores.
        k: arms to return.
        seed, row: the generator's seed and this row's decision index.

    Returns:
        ``(k,)`` int64 arm indices, or ``None`` when a score is not finite.
    """
    if k == 1 and scores.shape[0] <= 64:  # Python lists beat numpy's per-call cost on a few arms
        values = scores.tolist()
        if not all(map(math.isfinite, values)):
            return None
        top = max(values)
        if values.count(top) == 1:
            return np.array([values.index(top)], dtype=np.int64)
    elif not np.isfinite(scores).all():
        return None
    elif k == 1:
        best = int(np.argmax(scores))
        if np.count_nonzero(scores == scores[best]) == 1:
            return np.array([best], dtype=np.int64)
    else:
        order = np.argsort(-scores, kind="stable")
        top_values = scores[order[: k + 1]]
        if not (top_values[1:] == top_values[:-1]).any():
            return order[:k].astype(np.int64, copy=False)
    keys = _random.uniform_np(seed, _random.STREAM_TIES, row, scores.shape[0])
    perm = np.argsort(keys)
    return perm[np.argsort(-scores[perm], kind="stable")[:k]].astype(np.int64, copy=False)
