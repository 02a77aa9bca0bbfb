"""Greedy, EpsilonGreedy and Random: the rules do what their docstrings say."""

from __future__ import annotations

import numpy as np
import torch
from scipy import stats

import banditlib
from banditlib.testing.references import LinearReference


def test_greedy_picks_the_reference_argmax() -> None:
    d, K = 4, 5
    policy = banditlib.Greedy(d, K, dtype=torch.float64, seed=0)
    ref = LinearReference(d, K)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, d))
    a = rng.integers(0, K, size=(40, 1))
    r = rng.normal(size=(40, 1))
    policy.update(x, a, r)
    ref.update(x, a, r)
    test = rng.normal(size=(10, d))
    mean, _ = ref.mean_var(test)
    sel = policy.select(test)
    assert sel.actions[:, 0].tolist() == mean.argmax(1).tolist()
    assert bool((sel.bonus == 0).all())


def test_untrained_greedy_breaks_ties_uniformly() -> None:
    sel = banditlib.Greedy(2, 4, seed=1).select(np.ones((8000, 2)))
    counts = np.bincount(sel.actions[:, 0].numpy(), minlength=4)
    assert stats.chisquare(counts).pvalue > 1e-4


def test_epsilon_greedy_explores_at_rate_epsilon() -> None:
    policy = banditlib.EpsilonGreedy(3, 6, epsilon=0.2, seed=3)
    policy.update(np.ones((1, 3)), [[2]], [[5.0]])  # arm 2 is greedy-best everywhere below
    sel = policy.select(np.ones((20_000, 3)), k=1)
    explored = (sel.bonus != 0).any(dim=1).numpy()
    assert abs(explored.mean() - 0.2) < 0.015
    counts = np.bincount(sel.actions[explored, 0].numpy(), minlength=6)
    assert stats.chisquare(counts).pvalue > 1e-4  # exploring rows pick uniformly, arm 2 included
    assert bool((sel.actions[~explored, 0] == 2).all())


def test_epsilon_zero_equals_greedy() -> None:
    rng = np.random.default_rng(4)
    eg, g = banditlib.EpsilonGreedy(3, 4, epsilon=0.0, seed=5), banditlib.Greedy(3, 4, seed=5)
    for _ in range(10):
        x = rng.normal(size=(3, 3))
        s1, s2 = eg.select(x), g.select(x)
        assert torch.equal(s1.actions, s2.actions)
        r = rng.normal(size=(3, 1))
        eg.update(x, s1.actions, r)
        g.update(x, s2.actions, r)


def test_random_subsets_are_uniform_and_respect_masks() -> None:
    policy = banditlib.Random(2, seed=7)
    x = np.zeros((6000, 5, 2))
    mask = np.ones((6000, 5), dtype=bool)
    mask[:, 4] = False
    sel = policy.select(x, k=2, mask=mask)
    pairs = np.sort(sel.actions.numpy(), axis=1)
    codes = pairs[:, 0] * 5 + pairs[:, 1]
    counts = np.unique(codes, return_counts=True)[1]
    assert len(counts) == 6 and stats.chisquare(counts).pvalue > 1e-4  # C(4, 2) subsets, uniform
    assert not (sel.actions == 4).any()


def test_random_update_validates_but_learns_nothing() -> None:
    policy = banditlib.Random(2, 3, seed=0)
    before = policy.state_dict()
    policy.update(np.ones((2, 2)), [[0], [1]], [[1.0], [2.0]])
    policy.update(np.ones((1, 2)), [[0]], [[1.0]])
    assert all(torch.equal(v, policy.state_dict()[k]) for k, v in before.items())
