"""Counter-based random numbers: the policies' own generator.

A policy's randomness is a pure function of ``(seed, stream, row, column)``: row ``t`` is the policy's
``t``-th decision since construction, column ``j`` an arm or a coordinate. So a batch of ``B`` rows draws
exactly what ``B`` single-row calls would draw, on any device, and only the values that are needed are
computed (ties are broken only in the rows that have ties). The state to save is one integer: how many rows
have been drawn. The mixing function is SplitMix64 (Steele, Lea and Flood, OOPSLA 2014), evaluated with
wrapping int64 arithmetic.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

__all__ = [
    "STREAM_EXPLORE",
    "STREAM_NOISE",
    "STREAM_TIES",
    "STREAM_USER",
    "mix64",
    "normal",
    "normal_np",
    "uniform",
    "uniform_np",
]

STREAM_TIES = 1
STREAM_NOISE = 2
STREAM_EXPLORE = 3
# 4 trains the neural policies' networks, 5 and 6 EE-Net's exploration and decision networks.
STREAM_USER = 16  # the first stream banditlib itself never uses: extensions draw from 16 and above

_MASK64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
_M1 = 0xBF58476D1CE4E5B9
_M2 = 0x94D049BB133111EB


def _signed(v: int) -> int:
    """The int64 with the same 64 bits as the unsigned ``v``."""
    v &= _MASK64
    return v - (1 << 64) if v >= 1 << 63 else v


def _mix_int(z: int) -> int:
    z = (z + _GOLDEN) & _MASK64
    z = ((z ^ (z >> 30)) * _M1) & _MASK64
    z = ((z ^ (z >> 27)) * _M2) & _MASK64
    return z ^ (z >> 31)


def _srl(z: torch.Tensor, s: int) -> torch.Tensor:
    """Logical right shift of int64 bits (torch's ``>>`` is arithmetic)."""
    return (z >> s) & ((1 << (64 - s)) - 1)


def mix64(z: torch.Tensor) -> torch.Tensor:
    """SplitMix64's finaliser on an int64 tensor, bit-exact with the unsigned 64-bit reference: a bijection
    that scrambles nearby integers into unrelated ones (for deriving a seed from a seed and a counter).

    Args:
        z: an int64 tensor of any shape.

    Examples:
        >>> import torch
        >>> a, b = mix64(torch.tensor([0, 1]))
        >>> int(a) != int(b), mix64(torch.tensor([5])).dtype
        (True, torch.int64)
    """
    z = z + _signed(_GOLDEN)
    z = (z ^ _srl(z, 30)) * _signed(_M1)
    z = (z ^ _srl(z, 27)) * _signed(_M2)
    return z ^ _srl(z, 31)


def _bits(seed: int, stream: int, rows: torch.Tensor, cols: int) -> torch.Tensor:
    """64 random bits per ``(row, column)``: ``rows`` (B,) int64 -> (B, cols) int64."""
    key = _signed(_stream_key(seed, stream))
    z_row = mix64(rows.to(torch.long) + key)
    col = torch.arange(cols, device=rows.device, dtype=torch.long) * _signed(_GOLDEN)
    return mix64(z_row[:, None] ^ col[None, :])


def uniform(seed: int, stream: int, rows: torch.Tensor, cols: int) -> torch.Tensor:
    """Uniform draws in ``[0, 1)`` with 53 random bits each.

    Args:
        seed: the policy's seed, in ``[0, 2**63)``.
        stream: which use the numbers are for (``STREAM_TIES``, ``STREAM_NOISE``, ...); streams are independent.
        rows: ``(B,)`` int64 decision indices.
        cols: number of draws per row.

    Returns:
        ``(B, cols)`` float64 on ``rows.device``.

    Examples:
        >>> import torch
        >>> u = uniform(7, STREAM_TIES, torch.arange(3), 4)
        >>> bool(((u >= 0) & (u < 1)).all()), u.shape
        (True, torch.Size([3, 4]))
        >>> torch.equal(u[1:2], uniform(7, STREAM_TIES, torch.tensor([1]), 4))
        True
    """
    return _srl(_bits(seed, stream, rows, cols), 11).to(torch.float64) * (1.0 / (1 << 53))


def normal(seed: int, stream: int, rows: torch.Tensor, cols: int) -> torch.Tensor:
    """Standard normal draws by the Box-Muller transform of two independent uniform columns.

    ``z = sqrt(-2 log(1 - u1)) cos(2 pi u2)``; ``1 - u1`` lies in ``(0, 1]``, so the logarithm is finite.

    Args:
        seed: as for [`uniform`][banditlib.extend.uniform].
        stream: as for ``uniform`` (the normals of a stream use its uniforms, two per draw).
        rows: ``(B,)`` int64 decision indices, as for ``uniform``.
        cols: normals per row.

    Returns:
        ``(B, cols)`` float64 standard normals on ``rows.device``.

    Examples:
        >>> import torch
        >>> z = normal(7, STREAM_NOISE, torch.arange(2000), 2)
        >>> abs(float(z.mean())) < 0.05, abs(float(z.std()) - 1) < 0.05
        (True, True)
    """
    u = uniform(seed, stream, rows, 2 * cols)
    radius = torch.sqrt(-2.0 * torch.log1p(-u[:, :cols]))
    return radius * torch.cos((2.0 * math.pi) * u[:, cols:])


@functools.lru_cache(maxsize=64)
def _col_keys(cols: int) -> np.ndarray:
    keys = np.arange(cols, dtype=np.uint64) * np.uint64(_GOLDEN)
    keys.flags.writeable = False
    return keys


@functools.lru_cache(maxsize=256)
def _stream_key(seed: int, stream: int) -> int:
    return _mix_int(_mix_int(seed) ^ ((stream * _GOLDEN) & _MASK64))


_U30, _U27, _U31, _U11 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11)
_UG, _UM1, _UM2 = np.uint64(_GOLDEN), np.uint64(_M1), np.uint64(_M2)


def uniform_np(seed: int, stream: int, row: int, cols: int) -> np.ndarray:
    """`uniform` for a single row, in numpy: bit-identical values, a fraction of the overhead.

    Returns:
        ``(cols,)`` float64.
    """
    z_row = np.uint64(_mix_int((row + _stream_key(seed, stream)) & _MASK64))
    z = _col_keys(cols) ^ z_row
    z += _UG
    z ^= z >> _U30
    z *= _UM1
    z ^= z >> _U27
    z *= _UM2
    z ^= z >> _U31
    z >>= _U11
    return z.astype(np.float64) * (1.0 / (1 << 53))


def normal_np(seed: int, stream: int, row: int, cols: int) -> np.ndarray:
    """`normal` for a single row, in numpy: ``(cols,)`` float64, equal to the torch draws to rounding."""
    u = uniform_np(seed, stream, row, 2 * cols)
    return np.sqrt(-2.0 * np.log1p(-u[:cols])) * np.cos((2.0 * math.pi) * u[cols:])
