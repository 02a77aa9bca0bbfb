"""Off-policy evaluation (banditlib.offline): the estimators recover the true value of fixed targets on simulated
logs, replay by hand on a tiny log, exact propensities, every bad input refused by name, targets never mutated."""

from __future__ import annotations

import copy
import inspect
import math
import warnings
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch

import banditlib
import banditlib.envs  # registers the ids
from banditlib import offline as O
from banditlib.errors import InvalidInputError
from banditlib.experiments.runner import play

ENV = "banditlib/Linear-v0"
KW = {"d": 3, "K": 4, "noise": 0.5, "instance_seed": 7}  # one instance: the targets are trained on it
SEEDS = 20
N = 400


def _trained(policy: banditlib.Policy, rounds: int) -> banditlib.Policy:
    play(gym.make(ENV, **KW), policy, rounds, seed=10_000)
    return policy


@pytest.fixture(scope="module")
def targets() -> dict[str, banditlib.Policy]:
    return {
        "LinUCB": _trained(banditlib.LinUCB(dim=3, seed=1), 300),
        "Greedy": _trained(banditlib.Greedy(dim=3, seed=2), 50),
        "EpsilonGreedy": _trained(banditlib.EpsilonGreedy(dim=3, epsilon=0.2, seed=3), 100),
    }


@pytest.fixture(scope="module")
def logs() -> dict[str, list[O.BanditLog]]:
    # Different env seeds per logger: with common random numbers equal seeds would share contexts and noise.
    return {
        "Random": [O.log_policy(ENV, banditlib.Random(dim=3, seed=s), N, s, env_kwargs=KW) for s in range(SEEDS)],
        "EpsilonGreedy": [
            O.log_policy(ENV, banditlib.EpsilonGreedy(dim=3, epsilon=0.3, seed=s), N, 100 + s, env_kwargs=KW)
            for s in range(SEEDS)
        ],
    }


ESTIMATORS: dict[str, Any] = {
    "ips": O.ips,
    "snips": O.snips,
    "dr": O.doubly_robust,
    "dr-cross-fit": lambda log, target: O.doubly_robust(log, target, cross_fit=True),
}


@dataclass
class _Runs:
    values: np.ndarray
    truths: np.ndarray
    covered: np.ndarray
    stderrs: np.ndarray


_CACHE: dict[tuple[str, str, str], _Runs] = {}


def _runs(logs: dict[str, list[O.BanditLog]], targets: dict[str, Any], logger: str, target: str, name: str) -> _Runs:
    key = (logger, target, name)
    if key not in _CACHE:
        est = [ESTIMATORS[name](log, targets[target]) for log in logs[logger]]
        truths = np.array([O.true_value(log, targets[target]) for log in logs[logger]])
        _CACHE[key] = _Runs(
            values=np.array([e.value for e in est]),
            truths=truths,
            covered=np.array([e.ci[0] <= t <= e.ci[1] for e, t in zip(est, truths, strict=True)]),
            stderrs=np.array([e.stderr for e in est]),
        )
    return _CACHE[key]


# ------------------------------------------------------------------------------------- recovering the truth


@pytest.mark.parametrize("name", list(ESTIMATORS))
@pytest.mark.parametrize("logger", ["Random", "EpsilonGreedy"])
def test_estimators_cover_the_true_value_at_about_the_nominal_rate(
    logs: Any, targets: Any, logger: str, name: str
) -> None:
    pooled = []
    for target in targets:
        runs = _runs(logs, targets, logger, target, name)
        assert runs.covered.mean() >= 0.75, (target, runs.covered.mean())
        bias = runs.values - runs.truths
        assert abs(bias.mean()) <= 4 * bias.std(ddof=1) / math.sqrt(SEEDS) + 1e-3, (target, bias.mean())
        pooled.append(runs.covered)
    assert np.concatenate(pooled).mean() >= 0.85  # 60 intervals at nominal 0.95


