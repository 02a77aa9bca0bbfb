"""The gymnasium contract, over every registered banditlib environment: check_env, seeding, bad actions, info."""

from __future__ import annotations

import warnings
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.error import InvalidAction, ResetNeeded
from gymnasium.utils.env_checker import check_env

import banditlib.envs
from banditlib.envs import env_ids

IDS = env_ids()

# Non-default settings that change the observation's shape or the sampling code path.
DATASETS = [
    ("banditlib/Classification-v0", {"dataset": ds, "encoding": enc})
    for ds in ("wine", "breast_cancer", "iris")
    for enc in ("disjoint", "shared")
]
VARIANTS: list[tuple[str, dict[str, Any]]] = [
    *DATASETS,
    ("banditlib/Classification-v0", {"encoding": "shared"}),
    ("banditlib/Cosine-v0", {"support": "sphere", "d": 3, "K": 2}),
    ("banditlib/Wheel-v0", {"delta": 0.5}),
    ("banditlib/Drifting-v0", {"d": 2, "K": 2, "period": 3}),
    ("banditlib/Linear-v0", {"d": 1, "K": 2, "instance_seed": 4}),
]


def test_the_issue_environments_are_registered() -> None:
    names = {i.removeprefix("banditlib/") for i in IDS}
    assert {
        "Linear-v0",
        "Quadratic-v0",
        "QuadraticForm-v0",
        "Cosine-v0",
        "Wheel-v0",
        "Classification-v0",
        "Drifting-v0",
    } <= names
    assert set(banditlib.envs.ENVS) <= set(IDS)


@pytest.mark.parametrize("env_id", IDS)
def test_check_env_passes_without_warnings(env_id: str) -> None:
    env = gym.make(env_id)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env.unwrapped)


@pytest.mark.parametrize("env_id,kwargs", VARIANTS, ids=[f"{i}-{k}" for i, k in VARIANTS])
def test_check_env_passes_for_variants(env_id: str, kwargs: dict[str, Any]) -> None:
    env = gym.make(env_id, **kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env.unwrapped)


def _rollout(env: Any, seed: int, actions: list[int]) -> list[Any]:
    obs, _ = env.reset(seed=seed)
    trace = [obs]
    for a in actions:
        obs, reward, terminated, truncated, info = env.step(a)
        assert not terminated and not truncated
        trace += [obs, reward, info["expected_rewards"], info["optimal_action"], info["regret"]]
    return trace


def _same(a: list[Any], b: list[Any]) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("env_id", IDS)
def test_seeding_is_reproducible_and_seeds_differ(env_id: str) -> None:
    actions = [0, 1, 1, 0, 1, 0, 0, 1]
    first = _rollout(gym.make(env_id), 7, actions)
    assert _same(first, _rollout(gym.make(env_id), 7, actions))
    assert not _same(first, _rollout(gym.make(env_id), 8, actions))


@pytest.mark.parametrize("env_id", IDS)
def test_rounds_do_not_depend_on_the_actions(env_id: str) -> None:
    # Common random numbers: for a seed, every policy faces the same contexts and the same noise draws.
    def play(action: int) -> tuple[list[np.ndarray], list[float]]:
        env = gym.make(env_id)
        obs, _ = env.reset(seed=3)
        seen, noise = [obs], []
        for _ in range(6):
            obs, reward, _, _, info = env.step(action)
            seen.append(obs)
            noise.append(float(reward) - info["expected_rewards"][action])
        return seen, noise

    obs_a, noise_a = play(0)
    obs_b, noise_b = play(1)
    assert all(np.array_equal(x, y) for x, y in zip(obs_a, obs_b, strict=True))
    assert noise_a == pytest.approx(noise_b, abs=1e-12)


@pytest.mark.parametrize("env_id", IDS)
def test_info_describes_the_round_just_played(env_id: str) -> None:
    env = gym.make(env_id)
    obs, _ = env.reset(seed=0)
    K = env.action_space.n
    for t in range(20):
        assert obs in env.observation_space
        a = t % K
        obs, reward, _, _, info = env.step(a)
        mu = info["expected_rewards"]
        assert mu.shape == (K,) and mu.dtype == np.float64
        assert info["optimal_action"] == int(np.argmax(mu))
        assert info["regret"] == pytest.approx(mu.max() - mu[a])
        assert np.isfinite(float(reward))


@pytest.mark.parametrize("env_id", IDS)
@pytest.mark.parametrize("action", [-1, 99, 1.0, "0", True, None, np.array([0])], ids=repr)
def test_bad_actions_raise_gymnasium_invalid_action(env_id: str, action: Any) -> None:
    env = gym.make(env_id).unwrapped
    env.reset(seed=0)
    with pytest.raises(InvalidAction, match=r"step\(\): `action`"):
        env.step(action)


@pytest.mark.parametrize("action", [np.int64(1), np.int32(1), np.array(1)], ids=repr)
def test_numpy_integer_actions_are_accepted(action: Any) -> None:
    env = gym.make("banditlib/Linear-v0", K=3).unwrapped
    env.reset(seed=0)
    assert env.step(action)[-1]["regret"] >= 0


def test_step_before_reset_raises_reset_needed() -> None:
    with pytest.raises(ResetNeeded):
        gym.make("banditlib/Linear-v0").unwrapped.step(0)
    with pytest.raises(ResetNeeded):
        gym.make("banditlib/Linear-v0").step(0)


def test_instance_seed_fixes_the_instance_and_reset_without_seed_keeps_it() -> None:
    env = gym.make("banditlib/Linear-v0", instance_seed=11).unwrapped
    env.reset(seed=0)
    theta = env.theta_star.copy()
    env.reset(seed=1)
    assert np.array_equal(theta, env.theta_star)
    free = gym.make("banditlib/Linear-v0").unwrapped
    free.reset(seed=0)
    theta0 = free.theta_star.copy()
    free.reset()
    assert np.array_equal(theta0, free.theta_star)  # same instance, the stream goes on
    free.reset(seed=1)
    assert not np.array_equal(theta0, free.theta_star)  # a new seed draws a new instance


def test_max_episode_steps_truncates() -> None:
    env = gym.make("banditlib/Wheel-v0", max_episode_steps=3)
    env.reset(seed=0)
    flags = [env.step(0)[3] for _ in range(3)]
    assert flags == [False, False, True]
