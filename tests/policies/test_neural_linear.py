"""NeuralLinUCB / NeuralLinTS: the linear statistics are exact ridge statistics over the current features."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import banditlib


def _explicit(policy: banditlib.NeuralLinUCB, X: torch.Tensor, r: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        phi = torch.cat([policy.net.features(X), torch.ones(X.shape[0], 1, dtype=X.dtype)], 1)
    A = policy.reg * torch.eye(phi.shape[1], dtype=torch.float64) + phi.T @ phi
    return torch.linalg.inv(A), torch.linalg.solve(A, phi.T @ r)


@pytest.mark.parametrize("train_every", [1, 4, 1000])
def test_statistics_match_explicit_ridge_on_current_features(train_every: int) -> None:
    policy = banditlib.NeuralLinUCB(
        3, hidden=(6,), reg=0.5, train_every=train_every, train_steps=3, seed=0, dtype=torch.float64
    )
    rng = np.random.default_rng(0)
    seen_x, seen_r = [], []
    for B in (1, 2, 1, 3, 1, 1):
        x = torch.from_numpy(rng.normal(size=(B, 4, 3)))
        sel = policy.select(x)
        r = torch.from_numpy(rng.normal(size=(B, 1)))
        policy.update(x, sel.actions, r)
        seen_x.append(x[torch.arange(B), sel.actions[:, 0]])
        seen_r.append(r[:, 0])
    A_inv, theta = _explicit(policy, torch.cat(seen_x), torch.cat(seen_r))
    torch.testing.assert_close(policy.A_inv_, A_inv, rtol=1e-8, atol=1e-10)
    torch.testing.assert_close(policy.theta_, theta, rtol=1e-8, atol=1e-10)
    assert (int(policy.train_rounds) > 0) == (train_every < 1000)  # both the refit and the Woodbury path


def test_ucb_scores_are_linucb_over_features() -> None:
    policy = banditlib.NeuralLinUCB(3, 2, hidden=(5,), alpha=0.3, train_steps=0, seed=0, dtype=torch.float64)
    x = torch.randn(4, 3, dtype=torch.float64)
    policy.update(x, torch.tensor([[0], [1], [1], [0]]), torch.randn(4, 1, dtype=torch.float64))
    sel = policy.select(x)
    enc = policy._inputs(x)
    with torch.no_grad():
        phi = torch.cat([policy.net.features(enc), torch.ones(enc.shape[0], 1, dtype=torch.float64)], 1)
    torch.testing.assert_close(sel.mean.reshape(-1), phi @ policy.theta_)
    torch.testing.assert_close(sel.bonus.reshape(-1), 0.3 * torch.sqrt(((phi @ policy.A_inv_) * phi).sum(1)))


def test_ts_shares_one_sample_per_row() -> None:
    policy = banditlib.NeuralLinTS(2, hidden=(4,), scale=1.0, train_steps=0, seed=0, dtype=torch.float64)
    x = torch.randn(1, 6, 2, dtype=torch.float64).expand(8000, 6, 2)
    s = policy.select(x).scores.numpy()
    enc = policy._inputs(x[:1])
    with torch.no_grad():
        phi = torch.cat([policy.net.features(enc), torch.ones(6, 1, dtype=torch.float64)], 1)
    cov = (phi @ policy.A_inv_ @ phi.T).numpy()
    np.testing.assert_allclose(np.cov(s.T), cov, rtol=0.1, atol=0.05 * np.abs(cov).max())
