"""Every op, torch and Triton (interpreted on CPU here), against the float64 references.

Shapes are drawn by hypothesis, including 1, odd sizes and sizes that are no multiple of any block size;
bfloat16 inputs are compared with a reference computed from the same bfloat16-rounded values, so the table
below only has to absorb float32 accumulation.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from banditlib.kernels import (
    disjoint_score,
    masked_topk,
    neural_bonus,
    shared_score,
)
from banditlib.testing.references import linear_score_reference, neural_bonus_reference

# (rtol, atol relative to the largest reference magnitude) per input dtype and backend.
TOLERANCE = {
    (torch.float32, "torch"): (1e-5, 1e-6),
    (torch.float32, "triton"): (1e-5, 1e-6),
    (torch.bfloat16, "torch"): (1e-5, 1e-6),
    (torch.bfloat16, "triton"): (1e-5, 1e-6),
    (torch.float64, "torch"): (1e-12, 1e-13),
}
CASES = [(dtype, backend) for dtype, backend in TOLERANCE]
SETTINGS = settings(max_examples=12, deadline=None)


def _close(got: torch.Tensor, want: np.ndarray, dtype: torch.dtype, backend: str) -> None:
    rtol, atol = TOLERANCE[(dtype, backend)]
    scale = max(float(np.abs(want).max()), 1.0)
    np.testing.assert_allclose(got.double().numpy(), want, rtol=rtol, atol=atol * scale)


def _spd(K: int, d: int, gen: torch.Generator) -> torch.Tensor:
    M = torch.randn(K, d, d, generator=gen, dtype=torch.float64)
    return (M @ M.transpose(1, 2) / d + torch.eye(d, dtype=torch.float64)).inverse()


@pytest.mark.parametrize("dtype,backend", CASES)
@SETTINGS
@given(N=st.integers(1, 140), d=st.integers(1, 40), K=st.integers(1, 3), seed=st.integers(0, 2**16))
def test_linear_scores(dtype: torch.dtype, backend: str, N: int, d: int, K: int, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    X = torch.randn(N, d, generator=gen, dtype=torch.float64).to(dtype)
    A_inv = _spd(K, d, gen).to(dtype if dtype != torch.bfloat16 else torch.float32)
    theta = torch.randn(K, d, generator=gen, dtype=torch.float64).to(A_inv.dtype)
    want_mean, want_var = linear_score_reference(X, A_inv, theta)
    mean, var = disjoint_score(X, A_inv, theta, backend=backend)
    assert mean.shape == var.shape == (N, K)
    _close(mean, want_mean, dtype, backend)
    _close(var, want_var, dtype, backend)
    mean, var = shared_score(X, A_inv[0], theta[0], backend=backend)
    assert mean.shape == var.shape == (N,)
    _close(mean, want_mean[:, 0], dtype, backend)
    _close(var, want_var[:, 0], dtype, backend)


@pytest.mark.parametrize("dtype,backend", CASES)
@SETTINGS
@given(N=st.integers(1, 70), n_out=st.integers(1, 40), n_in=st.integers(1, 40), seed=st.integers(0, 2**16))
def test_neural_bonus(dtype: torch.dtype, backend: str, N: int, n_out: int, n_in: int, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    delta = torch.randn(N, n_out, generator=gen, dtype=torch.float64).to(dtype)
    h = torch.randn(N, n_in, generator=gen, dtype=torch.float64).to(dtype)
    Z_inv = torch.rand(n_out, n_in, generator=gen, dtype=torch.float64).to(
        dtype if dtype != torch.bfloat16 else torch.float32
    )
    got = neural_bonus(delta, h, Z_inv, backend=backend)
    assert got.shape == (N,)
    _close(got, neural_bonus_reference(delta, h, Z_inv), dtype, backend)


@pytest.mark.parametrize("backend", ["torch", "triton"])
@SETTINGS
@given(B=st.integers(1, 6), K=st.integers(1, 300), data=st.data())
def test_masked_topk(backend: str, B: int, K: int, data: st.DataObject) -> None:
    k = data.draw(st.integers(1, min(K, 8)))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    scores = torch.from_numpy(rng.normal(size=(B, K)).astype(np.float32))
    mask = torch.from_numpy(rng.random((B, K)) < 0.7)
    mask[0] = False  # an all-masked row
    values, indices = masked_topk(scores, k, mask, backend=backend)
    assert values.shape == indices.shape == (B, k) and indices.dtype == torch.long
    masked = np.where(mask.numpy(), scores.numpy(), -np.inf)
    want = -np.sort(-masked, axis=1)[:, :k]
    np.testing.assert_array_equal(values.numpy(), want)
    assert bool(((indices >= 0) & (indices < K)).all())
    finite = np.isfinite(want)
    picked = np.take_along_axis(masked, indices.numpy(), axis=1)
    np.testing.assert_array_equal(picked[finite], want[finite])


def test_triton_topk_breaks_ties_by_lowest_index_across_chunks() -> None:
    scores = torch.zeros(2, 9000)
    scores[:, [8999, 5000, 7]] = 1.0
    values, indices = masked_topk(scores, 4, backend="triton")
    assert indices.tolist() == [[7, 5000, 8999, 0]] * 2
    assert values.tolist() == [[1.0, 1.0, 1.0, 0.0]] * 2


@pytest.mark.parametrize("backend", ["torch", "triton"])
def test_awkward_shapes_and_non_contiguous_inputs(backend: str) -> None:
    gen = torch.Generator().manual_seed(0)
    for N, d in [(1, 1), (7, 7), (33, 17), (129, 33), (5, 130)]:
        X = torch.randn(d, N, generator=gen).T  # a transposed view: not contiguous
        A_inv = _spd(2, d, gen).float().transpose(1, 2)
        theta = torch.randn(d, 2, generator=gen).T
        assert N == 1 or not X.is_contiguous()
        want_mean, want_var = linear_score_reference(X, A_inv, theta)
        mean, var = disjoint_score(X, A_inv, theta, backend=backend)
        _close(mean, want_mean, torch.float32, backend)
        _close(var, want_var, torch.float32, backend)


def test_empty_batches() -> None:
    for backend in ("torch", "triton"):
        mean, var = disjoint_score(torch.zeros(0, 3), torch.eye(3)[None], torch.zeros(1, 3), backend=backend)
        assert mean.shape == var.shape == (0, 1)
        assert neural_bonus(torch.zeros(0, 2), torch.zeros(0, 3), torch.ones(2, 3), backend=backend).shape == (0,)


@pytest.mark.gpu
def test_triton_matches_torch_on_cuda_at_scale() -> None:
    gen = torch.Generator(device="cuda").manual_seed(0)
    X = torch.randn(100_000, 64, device="cuda", generator=gen)
    A_inv = torch.eye(64, device="cuda") + 0.01 * torch.randn(64, 64, device="cuda", generator=gen)
    A_inv = A_inv @ A_inv.T
    theta = torch.randn(64, device="cuda", generator=gen)
    fused, unfused = shared_score(X, A_inv, theta, backend="triton"), shared_score(X, A_inv, theta, backend="torch")
    for a, b in zip(fused, unfused, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    scores = torch.randn(512, 4096, device="cuda", generator=gen)
    v1, _ = masked_topk(scores, 8, backend="triton")
    v2, _ = masked_topk(scores, 8, backend="torch")
    torch.testing.assert_close(v1, v2)
