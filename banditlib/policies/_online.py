"""The single-round fast path: one ``select`` or ``update`` of one row on the CPU, in numpy.

This module is the path's one seam: `select`, `update` and `update_features` are what the public methods of
`banditlib.policies.base.Policy` call first; each policy family supplies only its numpy arithmetic
(``_score_row``, ``_learn_row``).

A torch operator costs several microseconds of dispatch before it does any work; the classic online loop
(select one, update one, with ``K = 10`` and ``d = 20``) needs dozens of them per round and would spend
nearly all its time in overhead. For a single row on the CPU the policies therefore compute on numpy views
that share memory with their torch buffers, with the same formulas as the batched path (tested to agree
with it and with the float64 references). Only inputs of the right shapes and dtypes take this path, and
finiteness is not checked up front: a NaN or infinite input makes the results non-finite, which the fast
path detects at its end, before committing anything, and then hands the call to the batched path. So every
error message comes from the batched path, and the happy path pays for no separate check.

Per call the path costs a few microseconds beyond its arithmetic, so the overhead is kept out of it: one
``np.errstate`` per public call (`ignoring_fp`, the decorator form, which is cheaper than a ``with`` block),
no dtype objects or dicts built per call, a single action and reward read as Python scalars, and the top arm
of ``k = 1`` found on a Python list.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
import torch

from banditlib import _random

__all__ = [
    "MAX_ROW_WORK",
    "as_actions",
    "as_rewards",
    "as_row",
    "ignoring_fp",
    "select",
    "single_action",
    "single_reward",
    "top_1",
    "top_k",
    "update",
    "update_features",
]

# Rows whose scoring costs more than this many multiply-adds (K d^2) go to the batched torch path, which is
# multithreaded: beyond it the numpy path's saving on dispatch no longer matters.
MAX_ROW_WORK = 1 << 18


_NUMPY_DTYPES = (torch.float64, torch.float32, torch.float16, torch.int64, torch.int32, torch.int16, torch.int8)
_INT_DTYPES = frozenset({torch.int64, torch.int32, torch.int16, torch.int8})
_FLOAT_KINDS = frozenset({np.dtype(np.float64), np.dtype(np.float32), np.dtype(np.float16)})

F = TypeVar("F", bound=Callable[..., Any])


def ignoring_fp(fn: F) -> F:
    """``fn`` run with numpy's overflow and invalid-value warnings off (non-finite results are handed to the
    batched path, which raises the right error). numpy 2's ``errstate`` decorator keeps its token per call, so
    it is thread-safe; older numpy enters a fresh ``errstate`` per call."""
    if int(np.__version__.split(".", 1)[0]) >= 2:
        return np.errstate(over="ignore", invalid="ignore")(fn)

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with np.errstate(over="ignore", invalid="ignore"):
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def _plain_array(value: Any) -> np.ndarray | None:
    """A numpy view of ``value`` when it is cheap and unambiguous to get one, else ``None``."""
    if type(value) is np.ndarray:
        return value
    if isinstance(value, np.ndarray):
        return np.asarray(value)  # a subclass (np.matrix) indexes differently: use the plain array
    if isinstance(value, torch.Tensor):
        ok = (
            value.is_cpu and value.layout == torch.strided and not value.requires_grad
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
    ``(1, d)``), or ``None`` if ineligible. Call under `ignoring_fp`: a value beyond float32 becomes inf,
    which the batched path then rejects."""
    arr = _plain_array(value)
    if arr is None or arr.dtype.kind != "f":
        return None
    if shared:
        shape = arr.shape
        if len(shape) != 3 or shape[0] != 1 or shape[2] != dim or shape[1] == 0:
            return None
    elif arr.shape != (1, dim):
        return None
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


def single_action(value: Any, num_arms: int) -> int | None:
    """The action of a ``(1, 1)`` integer input in ``[0, num_arms)`` as an int, else ``None`` (then
    `as_actions` decides): what `as_actions` returns for it, without building arrays."""
    if isinstance(value, torch.Tensor):
        if not (value.dtype in _INT_DTYPES and value.is_cpu and value.layout == torch.strided):
            return None
        if value.shape != (1, 1):
            return None
        a = int(value.item())
    else:
        arr = _plain_array(value)
        if arr is None or arr.shape != (1, 1) or arr.dtype.kind not in "iu":
            return None
        # what as_actions reads (a uint64 beyond int64 wraps negative there)
        a = arr.item() if arr.dtype.kind == "i" else int(arr[0, 0].astype(np.int64))
    return a if 0 <= a < num_arms else None


def single_reward(value: Any, shape: tuple[int, ...], dtype: np.dtype[Any]) -> float | None:
    """The one reward of a floating input of exactly ``shape`` (``(1, 1)`` or ``(1,)``), rounded to ``dtype``
    as `as_rewards` rounds it, as a float; ``None`` otherwise (integer rewards go through `as_rewards`). Call
    under `ignoring_fp`."""
    arr = _plain_array(value)
    if arr is None or arr.shape != shape or arr.dtype not in _FLOAT_KINDS:
        return None
    return float(dtype.type(arr.item()))  # a float64 rounds to float32 exactly as astype does


