"""Each environment computes the rewards its docstring and its source paper say it does."""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

import banditlib.envs  # noqa: F401
from banditlib.envs.base import sample_ball, sample_sphere
from banditlib.envs.classification import load_dataset
from banditlib.errors import InvalidInputError


def _steps(env: Any, n: int, seed: int = 0, action: int = 0) -> list[tuple[Any, ...]]:
    """``(observation seen, reward, info)`` for ``n`` rounds."""
    obs, _ = env.reset(seed=seed)
    out = []
    for _ in range(n):
        nxt, reward, _, _, info = env.step(action)
        out.append((obs, float(reward), info))
        obs = nxt
    return out


def test_samplers_cover_the_sphere_and_the_ball() -> None:
    rng = np.random.default_rng(0)
    on = sample_sphere(rng, (4000,), 5)
    np.testing.assert_allclose(np.linalg.norm(on, axis=1), 1.0, atol=1e-12)
    assert np.abs(on.mean(axis=0)).max() < 0.05
    inside = np.linalg.norm(sample_ball(rng, (20000,), 20), axis=1)
    assert inside.max() <= 1.0 + 1e-12
    # Radius of a uniform point of the d-ball has density d r^(d-1): mean d / (d + 1), P(r < 0.9) = 0.9^d.
    assert inside.mean() == pytest.approx(20 / 21, abs=3e-3)
    assert (inside < 0.9).mean() == pytest.approx(0.9**20, abs=0.02)


def test_linear_rewards_are_linear_with_the_documented_noise() -> None:
    env = gym.make("banditlib/Linear-v0", d=4, K=3, noise=0.3, norm=2.0).unwrapped
    rounds = _steps(env, 3000)
    theta = env.theta_star
    assert np.linalg.norm(theta) == pytest.approx(2.0)
    for obs, _, info in rounds[:50]:
        np.testing.assert_allclose(np.linalg.norm(obs, axis=1), 1.0, atol=1e-12)
        np.testing.assert_allclose(info["expected_rewards"], obs @ theta, atol=1e-12)
    noise = np.array([r - info["expected_rewards"][0] for _, r, info in rounds])
    assert abs(noise.mean()) < 0.03 and noise.std() == pytest.approx(0.3, rel=0.08)
    model = env.linear_model()
    assert model is not None and model.noise_std == 0.3 and model.context_bound == 1.0
    assert model.norm == pytest.approx(2.0) and np.array_equal(model.theta, theta)


def test_drifting_parameter_turns_once_per_period() -> None:
    env = gym.make("banditlib/Drifting-v0", d=5, K=4, period=8).unwrapped
    env.reset(seed=3)
    thetas = [env.theta_star.copy()]
    for _ in range(8):
        obs = env._obs
        info = env.step(0)[-1]
        np.testing.assert_allclose(info["expected_rewards"], obs @ thetas[-1], atol=1e-12)
        thetas.append(env.theta_star.copy())
    np.testing.assert_allclose([np.linalg.norm(t) for t in thetas], 1.0, atol=1e-12)
    np.testing.assert_allclose(thetas[4], -thetas[0], atol=1e-12)  # half a turn
    np.testing.assert_allclose(thetas[8], thetas[0], atol=1e-12)  # a full turn
    assert abs(thetas[2] @ thetas[0]) < 1e-12  # a quarter turn is orthogonal
    assert env.linear_model() is None


@pytest.mark.parametrize("support", ["ball", "sphere"])
def test_neuralucb_functions_match_the_paper(support: str) -> None:
    envs = {
        name: gym.make(f"banditlib/{name}-v0", support=support, instance_seed=5).unwrapped
        for name in ("Quadratic", "QuadraticForm", "Cosine")
    }
    a, A = envs["Quadratic"].a, envs["Quadratic"].A
    assert A.shape == (20, 20) and a.shape == (20,)
    assert np.linalg.norm(a) <= 1.0 + 1e-12
    if support == "sphere":
        assert np.linalg.norm(a) == pytest.approx(1.0)
    h = {
        "Quadratic": lambda x: 10.0 * (x @ a) ** 2,
        "QuadraticForm": lambda x: np.einsum("ki,ji,jl,kl->k", x, A, A, x),  # x^T A^T A x per arm
        "Cosine": lambda x: np.cos(3.0 * (x @ a)),
    }
    for name, env in envs.items():
        assert env.observation_space.shape == (4, 20) and env.action_space.n == 4
        for obs, _, info in _steps(env, 30, seed=2):
            norms = np.linalg.norm(obs, axis=1)
            assert norms.max() <= 1.0 + 1e-12
            if support == "sphere":
                np.testing.assert_allclose(norms, 1.0, atol=1e-12)
            np.testing.assert_allclose(info["expected_rewards"], h[name](obs), rtol=1e-10, atol=1e-12)


def test_neuralucb_noise_is_standard_normal() -> None:
    env = gym.make("banditlib/Cosine-v0").unwrapped
    noise = np.array([r - info["expected_rewards"][0] for _, r, info in _steps(env, 3000)])
    assert abs(noise.mean()) < 0.07 and noise.std() == pytest.approx(1.0, rel=0.06)


