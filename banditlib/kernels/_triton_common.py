"""Helpers for the Triton kernels; importing this module imports triton.

Autotuning needs a GPU to time configurations on, so under the interpreter (``TRITON_INTERPRET=1``) kernels
are not autotuned and `launch` passes one fixed configuration instead. Whether a kernel is interpreted
is decided when its module is imported, so set ``TRITON_INTERPRET`` before the first Triton call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import triton

from banditlib.kernels.dispatch import interpreting

__all__ = ["autotune", "launch", "next_power_of_2"]


def autotune(configs: list[triton.Config], key: list[str]) -> Callable[[Any], Any]:
    """``triton.autotune`` on a GPU; the identity under the interpreter."""

    def wrap(fn: Any) -> Any:
        return fn if interpreting() else triton.autotune(configs=configs, key=key)(fn)

    return wrap


def launch(
    kernel: Any, grid: Callable[[dict[str, Any]], tuple[int, ...]], *args: Any, fixed: dict[str, Any], **kwargs: Any
) -> None:
    """Run ``kernel`` over ``grid(meta)``; ``fixed`` holds the meta-parameters used when not autotuning."""
    if interpreting():
        kernel[grid(fixed)](*args, **kwargs, **fixed)
    else:
        kernel[grid](*args, **kwargs)


def next_power_of_2(n: int) -> int:
    """Smallest power of two ``>= n`` (and ``>= 16``, the smallest tile ``tl.dot`` takes)."""
    return max(16, int(triton.next_power_of_2(n)))