def as_rewards(value: Any, shape: tuple[int, ...], dtype: np.dtype[Any]) -> np.ndarray | None:
    """Rewards of exactly ``shape`` (``(1, k)`` or ``(1,)``) as a flat ``(k,)`` array, or ``None``. Call under
    `ignoring_fp`."""
    arr = _plain_array(value)
    if arr is None or arr.dtype.kind not in "fiu" or arr.shape != shape:
        return None
    return arr.reshape(-1).astype(dtype, copy=False)


def top_1(scores: np.ndarray, seed: int, row: int) -> int | None:
    """`top_k` for ``k = 1`` as an int (``None`` when a score is not finite), the same arm.

    A NaN or infinity makes the (float64) sum of the scores non-finite; so does an overflow of finite float64
    scores beyond about 1e307, which then only costs a detour through the batched path (same decision)."""
    if scores.shape[0] <= 64:  # Python lists beat numpy's per-call cost on a few arms
        values = scores.tolist()
        if not math.isfinite(sum(values)):
            return None
        best = int(scores.argmax())
        if values.count(values[best]) == 1:
            return best
    best_k = top_k(scores, 1, seed, row)
    return None if best_k is None else int(best_k[0])


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


# ------------------------------------------------------------------------------------------ the three verbs
# Policy.select, Policy.update and Policy.update_features call these first (under the policy's lock); each
# returns None / False, having changed nothing, when the batched path must do the call. What they need from a
# policy: dim, arms, seed, _np_dtype, _views / _state_views(), _scores_use_contexts, _noisy, _score_row (or
# _score_row_noise), _learn_row and _how.


@ignoring_fp
def select(policy: Any, contexts: Any, k: int) -> tuple[Any, ...] | None:
    """`Policy.select` of one row on the CPU: the fields of its ``Selection`` (``actions``, ``scores``,
    ``mean``, ``bonus`` as ``(1, .)`` tensors sharing memory with fresh arrays, and the propensity
    bookkeeping), or ``None`` to hand the call to the batched path (an ineligible input, a row too large,
    non-finite scores from a non-finite context or a degenerate state)."""
    x = as_row(contexts, policy.dim, policy.arms is None, policy._np_dtype)
    if x is None:
        return None
    K = policy.arms or x.shape[0]
    if not (1 <= k <= K and K * policy.dim * policy.dim <= MAX_ROW_WORK):
        return None
    if not policy._scores_use_contexts and not np.isfinite(x).all():
        return None
    counter = (policy._views or policy._state_views())["rng_counter"]
    row = counter.item()
    if policy._noisy:  # non-finite scores are handed over below (hence ignoring_fp)
        mean, bonus, noise = policy._score_row_noise(x, row)
    else:
        (mean, bonus), noise = policy._score_row(x, row), None
    scores = mean + bonus
    if k == 1:
        best = top_1(scores, policy.seed, row)
        if best is None:
            return None
        actions = np.array([[best]], dtype=np.int64)
    else:
        top = top_k(scores, k, policy.seed, row)
        if top is None:
            return None
        actions = top[None]
    counter[...] = row + 1
    return (
        torch.from_numpy(actions),
        torch.from_numpy(scores[None]),
        torch.from_numpy(mean[None]),
        torch.from_numpy(bonus[None]),
        policy._how(k, row, noise),
    )


@ignoring_fp
def update(policy: Any, contexts: Any, actions: Any, rewards: Any) -> bool:
    """`Policy.update` of one valid row on the CPU; ``False`` when the batched path must do it."""
    dtype = policy._np_dtype
    x = as_row(contexts, policy.dim, policy.arms is None, dtype)
    if x is None:
        return False
    num_arms = policy.arms or x.shape[0]
    m = single_action(actions, num_arms)
    if m is not None:  # one action, read as an int (the common case)
        r1 = single_reward(rewards, (1, 1), dtype)
        if r1 is None:
            r_arr = as_rewards(rewards, (1, 1), dtype)
            if r_arr is None:
                return False
            r1 = float(r_arr[0])
        if policy.arms is not None:
            return policy._learn_row(x[None], (m,), (r1,))
        return policy._learn_row(x[m : m + 1], (0,), (r1,))
    a = as_actions(actions, num_arms)
    if a is None:
        return False
    r = as_rewards(rewards, (1, a.shape[0]), dtype)
    if r is None:
        return False
    if policy.arms is not None:
        rows = x[None] if a.shape[0] == 1 else np.broadcast_to(x, (a.shape[0], policy.dim))
        return policy._learn_row(rows, a, r)
    return a.shape[0] == 1 and policy._learn_row(x[a], np.zeros(1, dtype=np.int64), r)


@ignoring_fp
def update_features(policy: Any, x: Any, rewards: Any) -> bool:
    """`Policy.update_features` of one row on the CPU (shared-parameter model); ``False`` when the batched path
    must do it."""
    row = as_row(x, policy.dim, False, policy._np_dtype)
    if row is None:
        return False
    r = single_reward(rewards, (1,), policy._np_dtype)
    if r is None:
        r_row = as_rewards(rewards, (1,), policy._np_dtype)
        if r_row is None:
            return False
        r = float(r_row[0])
    return policy._learn_row(row[None], (0,), (r,))
