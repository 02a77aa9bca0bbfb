"""Recording a BanditLog from a banditlib environment with exact propensities."""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch

from banditlib import _validation as V
from banditlib.errors import InvalidInputError
from banditlib.offline._common import (
    BanditLog,
    _check_bool,
)
from banditlib.offline._probabilities import _check_fits
from banditlib.policies import Policy
from banditlib.policies.base import Selection

# -------------------------------------------------------------------------------------------- logging

PropensityFn = Callable[[Policy, np.ndarray, Selection], float]


def _logging_propensity(policy: Policy, sel: Selection) -> float | None:
    """The probability that ``policy`` chose ``sel.actions[0, 0]`` (`Selection.propensity`), or ``None`` for a
    deterministic logger or one that does not say how it chooses."""
    if policy.propensity_rule in (None, "argmax"):
        return None
    return float(sel.propensity[0, 0])


def log_policy(
    env: Any,
    policy: Policy,
    n: int,
    seed: int,
    *,
    propensity_fn: PropensityFn | None = None,
    learn: bool = True,
    env_kwargs: Mapping[str, Any] | None = None,
) -> BanditLog:
    """Run a logging policy on a bandit environment for ``n`` rounds and record them as a
    [`BanditLog`][banditlib.offline.BanditLog].

    A deep copy of ``policy`` plays (``policy`` itself is unchanged) and, with ``learn``, learns from each reward
    as an online system would; each propensity is its probability of the played arm at that round,
    [`Selection.propensity`][banditlib.Selection] (or ``propensity_fn`` when given): exact for ``Random``
    (``1 / K``) and ``EpsilonGreedy`` (``epsilon / K + (1 - epsilon) 1[a greedy]``, greedy ties shared
    equally), a Monte Carlo estimate for Thompson sampling (see
    [`Policy.propensity_rule`][banditlib.Policy.propensity_rule]). Deterministic loggers (``propensity_rule``
    ``"argmax"``: LinUCB, Greedy) are refused without ``propensity_fn``: they give no information about the arms
    they never play. ``expected_rewards`` comes from ``info["expected_rewards"]`` (every banditlib
    environment), else from ``env.unwrapped.linear_model()`` for ``(K, d)`` observations, else it is ``None``.

    Args:
        env: a gymnasium id (``"banditlib/Linear-v0"``; ``import banditlib.envs`` is done for you) or an
            environment following the banditlib contract (`banditlib.envs.base`).
        policy: the logging policy; its arm model must fit the observations (``(K, d)``: ``arms=None``;
            ``(d,)``: ``arms=K``).
        n: rounds to record.
        seed: ``env.reset(seed=seed)``; the policy's randomness is its own seed.
        propensity_fn: ``(policy copy, contexts (1, ...) numpy, selection) -> float`` in ``(0, 1]``, the
            probability that the copy, in its state at that round, chooses ``selection.actions[0, 0]``.
        learn: update the copy after each round.
        env_kwargs: keyword arguments of ``gymnasium.make`` when ``env`` is an id.

    Returns:
        The log, with ``expected_rewards`` when the environment reports them.

    Raises:
        InvalidInputError: a deterministic logger or one without a ``propensity_rule`` (and no ``propensity_fn``),
            a policy that does not fit the environment, a ``propensity_fn`` value outside ``(0, 1]``, bad ``n``
            or ``seed``.

    Examples:
        >>> import banditlib
        >>> from banditlib.offline import log_policy
        >>> log = log_policy("banditlib/Linear-v0", banditlib.Random(dim=3, seed=0), n=50, seed=0,
        ...                  env_kwargs={"d": 3, "K": 4})
        >>> tuple(log.contexts.shape), float(log.propensities[0]), log.expected_rewards is not None
        ((50, 4, 3), 0.25, True)
    """
    where = "log_policy()"
    n = V.check_int(n, where, "n")  # type: ignore[assignment]
    seed = V.check_seed(seed, where)  # type: ignore[assignment]
    if not isinstance(policy, Policy):
        raise InvalidInputError(f"{where}: `policy` must be a banditlib Policy; got {type(policy).__name__}.")
    _check_bool(learn, where, "learn")
    if propensity_fn is not None and not callable(propensity_fn):
        raise InvalidInputError(f"{where}: `propensity_fn` must be callable; got {type(propensity_fn).__name__}.")
    if isinstance(env, str):
        import gymnasium as gym

        import banditlib.envs  # noqa: F401  (registers the banditlib/ ids)

        env = gym.make(env, **dict(env_kwargs or {}))
    elif env_kwargs:
        raise InvalidInputError(f"{where}: `env_kwargs` applies only when `env` is an id.")
    obs, _ = env.reset(seed=seed)
    obs = np.asarray(obs, dtype=np.float64)
    K = int(env.action_space.n)
    shared = obs.ndim == 2
    _check_fits(policy, shared, obs.shape[-1], K, where)
    logger = copy.deepcopy(policy)
    contexts = np.empty((n, *obs.shape))
    actions, rewards, props = np.empty(n, dtype=np.int64), np.empty(n), np.empty(n)
    expected: np.ndarray | None = np.empty((n, K))
    model = env.unwrapped.linear_model() if shared and hasattr(env.unwrapped, "linear_model") else None
    for t in range(n):
        sel = logger.select(obs[None])
        a = int(sel.actions[0, 0])
        if propensity_fn is not None:
            p = propensity_fn(logger, obs[None], sel)
            if isinstance(p, bool) or not isinstance(p, (int, float, np.floating)) or not 0.0 < float(p) <= 1.0:
                raise InvalidInputError(f"{where}: `propensity_fn` must return a probability in (0, 1]; got {p!r}.")
            p = float(p)
        else:
            known = _logging_propensity(logger, sel)
            if known is None:
                raise InvalidInputError(
                    f"{where}: {type(policy).__name__} chooses deterministically (propensity_rule "
                    f"{policy.propensity_rule!r}): it never plays most arms, so its log cannot evaluate other "
                    "policies; log with a randomised policy (Random, EpsilonGreedy, Thompson sampling), or pass "
                    "`propensity_fn` to log anyway."
                )
            p = known
        next_obs, reward, terminated, truncated, info = env.step(a)
        r = float(reward)
        if learn:
            logger.update(obs[None], np.array([[a]]), np.array([[r]]))
        contexts[t], actions[t], rewards[t], props[t] = obs, a, r, p
        if expected is not None:
            if "expected_rewards" in info:
                expected[t] = info["expected_rewards"]
            elif model is not None:
                expected[t] = obs @ model.theta
            else:
                expected = None
        if terminated or truncated:
            next_obs, _ = env.reset()
        obs = np.asarray(next_obs, dtype=np.float64)
    return BanditLog(torch.from_numpy(contexts), torch.from_numpy(actions), torch.from_numpy(rewards),
                     torch.from_numpy(props), None if shared else K, None,
                     None if expected is None else torch.from_numpy(expected))  # fmt: skip
