"""The diagonal neural bonus of one linear layer: ``rowsum(delta^2 * (h^2 @ Z_inv^T))``.

For a layer ``y = W h`` the per-sample gradient of the network output ``f`` with respect to ``W`` is
``delta h^T`` with ``delta = df/dy``. With a diagonal ``Z`` (entries ``Z_oi`` for weight ``W_oi``, stored as
the ``(out, in)`` matrix ``Z_inv`` of reciprocals), that layer's share of ``g^T Z^-1 g`` for sample ``n`` is

    sum_o sum_i delta_no^2 Z_inv_oi h_ni^2 = sum_o delta_no^2 (h_n^2 @ Z_inv^T)_o,

so one ordinary forward and backward pass over a batch yields every sample's bonus (see docs/neural.md). The
bias of the layer, whose gradient is ``delta``, is the case ``h = 1``: pass a column of ones or add
``delta^2 @ z_bias_inv`` separately. The Triton kernel fuses both products and the reduction, never writing
``h^2 @ Z_inv^T``.
"""

from __future__ import annotations

import torch

from banditlib.kernels.dispatch import resolve_backend

__all__ = ["neural_bonus", "neural_bonus_torch", "neural_bonus_triton"]


def neural_bonus_torch(delta: torch.Tensor, h: torch.Tensor, Z_inv: torch.Tensor) -> torch.Tensor:
    """Diagonal bonus of one layer, torch path.

    Args:
        delta: ``(N, out)`` gradient of the output with respect to the layer's pre-activation.
        h: ``(N, in)`` the layer's input.
        Z_inv: ``(out, in)`` reciprocal diagonal of ``Z`` for the layer's weights.

    Returns:
        ``(N,)`` ``sum_o delta_no^2 sum_i h_ni^2 Z_inv_oi``; float32 for float32/bfloat16 inputs.
    """
    if delta.dtype in (torch.bfloat16, torch.float16):
        delta, h, Z_inv = delta.float(), h.float(), Z_inv.float()
    return ((h * h) @ Z_inv.T.to(h.dtype) * (delta * delta)).sum(-1)


def neural_bonus_triton(delta: torch.Tensor, h: torch.Tensor, Z_inv: torch.Tensor) -> torch.Tensor:
    """Diagonal bonus of one layer, fused Triton kernel (same contract as
    [`neural_bonus_torch`][banditlib.kernels.neural_bonus_torch])."""
    from banditlib.kernels._triton_neural import neural_bonus_launch

    return neural_bonus_launch(delta, h, Z_inv)


def neural_bonus(delta: torch.Tensor, h: torch.Tensor, Z_inv: torch.Tensor, *, backend: str = "auto") -> torch.Tensor:
    """Diagonal bonus of one layer on the backend [`resolve_backend`][banditlib.kernels.resolve_backend] picks.

    Examples:
        >>> import torch
        >>> delta, h, Z_inv = torch.ones(2, 3), torch.full((2, 4), 2.0), torch.full((3, 4), 0.5)
        >>> neural_bonus(delta, h, Z_inv, backend="torch").tolist()  # 3 outputs * 4 inputs * 4 * 0.5
        [24.0, 24.0]
    """
    if resolve_backend(backend, h, what="neural_bonus") == "triton":
        return neural_bonus_triton(delta, h, Z_inv)
    return neural_bonus_torch(delta, h, Z_inv)
