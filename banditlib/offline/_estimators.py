"""The off-policy estimators: IPS, self-normalised IPS, doubly robust, replay, and the true value."""

from __future__ import annotations

import copy
import math
import warnings
from typing import Any

import torch

from banditlib import _validation as V
from banditlib.errors import InvalidInputError
from banditlib.offline._common import (
    _CHUNK,
    _CPU,
    BanditLog,
    Estimate,
    ReplayEstimate,
    RewardFn,
    Target,
    _check_bool,
    _check_log,
    _interval,
    _stderr,
)
from banditlib.offline._probabilities import (
    _check_fits,
    _probabilities,
)
from banditlib.offline._reward import (
    _reward_table,
)
from banditlib.policies import Policy

# ----------------------------------------------------------------------------------------- estimators


def _weights(
    log: BanditLog, target: Any, clip: float | None, samples: int, where: str
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Target probabilities ``(N, K)``, weights ``(N,)`` (clipped) and the fraction of clipped weights."""
    pi = _probabilities(target, log.contexts, log.mask, log.num_arms, samples, where)
    w = pi[torch.arange(len(log)), log.actions] / log.propensities
    if clip is None:
        return pi, w, 0.0
    clip = V.check_float(clip, where, "clip", low=0.0, low_open=True)
    return pi, w.clamp(max=clip), float((w > clip).double().mean())


def _estimate(name: str, value: float, stderr: float, confidence: float, w: torch.Tensor, clipped: float) -> Estimate:
    total, squares = float(w.sum()), float((w * w).sum())
    ess = total * total / squares if squares > 0 else 0.0
    return Estimate(name, value, stderr, _interval(value, stderr, confidence), confidence, w.numel(), ess,
                    float(w.max()), clipped)  # fmt: skip


def ips(
    log: BanditLog, target: Target, *, clip: float | None = None, confidence: float = 0.95, samples: int = 200
) -> Estimate:
    """Inverse propensity scoring: ``V = 1/N sum_i w_i r_i``, ``w_i = min(pi(a_i | x_i) / p_i, clip)``.

    Unbiased when every arm the target can play had positive logging probability and the propensities are
    the true ones (also for a logging policy that learned as it went: each ``p_i`` is its probability at that
    round). ``clip`` caps the weights: it removes variance from rare rounds with large weights and adds a
    downward bias of at most ``E[(w - clip)+ r]`` for non-negative rewards: bias traded for variance.
    ``stderr = std(w_i r_i) / sqrt(N)`` (it includes the Monte Carlo noise of a stochastic target, since the
    estimate is linear in ``pi`` and each round is sampled independently).

    Args:
        log: the logged rounds.
        target: a [`Policy`][banditlib.Policy] (evaluated on a copy, never updated) or a function contexts ->
            ``(N, K)`` probabilities; see [`action_probabilities`][banditlib.offline.action_probabilities].
        clip: optional cap ``> 0`` on the weights.
        confidence: nominal coverage of ``ci``, in ``(0, 1)``.
        samples: Monte Carlo selections per round for stochastic policies (Thompson sampling).

    Returns:
        An [`Estimate`][banditlib.offline.Estimate] with ``estimator="ips"``.

    Raises:
        InvalidInputError: ``log`` not a BanditLog, a target that does not fit it, bad ``clip``,
            ``confidence`` or ``samples``.

    Examples:
        >>> import torch
        >>> from banditlib.offline import BanditLog, ips
        >>> log = BanditLog(torch.zeros(4, 1), [0, 1, 0, 1], [1.0, 0.0, 1.0, 0.0], [0.5] * 4, arms=2)
        >>> always_0 = lambda x: torch.tensor([[1.0, 0.0]]).expand(x.shape[0], 2)
        >>> ips(log, always_0).value
        1.0
    """
    where = "ips()"
    log = _check_log(log, where)
    confidence = V.check_float(confidence, where, "confidence", low=0.0, high=1.0, low_open=True, high_open=True)
    _, w, clipped = _weights(log, target, clip, samples, where)
    terms = w * log.rewards
    return _estimate("ips", float(terms.mean()), _stderr(terms), confidence, w, clipped)


def snips(
    log: BanditLog, target: Target, *, clip: float | None = None, confidence: float = 0.95, samples: int = 200
) -> Estimate:
    """Self-normalised IPS: ``V = sum_i w_i r_i / sum_i w_i``, a weighted mean of the logged rewards.

    Always within ``[min r, max r]``; biased by ``O(1/N)`` but consistent, and usually of lower variance than
    IPS when the weights vary a lot. ``stderr`` is the delta-method ``sqrt(sum_i w_i^2 (r_i - V)^2) / sum_i w_i``.
    Arguments as in [`ips`][banditlib.offline.ips].

    Args:
        log: the logged rounds.
        target: a policy or a function contexts -> ``(N, K)`` probabilities.
        clip: optional cap ``> 0`` on the weights.
        confidence: nominal coverage of ``ci``, in ``(0, 1)``.
        samples: Monte Carlo selections per round for stochastic policies.

    Returns:
        An [`Estimate`][banditlib.offline.Estimate] with ``estimator="snips"``.

    Raises:
        InvalidInputError: as [`ips`][banditlib.offline.ips]; also when every weight is zero (the target never
            plays a logged arm, so the log says nothing about it).

    Examples:
        >>> import torch
        >>> from banditlib.offline import BanditLog, snips
        >>> log = BanditLog(torch.zeros(4, 1), [0, 1, 0, 1], [1.0, 0.0, 3.0, 0.0], [0.5] * 4, arms=2)
        >>> snips(log, lambda x: torch.tensor([[1.0, 0.0]]).expand(x.shape[0], 2)).value
        2.0
    """
    where = "snips()"
    log = _check_log(log, where)
    confidence = V.check_float(confidence, where, "confidence", low=0.0, high=1.0, low_open=True, high_open=True)
    _, w, clipped = _weights(log, target, clip, samples, where)
    total = float(w.sum())
    if total <= 0:
        raise InvalidInputError(
            f"{where}: every weight is zero: the target gives probability 0 to every logged arm, so the log holds "
            "no information about it."
        )
    value = float((w * log.rewards).sum()) / total
    stderr = float(torch.sqrt((w * w * (log.rewards - value) ** 2).sum())) / total if len(log) > 1 else math.inf
    return _estimate("snips", value, stderr, confidence, w, clipped)


def doubly_robust(
    log: BanditLog,
    target: Target,
    *,
    reward_model: str | RewardFn = "ridge",
    cross_fit: bool = False,
    reg: float = 1.0,
    clip: float | None = None,
    confidence: float = 0.95,
    samples: int = 200,
) -> Estimate:
    """Doubly robust: ``V = 1/N sum_i [sum_a pi(a | x_i) q(x_i, a) + w_i (r_i - q(x_i, a_i))]``.

    The reward model's prediction for the target's choices, corrected by the importance-weighted residual of
    the logged arm: unbiased when the propensities are right (whatever ``q``), and also when ``q`` is right
    (whatever the propensities). Its importance-weighted part is IPS applied to the residuals ``r - q``, so its
    variance is lower the better ``q`` predicts. ``stderr`` is the standard error of the bracketed per-round
    terms.

    Args:
        log: the logged rounds.
        target: a policy or a function contexts -> ``(N, K)`` probabilities.
        reward_model: ``"ridge"``: a [`RidgeRewardModel`][banditlib.offline.RidgeRewardModel] (one ridge per
            arm, or one over arm features) fitted on this log; or a callable ``(contexts, actions (N,)) -> (N,)``
            predicted rewards, used as given (fit it on other data, or it adds the bias described for
            ``cross_fit``).
        cross_fit: with ``"ridge"``, fit on the odd rows to predict the even ones and vice versa (2 folds), so
            no round's reward is corrected by a model fitted to that very reward; removes the small
            in-sample overfitting bias at the cost of fitting on half the data.
        reg: the ridge regulariser of ``"ridge"``.
        clip: optional cap ``> 0`` on the weights (bias for variance, as in [`ips`][banditlib.offline.ips]).
        confidence: nominal coverage of ``ci``, in ``(0, 1)``.
        samples: Monte Carlo selections per round for stochastic policies.

    Returns:
        An [`Estimate`][banditlib.offline.Estimate] with ``estimator="dr"``.

    Raises:
        InvalidInputError: as [`ips`][banditlib.offline.ips]; an unknown ``reward_model``, a callable that does
            not return ``(N,)`` finite predictions, ``cross_fit`` with a callable.

    Examples:
        >>> import torch
        >>> from banditlib.offline import BanditLog, doubly_robust
        >>> log = BanditLog(torch.zeros(4, 1), [0, 1, 0, 1], [1.0, 0.0, 1.0, 0.0], [0.5] * 4, arms=2)
        >>> always_0 = lambda x: torch.tensor([[1.0, 0.0]]).expand(x.shape[0], 2)
        >>> round(doubly_robust(log, always_0, reg=1e-9).value, 6)   # the model is exact here: stderr 0
        1.0
    """
    where = "doubly_robust()"
    log = _check_log(log, where)
    confidence = V.check_float(confidence, where, "confidence", low=0.0, high=1.0, low_open=True, high_open=True)
    _check_bool(cross_fit, where, "cross_fit")
    pi, w, clipped = _weights(log, target, clip, samples, where)
    q = _reward_table(log, reward_model, cross_fit, reg, where)
    rows = torch.arange(len(log))
    terms = (pi * q).sum(dim=1) + w * (log.rewards - q[rows, log.actions])
    return _estimate("dr", float(terms.mean()), _stderr(terms), confidence, w, clipped)


def replay(
    log: BanditLog, target: Policy, *, learn: bool = True, batch_size: int = 1, confidence: float = 0.95
) -> ReplayEstimate:
    """The replay method: walk the log in order; the target chooses in each round; where it agrees with the
    logged arm the reward counts and (``learn``) the target learns from it, elsewhere the round is skipped.

    Assumes the logging policy chose uniformly at random among a fixed set of arms, independently of the
    history: then the matched rounds are an unbiased sample of what the target would have met, and the value
    is that of the target run online for about ``N / K`` rounds (Li et al. 2011, Theorem 1). Any other logger
    biases it; when the propensities are not all equal a ``RuntimeWarning`` is issued, once per call (use
    [`ips`][banditlib.offline.ips] or [`doubly_robust`][banditlib.offline.doubly_robust] there). The user's
    policy is never changed: a deep copy plays and learns. ``stderr = std / sqrt(matches)`` treats the matched
    rewards as independent, which a learning target makes only approximately true.

    Args:
        log: the logged rounds.
        target: a [`Policy`][banditlib.Policy] (``select`` and ``update``).
        learn: update the copy on matched rounds (``False``: a fixed policy, all rounds scored in one batch).
        batch_size: rounds the target decides at once before learning from their matches (1: one at a time,
            as in the paper; larger: the delayed feedback of a batched deployment).
        confidence: nominal coverage of ``ci``, in ``(0, 1)``.

    Returns:
        A [`ReplayEstimate`][banditlib.offline.ReplayEstimate].

    Raises:
        InvalidInputError: ``log`` not a BanditLog, ``target`` not a policy that fits the log, bad
            ``batch_size`` or ``confidence``, no round matched.

    Examples:
        >>> import torch, banditlib
        >>> from banditlib.offline import BanditLog, replay
        >>> log = BanditLog(torch.ones(4, 1), [0, 1, 0, 1], [1.0, 0.0, 3.0, 2.0], [0.5] * 4, arms=2)
        >>> policy = banditlib.Greedy(dim=1, arms=2, seed=0)
        >>> policy.update(torch.ones(1, 1), torch.tensor([[0]]), torch.tensor([[1.0]]))   # prefers arm 0
        >>> est = replay(log, policy)
        >>> est.value, est.matches
        (2.0, 2)
    """
    where = "replay()"
    log = _check_log(log, where)
    confidence = V.check_float(confidence, where, "confidence", low=0.0, high=1.0, low_open=True, high_open=True)
    if not isinstance(target, Policy):
        raise InvalidInputError(f"{where}: `target` must be a banditlib Policy; got {type(target).__name__}.")
    _check_fits(target, log.shared, log.dim, log.num_arms, where)
    batch_size = V.check_int(batch_size, where, "batch_size")  # type: ignore[assignment]
    _check_bool(learn, where, "learn")
    p = log.propensities
    if float(p.max() - p.min()) > 1e-9 * float(p.max()):
        warnings.warn(
            f"{where}: the propensities are not constant (from {float(p.min()):.4g} to {float(p.max()):.4g}); "
            "replay is unbiased only for logs of a uniformly random logging policy over a fixed set of arms. Use "
            "ips() or doubly_robust() for this log.",
            RuntimeWarning,
            stacklevel=2,
        )
    policy, N = copy.deepcopy(target), len(log)
    step = batch_size if learn else _CHUNK
    hits = torch.zeros(N, dtype=torch.bool)
    for lo in range(0, N, step):
        rows = slice(lo, min(lo + step, N))
        x = log.contexts[rows]
        sel = policy.select(x, mask=None if log.mask is None else log.mask[rows])
        hit = sel.actions[:, 0].to(_CPU) == log.actions[rows]
        hits[rows] = hit
        if learn and bool(hit.any()):
            policy.update(x[hit], log.actions[rows][hit][:, None], log.rewards[rows][hit][:, None])
    matched = log.rewards[hits]
    if matched.numel() == 0:
        raise InvalidInputError(f"{where}: the target never chose the logged arm, so no round counts.")
    value, stderr = float(matched.mean()), _stderr(matched)
    n_hits = int(matched.numel())
    return ReplayEstimate(value, stderr, _interval(value, stderr, confidence), confidence, N, n_hits, n_hits / N)


def true_value(log: BanditLog, target: Target, *, samples: int = 200) -> float:
    """The exact value of ``target`` on the logged contexts: ``1/N sum_i sum_a pi(a | x_i) mu_i(a)``.

    Needs ``log.expected_rewards`` (recorded by [`log_policy`][banditlib.offline.log_policy]); the number the
    estimators recover (they are unbiased for it given the contexts). For a Monte Carlo target its error is at
    most ``(max mu - min mu) / (2 sqrt(samples N))`` in standard deviation.

    Args:
        log: a log with ``expected_rewards``.
        target: a policy (not changed) or a function contexts -> ``(N, K)`` probabilities.
        samples: Monte Carlo selections per round for stochastic policies.

    Returns:
        The value, a float.

    Raises:
        InvalidInputError: no ``expected_rewards`` in the log, or a target that does not fit it.

    Examples:
        >>> import torch
        >>> from banditlib.offline import BanditLog, true_value
        >>> log = BanditLog(torch.zeros(2, 1), [0, 1], [1.0, 0.0], [0.5, 0.5], arms=2,
        ...                 expected_rewards=[[1.0, 0.0], [0.5, 0.0]])
        >>> true_value(log, lambda x: torch.tensor([[1.0, 0.0]]).expand(x.shape[0], 2))
        0.75
    """
    where = "true_value()"
    log = _check_log(log, where)
    if log.expected_rewards is None:
        raise InvalidInputError(
            f"{where}: `log` has no `expected_rewards` (record it with log_policy() on an environment that reports "
            "them)."
        )
    pi = _probabilities(target, log.contexts, log.mask, log.num_arms, samples, where)
    return float((pi * log.expected_rewards).sum(dim=1).mean())