@pytest.mark.parametrize(
    "x,best,mu_best",
    [
        ((0.1, 0.2), 0, 1.2),  # inner disc: the safe arm
        ((0.6, 0.6), 1, 50.0),  # x1 > 0, x2 > 0
        ((0.6, -0.6), 2, 50.0),  # x1 > 0, x2 <= 0
        ((-0.6, 0.6), 3, 50.0),  # x1 <= 0, x2 > 0
        ((-0.6, -0.6), 4, 50.0),  # x1 <= 0, x2 <= 0
        ((0.0, -0.8), 4, 50.0),  # on an axis: x1 <= 0
    ],
)
def test_wheel_means_follow_the_published_rule(x: tuple[float, float], best: int, mu_best: float) -> None:
    env = gym.make("banditlib/Wheel-v0", delta=0.5).unwrapped
    mu = env.means(np.array(x))
    assert int(np.argmax(mu)) == best and mu[best] == mu_best
    others = np.delete(mu, [0, best]) if best else mu[1:]
    np.testing.assert_array_equal(others, 1.0)
    assert mu[0] == 1.2


def test_wheel_contexts_fill_the_disc_and_the_outer_region_has_probability_one_minus_delta_squared() -> None:
    env = gym.make("banditlib/Wheel-v0", delta=0.7).unwrapped
    rounds = _steps(env, 4000)
    radius = np.array([np.hypot(*obs) for obs, _, _ in rounds])
    assert radius.max() <= 1.0
    outer = np.array([info["optimal_action"] != 0 for _, _, info in rounds])
    np.testing.assert_array_equal(outer, radius >= 0.7)
    assert outer.mean() == pytest.approx(1 - 0.7**2, abs=0.03)
    noise = np.array([r - info["expected_rewards"][0] for _, r, info in rounds])
    assert noise.std() == pytest.approx(0.01, rel=0.08)


@pytest.mark.parametrize(
    "dataset,n,d,K",
    [("digits", 1797, 64, 10), ("wine", 178, 13, 3), ("breast_cancer", 569, 30, 2), ("iris", 150, 4, 3)],
)
def test_classification_datasets_load_from_the_installed_package(dataset: str, n: int, d: int, K: int) -> None:
    X, y = load_dataset(dataset)
    assert X.shape == (n, d) and y.shape == (n,) and set(np.unique(y)) == set(range(K))
    np.testing.assert_allclose(np.linalg.norm(X, axis=1), 1.0, atol=1e-12)
    raw, _ = load_dataset(dataset, standardize=False)
    np.testing.assert_allclose(np.linalg.norm(raw, axis=1), 1.0, atol=1e-12)


def test_classification_encodings_and_rewards() -> None:
    blocks = gym.make("banditlib/Classification-v0", dataset="wine").unwrapped
    shared = gym.make("banditlib/Classification-v0", dataset="wine", encoding="shared").unwrapped
    assert blocks.observation_space.shape == (3, 39) and shared.observation_space.shape == (13,)
    X, y = load_dataset("wine")
    for (ob, rb, ib), (os_, rs, is_) in zip(_steps(blocks, 40, action=1), _steps(shared, 40, action=1), strict=True):
        np.testing.assert_array_equal(ob.reshape(3, 3, 13)[[0, 1, 2], [0, 1, 2]], np.tile(os_, (3, 1)))
        assert np.count_nonzero(ob) == 3 * np.count_nonzero(os_)  # zeros outside the diagonal blocks
        i = int(np.flatnonzero(np.equal(X, os_).all(axis=1))[0])
        expected = np.eye(3)[y[i]]
        np.testing.assert_array_equal(ib["expected_rewards"], expected)
        np.testing.assert_array_equal(is_["expected_rewards"], expected)
        assert rb == rs == expected[1]  # noise-free: reward 1 exactly for the right class
        assert ib["optimal_action"] == y[i]


@pytest.mark.parametrize(
    "env_id,kwargs,match",
    [
        ("Linear-v0", {"d": 0}, "`d` must be an integer >= 1"),
        ("Linear-v0", {"K": 1}, "`K` must be an integer >= 2"),
        ("Linear-v0", {"noise": -1.0}, "`noise`"),
        ("Linear-v0", {"norm": 0.0}, "`norm`"),
        ("Drifting-v0", {"period": 0}, "`period`"),
        ("Drifting-v0", {"d": 1}, "`d` must be an integer >= 2"),
        ("Cosine-v0", {"support": "cube"}, "`support` must be one of"),
        ("Quadratic-v0", {"noise": math.nan}, "`noise`"),
        ("Wheel-v0", {"delta": 1.0}, "`delta`"),
        ("Wheel-v0", {"std": -0.1}, "`std`"),
        ("Classification-v0", {"dataset": "mnist"}, "`dataset` must be one of"),
        ("Classification-v0", {"encoding": "onehot"}, "`encoding` must be one of"),
        ("Classification-v0", {"standardize": "yes"}, "`standardize`"),
    ],
)
def test_bad_constructor_arguments_raise_invalid_input(env_id: str, kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        gym.make(f"banditlib/{env_id}", **kwargs)