@pytest.mark.parametrize("logger", ["Random", "EpsilonGreedy"])
def test_doubly_robust_has_lower_variance_than_ips(logs: Any, targets: Any, logger: str) -> None:
    for target in targets:
        dr, ipw = _runs(logs, targets, logger, target, "dr"), _runs(logs, targets, logger, target, "ips")
        assert (dr.values - dr.truths).std() < (ipw.values - ipw.truths).std(), target
        assert dr.stderrs.mean() < ipw.stderrs.mean(), target


def test_thompson_sampling_target_by_monte_carlo(logs: Any) -> None:
    ts = _trained(banditlib.LinTS(dim=3, seed=4), 100)
    ips_cover, dr_cover, bias = [], [], []
    for log in logs["Random"]:
        truth = O.true_value(log, ts, samples=100)
        a, b = O.ips(log, ts, samples=100), O.doubly_robust(log, ts, samples=100)
        ips_cover.append(a.ci[0] <= truth <= a.ci[1])
        dr_cover.append(b.ci[0] <= truth <= b.ci[1])
        bias.append(b.value - truth)
    assert np.mean(ips_cover) >= 0.75 and np.mean(dr_cover) >= 0.75
    assert abs(np.mean(bias)) <= 4 * np.std(bias, ddof=1) / math.sqrt(SEEDS) + 1e-3


def test_snips_lies_within_the_range_of_the_rewards(logs: Any, targets: Any) -> None:
    for log in logs["EpsilonGreedy"][:5]:
        est = O.snips(log, targets["LinUCB"])
        assert float(log.rewards.min()) <= est.value <= float(log.rewards.max())
    rng = np.random.default_rng(0)
    for _ in range(20):  # random targets and propensities, including very uneven weights
        n = int(rng.integers(1, 30))
        log = O.BanditLog(rng.normal(size=(n, 2)), rng.integers(0, 3, n), rng.normal(size=n) * 10,
                          rng.uniform(0.01, 1.0, n), arms=3)  # fmt: skip
        probs = torch.tensor(rng.dirichlet(np.full(3, 0.3), size=n))
        est = O.snips(log, lambda x, probs=probs: probs)
        assert float(log.rewards.min()) - 1e-9 <= est.value <= float(log.rewards.max()) + 1e-9


def test_doubly_robust_with_the_true_reward_model_is_exact_up_to_the_weighted_noise(logs: Any, targets: Any) -> None:
    log, target = logs["EpsilonGreedy"][0], targets["Greedy"]
    mu = log.expected_rewards
    assert mu is not None
    rows = torch.arange(len(log))
    est = O.doubly_robust(log, target, reward_model=lambda x, a: mu[rows, a])
    w = O.action_probabilities(target, log.contexts)[rows, log.actions] / log.propensities
    noise = float((w * (log.rewards - mu[rows, log.actions])).mean())
    assert est.value == pytest.approx(O.true_value(log, target) + noise, abs=1e-12)


def test_disjoint_logs(targets: Any) -> None:
    kw = {"dataset": "iris", "encoding": "shared"}  # (d,) contexts, K = 3 disjoint arms, rewards 0/1
    target = banditlib.LinUCB(dim=4, arms=3, seed=0)
    play(gym.make("banditlib/Classification-v0", **kw), target, 150, seed=999)
    covered, dr_sd, ips_sd = [], [], []
    for s in range(10):
        log = O.log_policy(
            "banditlib/Classification-v0", banditlib.Random(dim=4, arms=3, seed=s), 300, s, env_kwargs=kw
        )
        assert tuple(log.contexts.shape) == (300, 4) and log.num_arms == 3 and not log.shared
        truth = O.true_value(log, target)
        for est in (O.ips(log, target), O.snips(log, target), O.doubly_robust(log, target, cross_fit=True)):
            covered.append(est.ci[0] <= truth <= est.ci[1])
        dr_sd.append(O.doubly_robust(log, target).stderr)
        ips_sd.append(O.ips(log, target).stderr)
    assert np.mean(covered) >= 0.8 and np.mean(dr_sd) < np.mean(ips_sd)


# ---------------------------------------------------------------------------------------------- replay


def _tiny_log() -> O.BanditLog:
    return O.BanditLog(torch.ones(4, 1), [0, 1, 0, 1], [-2.0, 1.0, 5.0, 0.0], [0.5] * 4, arms=2)


