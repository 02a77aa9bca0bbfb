"""Backend resolution shared by every op's dispatcher.

``backend="auto"`` runs Triton when the tensors are on a CUDA device, their dtype is one the kernels take
(float32, bfloat16) and triton imports; the torch path otherwise. ``backend="torch"`` always runs torch.
``backend="triton"`` runs Triton or raises [`BackendUnavailableError`][banditlib.BackendUnavailableError]: it is never
answered by a silent fallback. With the environment variable ``TRITON_INTERPRET=1`` the Triton kernels run on
CPU tensors through Triton's interpreter (slow; that is how CI tests them without a GPU). Triton is imported
only here, lazily, so ``import banditlib`` never loads it.
"""

from __future__ import annotations

import functools
import importlib
import os

import torch

from banditlib.errors import BackendUnavailableError

__all__ = ["TRITON_DTYPES", "interpreting", "resolve_backend", "triton_available"]

TRITON_DTYPES = (torch.float32, torch.bfloat16)


@functools.lru_cache(maxsize=1)
def _triton_import_error() -> str | None:
    try:
        importlib.import_module("triton")
    except Exception as exc:  # ImportError, or a broken install raising anything at import
        return f"{type(exc).__name__}: {exc}"
    return None


def triton_available() -> bool:
    """Whether ``import triton`` succeeds (imports it on first call)."""
    return _triton_import_error() is None


def interpreting() -> bool:
    """Whether Triton kernels run in the interpreter (``TRITON_INTERPRET=1``), on CPU tensors."""
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def resolve_backend(backend: str, tensor: torch.Tensor | None = None, *, what: str = "this op") -> str:
    """The backend an op runs on for inputs like ``tensor``: ``"torch"`` or ``"triton"``.

    Args:
        backend: ``"auto"``, ``"torch"`` or ``"triton"``.
        tensor: a representative input (device and dtype decide); ``None`` only checks that triton imports.
        what: the op's name, for error messages.

    Raises:
        BackendUnavailableError: ``backend="triton"`` but triton does not import, the tensors are on the CPU
            without ``TRITON_INTERPRET=1``, or their dtype is not float32 or bfloat16.
    """
    if backend == "torch":
        return "torch"
    if backend == "auto":
        ok = tensor is not None and tensor.is_cuda and tensor.dtype in TRITON_DTYPES and triton_available()
        return "triton" if ok else "torch"
    error = _triton_import_error()
    if error is not None:
        raise BackendUnavailableError(
            f"backend='triton' for {what}: triton does not import ({error}); install it with "
            "`pip install triton` (the `triton` extra), or use backend='auto' or 'torch'."
        )
    if tensor is None:
        return "triton"
    if not tensor.is_cuda and not interpreting():
        raise BackendUnavailableError(
            f"backend='triton' for {what}: the Triton kernels run on CUDA tensors and these are on "
            f"{tensor.device}; set TRITON_INTERPRET=1 to run them on the CPU (slowly, for testing)."
        )
    if tensor.dtype not in TRITON_DTYPES:
        raise BackendUnavailableError(
            f"backend='triton' for {what}: the Triton kernels take float32 or bfloat16 inputs (accumulating "
            f"in float32); got {tensor.dtype}. Use backend='torch' for {tensor.dtype}."
        )
    return "triton"
