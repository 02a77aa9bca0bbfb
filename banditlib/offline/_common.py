"""Shared pieces of banditlib.offline: the log, the results and the type aliases."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from scipy.stats import norm

from banditlib import _validation as V
from banditlib.errors import InvalidInputError
from banditlib.policies import Policy

#: A target given as a function: contexts ``(N, d)`` or ``(N, K, d)`` -> ``(N, K)`` action probabilities.
ProbabilityFn = Callable[[torch.Tensor], Any]
#: A reward model: ``(contexts, actions (N,))`` -> ``(N,)`` predicted rewards of those arms.
RewardFn = Callable[[torch.Tensor, torch.Tensor], Any]
Target = Policy | ProbabilityFn

_CPU = torch.device("cpu")
_CHUNK = 4096  # rows per `select` call when scoring a whole log


# ----------------------------------------------------------------------------------------------- the log


@dataclass(frozen=True, eq=False)
class BanditLog:
    """``N`` logged bandit rounds, validated and stored as CPU tensors (float64, int64, bool).

    Attributes:
        contexts: ``(N, d)`` one context per round (disjoint arms: give ``arms``) or ``(N, K, d)`` one feature
            vector per arm (shared-parameter model).
        actions: ``(N,)`` integer arms played by the logging policy, in ``[0, K)``.
        rewards: ``(N,)`` finite observed rewards.
        propensities: ``(N,)`` the logging policy's probability of the logged arm, in ``(0, 1]``.
        arms: ``K`` for ``(N, d)`` contexts (required there); ``None`` or ``contexts.shape[1]`` for ``(N, K, d)``.
        mask: optional ``(N, K)`` bool, ``True`` where an arm was available (the logged arm must be).
        expected_rewards: optional ``(N, K)`` true mean reward of every arm in every round (simulations only;
            what [`true_value`][banditlib.offline.true_value] reads).

    Raises:
        InvalidInputError: an empty log, a shape that does not match, non-finite values, actions out of
            range or unavailable, propensities that are NaN, zero, negative or above 1; the message names the
            field.

    Examples:
        >>> import torch
        >>> from banditlib.offline import BanditLog
        >>> log = BanditLog(contexts=torch.ones(4, 2), actions=[0, 1, 2, 0], rewards=[1.0, 0.0, 0.5, 1.0],
        ...                 propensities=[1 / 3] * 4, arms=3)
        >>> len(log), log.num_arms, log.shared
        (4, 3, False)
        >>> try:
        ...     BanditLog(torch.ones(2, 2), [0, 1], [1.0, 0.0], [0.5, 0.0], arms=2)
        ... except ValueError as error:
        ...     print(str(error).split("; ")[1])
        got 0.0 at row 1 (1 bad row(s) in all).
    """

    contexts: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    propensities: torch.Tensor
    arms: int | None = None
    mask: torch.Tensor | None = None
    expected_rewards: torch.Tensor | None = None

    def __post_init__(self) -> None:
        where = "BanditLog()"
        x = V.as_real_tensor(self.contexts, where, "contexts", dtype=torch.float64, device=_CPU)
        if x.dim() not in (2, 3) or x.shape[-1] == 0:
            raise InvalidInputError(
                f"{where}: `contexts` must have shape (N, d) (disjoint arms) or (N, K, d) (one feature vector per "
                f"arm) with d >= 1; got {V.fmt_shape(x.shape)}."
            )
        N = x.shape[0]
        if N == 0:
            raise InvalidInputError(f"{where}: the log is empty: `contexts` has N = 0 rounds.")
        if x.dim() == 3:
            K = x.shape[1]
            if K == 0 or (self.arms is not None and self.arms != K):
                raise InvalidInputError(
                    f"{where}: `arms` must be None or K = contexts.shape[1] = {K} for (N, K, d) contexts with K >= 1;"
                    f" got arms={self.arms!r}."
                )
        else:
            if self.arms is None:
                raise InvalidInputError(
                    f"{where}: `arms` (the number of arms K) is required with (N, d) contexts (disjoint arms)."
                )
            K = V.check_int(self.arms, where, "arms")  # type: ignore[assignment]
        a = V.as_index_tensor(self.actions, where, "actions", device=_CPU)
        _check_shape(a, (N,), where, "actions")
        low, high = int(a.min()), int(a.max())
        if low < 0 or high >= K:
            raise InvalidInputError(
                f"{where}: `actions` must be arm indices in [0, {K}); got {low if low < 0 else high}."
            )
        r = V.as_real_tensor(self.rewards, where, "rewards", dtype=torch.float64, device=_CPU)
        _check_shape(r, (N,), where, "rewards")
        p = V.as_real_tensor(self.propensities, where, "propensities", dtype=torch.float64, device=_CPU, finite=False)
        _check_shape(p, (N,), where, "propensities")
        bad = torch.nonzero(~((p > 0) & (p <= 1))).flatten()  # NaN fails both comparisons
        if bad.numel():
            i = int(bad[0])
            raise InvalidInputError(
                f"{where}: `propensities` must be in (0, 1] (the logging policy's probability of the logged arm); "
                f"got {float(p[i])} at row {i} ({bad.numel()} bad row(s) in all)."
            )
        m = None
        if self.mask is not None:
            m = V.as_bool_tensor(self.mask, where, "mask", device=_CPU)
            _check_shape(m, (N, K), where, "mask")
            empty = ~m.any(dim=1)
            if bool(empty.any()):
                raise InvalidInputError(f"{where}: `mask` leaves no arm available in row {int(empty.nonzero()[0])}.")
            off = ~m[torch.arange(N), a]
            if bool(off.any()):
                i = int(off.nonzero()[0])
                raise InvalidInputError(
                    f"{where}: `actions` row {i} is arm {int(a[i])}, which `mask` marks unavailable."
                )
        mu = None
        if self.expected_rewards is not None:
            mu = V.as_real_tensor(self.expected_rewards, where, "expected_rewards", dtype=torch.float64, device=_CPU)
            _check_shape(mu, (N, K), where, "expected_rewards")
        arms = None if x.dim() == 3 else K
        for name, value in (("contexts", x), ("actions", a), ("rewards", r), ("propensities", p), ("arms", arms),
                            ("mask", m), ("expected_rewards", mu)):  # fmt: skip
            object.__setattr__(self, name, value)  # frozen: the validated, converted values replace the inputs

    def __len__(self) -> int:
        return int(self.actions.shape[0])

    @property
    def shared(self) -> bool:
        """Whether the contexts are ``(N, K, d)`` (shared-parameter model)."""
        return self.contexts.dim() == 3

    @property
    def num_arms(self) -> int:
        """``K``."""
        return int(self.contexts.shape[1]) if self.shared else int(self.arms)  # type: ignore[arg-type]

    @property
    def dim(self) -> int:
        """``d``."""
        return int(self.contexts.shape[-1])

    def _rows(self, rows: torch.Tensor) -> BanditLog:
        """The sub-log of the given row indices."""
        mask = None if self.mask is None else self.mask[rows]
        mu = None if self.expected_rewards is None else self.expected_rewards[rows]
        return BanditLog(self.contexts[rows], self.actions[rows], self.rewards[rows], self.propensities[rows],
                         self.arms, mask, mu)  # fmt: skip


def _check_shape(t: torch.Tensor, shape: tuple[int, ...], where: str, name: str) -> None:
    if tuple(t.shape) != shape:
        raise InvalidInputError(
            f"{where}: `{name}` must have shape {V.fmt_shape(shape)} to match `contexts`; got {V.fmt_shape(t.shape)}."
        )


# ------------------------------------------------------------------------------------------------ results


def _interval(value: float, stderr: float, confidence: float) -> tuple[float, float]:
    z = float(norm.ppf(0.5 + confidence / 2.0))
    return (value - z * stderr, value + z * stderr)


def _stderr(terms: torch.Tensor) -> float:
    """Standard error of the mean of i.i.d. terms (``inf`` for a single term: no spread to measure)."""
    n = terms.numel()
    return float(terms.std(correction=1)) / math.sqrt(n) if n > 1 else math.inf


@dataclass(frozen=True)
class Estimate:
    """An importance-weighted estimate of a target policy's value ([`ips`][banditlib.offline.ips],
    [`snips`][banditlib.offline.snips], [`doubly_robust`][banditlib.offline.doubly_robust]).

    Attributes:
        estimator: ``"ips"``, ``"snips"`` or ``"dr"``.
        value: the estimated mean reward of the target policy.
        stderr: its standard error (``inf`` when ``n = 1``).
        ci: ``(low, high)``, ``value -+ z stderr``, the normal-approximation interval at ``confidence``.
        confidence: the nominal coverage of ``ci``.
        n: rounds in the log.
        ess: effective sample size of the weights ``(sum w)^2 / sum w^2``, in ``[0, n]``: far below ``n`` means a
            few rounds dominate and the interval is not to be trusted.
        max_weight: the largest weight ``w_i`` (after clipping).
        clipped: the fraction of rounds whose weight was clipped (0 without ``clip``).

    Examples:
        >>> from banditlib.offline import Estimate
        >>> e = Estimate("ips", 0.5, 0.1, (0.304, 0.696), 0.95, 100, 80.0, 4.0, 0.0)
        >>> e.ci[0] < e.value < e.ci[1]
        True
    """

    estimator: str
    value: float
    stderr: float
    ci: tuple[float, float]
    confidence: float
    n: int
    ess: float
    max_weight: float
    clipped: float


@dataclass(frozen=True)
class ReplayEstimate:
    """The result of [`replay`][banditlib.offline.replay].

    Attributes:
        value: mean reward over the matched rounds.
        stderr: ``std / sqrt(matches)`` of those rewards (``inf`` with one match).
        ci: ``(low, high)`` normal-approximation interval at ``confidence``.
        confidence: the nominal coverage of ``ci``.
        n: rounds in the log.
        matches: rounds where the target chose the logged arm (the rounds that count).
        match_rate: ``matches / n`` (about ``1 / K`` under uniform logging).

    Examples:
        >>> from banditlib.offline import ReplayEstimate
        >>> ReplayEstimate(1.0, 0.2, (0.6, 1.4), 0.95, 40, 10, 0.25).match_rate
        0.25
    """

    value: float
    stderr: float
    ci: tuple[float, float]
    confidence: float
    n: int
    matches: int
    match_rate: float


def _check_bool(value: Any, where: str, name: str) -> None:
    if not isinstance(value, bool):
        raise InvalidInputError(f"{where}: `{name}` must be True or False; got {value!r}.")


def _check_log(log: Any, where: str) -> BanditLog:
    if not isinstance(log, BanditLog):
        raise InvalidInputError(f"{where}: `log` must be a BanditLog; got {type(log).__name__}.")
    return log