def _prefers_arm_0() -> banditlib.Greedy:
    policy = banditlib.Greedy(dim=1, arms=2, seed=0, dtype=torch.float64)
    policy.update(torch.ones(1, 1), torch.tensor([[0]]), torch.tensor([[1.0]]))  # theta_0 = 1/2, theta_1 = 0
    return policy


def test_replay_by_hand_on_a_tiny_log() -> None:
    # Greedy with reg = 1 and x = 1: theta_a = (sum of arm a's rewards) / (1 + its count).
    # round 0: theta = (1/2, 0), picks 0 = logged: counts -2; theta_0 = (1 - 2) / 3 = -1/3
    # round 1: picks 1 = logged: counts 1; theta_1 = 1/2
    # round 2: picks 1, logged 0: skipped
    # round 3: picks 1 = logged: counts 0
    est = O.replay(_tiny_log(), _prefers_arm_0())
    assert (est.matches, est.n, est.match_rate) == (3, 4, 0.75)
    assert est.value == pytest.approx(-1 / 3)
    assert est.stderr == pytest.approx(np.std([-2.0, 1.0, 0.0], ddof=1) / math.sqrt(3))
    low, high = est.ci
    assert (low + high) / 2 == pytest.approx(est.value) and high - low == pytest.approx(2 * 1.959964 * est.stderr)
    # A fixed policy keeps preferring arm 0: rounds 0 and 2 count.
    fixed = O.replay(_tiny_log(), _prefers_arm_0(), learn=False)
    assert (fixed.value, fixed.matches) == (1.5, 2)
    # Batches of two: rounds 0, 1 are decided with theta = (1/2, 0) (both pick 0: round 0 counts), then
    # theta_0 = -1/3, and rounds 2, 3 both pick 1: round 3 counts.
    batched = O.replay(_tiny_log(), _prefers_arm_0(), batch_size=2)
    assert (batched.value, batched.matches) == (-1.0, 2)


def test_replay_of_a_fixed_target_on_a_uniform_log_is_snips(logs: Any, targets: Any) -> None:
    for log in logs["Random"][:3]:
        a, b = O.replay(log, targets["LinUCB"], learn=False), O.snips(log, targets["LinUCB"])
        assert a.value == pytest.approx(b.value, abs=1e-12) and a.matches == round(float(b.ess))


def test_replay_warns_once_when_the_logger_was_not_uniform(logs: Any, targets: Any) -> None:
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        O.replay(logs["EpsilonGreedy"][0], targets["LinUCB"])
        O.replay(logs["Random"][0], targets["LinUCB"])
    assert len(record) == 1 and issubclass(record[0].category, RuntimeWarning)
    assert "uniformly random" in str(record[0].message)


# ------------------------------------------------------------------------------------ action probabilities


def test_closed_form_probabilities_match_the_policies_own_frequencies(targets: Any) -> None:
    x = torch.tensor(np.random.default_rng(1).standard_normal((3, 4, 3)))
    draws = 4000
    for name in ("EpsilonGreedy", "LinUCB"):
        policy = copy.deepcopy(targets[name])
        probs = O.action_probabilities(policy, x)
        picks = policy.select(x.repeat(draws, 1, 1)).actions[:, 0].view(draws, 3)
        freq = torch.stack([torch.bincount(picks[:, i], minlength=4) for i in range(3)]).double() / draws
        assert torch.allclose(freq, probs, atol=4 * 0.5 / math.sqrt(draws)), name


def test_monte_carlo_probabilities_agree_with_the_closed_form(targets: Any) -> None:
    class _Unknown(banditlib.EpsilonGreedy):  # a class that does not say how it chooses: sampled
        propensity_rule = None

    eps = targets["EpsilonGreedy"]
    unknown = _Unknown(dim=3, epsilon=eps.epsilon, seed=9)
    unknown.load_state_dict({**eps.state_dict(), "rng_seed": torch.tensor(9)})
    x = torch.tensor(np.random.default_rng(2).standard_normal((50, 4, 3)))
    mc, exact = O.action_probabilities(unknown, x, samples=2000), O.action_probabilities(eps, x)
    assert torch.allclose(mc.sum(dim=1), torch.ones(50, dtype=torch.float64))
    assert (mc - exact).abs().max() <= 5 * math.sqrt(0.25 / 2000)


