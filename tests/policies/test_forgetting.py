"""Forgetting cannot wind up: the prior is not discounted, so unobserved arms and directions relax to it."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest
import torch

import banditlib
from banditlib.adapters.rlvr import RolloutBatch, RolloutScheduler


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("cls", [banditlib.LinUCB, banditlib.LinTS])
def test_an_unplayed_arm_stays_at_the_prior_over_1e5_rounds(cls: type, dtype: str, tmp_path: pathlib.Path) -> None:
    """The reported failure: LinUCB(dim=2, arms=2, forget=0.9) updated only on arm 0 overflowed after ~850
    rounds in float32 (6,750 in float64) and its saved file no longer loaded."""
    p = cls(dim=2, arms=2, forget=0.9, reg=2.0, dtype=dtype, seed=0)
    x = np.tile([[1.0, 0.5]], (10_000, 1))
    for _ in range(10):  # 10 calls of 10,000 rounds each: 1e5 rounds
        p.update(x, np.zeros((10_000, 1), dtype=np.int64), np.ones((10_000, 1)))
    assert int(p.n_updates_[0]) == 100_000 and int(p.n_updates_[1]) == 0
    torch.testing.assert_close(p.A_inv_[1].double(), torch.eye(2, dtype=torch.float64) / 2.0)
    assert torch.equal(p.A_[1], torch.eye(2, dtype=torch.float64) * 2.0)
    s = p.select(np.array([[1.0, 0.5]]))
    assert bool(torch.isfinite(s.scores).all())
    p.save(tmp_path / "p.safetensors")
    q = cls.load(tmp_path / "p.safetensors")
    assert torch.equal(q.select(np.array([[1.0, 0.5]])).scores, p.select(np.array([[1.0, 0.5]])).scores)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_constant_and_collinear_features_keep_a_bounded_inverse(dtype: str) -> None:
    """Shared model, d = 4: column 2 is constant, column 3 a copy of column 0, column 1 never varies from 0:
    the unexcited directions keep exactly the prior's variance 1 / reg; A >= reg I throughout."""
    p = banditlib.LinUCB(dim=4, alpha=1.0, forget=0.99, reg=1.0, dtype=dtype, seed=0)
    g = np.random.default_rng(0)
    for _ in range(20):
        a = g.normal(size=(5_000, 1))
        x = np.concatenate([a, np.zeros_like(a), np.ones_like(a), a], axis=1)
        p.update_features(x, g.normal(size=5_000))
    A = p.A_[0]
    assert float(torch.linalg.eigvalsh(A).min()) >= 1.0 - 1e-9
    e1 = torch.tensor([0.0, 1.0, 0.0, 0.0], dtype=p.A_inv_.dtype)
    assert float(e1 @ p.A_inv_[0] @ e1) == pytest.approx(1.0, rel=1e-5)
    anti = torch.tensor([1.0, 0.0, 0.0, -1.0], dtype=p.A_inv_.dtype) / 2**0.5  # orthogonal to the data
    assert float(anti @ p.A_inv_[0] @ anti) == pytest.approx(1.0, rel=1e-4)
    ref = np.linalg.inv(A.numpy())
    assert np.allclose(p.A_inv_[0].double().numpy(), ref, rtol=1e-4, atol=1e-5)


def test_the_default_rollout_scheduler_does_not_wind_up() -> None:
    """The default scheduler's LinUCB (forget 0.99) over indicators that never fire in a clean world: with the
    old forgetting the bonus of those directions grew like 0.99^-t (2e4 after 1,000 rounds) until observe()
    failed from round 8,758 on; now it stays at the prior's."""
    sch = RolloutScheduler(seed=0)
    g = torch.Generator().manual_seed(0)

    def batch(t: int) -> RolloutBatch:
        reward = (torch.rand(8, generator=g) < 0.5).float()
        return RolloutBatch.from_tensors(group=torch.arange(2).repeat_interleave(4), reward=reward,
                                         entropy=torch.rand(8, generator=g), length=torch.full((8,), 5),
                                         answer=torch.where(reward > 0, 0, 1), round=t)  # fmt: skip

    b = batch(0)
    for t in range(1_000):
        sch.schedule(b)
        b = batch(t + 1)
        sch.observe(b)
    conflict = sch.featurizer.names.index("answer_conflict")
    e = torch.zeros(sch.featurizer.dim)
    e[conflict] = 1.0
    assert float(e @ sch.policy.A_inv_[0].float() @ e) <= 1.0 / sch.policy.reg + 1e-6
    assert sch.schedule(b).kept_share == 1.0
