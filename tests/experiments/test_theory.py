"""Theory checks: the formulas against hand computations, the lemma on random data, coverage on Linear-v0."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from banditlib.errors import InvalidInputError
from banditlib.experiments import theory
from banditlib.experiments.runner import Task, run_task
from banditlib.experiments.specs import parse_env, parse_policy


def test_confidence_radius_matches_the_formula() -> None:
    # beta = R sqrt(2 log(det(V)^1/2 det(lambda I)^-1/2 / delta)) + sqrt(lambda) S, written out by hand.
    d, lam, R, S, delta = 3, 2.0, 0.5, 1.5, 0.1
    V = np.diag([2.0, 5.0, 9.0])
    logdet = math.log(np.linalg.det(V))
    by_hand = R * math.sqrt(2 * math.log(math.sqrt(np.linalg.det(V)) / math.sqrt(lam**d) / delta)) + math.sqrt(lam) * S
    assert float(theory.confidence_radius(logdet, d, lam, R, S, delta)) == pytest.approx(by_hand, rel=1e-12)
    at_start = float(theory.confidence_radius(d * math.log(lam), d, lam, R, S, delta))
    assert at_start == pytest.approx(R * math.sqrt(2 * math.log(1 / delta)) + math.sqrt(lam) * S, rel=1e-12)
    radii = theory.confidence_radius(np.array([3.0, 4.0, 8.0]), d, lam, R, S, delta)
    assert radii.shape == (3,) and np.all(np.diff(radii) > 0)


def test_oful_bound_matches_theorem_3() -> None:
    T, d, lam, R, S, L, delta = 5000, 8, 1.0, 0.5, 1.0, 1.0, 0.05
    by_hand = (
        4
        * math.sqrt(T * d * math.log(lam + T * L**2 / d))
        * (math.sqrt(lam) * S + R * math.sqrt(2 * math.log(1 / delta) + d * math.log(1 + T * L**2 / (lam * d))))
    )
    assert float(theory.oful_regret_bound(T, d, lam, R, S, L, delta)) == pytest.approx(by_hand, rel=1e-12)
    curve = theory.oful_regret_bound(np.arange(1, 101), d, lam, R, S, L, delta)
    assert curve.shape == (100,) and np.all(np.diff(curve) > 0)
    # Sublinear: the bound's own growth exponent is about 1/2 (times logarithms).
    t = np.array([1e6, 1e7])
    b = theory.oful_regret_bound(t, d, lam, R, S, L, delta)
    assert 0.5 < math.log(b[1] / b[0]) / math.log(10) < 0.65


@settings(max_examples=40, deadline=None)
@given(
    T=st.integers(1, 60),
    d=st.integers(1, 6),
    reg=st.floats(0.05, 20.0),
    scale=st.floats(0.01, 30.0),
    seed=st.integers(0, 2**32 - 1),
)
def test_elliptical_potential_lemma_holds_on_random_data(T: int, d: int, reg: float, scale: float, seed: int) -> None:
    x = scale * np.random.default_rng(seed).normal(size=(T, d))
    p = theory.elliptical_potential(x, reg)
    assert p.holds
    assert p.total <= p.bound * (1 + 1e-9) + 1e-9
    # The right side is exactly 2 sum log(1 + u_t) (matrix determinant lemma): two computations agree.
    assert p.bound == pytest.approx(2 * np.log1p(p.terms).sum(), rel=1e-7, abs=1e-7)


def test_elliptical_potential_terms_equal_direct_solves() -> None:
    rng = np.random.default_rng(1)
    x, reg = rng.normal(size=(25, 4)), 0.7
    p = theory.elliptical_potential(x, reg)
    V = reg * np.eye(4)
    for t in range(25):
        assert p.terms[t] == pytest.approx(x[t] @ np.linalg.solve(V, x[t]), rel=1e-10)
        V += np.outer(x[t], x[t])
    assert p.total == pytest.approx(np.minimum(1, p.terms).sum())


def test_coverage_matches_a_direct_ridge_computation() -> None:
    rng = np.random.default_rng(2)
    T, d, reg = 30, 3, 1.3
    x = rng.normal(size=(T, d))
    theta = np.array([0.3, -0.2, 0.9])
    y = x @ theta + 0.2 * rng.normal(size=T)
    cov = theory.confidence_coverage(x, y, theta, reg=reg, noise=0.2, delta=0.1)
    for t in range(T):
        V = reg * np.eye(d) + x[: t + 1].T @ x[: t + 1]
        theta_hat = np.linalg.solve(V, x[: t + 1].T @ y[: t + 1])
        e = theta_hat - theta
        assert cov.distance[t] == pytest.approx(math.sqrt(e @ V @ e), rel=1e-8)
        beta = theory.confidence_radius(np.linalg.slogdet(V)[1], d, reg, 0.2, np.linalg.norm(theta), 0.1)
        assert cov.radius[t] == pytest.approx(float(beta), rel=1e-10)
    assert cov.inside.dtype == np.bool_ and cov.fraction == cov.inside.mean()


def _linear_run(seed: int, policy: str, horizon: int = 400) -> dict[str, float]:
    result = run_task(Task(parse_env("Linear-v0:d=5,K=8"), parse_policy(policy), seed=seed, horizon=horizon))
    assert result.theory is not None
    return result.theory


@pytest.mark.parametrize("policy", ["linucb", "random"])
def test_coverage_on_linear_env_is_at_least_one_minus_delta(policy: str) -> None:
    # Theorem 2 holds for data gathered by any policy; the radius is conservative, so coverage is near 1.
    delta, slack = 0.05, 0.02
    facts = [_linear_run(seed, policy) for seed in (0, 1, 2)]
    assert min(f["coverage"] for f in facts) >= 1 - delta - slack
    assert all(f["potential_holds"] for f in facts)


def test_coverage_detects_a_wrong_parameter() -> None:
    # The check has power: against a parameter that is off by 0.5, theta is soon outside the ellipsoid.
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2000, 5)) / math.sqrt(5)
    theta = rng.normal(size=5)
    theta /= np.linalg.norm(theta)
    y = x @ theta + 0.5 * rng.normal(size=2000)
    wrong = theta + 0.5 * np.eye(5)[0]
    assert theory.confidence_coverage(x, y, theta, reg=1.0, noise=0.5, delta=0.05).always
    off = theory.confidence_coverage(x, y, wrong, reg=1.0, noise=0.5, delta=0.05, norm_bound=1.0)
    assert off.fraction < 0.5 and not off.inside[-100:].any()


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: theory.confidence_radius(1.0, 2, 0.0, 1.0, 1.0, 0.05), "`reg` must be"),
        (lambda: theory.confidence_radius(1.0, 2, 1.0, 1.0, 1.0, 1.5), "`delta` must be in"),
        (lambda: theory.oful_regret_bound(10, 2, 1.0, -1.0, 1.0, 1.0, 0.05), "`noise` must be"),
        (lambda: theory.oful_regret_bound(10, 2, 1.0, 1.0, 1.0, 0.0, 0.05), "`context_bound` must be"),
        (lambda: theory.elliptical_potential(np.zeros((0, 2)), 1.0), r"`x` must be a finite \(T, d\)"),
        (lambda: theory.elliptical_potential([[np.nan, 1.0]], 1.0), r"`x` must be a finite"),
        (lambda: theory.confidence_coverage(np.ones((3, 2)), np.ones(2), np.ones(2), 1.0, 1.0, 0.1), "`y` must"),
    ],
)
def test_bad_arguments_raise_invalid_input(call: object, match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        call()  # type: ignore[operator]


@pytest.mark.slow
def test_coverage_event_over_many_seeds() -> None:
    # The event of Theorem 2 (theta* inside at every round) has probability >= 1 - delta; with a conservative
    # radius it held in every one of these runs.
    facts = [_linear_run(seed, "linucb", horizon=2000) for seed in range(20)]
    assert np.mean([f["coverage_always"] for f in facts]) >= 0.95 - 0.1