def test_probability_rules_with_ties_and_masks() -> None:
    mask = torch.tensor([[True, False, True, True], [False, True, True, False]])
    x = torch.randn(2, 4, 3, generator=torch.Generator().manual_seed(0))
    uniform = torch.tensor([[1 / 3, 0, 1 / 3, 1 / 3], [0, 0.5, 0.5, 0]], dtype=torch.float64)
    # Random is uniform over the available arms; an untrained Greedy ties everywhere, so it is too; an untrained
    # EpsilonGreedy mixes two uniform distributions.
    for policy in (banditlib.Random(dim=3, seed=0), banditlib.Greedy(dim=3, seed=0),
                   banditlib.EpsilonGreedy(dim=3, epsilon=0.4, seed=0)):  # fmt: skip
        assert torch.allclose(O.action_probabilities(policy, x, mask), uniform)
    trained = banditlib.Greedy(dim=3, arms=4, seed=0)
    trained.update(torch.ones(1, 3), torch.tensor([[2]]), torch.tensor([[1.0]]))
    probs = O.action_probabilities(trained, torch.ones(2, 3), torch.tensor([[True] * 4, [True, True, False, True]]))
    assert probs.tolist() == [[0, 0, 1, 0], [1 / 3, 1 / 3, 0, 1 / 3]]


@pytest.mark.parametrize("name", ["LinUCB", "EpsilonGreedy", "LinTS", "Random"])
def test_action_probabilities_are_the_selection_propensities(name: str) -> None:
    policy = getattr(banditlib, name)(dim=3, seed=0, dtype=torch.float64)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(20, 4, 3, generator=g, dtype=torch.float64)
    policy.update(x, torch.randint(0, 4, (20, 1), generator=g), torch.randn(20, 1, generator=g, dtype=torch.float64))
    probs = O.action_probabilities(policy, x[:5], samples=1000)  # the default number of posterior draws
    sel = policy.select(x[:5])  # the same state and generator rows as the deep copy scored above
    assert torch.equal(probs.gather(1, sel.actions), sel.propensity)
    assert torch.allclose(probs.sum(dim=1), torch.ones(5, dtype=torch.float64))


# ----------------------------------------------------------------------------------------------- logging


def test_log_policy_records_exact_propensities_and_expected_rewards() -> None:
    eps, K = 0.3, 4
    policy = banditlib.EpsilonGreedy(dim=3, epsilon=eps, seed=5)
    before = copy.deepcopy(policy.state_dict())
    log = O.log_policy(ENV, policy, 200, 3, env_kwargs=KW)
    assert all(torch.equal(before[k], v) for k, v in policy.state_dict().items())  # a copy logged
    # Replaying the logger by hand reproduces every propensity (and the first rounds tie: 1/K).
    replayed = copy.deepcopy(policy)
    for t in range(len(log)):
        x = log.contexts[t : t + 1]
        assert int(replayed.select(x).actions[0, 0]) == int(log.actions[t])
        p = O.action_probabilities(replayed, x)[0, log.actions[t]]  # read off the mean: the counter is irrelevant
        assert float(log.propensities[t]) == pytest.approx(float(p), abs=1e-12)
        replayed.update(x, log.actions[t].view(1, 1), log.rewards[t].view(1, 1))
    assert float(log.propensities[0]) == pytest.approx(1 / K)
    assert set(np.round(log.propensities[1:].numpy(), 12)) <= {round(eps / K, 12), round(eps / K + 1 - eps, 12)}
    env = gym.make(ENV, **KW)
    env.reset(seed=3)
    mu = log.expected_rewards
    assert mu is not None
    assert torch.allclose(mu, log.contexts @ torch.tensor(env.unwrapped.linear_model().theta))
    again = O.log_policy(gym.make(ENV, **KW), policy, 200, 3)
    assert torch.equal(again.actions, log.actions) and torch.equal(again.contexts, log.contexts)


