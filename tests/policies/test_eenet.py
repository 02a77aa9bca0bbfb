"""EE-Net: the exploration network sees the pooled per-sample gradient and learns the residual."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import banditlib
from banditlib.errors import InvalidInputError
from banditlib.testing.references import per_sample_gradients


@pytest.mark.parametrize("hidden,pool", [((7,), 3), ((5, 4), 1), ((), 2)])
def test_pooled_gradient_equals_pooled_per_sample_gradients(hidden: tuple[int, ...], pool: int) -> None:
    policy = banditlib.EENet(3, hidden=hidden, pool=pool, train_steps=0, dtype=torch.float64, seed=0)
    x = torch.randn(6, 3, dtype=torch.float64)
    f1, g = policy._pooled_gradient(x)
    G = per_sample_gradients(policy.net, x)
    pad = policy.pooled_dim * pool - G.shape[1]
    want = torch.nn.functional.pad(G, (0, pad)).view(6, -1, pool).mean(-1)
    torch.testing.assert_close(g, want, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(f1, policy.net(x).detach())


def test_linear_decision_and_residual_targets() -> None:
    policy = banditlib.EENet(2, 3, hidden=(6,), explore_weight=0.25, train_steps=0, dtype=torch.float64, seed=1)
    x = torch.randn(4, 2, dtype=torch.float64)
    sel = policy.select(x)
    f1, f2, _ = policy._scores(policy._inputs(x))
    torch.testing.assert_close(sel.mean.reshape(-1), f1)
    torch.testing.assert_close(sel.bonus.reshape(-1), 0.25 * f2)
    r = torch.randn(4, 1, dtype=torch.float64)
    chosen = f1.view(4, 3)[torch.arange(4), sel.actions[:, 0]]
    policy.update(x, sel.actions, r)
    torch.testing.assert_close(policy.hist_res_[:4], r[:, 0] - chosen)


def test_neural_decision_takes_over_after_warmup() -> None:
    policy = banditlib.EENet(2, hidden=(6,), decision="neural", decision_warmup=3, train_steps=2, seed=2)
    x = torch.randn(1, 4, 2)
    before = policy.select(x)
    torch.testing.assert_close(before.bonus.reshape(-1), 0.1 * policy._scores(policy._inputs(x))[1])  # linear rule
    policy.update(torch.randn(3, 4, 2), torch.zeros(3, 1, dtype=torch.long), torch.randn(3, 1))
    after = policy.select(x)
    f1, f2, _ = policy._scores(policy._inputs(x))
    with torch.no_grad():
        torch.testing.assert_close(after.scores.reshape(-1), policy.decide(torch.stack([f1, f2], 1)))


def test_learns_a_nonlinear_reward_better_than_random() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=5)
    a /= np.linalg.norm(a)
    policy = banditlib.EENet(5, hidden=(32,), explore_hidden=(32,), train_every=10, train_steps=30, lr=1e-2, seed=0)
    regret = []
    for _ in range(300):
        x = rng.normal(size=(1, 4, 5)).astype(np.float32)
        h = np.cos(3 * x[0] @ a)
        arm = policy.select(x).actions.item()
        policy.update(x, np.array([[arm]]), np.array([[h[arm] + 0.05 * rng.normal()]]))
        regret.append(h.max() - h[arm])
    late, early = np.mean(regret[-100:]), np.mean(regret[:100])
    assert late < 0.6 * early


@pytest.mark.parametrize(
    "kwargs,arg",
    [
        ({"decision": "max"}, "decision"),
        ({"pool": 0}, "pool"),
        ({"explore_weight": -1}, "explore_weight"),
        ({"explore_hidden": 3}, "explore_hidden"),
    ],
)
def test_arguments_are_validated(kwargs: dict[str, object], arg: str) -> None:
    with pytest.raises(InvalidInputError, match=f"`{arg}"):
        banditlib.EENet(3, **kwargs)  # type: ignore[arg-type]
