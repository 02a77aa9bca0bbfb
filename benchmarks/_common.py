"""Helpers shared by the benchmark scripts: timing, summaries, markdown tables, machine information."""

from __future__ import annotations

import contextlib
import gc
import importlib.metadata
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

import banditlib

try:  # optional: records and limits the threads of numpy's BLAS
    import threadpoolctl
except ImportError:
    threadpoolctl = None

__all__ = [
    "machine_info", "ms_cells", "ratio_cells", "speedup", "summary", "table", "thread_limits", "time_interleaved",
]  # fmt: skip


def summary(seconds: list[float], work: float) -> dict[str, Any]:
    """Median and best (minimum) of repeated timings, and ``work`` per second for each."""
    median, best = statistics.median(seconds), min(seconds)
    return {"seconds": seconds, "median_s": median, "best_s": best,
            "rate_median": work / median, "rate_best": work / best}  # fmt: skip


def speedup(fast: dict[str, Any], slow: dict[str, Any]) -> dict[str, float]:
    """How many times faster ``fast`` is than ``slow`` (same work), from the medians and from the bests."""
    return {"median": slow["median_s"] / fast["median_s"], "best": slow["best_s"] / fast["best_s"]}


def time_interleaved(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, list[float]]:
    """Seconds per call of each function: one warm-up call each, then ``repeats`` rounds taking turns, so
    that slow drifts of a noisy machine hit every contender alike."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            gc.collect()
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return times


def table(title: str, headers: list[str], rows: list[list[str]], notes: list[str]) -> str:
    """A markdown table under a heading, with notes below it."""
    lines = [f"### {title}", "", "| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join([*lines, "", *notes] if notes else lines)


def ratio_cells(ratio: dict[str, Any] | None, target: float | None) -> list[str]:
    """Speed-up cells (median, best) and the verdict against ``target``, judged on the median."""
    if ratio is None:
        return ["", "", ""]
    verdict = "" if target is None else f">= {target:g}x: {'met' if ratio['median'] >= target else 'NOT met'}"
    return [f"{ratio['median']:.2f}x", f"{ratio['best']:.2f}x", verdict]


def ms_cells(r: dict[str, Any]) -> list[str]:
    """Median and best milliseconds."""
    return [f"{r['median_s'] * 1e3:.2f}", f"{r['best_s'] * 1e3:.2f}"]


def thread_limits(threads: int) -> contextlib.AbstractContextManager[Any]:
    """Set torch's threads and, with threadpoolctl, cap numpy's BLAS at the same number."""
    torch.set_num_threads(threads)
    if threadpoolctl is None:
        return contextlib.nullcontext()
    return threadpoolctl.threadpool_limits(limits=threads)  # type: ignore[no-any-return]


def machine_info(threads: int, dists: tuple[str, ...]) -> dict[str, Any]:
    """Platform, CPU model, core count, thread settings, GPU (if any) and versions of ``dists``."""
    cpu = None
    with contextlib.suppress(OSError):
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        cpu = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), None)
    versions = {"banditlib": banditlib.__version__}
    for dist in dists:
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = "unavailable"
    blas = None if threadpoolctl is None else threadpoolctl.threadpool_info()
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else None
    return {
        "platform": platform.platform(), "python": sys.version.split()[0], "cpu_model": cpu,
        "cores": os.cpu_count(), "threads_requested": threads, "torch_num_threads": torch.get_num_threads(),
        "blas_threadpools": blas, "gpu": gpu, "versions": versions,
    }  # fmt: skip
