"""Intervals over seeds for the scheduler comparison: Student-t means, paired differences, smoothed curves.

A comparison runs every scheduler on the same seeds (same seed, same world, initial policy and first batch), so
two schedulers are compared by the differences ``a_i - b_i`` seed by seed; their mean and Student-t interval
(``scipy.stats.t``) is the paired difference. Over ``n`` seeds with mean ``m`` and sample standard deviation
``s``, the interval at level ``1 - a`` is ``m +- t_{1 - a/2, n - 1} s / sqrt(n)``; one seed gives ``(m, -inf, inf)``:
no interval can be estimated from one value, so nothing measured on one seed is marked significant.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray
from scipy import stats as sps

from banditlib.errors import InvalidInputError

__all__ = ["SMOOTH", "band", "first_at", "mean_ci", "paired_difference", "smooth"]

SMOOTH = 5
"""Steps to target are read off a ``SMOOTH``-step trailing average: one step's accuracy is noisy."""


def _level(level: float, where: str) -> float:
    if not (isinstance(level, float) and 0.0 < level < 1.0):
        raise InvalidInputError(f"{where}: `level` must be a float in (0, 1); got {level!r}.")
    return level


def mean_ci(values: Sequence[float], level: float = 0.95) -> tuple[float, float, float]:
    """Mean and Student-t interval over seeds: ``(m, m - h, m + h)``, ``h = t_{(1 + level)/2, n-1} s / sqrt(n)``.

    Args:
        values: ``(n,)`` one number per seed, ``n >= 1``.
        level: coverage of the interval, in ``(0, 1)``.

    Returns:
        ``(mean, low, high)`` floats; ``(mean, -inf, inf)`` for one seed (no spread to estimate an interval from).

    Raises:
        InvalidInputError: ``values`` is empty or not one-dimensional, or ``level`` is outside ``(0, 1)``.

    Examples:
        >>> m, lo, hi = mean_ci([0.1, 0.2, 0.3])
        >>> round(m, 6), round(hi - m, 4)  # t_{0.975, 2} = 4.3027, s / sqrt(3) = 0.0577
        (0.2, 0.2484)
        >>> mean_ci([0.5])
        (0.5, -inf, inf)
    """
    level = _level(level, "mean_ci()")
    x = np.asarray(values, dtype=float)
    if x.ndim != 1 or x.size == 0:
        raise InvalidInputError(f"mean_ci(): `values` must be a non-empty sequence of numbers; got shape {x.shape}.")
    m = float(x.mean())
    if x.size < 2:
        return m, -math.inf, math.inf
    h = float(sps.t.ppf(0.5 + level / 2, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size))
    return m, m - h, m + h


def paired_difference(a: Sequence[float], b: Sequence[float], level: float = 0.95) -> tuple[float, float, float]:
    """Mean and Student-t interval (`mean_ci`) of the seed-by-seed differences ``a_i - b_i``.

    Args:
        a: ``(n,)`` one number per seed, seeds in the same order as ``b``.
        b: ``(n,)`` the reference, same seeds.
        level: coverage of the interval, in ``(0, 1)``.

    Returns:
        ``(mean, low, high)`` of the difference; the interval excludes 0 when the difference is significant at
        level ``level``.

    Raises:
        InvalidInputError: ``a`` and ``b`` differ in length or are empty, or ``level`` is outside ``(0, 1)``.

    Examples:
        >>> d = paired_difference([0.4, 0.5, 0.7], [0.3, 0.45, 0.5])
        >>> [round(x, 4) for x in d]  # differences 0.1, 0.05, 0.2
        [0.1167, -0.0731, 0.3064]
    """
    if len(a) != len(b):
        raise InvalidInputError(f"paired_difference(): `a` and `b` must hold one value per seed each; got "
                                f"{len(a)} and {len(b)} values.")  # fmt: skip
    if len(a) == 0:
        raise InvalidInputError("paired_difference(): `a` and `b` are empty; want one value per seed.")
    return mean_ci([x - y for x, y in zip(a, b, strict=True)], _level(level, "paired_difference()"))


def smooth(curve: Sequence[float], width: int = SMOOTH) -> NDArray[np.float64]:
    """Trailing moving average of ``curve`` over ``width`` steps (over fewer at the start).

    Args:
        curve: ``(T,)`` one value per step.
        width: the window, in steps.

    Returns:
        ``(T,)`` float64, entry ``t`` the mean of ``curve[max(0, t - width + 1) : t + 1]``.

    Examples:
        >>> smooth([1.0, 2.0, 3.0, 4.0], width=2).tolist()
        [1.0, 1.5, 2.5, 3.5]
    """
    c = np.cumsum(np.asarray(curve, dtype=float))
    out = c.copy()
    out[width:] = c[width:] - c[:-width]
    return np.asarray(out / np.minimum(np.arange(1, len(curve) + 1), width), dtype=np.float64)


def first_at(curve: Sequence[float], target: float, width: int = SMOOTH) -> int | None:
    """First step whose smoothed value (`smooth`) is at least ``target``; ``None`` when none is.

    Args:
        curve: ``(T,)`` one value per step.
        target: the level to reach.
        width: the smoothing window, in steps.

    Returns:
        The step index, or ``None``.

    Examples:
        >>> first_at([0.1, 0.2, 0.6, 0.8], 0.4, width=2), first_at([0.1, 0.2], 0.4)
        (2, None)
    """
    return next((t for t, a in enumerate(smooth(curve, width)) if a >= target), None)


def band(x: NDArray[np.float64], level: float = 0.95) -> tuple[NDArray[np.float64], ...]:
    """Mean and Student-t band over the rows of ``x`` (seeds), per column (step).

    Args:
        x: ``(seeds, T)`` curves.
        level: coverage of the band, in ``(0, 1)``.

    Returns:
        ``(mean, low, high)``, each ``(T,)``; ``low`` and ``high`` equal the mean for one seed.

    Examples:
        >>> m, lo, hi = band(np.array([[0.0, 1.0], [0.2, 1.0]]))
        >>> m.tolist(), (hi - m).round(4).tolist()  # t_{0.975, 1} = 12.706, s / sqrt(2) = 0.1
        ([0.1, 1.0], [1.2706, 0.0])
    """
    m = x.mean(0)
    if x.shape[0] < 2:
        return m, m, m
    h = sps.t.ppf(0.5 + _level(level, "band()") / 2, x.shape[0] - 1) * x.std(0, ddof=1) / math.sqrt(x.shape[0])
    return m, m - h, m + h