def test_log_policy_refuses_deterministic_loggers_and_takes_thompson_sampling() -> None:
    with pytest.raises(InvalidInputError, match="deterministically"):
        O.log_policy(ENV, banditlib.LinUCB(dim=3, seed=0), 10, 0, env_kwargs=KW)
    ts = O.log_policy(ENV, banditlib.LinTS(dim=3, seed=0), 30, 0, env_kwargs=KW)
    # each propensity is Selection.propensity of the logging copy: Monte Carlo, never below 1 / (samples + 1)
    assert bool((ts.propensities >= 1 / 1001).all()) and bool((ts.propensities <= 1).all())
    replay = banditlib.LinTS(dim=3, seed=0)
    for t in range(3):
        sel = replay.select(ts.contexts[t : t + 1])
        assert int(sel.actions) == int(ts.actions[t]) and float(sel.propensity) == float(ts.propensities[t])
        replay.update(ts.contexts[t : t + 1], sel.actions, ts.rewards[t : t + 1, None])
    log = O.log_policy(ENV, banditlib.LinTS(dim=3, seed=0), 10, 0, env_kwargs=KW,
                       propensity_fn=lambda policy, x, sel: 0.5)  # fmt: skip
    assert torch.equal(log.propensities, torch.full((10,), 0.5, dtype=torch.float64))
    with pytest.raises(InvalidInputError, match="propensity_fn"):
        O.log_policy(ENV, banditlib.LinTS(dim=3, seed=0), 10, 0, env_kwargs=KW, propensity_fn=lambda p, x, s: 0.0)


# -------------------------------------------------------------------------------------------- bad input

X, A, R, P = torch.ones(3, 2), [0, 1, 2], [1.0, 0.0, 1.0], [0.5, 0.5, 0.5]
BAD_LOGS = {
    "propensity zero": ({"propensities": [0.5, 0.0, 0.5]}, "propensities"),
    "propensity negative": ({"propensities": [0.5, -0.1, 0.5]}, "propensities"),
    "propensity NaN": ({"propensities": [0.5, math.nan, 0.5]}, "propensities"),
    "propensity above 1": ({"propensities": [0.5, 1.5, 0.5]}, "propensities"),
    "propensities shape": ({"propensities": [0.5, 0.5]}, "propensities"),
    "actions shape": ({"actions": [[0], [1], [2]]}, "actions"),
    "action too large": ({"actions": [0, 3, 1]}, "actions"),
    "action negative": ({"actions": [0, -1, 1]}, "actions"),
    "float actions": ({"actions": [0.0, 1.0, 2.0]}, "actions"),
    "rewards shape": ({"rewards": [1.0, 0.0]}, "rewards"),
    "rewards NaN": ({"rewards": [1.0, math.nan, 0.0]}, "rewards"),
    "empty log": ({"contexts": torch.ones(0, 2), "actions": [], "rewards": [], "propensities": []}, "empty"),
    "contexts 1-d": ({"contexts": torch.ones(3)}, "contexts"),
    "contexts infinite": ({"contexts": torch.tensor([[1.0, math.inf]] * 3)}, "contexts"),
    "disjoint without arms": ({"arms": None}, "arms"),
    "shared with other arms": ({"contexts": torch.ones(3, 4, 2), "arms": 3}, "arms"),
    "mask shape": ({"mask": torch.ones(3, 2, dtype=torch.bool)}, "mask"),
    "mask not bool": ({"mask": torch.ones(3, 3)}, "mask"),
    "logged arm masked": ({"mask": torch.tensor([[True, True, True], [True, False, True], [True] * 3])}, "mask"),
    "expected rewards shape": ({"expected_rewards": torch.ones(3, 2)}, "expected_rewards"),
}


@pytest.mark.parametrize("case", list(BAD_LOGS))
def test_a_bad_log_is_refused_naming_the_field(case: str) -> None:
    change, field = BAD_LOGS[case]
    args = {"contexts": X, "actions": A, "rewards": R, "propensities": P, "arms": 3, **change}
    with pytest.raises(InvalidInputError, match=f"BanditLog\\(\\): .*{field}"):
        O.BanditLog(**args)


