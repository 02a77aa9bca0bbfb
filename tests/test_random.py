"""The counter-based generator: torch and numpy agree bit for bit, batches equal rows, draws are uniform."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from banditlib import _random as R


@pytest.mark.parametrize("row", [0, 1, 77, 2**40 + 3, 2**63 - 1])
@pytest.mark.parametrize("seed", [0, 12345, 2**63 - 1])
def test_numpy_twin_is_bit_identical(seed: int, row: int) -> None:
    for stream in (R.STREAM_TIES, R.STREAM_NOISE):
        want = R.uniform(seed, stream, torch.tensor([row]), 13)[0].numpy()
        assert np.array_equal(R.uniform_np(seed, stream, row, 13), want)
        np.testing.assert_allclose(
            R.normal_np(seed, stream, row, 5),
            R.normal(seed, stream, torch.tensor([row]), 5)[0].numpy(),
            rtol=1e-12,
            atol=1e-12,
        )


def test_batch_equals_rows_and_prefix_columns() -> None:
    rows = torch.arange(10, 20)
    batch = R.uniform(3, R.STREAM_NOISE, rows, 7)
    singles = torch.cat([R.uniform(3, R.STREAM_NOISE, rows[i : i + 1], 7) for i in range(10)])
    assert torch.equal(batch, singles)
    assert torch.equal(R.uniform(3, R.STREAM_NOISE, rows, 4), batch[:, :4])


def test_uniform_and_normal_distributions() -> None:
    u = R.uniform(7, R.STREAM_TIES, torch.arange(20_000), 5).numpy()
    assert u.min() >= 0.0 and u.max() < 1.0
    assert stats.kstest(u.ravel(), "uniform").pvalue > 1e-4
    z = R.normal(7, R.STREAM_NOISE, torch.arange(20_000), 5).numpy()
    assert stats.kstest(z.ravel(), "norm").pvalue > 1e-4
    corr = np.corrcoef(z.T)
    assert np.abs(corr - np.eye(5)).max() < 0.03


def test_seeds_streams_and_rows_are_independent() -> None:
    rows = torch.arange(5000)
    a = R.uniform(1, R.STREAM_TIES, rows, 1).ravel().numpy()
    for other in (
        R.uniform(2, R.STREAM_TIES, rows, 1),
        R.uniform(1, R.STREAM_NOISE, rows, 1),
        R.uniform(1, R.STREAM_TIES, rows + 1, 1),
    ):
        assert abs(np.corrcoef(a, other.ravel().numpy())[0, 1]) < 0.05


def test_mix64_matches_python_reference() -> None:
    values = [0, 1, 2**62, 2**63 - 1]
    got = R.mix64(torch.tensor(values)).tolist()
    assert [v & (2**64 - 1) for v in got] == [R._mix_int(v) for v in values]
