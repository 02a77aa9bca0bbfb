"""Selection.propensity: exact rules against hand-computed values, Thompson sampling against quadrature."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats

import banditlib
from banditlib.errors import StateError
from banditlib.policies import _propensity
from banditlib.policies.base import Selection


def test_argmax_inclusion_shares_tied_places() -> None:
    scores = torch.tensor([[3.0, 2.0, 2.0, 1.0], [1.0, 1.0, 1.0, -math.inf], [5.0, 4.0, 3.0, 2.0]])
    assert _propensity.argmax_inclusion(scores, 1).tolist() == [[1, 0, 0, 0], [1 / 3, 1 / 3, 1 / 3, 0], [1, 0, 0, 0]]
    assert _propensity.argmax_inclusion(scores, 2).tolist() == [
        [1, 0.5, 0.5, 0], [2 / 3, 2 / 3, 2 / 3, 0], [1, 1, 0, 0]
    ]  # fmt: skip
    assert _propensity.argmax_inclusion(scores, 3)[0].tolist() == [1, 1, 1, 0]


def test_untrained_argmax_policy_ties_everywhere() -> None:
    policy = banditlib.LinUCB(dim=2, seed=0)
    sel = policy.select(torch.ones(2, 4, 2), k=2, mask=torch.tensor([[True] * 4, [True, True, True, False]]))
    assert torch.allclose(sel.propensity, torch.tensor([[0.5, 0.5], [2 / 3, 2 / 3]], dtype=torch.float64))


def test_epsilon_greedy_is_exact_with_masks() -> None:
    policy = banditlib.EpsilonGreedy(dim=2, arms=4, epsilon=0.2, seed=1)
    policy.update(torch.ones(1, 2), torch.tensor([[3]]), torch.tensor([[1.0]]))
    x = torch.ones(2, 2)
    mask = torch.tensor([[True] * 4, [True, False, True, False]])
    sel = policy.select(x, mask=mask)
    want = {(0, 3): 0.2 / 4 + 0.8, (1, 0): 0.2 / 2 + 0.8 / 2, (1, 2): 0.2 / 2 + 0.8 / 2}  # row 1 greedy tie 0/2
    for b in range(2):
        a = int(sel.actions[b, 0])
        assert sel.propensity[b, 0].item() == pytest.approx(want.get((b, a), 0.2 / (4 if b == 0 else 2)))
    sel2 = policy.select(x, k=2)
    assert sel2.propensity[0].tolist() == pytest.approx(
        [0.2 * 2 / 4 + 0.8 * (int(a) == 3 or 1 / 3) for a in sel2.actions[0]]
    )


def _independent_gaussian_argmax(mu: np.ndarray, sd: np.ndarray, a: int) -> float:
    """P(a has the largest of independent N(mu_b, sd_b^2) draws), by quadrature in float64."""

    def integrand(z: float) -> float:
        value = stats.norm.pdf(z)
        for b in range(len(mu)):
            if b != a:
                value *= stats.norm.cdf((mu[a] + sd[a] * z - mu[b]) / sd[b])
        return float(value)

    return float(integrate.quad(integrand, -12, 12, epsabs=1e-12)[0])


def test_thompson_sampling_estimate_agrees_with_quadrature() -> None:
    policy = banditlib.LinTS(dim=3, arms=4, seed=4, dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(30, 3, generator=g, dtype=torch.float64)
    policy.update(x, torch.randint(0, 4, (30, 1), generator=g), torch.randn(30, 1, generator=g, dtype=torch.float64))
    ctx = torch.randn(6, 3, generator=g, dtype=torch.float64)
    sel = policy.select(ctx)
    mu, var = policy._mean_var(ctx)
    sd = policy.scale * var.sqrt()
    S = _propensity.SAMPLES
    for b in range(6):
        a = int(sel.actions[b, 0])
        exact = _independent_gaussian_argmax(mu[b].numpy(), sd[b].numpy(), a)
        got = float(sel.propensity[b, 0])
        assert got >= 1 / (S + 1)
        assert abs(got - exact) <= 5 * math.sqrt(exact * (1 - exact) / S) + 1 / (S + 1), (b, got, exact)


@pytest.mark.parametrize("cls", [banditlib.LinTS, banditlib.NeuralTS, banditlib.NeuralLinTS])
@pytest.mark.parametrize("arms", [None, 3])
def test_thompson_sampling_estimate_is_deterministic_and_leaves_decisions(cls: type, arms: int | None) -> None:
    kwargs = {} if cls is banditlib.LinTS else {"hidden": (8,)}
    policy = cls(dim=2, arms=arms, seed=5, **kwargs)
    twin = copy.deepcopy(policy)
    x = torch.randn(4, 3, 2) if arms is None else torch.randn(4, 2)
    sel, other = policy.select(x, k=2), twin.select(x, k=2)
    assert torch.equal(sel.propensity, other.propensity) and sel.propensity is sel.propensity  # computed once
    assert torch.equal(policy.select(x).actions, twin.select(x).actions)
    assert bool((sel.propensity >= 1 / (_propensity.SAMPLES + 1)).all())


def test_zero_scale_thompson_sampling_is_the_argmax_rule() -> None:
    policy = banditlib.LinTS(dim=2, scale=0.0, seed=0)
    assert policy.select(torch.ones(1, 4, 2)).propensity.item() == 0.25


def test_propensity_rules_of_the_policies() -> None:
    rules = {name: cls.propensity_rule for name, cls in banditlib.policies.base.registered_policies().items()}
    assert rules["LinUCB"] == rules["Greedy"] == rules["NeuralUCB"] == rules["NeuralLinUCB"] == rules["EENet"]
    assert rules["LinUCB"] == "argmax" and rules["Random"] == "uniform" and rules["EpsilonGreedy"] == "epsilon"
    assert rules["LinTS"] == rules["NeuralTS"] == rules["NeuralLinTS"] == "gaussian"


def test_a_selection_made_by_hand_or_by_an_undeclared_policy_raises() -> None:
    t = torch.zeros(1, 1, dtype=torch.long)
    with pytest.raises(StateError, match="constructed directly"):
        _ = Selection(actions=t, scores=torch.zeros(1, 2), mean=torch.zeros(1, 2), bonus=torch.zeros(1, 2)).propensity

    class _Mine(banditlib.LinUCB):
        propensity_rule = None

    sel = _Mine(dim=2, seed=0).select(torch.ones(1, 3, 2))
    with pytest.raises(StateError, match="_Mine does not say"):
        _ = sel.propensity


def test_epsilon_changed_after_construction_counts() -> None:
    policy = banditlib.EpsilonGreedy(dim=2, arms=4, epsilon=0.0, seed=0)
    policy.epsilon = 1.0  # now every row explores: uniform
    assert policy.select(torch.ones(3, 2)).propensity.tolist() == [[0.25]] * 3