def _good_log() -> O.BanditLog:
    return O.BanditLog(X, A, R, P, arms=3, expected_rewards=torch.zeros(3, 3))


def _uniform(x: torch.Tensor) -> torch.Tensor:
    return torch.full((x.shape[0], 3), 1 / 3, dtype=torch.float64)


BAD_CALLS = {
    "log not a BanditLog": (lambda: O.ips({"contexts": X}, _uniform), "log"),
    "confidence 0": (lambda: O.ips(_good_log(), _uniform, confidence=0.0), "confidence"),
    "confidence 1": (lambda: O.snips(_good_log(), _uniform, confidence=1.0), "confidence"),
    "clip 0": (lambda: O.ips(_good_log(), _uniform, clip=0.0), "clip"),
    "clip NaN": (lambda: O.doubly_robust(_good_log(), _uniform, clip=math.nan), "clip"),
    "samples 0": (lambda: O.ips(_good_log(), banditlib.LinTS(dim=2, arms=3), samples=0), "samples"),
    "target of another arm model": (lambda: O.ips(_good_log(), banditlib.LinUCB(dim=2)), "target"),
    "target of another dim": (lambda: O.ips(_good_log(), banditlib.LinUCB(dim=5, arms=3)), "target"),
    "target of other arms": (lambda: O.ips(_good_log(), banditlib.LinUCB(dim=2, arms=4)), "target"),
    "target not callable": (lambda: O.ips(_good_log(), 3), "target"),
    "target wrong shape": (lambda: O.ips(_good_log(), lambda x: torch.ones(3, 2) / 2), "target"),
    "target not summing to 1": (lambda: O.ips(_good_log(), lambda x: torch.ones(3, 3) / 2), "target"),
    "target negative": (lambda: O.ips(_good_log(), lambda x: torch.tensor([[1.5, -0.5, 0.0]] * 3)), "target"),
    "target on masked arms": (
        lambda: O.ips(
            O.BanditLog(X, A, R, P, arms=3, mask=torch.tensor([[True, True, False], [True] * 3, [True] * 3])), _uniform
        ),
        "mask",
    ),
    "unknown reward model": (lambda: O.doubly_robust(_good_log(), _uniform, reward_model="forest"), "reward_model"),
    "reward model not callable": (lambda: O.doubly_robust(_good_log(), _uniform, reward_model=1), "reward_model"),
    "reward model shape": (
        lambda: O.doubly_robust(_good_log(), _uniform, reward_model=lambda x, a: torch.zeros(3, 1)),
        "reward_model",
    ),
    "reward model NaN": (
        lambda: O.doubly_robust(_good_log(), _uniform, reward_model=lambda x, a: torch.full((3,), math.nan)),
        "reward_model",
    ),
    "cross-fit with a callable": (
        lambda: O.doubly_robust(_good_log(), _uniform, reward_model=lambda x, a: torch.zeros(3), cross_fit=True),
        "cross_fit",
    ),
    "reg 0": (lambda: O.doubly_robust(_good_log(), _uniform, reg=0.0), "reg"),
    "snips without overlap": (lambda: O.snips(_good_log(), lambda x: torch.eye(3)[[1, 2, 0]]), "weight"),
    "replay of a function": (lambda: O.replay(_good_log(), _uniform), "target"),
    "replay batch size": (lambda: O.replay(_good_log(), banditlib.Random(dim=2, arms=3), batch_size=0), "batch_size"),
    "replay with no match": (
        lambda: O.replay(O.BanditLog(X, [0, 0, 0], R, P, arms=3), _trained_to(1)),
        "never chose",
    ),
    "true value without expected rewards": (
        lambda: O.true_value(O.BanditLog(X, A, R, P, arms=3), _uniform),
        "expected_rewards",
    ),
    "log_policy n": (lambda: O.log_policy(ENV, banditlib.Random(dim=3), 0, 0, env_kwargs=KW), "`n`"),
    "log_policy seed": (lambda: O.log_policy(ENV, banditlib.Random(dim=3), 5, -1, env_kwargs=KW), "seed"),
    "log_policy arm model": (lambda: O.log_policy(ENV, banditlib.Random(dim=3, arms=4), 5, 0, env_kwargs=KW), "fit"),
    "log_policy not a policy": (lambda: O.log_policy(ENV, _uniform, 5, 0, env_kwargs=KW), "policy"),
    "probabilities of 2-d contexts without K": (lambda: O.action_probabilities(_uniform, X), "contexts"),
    "learn not a bool": (lambda: O.replay(_good_log(), banditlib.Random(dim=2, arms=3), learn=1), "learn"),
    "cross_fit not a bool": (lambda: O.doubly_robust(_good_log(), _uniform, cross_fit="yes"), "cross_fit"),
    "env_kwargs with an env": (
        lambda: O.log_policy(gym.make(ENV, **KW), banditlib.Random(dim=3), 5, 0, env_kwargs=KW),
        "env_kwargs",
    ),
    "propensity_fn not callable": (
        lambda: O.log_policy(ENV, banditlib.LinTS(dim=3), 5, 0, env_kwargs=KW, propensity_fn=0.5),
        "propensity_fn",
    ),
    "reward model of another arm model": (
        lambda: O.RidgeRewardModel().fit(_good_log())(torch.ones(3, 3, 2), [0, 1, 2]),
        "contexts",
    ),
    "reward model arm out of range": (lambda: O.RidgeRewardModel().fit(_good_log())(X, [0, 1, 3]), "actions"),
    "fit on something else": (lambda: O.RidgeRewardModel().fit(X), "log"),
}


