"""Triton kernel for the linear scores; imports triton (see
[`banditlib.kernels.linear_score`][banditlib.kernels.linear_score])."""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from banditlib.kernels._triton_common import autotune, launch, next_power_of_2

__all__ = ["linear_score_launch"]

_CONFIGS = [
    triton.Config({"BLOCK_N": bn, "BLOCK_J": bj}, num_warps=w)
    for bn, bj, w in [(32, 32, 2), (64, 32, 4), (128, 32, 4), (64, 64, 4), (128, 64, 8), (256, 32, 8)]
]


@autotune(_CONFIGS, key=["D", "K"])
@triton.jit
def _linear_score_kernel(
    X, A_inv, theta, mean_out, var_out, N, D, K,
    BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_J: tl.constexpr,
):  # fmt: skip
    """One program: ``BLOCK_N`` rows against one arm ``k``; ``X A^-1`` is formed ``BLOCK_J`` columns at a time
    in registers and reduced against ``X`` at once, so it never reaches memory."""
    pid = tl.program_id(0)
    arm = tl.program_id(1)
    rows = pid * BLOCK_N + tl.arange(0, BLOCK_N)
    rmask = rows < N
    A = A_inv + arm * D * D
    th = theta + arm * D
    mean = tl.zeros((BLOCK_N,), dtype=tl.float32)
    var = tl.zeros((BLOCK_N,), dtype=tl.float32)
    for j0 in range(0, D, BLOCK_J):
        cj = j0 + tl.arange(0, BLOCK_J)
        jmask = cj < D
        acc = tl.zeros((BLOCK_N, BLOCK_J), dtype=tl.float32)
        for i0 in range(0, D, BLOCK_D):
            ci = i0 + tl.arange(0, BLOCK_D)
            imask = ci < D
            x = tl.load(X + rows[:, None] * D + ci[None, :], mask=rmask[:, None] & imask[None, :], other=0.0)
            a = tl.load(A + ci[:, None] * D + cj[None, :], mask=imask[:, None] & jmask[None, :], other=0.0)
            acc += tl.dot(x.to(tl.float32), a.to(tl.float32), input_precision="ieee")
        xj = tl.load(X + rows[:, None] * D + cj[None, :], mask=rmask[:, None] & jmask[None, :], other=0.0)
        xj = xj.to(tl.float32)
        t = tl.load(th + cj, mask=jmask, other=0.0).to(tl.float32)
        var += tl.sum(acc * xj, axis=1)
        mean += tl.sum(xj * t[None, :], axis=1)
    tl.store(mean_out + rows * K + arm, mean, mask=rmask)
    tl.store(var_out + rows * K + arm, var, mask=rmask)


def linear_score_launch(X: torch.Tensor, A_inv: torch.Tensor, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``X (N, d)`` against ``A_inv (K, d, d)`` and ``theta (K, d)``: float32 ``mean, var (N, K)``.

    Inputs are made contiguous once (a copy only if they are not).
    """
    X, A_inv, theta = X.contiguous(), A_inv.contiguous(), theta.contiguous()
    N, D = X.shape
    K = A_inv.shape[0]
    mean = torch.empty(N, K, device=X.device, dtype=torch.float32)
    var = torch.empty(N, K, device=X.device, dtype=torch.float32)
    if N == 0:
        return mean, var
    block_d = min(next_power_of_2(D), 128)
    launch(
        _linear_score_kernel,
        lambda meta: (triton.cdiv(N, meta["BLOCK_N"]), K),
        X, A_inv, theta, mean, var, N, D, K,
        BLOCK_D=block_d,
        fixed={"BLOCK_N": 32, "BLOCK_J": 16},
    )  # fmt: skip
    return mean, var
