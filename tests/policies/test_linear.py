"""LinUCB and LinTS against the from-scratch float64 reference, and hypothesis properties."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import banditlib
from banditlib.testing.references import LinearReference
from banditlib.testing.strategies import contexts, problems

SETTINGS = settings(max_examples=40, deadline=None)


def _play(policy: banditlib.Policy, ref: LinearReference, rng: np.random.Generator, num_arms: int, rounds: int) -> None:
    """Random select/update calls of varying batch size and k, mirrored into the reference."""
    for t in range(rounds):
        B = (1, 2, 5, 9)[t % 4]
        x = rng.normal(size=(B, policy.dim) if policy.arms is not None else (B, num_arms, policy.dim))
        k = 1 + t % min(2, num_arms)
        sel = policy.select(x, k=k)
        r = rng.normal(size=(B, k))
        policy.update(x, sel.actions, r)
        ref.update(x, sel.actions.numpy(), r)


@pytest.mark.parametrize("fast_path", [True, False], ids=["fast", "batched"])
@pytest.mark.parametrize("forget", [1.0, 0.95])
@pytest.mark.parametrize("arms", [None, 4], ids=["shared", "disjoint"])
def test_linucb_matches_reference(arms: int | None, forget: float, fast_path: bool) -> None:
    d, K = 6, 4
    policy = banditlib.LinUCB(d, arms, alpha=0.7, reg=2.0, forget=forget, refresh_every=7, dtype=torch.float64, seed=0)
    policy._fast_path = fast_path
    ref = LinearReference(d, arms, reg=2.0, forget=forget)
    rng = np.random.default_rng(0)
    _play(policy, ref, rng, K, 24)
    A, b, A_inv, theta = ref.stats()
    np.testing.assert_allclose(policy.A_.numpy(), A, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(policy.b_.numpy(), b, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(policy.A_inv_.numpy(), A_inv, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(policy.theta_.numpy(), theta, rtol=1e-8, atol=1e-10)
    x = rng.normal(size=(3, d) if arms is not None else (3, K, d))
    sel = policy.select(x)
    mean, bonus = ref.ucb(x, 0.7)
    np.testing.assert_allclose(sel.mean.numpy(), mean, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(sel.bonus.numpy(), bonus, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("arms", [None, 3], ids=["shared", "disjoint"])
def test_float32_policy_tracks_float64_reference(arms: int | None) -> None:
    d, K = 5, 3
    policy = banditlib.LinUCB(d, arms, seed=0)
    ref = LinearReference(d, arms)
    _play(policy, ref, np.random.default_rng(1), K, 60)
    _, _, A_inv, theta = ref.stats()
    np.testing.assert_allclose(policy.A_inv_.double().numpy(), A_inv, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(policy.theta_.double().numpy(), theta, rtol=1e-4, atol=1e-5)


def test_update_features_equals_update() -> None:
    p1, p2 = (banditlib.LinUCB(3, forget=0.9, dtype=torch.float64, seed=0) for _ in range(2))
    rng = np.random.default_rng(2)
    x = rng.normal(size=(6, 4, 3))
    actions = rng.integers(0, 4, size=(6, 1))
    r = rng.normal(size=(6, 1))
    p1.update(x, actions, r)
    p2.update_features(x[np.arange(6), actions[:, 0]], r[:, 0])
    for name, value in p1.learned_state().items():
        torch.testing.assert_close(value, p2.learned_state()[name])
    p1.update_features(x[:1, 0], r[:1, 0])  # single row: fast path
    p2.update_features(torch.from_numpy(x[:1, 0]), torch.from_numpy(r[:1, 0]))
    torch.testing.assert_close(p1.theta_, p2.theta_)


@pytest.mark.parametrize("arms", [None, 3], ids=["shared", "disjoint"])
def test_lints_posterior_matches_reference(arms: int | None) -> None:
    d = 4
    policy = banditlib.LinTS(d, arms, scale=0.3, dtype=torch.float64, seed=0)
    ref = LinearReference(d, arms)
    _play(policy, ref, np.random.default_rng(3), 3, 20)
    _, _, A_inv, theta = ref.stats()
    mean, cov = policy.posterior()
    np.testing.assert_allclose(mean.numpy(), theta, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(cov.numpy(), 0.09 * A_inv, rtol=1e-8, atol=1e-12)


def test_lints_shared_samples_have_the_posterior_distribution() -> None:
    """Scores of one row are jointly N(X theta, scale^2 X A^-1 X^T): the arms share one sample."""
    d, K, n = 3, 4, 40_000
    policy = banditlib.LinTS(d, scale=0.5, dtype=torch.float64, seed=0)
    rng = np.random.default_rng(4)
    policy.update_features(rng.normal(size=(30, d)), rng.normal(size=30))
    X = rng.normal(size=(K, d))
    sel = policy.select(np.broadcast_to(X, (n, K, d)).copy())
    theta, cov = policy.posterior()
    want_mean = X @ theta[0].numpy()
    want_cov = X @ cov[0].numpy() @ X.T
    s = sel.scores.numpy()
    np.testing.assert_allclose(s.mean(0), want_mean, atol=4 * np.sqrt(np.diag(want_cov).max() / n))
    np.testing.assert_allclose(np.cov(s.T), want_cov, rtol=0.05, atol=0.05 * np.abs(want_cov).max())


def test_lints_disjoint_samples_are_independent_per_arm() -> None:
    d, K, n = 3, 3, 40_000
    policy = banditlib.LinTS(d, K, scale=1.0, dtype=torch.float64, seed=1)
    rng = np.random.default_rng(5)
    x = rng.normal(size=(20, d))
    policy.update(x, rng.integers(0, K, size=(20, 1)), rng.normal(size=(20, 1)))
    ctx = rng.normal(size=d)
    sel = policy.select(np.broadcast_to(ctx, (n, d)).copy())
    _, A_inv = policy.posterior()
    want_var = np.array([ctx @ A_inv[a].numpy() @ ctx for a in range(K)])
    emp = np.cov(sel.scores.numpy().T)
    np.testing.assert_allclose(np.diag(emp), want_var, rtol=0.05)
    off = emp - np.diag(np.diag(emp))
    assert np.abs(off).max() < 0.05 * want_var.max()


def test_lints_same_samples_whatever_the_batching() -> None:
    p1, p2 = (banditlib.LinTS(4, scale=1.0, seed=9) for _ in range(2))
    x = torch.randn(6, 5, 4)
    batch = p1.select(x).scores
    rows = torch.cat([p2.select(x[i : i + 1]).scores for i in range(6)])
    torch.testing.assert_close(batch, rows, rtol=1e-5, atol=1e-6)


def test_drift_check_repairs_a_corrupted_inverse() -> None:
    policy = banditlib.LinUCB(4, arms=1, refresh_every=10**6, dtype=torch.float64, seed=0)
    rng = np.random.default_rng(6)
    with torch.no_grad():
        policy.A_inv_.mul_(1.01)  # drift that only the check can see
    for _ in range(16):
        x = rng.normal(size=(1, 4))
        policy.update(x, [[0]], [[1.0]])
    torch.testing.assert_close(policy.A_inv_, torch.linalg.inv(policy.A_), rtol=1e-9, atol=1e-12)
    assert int(policy.refresh_counter[0]) == 0


def test_scheduled_refresh_resets_counter() -> None:
    policy = banditlib.LinUCB(3, refresh_every=5, seed=0)
    for i in range(1, 8):
        policy.update_features(torch.randn(1, 3), torch.randn(1))
        assert int(policy.refresh_counter[0]) == i % 5


def test_large_batch_takes_exact_path() -> None:
    policy = banditlib.LinUCB(3, arms=2, dtype=torch.float64, seed=0)
    x = torch.randn(50, 3, dtype=torch.float64)
    a = (torch.arange(50) % 2)[:, None]
    policy.update(x, a, torch.randn(50, 1, dtype=torch.float64))
    assert policy.refresh_counter.tolist() == [0, 0]
    torch.testing.assert_close(policy.A_inv_, torch.linalg.inv(policy.A_), rtol=1e-10, atol=1e-12)


@SETTINGS
@given(problem=problems(), data=st.data())
def test_permuting_arms_permutes_scores(problem: dict[str, Any], data: st.DataObject) -> None:
    d, arms, K = problem["dim"], problem["arms"], problem["num_arms"]
    policy = banditlib.LinUCB(d, arms, reg=problem["reg"], forget=problem["forget"], dtype=torch.float64, seed=0)
    train = data.draw(contexts(3, d, arms, K))
    policy.update(train, np.zeros((3, 1), dtype=np.int64), np.ones((3, 1)))
    x = data.draw(contexts(2, d, arms, K))
    perm = np.random.default_rng(data.draw(st.integers(0, 99))).permutation(K)
    base = policy.select(x).scores
    if arms is None:
        permuted = policy.select(x[:, perm]).scores
    else:
        state = policy.state_dict()
        other = banditlib.LinUCB(d, arms, reg=problem["reg"], dtype=torch.float64, seed=0)
        other.load_state_dict(
            {n: (v[perm] if v.dim() and v.shape[0] == K and n != "rng_counter" else v) for n, v in state.items()}
        )
        permuted = other.select(x).scores
    torch.testing.assert_close(permuted, base[:, perm], rtol=1e-9, atol=1e-9)


@SETTINGS
@given(problem=problems(), data=st.data())
def test_batched_update_equals_one_at_a_time(problem: dict[str, Any], data: st.DataObject) -> None:
    d, arms, K = problem["dim"], problem["arms"], problem["num_arms"]
    kw = dict(reg=problem["reg"], forget=problem["forget"], dtype=torch.float64, seed=0)
    p1, p2 = banditlib.LinUCB(d, arms, **kw), banditlib.LinUCB(d, arms, **kw)
    B = data.draw(st.integers(1, 12))
    x = data.draw(contexts(B, d, arms, K))
    k = data.draw(st.integers(1, K))
    rng = np.random.default_rng(data.draw(st.integers(0, 99)))
    actions = np.stack([rng.permutation(K)[:k] for _ in range(B)])
    r = rng.normal(size=(B, k))
    p1.update(x, actions, r)
    for i in range(B):
        p2.update(x[i : i + 1], actions[i : i + 1], r[i : i + 1])
    for name, value in p1.learned_state().items():
        other = p2.learned_state()[name]
        scale = float(other.abs().max()) if other.is_floating_point() and other.numel() else 1.0
        torch.testing.assert_close(value, other, rtol=1e-7, atol=1e-9 * max(scale, 1.0))


@SETTINGS
@given(problem=problems(), data=st.data(), alpha=st.floats(0.0, 10.0))
def test_covariance_spd_and_ucb_above_mean(problem: dict[str, Any], data: st.DataObject, alpha: float) -> None:
    d, arms, K = problem["dim"], problem["arms"], problem["num_arms"]
    policy = banditlib.LinUCB(
        d, arms, alpha=alpha, reg=problem["reg"], forget=problem["forget"], dtype=torch.float64, seed=0
    )
    for _ in range(3):
        B = data.draw(st.integers(1, 6))
        x = data.draw(contexts(B, d, arms, K))
        sel = policy.select(x)
        policy.update(x, sel.actions, np.random.default_rng(0).normal(size=(B, 1)))
    A_inv = policy.A_inv_
    torch.testing.assert_close(A_inv, A_inv.transpose(1, 2), rtol=1e-10, atol=1e-12)
    assert bool((torch.linalg.eigvalsh(A_inv) > 0).all())
    sel = policy.select(data.draw(contexts(2, d, arms, K)))
    assert bool((sel.scores >= sel.mean).all())