def _trained_to(arm: int) -> banditlib.Greedy:
    policy = banditlib.Greedy(dim=2, arms=3, seed=0)
    policy.update(torch.ones(1, 2), torch.tensor([[arm]]), torch.tensor([[1.0]]))
    return policy


@pytest.mark.parametrize("case", list(BAD_CALLS))
def test_a_bad_argument_is_refused_naming_it(case: str) -> None:
    call, name = BAD_CALLS[case]
    with pytest.raises(InvalidInputError, match=name.replace("(", "\\(")):
        call()


def test_predicting_before_fitting_is_a_state_error() -> None:
    with pytest.raises(banditlib.StateError, match="fit"):
        O.RidgeRewardModel()(X, [0, 1, 2])


def test_masked_logs() -> None:
    """Arms come and go: a uniform logger over the available arms, a Greedy target that respects the mask."""
    K, d, n = 4, 2, 400
    theta = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.5], [0.3, -0.8]])
    target = banditlib.Greedy(dim=d, arms=K, seed=0)
    warm = torch.tensor(np.random.default_rng(99).normal(size=(200, d)))
    for a in range(K):
        target.update(warm, torch.full((200, 1), a), (warm @ torch.tensor(theta[a]))[:, None])
    covered, bias = [], []
    for seed in range(SEEDS):
        rng = np.random.default_rng(seed)
        x = rng.normal(size=(n, d))
        mask = rng.random((n, K)) < 0.7
        mask[np.arange(n), rng.integers(0, K, n)] = True
        avail = mask.sum(1)
        actions = np.array([rng.choice(np.flatnonzero(row)) for row in mask])
        mu = x @ theta.T
        log = O.BanditLog(x, actions, mu[np.arange(n), actions] + rng.normal(size=n), 1.0 / avail, arms=K,
                          mask=mask, expected_rewards=mu)  # fmt: skip
        probs = O.action_probabilities(target, log.contexts, log.mask)
        assert torch.all(probs[~log.mask] == 0) and torch.allclose(probs.sum(1), torch.ones(n, dtype=torch.float64))
        truth = O.true_value(log, target)
        for est in (O.ips(log, target), O.doubly_robust(log, target)):
            covered.append(est.ci[0] <= truth <= est.ci[1])
            bias.append(est.value - truth)
    assert np.mean(covered) >= 0.8 and abs(np.mean(bias)) <= 4 * np.std(bias, ddof=1) / math.sqrt(len(bias))
    with pytest.warns(RuntimeWarning, match="not constant"):
        O.replay(log, target)


