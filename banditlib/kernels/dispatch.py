"""Backend resolution shared by every op's dispatcher."""

from __future__ import annotations

import torch

from banditlib.errors import BackendUnavailableError

__all__ = ["resolve_backend"]


def resolve_backend(backend: str, device: torch.device | str) -> str:
    """The backend an op runs on: ``"torch"`` for ``"auto"``, and an error for ``"triton"``.

    Args:
        backend: ``"auto"``, ``"torch"`` or ``"triton"``.
        device: where the tensors live.

    Raises:
        BackendUnavailableError: ``backend="triton"``: no Triton kernels are shipped yet, and an explicit
            request is never answered by a silent fallback.
    """
    if backend == "triton":
        raise BackendUnavailableError(
            "backend='triton' is not available: this release of banditlib ships only the torch scoring "
            "path; use backend='auto' or 'torch'."
        )
    return "torch"
