"""Policy and environment names: parsing, every registered class reachable, clear errors."""

from __future__ import annotations

import gymnasium as gym
import pytest

from banditlib.envs import env_ids
from banditlib.errors import InvalidInputError
from banditlib.experiments.specs import _split, arm_model, available_policies, parse_env, parse_policy
from banditlib.policies.base import registered_policies


@pytest.mark.parametrize("name", sorted(registered_policies()))
def test_every_registered_policy_is_addressable_by_lowercase_name(name: str) -> None:
    spec = parse_policy(name.lower())
    assert spec.cls is registered_policies()[name] and spec.label == name and spec.kwargs == {}
    policy = spec.build(3, None, seed=1)
    assert policy.dim == 3 and policy.seed == 1
    assert spec.build(3, 4, seed=1).arms == 4


def test_available_policies_lists_every_registered_class() -> None:
    assert set(available_policies()) == {n.lower() for n in registered_policies()}


def test_hyperparameters_are_python_literals() -> None:
    spec = parse_policy("LinUCB: alpha=0.5, reg=2, forget=1, backend=torch, dtype='float64'")
    assert spec.kwargs == {"alpha": 0.5, "reg": 2, "forget": 1, "backend": "torch", "dtype": "float64"}
    assert spec.label == "LinUCB(alpha=0.5,reg=2,forget=1,backend='torch',dtype='float64')"
    policy = spec.build(4, None, seed=0)
    assert policy.alpha == 0.5 and policy.reg == 2.0


def test_values_may_be_tuples_and_quoted_strings_with_commas() -> None:
    assert _split("x:hidden=(64,64), name='a,b', l=[1, 2], f={1: 2}", "w()", "policy") == (
        "x",
        {"hidden": (64, 64), "name": "a,b", "l": [1, 2], "f": "{1: 2}"},  # a dict is not a plain literal: text
    )


@pytest.mark.parametrize(
    "text,match",
    [
        ("nosuchpolicy", r"unknown policy 'nosuchpolicy'; available: .*linucb"),
        ("linucb:alpah=1", r"LinUCB has no hyperparameter `alpah`; valid: alpha, reg"),
        ("linucb:seed=3", r"`seed` \(set by the runner\)"),
        ("linucb:alpha=-1", r"bad hyperparameter for LinUCB in 'linucb:alpha=-1': .*`alpha`"),
        ("lints:scale=abc", r"bad hyperparameter for LinTS.*`scale`"),
        ("linucb:alpha", r"key=value"),
        ("linucb:alpha=1,alpha=2", r"`alpha` is given twice"),
        ("", r"non-empty"),
    ],
)
def test_bad_policy_specs_name_the_problem(text: str, match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        parse_policy(text)


@pytest.mark.parametrize("env_id", env_ids())
def test_every_env_parses_with_and_without_namespace(env_id: str) -> None:
    short = env_id.removeprefix("banditlib/")
    assert parse_env(short) == parse_env(env_id)
    assert parse_env(short).label == short


def test_env_arguments_and_labels() -> None:
    spec = parse_env("Cosine-v0:d=3,K=2,support=sphere")
    assert spec.kwargs == {"d": 3, "K": 2, "support": "sphere"}
    assert spec.label == "Cosine-v0(d=3,K=2,support='sphere')"
    env = spec.make()
    assert env.observation_space.shape == (2, 3)


@pytest.mark.parametrize(
    "text,match",
    [
        ("Nope-v0", r"unknown environment 'Nope-v0'; available: .*Linear-v0"),
        ("Linear-v0:dim=3", r"banditlib/Linear-v0 has no argument `dim`; valid: d, K, noise"),
        ("Linear-v0:d=0", r"bad argument for banditlib/Linear-v0 .*`d` must be"),
        ("Linear-v0:render_mode=human", r"no argument `render_mode`"),
    ],
)
def test_bad_env_specs_name_the_problem(text: str, match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        parse_env(text)


@pytest.mark.parametrize("env_id", env_ids())
def test_arm_model_follows_the_observation_shape(env_id: str) -> None:
    env = gym.make(env_id)
    dim, arms = arm_model(env)
    shape = env.observation_space.shape
    if len(shape) == 2:
        assert (dim, arms) == (shape[1], None) and shape[0] == env.action_space.n
    else:
        assert (dim, arms) == (shape[0], env.action_space.n)


def test_arm_model_rejects_non_bandit_spaces() -> None:
    env = gym.make("CartPole-v1")
    with pytest.raises(InvalidInputError, match="Discrete"):
        arm_model(gym.make("Pendulum-v1"))
    assert arm_model(env) == (4, 2)  # a (d,) observation with K actions reads as the disjoint model
