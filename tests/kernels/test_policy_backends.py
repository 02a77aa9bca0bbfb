"""Policies pass ``backend`` through: Triton and torch give the same scores and the same actions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import banditlib


@pytest.mark.parametrize("cls", [banditlib.LinUCB, banditlib.LinTS, banditlib.Greedy, banditlib.EpsilonGreedy])
@pytest.mark.parametrize("arms", [None, 4], ids=["shared", "disjoint"])
def test_triton_and_torch_policies_decide_alike(cls: type[banditlib.Policy], arms: int | None) -> None:
    d = 5
    p_triton, p_torch = cls(d, arms, seed=3, backend="triton"), cls(d, arms, seed=3, backend="torch")
    rng = np.random.default_rng(0)
    K = arms or 7
    for t in range(8):
        B = (1, 2, 5)[t % 3]
        x = rng.normal(size=(B, d) if arms else (B, K, d)).astype(np.float32)
        mask = rng.random((B, K)) < 0.7
        mask[:, :2] = True
        k = 1 + t % 2
        s1, s2 = p_triton.select(x, k=k, mask=mask), p_torch.select(x, k=k, mask=mask)
        assert torch.equal(s1.actions, s2.actions), (t, s1.actions, s2.actions)
        torch.testing.assert_close(s1.scores, s2.scores, rtol=1e-5, atol=1e-5)
        r = rng.normal(size=(B, k))
        p_triton.update(x, s1.actions, r)
        p_torch.update(x, s2.actions, r)
