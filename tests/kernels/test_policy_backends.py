"""Policies pass ``backend`` through: Triton and torch give the same scores and the same actions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import banditlib

NEURAL = {"hidden": (8,), "train_every": 3, "train_steps": 2}
POLICIES = [
    (banditlib.LinUCB, {}),
    (banditlib.LinTS, {}),
    (banditlib.Greedy, {}),
    (banditlib.EpsilonGreedy, {}),
    (banditlib.NeuralUCB, NEURAL),
    (banditlib.NeuralUCB, {**NEURAL, "z": "last_layer"}),
    (banditlib.NeuralLinUCB, NEURAL),
]


@pytest.mark.parametrize("cls,kw", POLICIES, ids=lambda v: getattr(v, "__name__", "") or str(v.get("z", "")))
@pytest.mark.parametrize("arms", [None, 4], ids=["shared", "disjoint"])
def test_triton_and_torch_policies_decide_alike(
    cls: type[banditlib.Policy], kw: dict[str, object], arms: int | None
) -> None:
    d = 5
    p_triton = cls(d, arms, seed=3, backend="triton", **kw)  # type: ignore[call-arg]
    p_torch = cls(d, arms, seed=3, backend="torch", **kw)  # type: ignore[call-arg]
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
