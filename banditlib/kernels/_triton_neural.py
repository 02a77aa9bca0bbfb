"""Triton kernel for the diagonal neural bonus; imports triton (see
[`banditlib.kernels.neural_bonus`][banditlib.kernels.neural_bonus])."""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from banditlib.kernels._triton_common import autotune, launch, next_power_of_2

__all__ = ["neural_bonus_launch"]

_CONFIGS = [
    triton.Config({"BLOCK_N": bn, "BLOCK_O": bo}, num_warps=w)
    for bn, bo, w in [(32, 32, 2), (64, 32, 4), (64, 64, 4), (128, 32, 4), (128, 64, 8)]
]


@autotune(_CONFIGS, key=["N_OUT", "N_IN"])
@triton.jit
def _neural_bonus_kernel(
    delta, h, Z_inv, out, N, N_OUT, N_IN,
    BLOCK_N: tl.constexpr, BLOCK_O: tl.constexpr, BLOCK_I: tl.constexpr,
):  # fmt: skip
    """One program: ``BLOCK_N`` rows; ``h^2 @ Z_inv^T`` is formed ``BLOCK_O`` outputs at a time in registers
    and reduced against ``delta^2`` at once."""
    pid = tl.program_id(0)
    rows = pid * BLOCK_N + tl.arange(0, BLOCK_N)
    rmask = rows < N
    total = tl.zeros((BLOCK_N,), dtype=tl.float32)
    for o0 in range(0, N_OUT, BLOCK_O):
        co = o0 + tl.arange(0, BLOCK_O)
        omask = co < N_OUT
        acc = tl.zeros((BLOCK_N, BLOCK_O), dtype=tl.float32)
        for i0 in range(0, N_IN, BLOCK_I):
            ci = i0 + tl.arange(0, BLOCK_I)
            imask = ci < N_IN
            hv = tl.load(h + rows[:, None] * N_IN + ci[None, :], mask=rmask[:, None] & imask[None, :], other=0.0)
            hv = hv.to(tl.float32)
            z = tl.load(Z_inv + co[None, :] * N_IN + ci[:, None], mask=imask[:, None] & omask[None, :], other=0.0)
            acc += tl.dot(hv * hv, z.to(tl.float32), input_precision="ieee")
        d = tl.load(delta + rows[:, None] * N_OUT + co[None, :], mask=rmask[:, None] & omask[None, :], other=0.0)
        d = d.to(tl.float32)
        total += tl.sum(acc * d * d, axis=1)
    tl.store(out + rows, total, mask=rmask)


def neural_bonus_launch(delta: torch.Tensor, h: torch.Tensor, Z_inv: torch.Tensor) -> torch.Tensor:
    """``delta (N, out)``, ``h (N, in)``, ``Z_inv (out, in)`` -> float32 ``(N,)``; inputs made contiguous once."""
    delta, h, Z_inv = delta.contiguous(), h.contiguous(), Z_inv.contiguous()
    N, N_IN = h.shape
    N_OUT = delta.shape[1]
    out = torch.empty(N, device=h.device, dtype=torch.float32)
    if N == 0:
        return out
    launch(
        _neural_bonus_kernel,
        lambda meta: (triton.cdiv(N, meta["BLOCK_N"]),),
        delta, h, Z_inv, out, N, N_OUT, N_IN,
        BLOCK_I=min(next_power_of_2(N_IN), 128),
        fixed={"BLOCK_N": 32, "BLOCK_O": 16},
    )  # fmt: skip
    return out