def test_estimators_never_change_the_target(logs: Any, targets: Any) -> None:
    log = logs["EpsilonGreedy"][0]
    for policy in (*targets.values(), _trained(banditlib.LinTS(dim=3, seed=4), 30)):
        before = copy.deepcopy(policy.state_dict())
        O.ips(log, policy, samples=5)
        O.snips(log, policy, samples=5)
        O.doubly_robust(log, policy, samples=5, cross_fit=True)
        O.true_value(log, policy, samples=5)
        O.action_probabilities(policy, log.contexts, samples=5)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            O.replay(log, policy)
            O.replay(log, policy, learn=False)
        after = policy.state_dict()
        assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)


# ------------------------------------------------------------------------------------- the other options


def test_clipping_caps_the_weights(logs: Any, targets: Any) -> None:
    log, target = logs["EpsilonGreedy"][0], targets["LinUCB"]
    plain, clipped = O.ips(log, target), O.ips(log, target, clip=2.0)
    assert plain.max_weight > 2.0 and clipped.max_weight == 2.0 and 0 < clipped.clipped < 1
    assert plain.clipped == 0.0 and O.ips(log, target, clip=1e9).value == plain.value
    assert clipped.stderr < plain.stderr and 0 < clipped.ess <= clipped.n


def test_confidence_sets_the_interval_width(logs: Any, targets: Any) -> None:
    log = logs["Random"][0]
    wide, narrow = O.ips(log, targets["LinUCB"], confidence=0.99), O.ips(log, targets["LinUCB"], confidence=0.5)
    assert wide.ci[1] - wide.ci[0] == pytest.approx(2 * 2.5758293 * wide.stderr)
    assert narrow.ci[1] - narrow.ci[0] == pytest.approx(2 * 0.6744898 * narrow.stderr)


def test_ridge_reward_model_matches_the_normal_equations() -> None:
    rng = np.random.default_rng(3)
    x, a, r = rng.normal(size=(40, 3)), rng.integers(0, 2, 40), rng.normal(size=40)
    model = O.RidgeRewardModel(reg=0.5).fit(O.BanditLog(x, a, r, np.full(40, 0.5), arms=2))
    for arm in range(2):
        z = np.c_[x[a == arm], np.ones((a == arm).sum())]
        coef = np.linalg.solve(z.T @ z + 0.5 * np.eye(4), z.T @ r[a == arm])
        assert np.allclose(model.coef_[arm].numpy(), coef)
    shared = O.RidgeRewardModel().fit(O.BanditLog(rng.normal(size=(40, 2, 3)), a, r, np.full(40, 0.5)))
    assert tuple(shared.coef_.shape) == (1, 4)


def test_cross_fitting_predicts_each_half_from_the_other(logs: Any, targets: Any) -> None:
    log = logs["Random"][0]
    rows = torch.arange(len(log))
    odd = O.RidgeRewardModel().fit(log._rows(rows[rows % 2 == 1]))
    even = O.RidgeRewardModel().fit(log._rows(rows[rows % 2 == 0]))
    probs = O.action_probabilities(targets["Greedy"], log.contexts)
    q = torch.stack([torch.where(rows % 2 == 0, odd(log.contexts, torch.full_like(rows, a)),
                                 even(log.contexts, torch.full_like(rows, a))) for a in range(4)], dim=1)  # fmt: skip
    w = probs[rows, log.actions] / log.propensities
    expected = float(((probs * q).sum(1) + w * (log.rewards - q[rows, log.actions])).mean())
    assert O.doubly_robust(log, targets["Greedy"], cross_fit=True).value == pytest.approx(expected, abs=1e-12)


def test_every_public_name_is_documented() -> None:
    for name in O.__all__:
        obj = getattr(O, name)
        doc = inspect.getdoc(obj) or ""
        assert "Examples:" in doc and ">>>" in doc, name
        if inspect.isfunction(obj):
            params = [p for p in inspect.signature(obj).parameters if p not in ("self",)]
            missing = [p for p in params if f"    {p}:" not in obj.__doc__]
            assert not missing and "Returns:" in doc and "Raises:" in doc, (name, missing)
