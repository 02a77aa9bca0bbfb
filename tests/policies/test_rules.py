"""Rules over estimators (banditlib.policies.rules) and the derived constructors (banditlib.policies._params)."""

from __future__ import annotations

import inspect
import pathlib
import re
import sys
import types
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch

import banditlib
from banditlib.policies import _state
from banditlib.policies.base import Policy
from banditlib.testing.checks import ALL_CHECKS, NUM_ARMS


@pytest.fixture(scope="module")
def documented() -> Iterator[dict[str, Any]]:
    """The classes of docs/concepts.md "Writing your own policy", as the page defines them (its code runs here),
    taken out of the registry afterwards so that no other test sees them."""
    page = (pathlib.Path(__file__).resolve().parents[2] / "docs" / "concepts.md").read_text()
    block = next(b for b in re.findall(r"```python\n(.*?)```", page, flags=re.S) if "class BayesUCBRule" in b)
    module = types.ModuleType("_docs_concepts")  # a module pickle can import the classes from
    sys.modules[module.__name__] = module
    try:
        exec(compile(block, "docs/concepts.md", "exec"), module.__dict__)
        yield module.__dict__
    finally:
        del sys.modules[module.__name__]
        for name in ("LinBayesUCB", "NeuralBayesUCB"):
            _state._REGISTRY.pop(name, None)


@pytest.mark.parametrize("arms", [None, NUM_ARMS], ids=["shared", "disjoint"])
@pytest.mark.parametrize("check", ALL_CHECKS, ids=lambda c: c.__name__.removeprefix("check_"))
@pytest.mark.parametrize("name", ["LinBayesUCB", "NeuralBayesUCB"])
def test_the_documented_rule_passes_the_common_checks(
    documented: dict[str, Any], name: str, check: Any, arms: int | None
) -> None:
    cls = documented[name]
    check(lambda *, dim, arms, seed, dtype: cls(dim, arms, seed=seed, dtype=dtype), arms)


def test_signatures_and_config_come_from_the_declarations() -> None:
    sig = inspect.signature(banditlib.NeuralUCB)
    assert list(sig.parameters)[:4] == ["dim", "arms", "gamma", "z"]  # the UCB rule's alpha, renamed
    assert "alpha" not in sig.parameters and sig.parameters["gamma"].default == 1.0
    assert sig.parameters["arms"].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
    assert sig.parameters["reg"].kind is inspect.Parameter.KEYWORD_ONLY
    policy = banditlib.NeuralUCB(3, hidden=[4, 4], gamma=0.3, seed=0)
    assert policy.gamma == 0.3 and policy.hidden == (4, 4) and policy.config["hidden"] == [4, 4]
    assert policy.config["gamma"] == 0.3 and "alpha" not in policy.config
    assert set(inspect.signature(banditlib.LinTS).parameters) >= {"scale", "reg", "forget", "seed", "backend"}


def test_bad_calls_fail_as_python_calls_do() -> None:
    with pytest.raises(TypeError, match="alfa"):
        banditlib.LinUCB(3, alfa=1.0)
    with pytest.raises(TypeError, match="dim"):
        banditlib.LinUCB()
    with pytest.raises(TypeError):
        banditlib.LinUCB(3, 2, 1.0)  # everything after arms is keyword-only
    with pytest.raises(banditlib.InvalidInputError, match=r"NeuralTS\(\): `nu` must be a finite number"):
        banditlib.NeuralTS(3, nu=-1.0)
    with pytest.raises(banditlib.InvalidInputError, match=r"`z` must be 'diag' or 'last_layer'; got 'full'"):
        banditlib.NeuralUCB(3, z="full")


def test_building_blocks_are_not_policies() -> None:
    registered = set(banditlib.policies.base.registered_policies())
    blocks = {"UCBRule", "ThompsonRule", "GreedyRule", "EpsilonGreedyRule", "RidgeEstimator", "GradientEstimator"}
    assert not registered & blocks
    assert "__init__" not in banditlib.policies.RidgeEstimator.__dict__


def test_rules_over_one_estimator_agree_where_they_should() -> None:
    """Greedy is UCB with alpha = 0 and epsilon-greedy with epsilon = 0, over the ridge and the gradient
    estimators alike: the same decisions, bit for bit, since each ranks the same posterior mean."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, 6, 3, generator=g)
    rewards = torch.rand(40, 2, generator=g)
    pairs: list[tuple[Policy, Policy]] = [
        (banditlib.LinUCB(3, alpha=0.0, seed=1), banditlib.Greedy(3, seed=1)),
        (banditlib.EpsilonGreedy(3, epsilon=0.0, seed=1), banditlib.Greedy(3, seed=1)),
        (
            banditlib.NeuralEpsilonGreedy(3, hidden=(8,), epsilon=0.0, train_every=5, train_steps=3, seed=1),
            banditlib.NeuralUCB(3, hidden=(8,), gamma=0.0, train_every=5, train_steps=3, seed=1),
        ),
    ]
    for a, b in pairs:
        for t in range(0, 40, 4):
            sa, sb = a.select(x[t : t + 4], k=2), b.select(x[t : t + 4], k=2)
            assert torch.equal(sa.actions, sb.actions) and torch.equal(sa.mean, sb.mean)
            a.update(x[t : t + 4], sa.actions, rewards[t : t + 4])
            b.update(x[t : t + 4], sb.actions, rewards[t : t + 4])


def test_neural_epsilon_greedy_explores_at_its_rate() -> None:
    policy = banditlib.NeuralEpsilonGreedy(3, 5, hidden=(8,), epsilon=0.3, seed=2)
    sel = policy.select(np.random.default_rng(0).normal(size=(2000, 3)))
    explored = (sel.bonus != 0).any(dim=1).double().mean()
    assert abs(float(explored) - 0.3) < 0.04
    greedy_rows = ~(sel.bonus != 0).any(dim=1)
    assert torch.allclose(sel.propensity[greedy_rows], torch.tensor(0.7 + 0.3 / 5, dtype=torch.float64))


def test_predict_is_the_posterior_the_rules_use() -> None:
    policy = banditlib.LinUCB(2, 3, alpha=2.0, reg=2.0, seed=0)
    policy.update(torch.tensor([[1.0, 0.0]]), torch.tensor([[1]]), torch.tensor([[1.0]]))
    pred = policy.predict(torch.tensor([[1.0, 0.0]]))
    # arm 1: A = 2 I + e1 e1^T, so x^T A^-1 x = 1/3 and theta = (1/3, 0); the other arms are at the prior
    torch.testing.assert_close(pred.var, torch.tensor([[0.5, 1.0 / 3.0, 0.5]]))
    torch.testing.assert_close(pred.mean, torch.tensor([[0.0, 1.0 / 3.0, 0.0]]))
    with pytest.raises(NotImplementedError, match="no posterior"):
        banditlib.Random(2, 3).predict(torch.zeros(1, 2))
    with pytest.raises(banditlib.InvalidInputError, match=r"LinUCB.predict\(\): "):
        policy.predict(torch.zeros(1, 3))
