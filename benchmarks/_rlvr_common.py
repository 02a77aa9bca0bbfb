"""Helpers shared by the RLVR benchmarks: intervals over seeds, smoothed curves, worker pools, compact JSON.

Intervals are Student-t 95% intervals over seeds (scipy.stats); a paired difference is taken seed by seed
(same seed, same world, initial policy and first batch for every scheduler).
"""

from __future__ import annotations

import json
import math
import multiprocessing as mp
import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from scipy import stats as sps

__all__ = ["SMOOTH", "band", "ci", "compact_json", "first_at", "fmt_ci", "paired", "run_pool", "smooth"]

SMOOTH = 5  # steps to target are read off a 5-step trailing average: one step's accuracy is noisy


def ci(values: Sequence[float]) -> tuple[float, float, float]:
    """Mean and 95% Student-t interval over seeds."""
    x = np.asarray(values, dtype=float)
    m = float(x.mean())
    if x.size < 2:
        return m, m, m
    h = float(sps.t.ppf(0.975, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size))
    return m, m - h, m + h


def paired(a: Sequence[float], b: Sequence[float]) -> tuple[float, float, float]:
    """Mean and 95% interval of the seed-by-seed differences ``a - b``."""
    return ci([x - y for x, y in zip(a, b, strict=True)])


def fmt_ci(c: Sequence[float], digits: int = 3, signed: bool = False) -> str:
    """``m [lo, hi]``."""
    f = f"{{:+.{digits}f}}" if signed else f"{{:.{digits}f}}"
    return f"{f.format(c[0])} [{f.format(c[1])}, {f.format(c[2])}]"


def smooth(curve: Sequence[float], width: int = SMOOTH) -> np.ndarray:
    """Trailing moving average over ``width`` steps (shorter at the start)."""
    c = np.cumsum(np.asarray(curve, dtype=float))
    out = c.copy()
    out[width:] = c[width:] - c[:-width]
    return out / np.minimum(np.arange(1, len(curve) + 1), width)


def first_at(curve: Sequence[float], target: float) -> int | None:
    """First step whose smoothed accuracy (:func:`smooth`) is at least ``target``."""
    return next((t for t, a in enumerate(smooth(curve)) if a >= target), None)


def band(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and 95% band over the rows of ``x`` (seeds)."""
    m = x.mean(0)
    if x.shape[0] < 2:
        return m, m, m
    h = sps.t.ppf(0.975, x.shape[0] - 1) * x.std(0, ddof=1) / math.sqrt(x.shape[0])
    return m, m - h, m + h


def run_pool(fn: Callable[[Any], Any], jobs: list[Any], workers: int, progress: str | None = None) -> list[Any]:
    """``[fn(j) for j in jobs]`` on ``workers`` processes (fork; each worker pins one torch thread itself),
    with a tqdm progress bar on stderr when ``progress`` names it and tqdm is installed."""
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm ships with the dev extra
        tqdm = None
    bar = tqdm(total=len(jobs), desc=progress, smoothing=0.05) if progress and tqdm is not None else None
    out: list[Any] = []
    if workers <= 1:
        for j in jobs:
            out.append(fn(j))
            if bar is not None:
                bar.update()
    else:
        with mp.get_context("fork").Pool(workers) as pool:
            for r in pool.imap(fn, jobs, chunksize=1):
                out.append(r)
                if bar is not None:
                    bar.update()
    if bar is not None:
        bar.close()
    return out


def compact_json(report: dict[str, Any]) -> str:
    """Indented JSON with every list of numbers on one line (the curves would otherwise take a line a number)."""
    text = json.dumps(report, indent=1, default=str)
    flat = re.compile(
        r"\[\s*((?:-?[0-9.eE+-]+|null|NaN|-?Infinity)(?:,\s*(?:-?[0-9.eE+-]+|null|NaN|-?Infinity))*)\s*\]"
    )
    return flat.sub(lambda m: "[" + ", ".join(x.strip() for x in m.group(1).split(",")) + "]", text) + "\n"
