"""Off-policy evaluation: the value of a target policy estimated from logged bandit data.

A [`BanditLog`][banditlib.offline.BanditLog] holds ``N`` rounds played by a *logging* policy: the context
``x_i``, the arm ``a_i`` it played, the reward ``r_i`` and its propensity ``p_i = mu(a_i | x_i)``. The
estimators answer "what mean reward would the *target* policy ``pi`` have earned on these rounds?" without
running it. With ``w_i = pi(a_i | x_i) / p_i`` (optionally clipped, ``min(w_i, clip)``) and a reward model
``q(x, a)``:

* [`replay`][banditlib.offline.replay]: the mean reward of the rounds where ``pi`` picks ``a_i`` (the target
  learns from those rounds only); unbiased when the logging policy was uniformly random.
* [`ips`][banditlib.offline.ips]: ``V = 1/N sum_i w_i r_i``; unbiased when ``p_i > 0`` wherever ``pi`` plays.
* [`snips`][banditlib.offline.snips]: ``V = sum_i w_i r_i / sum_i w_i``; biased by ``O(1/N)``, always within
  the range of the rewards, often lower variance.
* [`doubly_robust`][banditlib.offline.doubly_robust]:
  ``V = 1/N sum_i [sum_a pi(a | x_i) q(x_i, a) + w_i (r_i - q(x_i, a_i))]``; unbiased if either the
  propensities or the reward model are right, and lower variance than IPS when ``q`` is good.

Every estimate carries a standard error and a normal-approximation confidence interval
``value -+ z stderr`` with ``z = scipy.stats.norm.ppf((1 + confidence) / 2)``: a central-limit approximation,
sound for logs of hundreds of rounds or more and weights that are not dominated by a few rounds (look at
``ess``). [`log_policy`][banditlib.offline.log_policy] records a log from a banditlib environment with exact
propensities and the true expected rewards, so that [`true_value`][banditlib.offline.true_value] gives the
number every estimate should recover. See docs/offline.md for what each estimator assumes.

References:
    Li, Chu, Langford, Wang. Unbiased offline evaluation of contextual-bandit-based news article
    recommendation algorithms. WSDM 2011. Dudik, Langford, Li. Doubly robust policy evaluation and learning.
    ICML 2011.
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy.stats import norm

from banditlib import _validation as V
from banditlib.errors import InvalidInputError, StateError
from banditlib.policies import EENet, EpsilonGreedy, Greedy, LinTS, LinUCB, NeuralLinUCB, NeuralUCB, Policy, Random
from banditlib.policies.base import Selection

__all__ = [
    "BanditLog",
    "Estimate",
    "ReplayEstimate",
    "RidgeRewardModel",
    "action_probabilities",
    "doubly_robust",
    "ips",
    "log_policy",
    "replay",
    "snips",
    "true_value",
]

#: A target given as a function: contexts ``(N, d)`` or ``(N, K, d)`` -> ``(N, K)`` action probabilities.
ProbabilityFn = Callable[[torch.Tensor], Any]
#: A reward model: ``(contexts, actions (N,))`` -> ``(N,)`` predicted rewards of those arms.
RewardFn = Callable[[torch.Tensor, torch.Tensor], Any]
Target = Policy | ProbabilityFn

_CPU = torch.device("cpu")
_CHUNK = 4096  # rows per `select` call when scoring a whole log
_ARGMAX_RULES = (LinUCB, Greedy, NeuralUCB, NeuralLinUCB, EENet)  # deterministic given their state


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


# --------------------------------------------------------------------------------- target probabilities


def _argmax_probabilities(scores: torch.Tensor) -> torch.Tensor:
    """Uniform over each row's maximal entries: how an argmax with random tie-breaking plays."""
    top = scores == scores.max(dim=1, keepdim=True).values
    return top.double() / top.sum(dim=1, keepdim=True)


def _epsilon_probabilities(mean: torch.Tensor, available: torch.Tensor, epsilon: float) -> torch.Tensor:
    """``epsilon / K_avail + (1 - epsilon) greedy(a)``: an exploring row of EpsilonGreedy ranks the available arms
    by fresh uniform draws, so the explored arm is uniform over them and may be the greedy one."""
    uniform = available.double() / available.sum(dim=1, keepdim=True)
    greedy = _argmax_probabilities(mean.masked_fill(~available, -math.inf))
    return epsilon * uniform + (1.0 - epsilon) * greedy


def _rule(policy: Policy) -> str:
    """How a policy's action probabilities are computed: ``uniform``, ``epsilon``, ``argmax`` or ``sample``."""
    kind = type(policy)
    if kind is Random:
        return "uniform"
    if kind is EpsilonGreedy:
        return "epsilon"
    if kind in _ARGMAX_RULES or (kind is LinTS and policy.scale == 0.0):
        return "argmax"
    return "sample"  # Thompson sampling, and any policy whose rule this module does not know


def _check_fits(policy: Policy, shared: bool, dim: int, K: int, where: str) -> None:
    model = "shared-parameter (arms=None)" if shared else f"disjoint (arms={K})"
    if policy.dim != dim or (policy.arms is not None) == shared or (not shared and policy.arms != K):
        raise InvalidInputError(
            f"{where}: `target` ({type(policy).__name__}(dim={policy.dim}, arms={policy.arms})) does not fit the "
            f"log: it needs a {model} policy with dim = {dim}."
        )


def _probabilities(
    target: Any, x: torch.Tensor, mask: torch.Tensor | None, K: int, samples: int, where: str
) -> torch.Tensor:
    """``(N, K)`` float64 probabilities of every arm under ``target`` (a policy, never mutated, or a function)."""
    N = x.shape[0]
    available = torch.ones(N, K, dtype=torch.bool) if mask is None else mask
    samples = V.check_int(samples, where, "samples")  # type: ignore[assignment]
    if isinstance(target, Policy):
        _check_fits(target, x.dim() == 3, x.shape[-1], K, where)
        policy, rule = copy.deepcopy(target), _rule(target)
        out = torch.empty(N, K, dtype=torch.float64)
        for lo in range(0, N, _CHUNK):
            rows = slice(lo, min(lo + _CHUNK, N))
            m = None if mask is None else mask[rows]
            sel = policy.select(x[rows], mask=m)
            given = getattr(sel, "propensity", None)  # planned: the policy's own (B, K) probabilities
            if isinstance(given, torch.Tensor) and tuple(given.shape) == (rows.stop - lo, K):
                out[rows] = given.detach().to(_CPU, torch.float64)
            elif rule == "uniform":
                out[rows] = available[rows].double() / available[rows].sum(dim=1, keepdim=True)
            elif rule == "epsilon":
                eps = float(target.epsilon)  # type: ignore[arg-type]
                out[rows] = _epsilon_probabilities(sel.mean.detach().to(_CPU, torch.float64), available[rows], eps)
            elif rule == "argmax":
                out[rows] = _argmax_probabilities(sel.scores.detach().to(_CPU, torch.float64))
            else:
                counts = torch.zeros(rows.stop - lo, K, dtype=torch.float64)
                for s in range(samples):
                    if s:
                        sel = policy.select(x[rows], mask=m)
                    counts[torch.arange(rows.stop - lo), sel.actions[:, 0].to(_CPU)] += 1.0
                out[rows] = counts / samples
        return out
    if not callable(target):
        raise InvalidInputError(
            f"{where}: `target` must be a banditlib Policy or a function contexts -> (N, K) action probabilities; "
            f"got {type(target).__name__}."
        )
    probs = V.as_real_tensor(target(x), where, "target(contexts)", dtype=torch.float64, device=_CPU)
    if tuple(probs.shape) != (N, K):
        raise InvalidInputError(
            f"{where}: `target(contexts)` must return (N, K) = {V.fmt_shape((N, K))} probabilities; "
            f"got {V.fmt_shape(probs.shape)}."
        )
    if bool((probs < 0).any()) or bool(((probs.sum(dim=1) - 1).abs() > 1e-6).any()):
        raise InvalidInputError(f"{where}: the rows of `target(contexts)` must be probabilities: >= 0, summing to 1.")
    if bool((probs[~available] > 1e-12).any()):
        raise InvalidInputError(f"{where}: `target(contexts)` gives probability to arms that `mask` marks unavailable.")
    return probs


def action_probabilities(target: Target, contexts: Any, mask: Any = None, *, samples: int = 200) -> torch.Tensor:
    """Every arm's probability under ``target`` in every round, without changing ``target``.

    For a [`Policy`][banditlib.Policy] the rule is read off its class (``select`` runs on a deep copy):

    * ``Random``: uniform over the available arms;
    * ``EpsilonGreedy``: ``epsilon / K_avail + (1 - epsilon) 1[a greedy]`` (the explored arm is uniform over the
      available arms, the greedy one included);
    * ``LinUCB``, ``Greedy``, ``NeuralUCB``, ``NeuralLinUCB``, ``EENet``, and ``LinTS`` with ``scale = 0``:
      deterministic, the argmax of ``scores`` with exact ties shared equally (they break ties uniformly);
    * anything else (``LinTS``, ``NeuralTS``, ``NeuralLinTS``, subclasses, new policies): Monte Carlo, the
      frequencies of ``samples`` independent selections (successive decisions of the counter-based generator),
      each entry within ``sqrt(p (1 - p) / samples)`` (at most ``0.5 / sqrt(samples)``) of the truth.

    A ``Selection`` with a ``propensity`` field of shape ``(B, K)`` (planned) is used instead when present.

    Args:
        target: a policy (``k = 1`` decisions) or a function contexts -> ``(N, K)`` probabilities.
        contexts: ``(N, d)`` (disjoint arms) or ``(N, K, d)``.
        mask: optional ``(N, K)`` bool availability.
        samples: selections per round for the Monte Carlo rule.

    Returns:
        ``(N, K)`` float64 CPU tensor, rows summing to 1, zero on unavailable arms.

    Raises:
        InvalidInputError: bad contexts or mask, a policy of another arm model or dimension, a function that
            does not return probabilities.

    Examples:
        >>> import torch, banditlib
        >>> from banditlib.offline import action_probabilities
        >>> policy = banditlib.EpsilonGreedy(dim=2, arms=4, epsilon=0.2, seed=0)
        >>> policy.update(torch.ones(1, 2), torch.tensor([[3]]), torch.tensor([[1.0]]))
        >>> action_probabilities(policy, torch.ones(1, 2)).tolist()
        [[0.05, 0.05, 0.05, 0.8500000000000001]]
    """
    where = "action_probabilities()"
    x = V.as_real_tensor(contexts, where, "contexts", dtype=torch.float64, device=_CPU)
    if x.dim() == 3:
        K = x.shape[1]
    elif x.dim() == 2 and isinstance(target, Policy) and target.arms is not None:
        K = target.arms
    elif x.dim() == 2 and mask is not None:
        K = V.as_bool_tensor(mask, where, "mask", device=_CPU).shape[-1]
    else:
        raise InvalidInputError(
            f"{where}: `contexts` must be (N, K, d), or (N, d) with a disjoint policy or a mask giving K; "
            f"got {V.fmt_shape(x.shape)}."
        )
    if x.shape[0] == 0 or x.shape[-1] == 0 or K == 0:
        raise InvalidInputError(f"{where}: `contexts` must hold N >= 1 rounds, K >= 1 arms and d >= 1 features; "
                                f"got {V.fmt_shape(x.shape)}.")  # fmt: skip
    m = None
    if mask is not None:
        m = V.as_bool_tensor(mask, where, "mask", device=_CPU)
        V.check_mask(m, where, batch=x.shape[0], num_arms=K, k=1)
    return _probabilities(target, x, m, K, samples, where)


# ---------------------------------------------------------------------------------------- reward model


class RidgeRewardModel:
    """Ridge regression of the reward on ``[x, 1]``, in closed form in float64: one model per arm (disjoint
    logs) or one over the played arms' feature vectors (shared-parameter logs); the default reward model of
    [`doubly_robust`][banditlib.offline.doubly_robust].

    Per model ``coef = (Z^T Z + reg I)^-1 Z^T r`` over its rounds' ``z = [x, 1]`` (the intercept is penalised
    like the other coefficients). A disjoint arm with no logged round predicts 0.

    Args:
        reg: ridge regulariser ``> 0``.

    Raises:
        InvalidInputError: ``reg`` not a positive number.

    Examples:
        >>> import torch
        >>> from banditlib.offline import BanditLog, RidgeRewardModel
        >>> log = BanditLog(torch.tensor([[1.0], [2.0], [1.0]]), [0, 0, 1], [2.0, 4.0, -1.0], [0.5] * 3, arms=2)
        >>> model = RidgeRewardModel(reg=1e-9).fit(log)
        >>> model(torch.tensor([[3.0], [3.0]]), torch.tensor([0, 1])).round(decimals=3).tolist()
        [6.0, -2.0]
    """

    coef_: torch.Tensor

    def __init__(self, reg: float = 1.0) -> None:
        self.reg = V.check_float(reg, "RidgeRewardModel()", "reg", low=0.0, low_open=True)
        self._shared = False

    def fit(self, log: BanditLog) -> RidgeRewardModel:
        """Fit on a log: ``coef_`` ``(M, d + 1)`` float64 (``M = K`` disjoint, 1 shared); returns ``self``.

        Args:
            log: the rounds to fit on.

        Returns:
            ``self``, fitted.

        Examples:
            >>> import torch
            >>> from banditlib.offline import BanditLog, RidgeRewardModel
            >>> log = BanditLog(torch.ones(2, 3, 2), [0, 2], [1.0, 1.0], [1 / 3, 1 / 3])
            >>> RidgeRewardModel().fit(log).coef_.shape
            torch.Size([1, 3])
        """
        log = _check_log(log, "RidgeRewardModel.fit()")
        N, d = len(log), log.dim
        x = log.contexts[torch.arange(N), log.actions] if log.shared else log.contexts
        z = torch.cat([x, torch.ones(N, 1, dtype=torch.float64)], dim=1)
        groups = (
            [torch.arange(N)]
            if log.shared
            else [torch.nonzero(log.actions == a).flatten() for a in range(log.num_arms)]
        )
        eye = self.reg * torch.eye(d + 1, dtype=torch.float64)
        self.coef_ = torch.stack([torch.linalg.solve(z[g].T @ z[g] + eye, z[g].T @ log.rewards[g]) for g in groups])
        self._shared = log.shared
        return self

    def __call__(self, contexts: Any, actions: Any) -> torch.Tensor:
        """Predicted rewards ``(N,)`` float64 of arms ``actions`` ``(N,)`` given ``(N, d)`` or ``(N, K, d)`` contexts
        (the arm model of the log it was fitted on).

        Raises:
            StateError: called before [`fit`][banditlib.offline.RidgeRewardModel.fit].
            InvalidInputError: contexts or actions of the wrong shape or range.
        """
        where = "RidgeRewardModel()"
        if not hasattr(self, "coef_"):
            raise StateError(f"{where}: call fit(log) before predicting.")
        x = V.as_real_tensor(contexts, where, "contexts", dtype=torch.float64, device=_CPU)
        a = V.as_index_tensor(actions, where, "actions", device=_CPU)
        M, d = self.coef_.shape[0], self.coef_.shape[1] - 1
        want = "(N, K, d)" if self._shared else "(N, d)"
        if x.dim() != (3 if self._shared else 2) or x.shape[-1] != d or tuple(a.shape) != (x.shape[0],):
            raise InvalidInputError(
                f"{where}: `contexts` must be {want} with d = {d} and `actions` (N,); got {V.fmt_shape(x.shape)} and "
                f"{V.fmt_shape(a.shape)}."
            )
        K = x.shape[1] if self._shared else M
        if a.numel() and (int(a.min()) < 0 or int(a.max()) >= K):
            raise InvalidInputError(f"{where}: `actions` must be arm indices in [0, {K}).")
        if self._shared:
            x = x[torch.arange(x.shape[0]), a]
        coef = self.coef_[torch.zeros_like(a) if self._shared else a]
        return (x * coef[:, :-1]).sum(dim=1) + coef[:, -1]


def _predict_all(model: RewardFn, log: BanditLog, where: str) -> torch.Tensor:
    """``q(x_i, a)`` for every round and arm: ``(N, K)`` float64."""
    N = len(log)
    cols = []
    for a in range(log.num_arms):
        out = model(log.contexts, torch.full((N,), a, dtype=torch.long))
        q = V.as_real_tensor(out, where, "reward_model(contexts, actions)", dtype=torch.float64, device=_CPU)
        if tuple(q.shape) != (N,):
            raise InvalidInputError(
                f"{where}: `reward_model(contexts, actions)` must return (N,) = ({N},) predicted rewards; "
                f"got {V.fmt_shape(q.shape)}."
            )
        cols.append(q)
    return torch.stack(cols, dim=1)


def _reward_table(log: BanditLog, reward_model: Any, cross_fit: bool, reg: float, where: str) -> torch.Tensor:
    if isinstance(reward_model, str):
        if reward_model != "ridge":
            raise InvalidInputError(f"{where}: `reward_model` must be 'ridge' or a callable; got {reward_model!r}.")
        reg = V.check_float(reg, where, "reg", low=0.0, low_open=True)
        if not cross_fit or len(log) < 2:
            return _predict_all(RidgeRewardModel(reg).fit(log), log, where)
        # Two folds, even and odd rows (balanced over time when the logger adapted): each half is predicted by
        # the model fitted on the other, so no reward corrects a prediction that was fitted to it.
        q = torch.empty(len(log), log.num_arms, dtype=torch.float64)
        index = torch.arange(len(log))
        for fold in (0, 1):
            fit_rows, pred_rows = index[index % 2 != fold], index[index % 2 == fold]
            model = RidgeRewardModel(reg).fit(log._rows(fit_rows))
            q[pred_rows] = _predict_all(model, log._rows(pred_rows), where)
        return q
    if not callable(reward_model):
        raise InvalidInputError(f"{where}: `reward_model` must be 'ridge' or a callable; got {reward_model!r}.")
    if cross_fit:
        raise InvalidInputError(
            f"{where}: `cross_fit=True` refits the reward model on each half of the log, which needs "
            "reward_model='ridge'; a callable is used as given (fit it on other data instead)."
        )
    return _predict_all(reward_model, log, where)


# ----------------------------------------------------------------------------------------- estimators


def _check_bool(value: Any, where: str, name: str) -> None:
    if not isinstance(value, bool):
        raise InvalidInputError(f"{where}: `{name}` must be True or False; got {value!r}.")


def _check_log(log: Any, where: str) -> BanditLog:
    if not isinstance(log, BanditLog):
        raise InvalidInputError(f"{where}: `log` must be a BanditLog; got {type(log).__name__}.")
    return log


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


# -------------------------------------------------------------------------------------------- logging

PropensityFn = Callable[[Policy, np.ndarray, Selection], float]


def _logging_propensity(policy: Policy, rule: str, sel: Selection, K: int) -> float | None:
    """The probability that ``policy`` chose ``sel.actions[0, 0]``, or ``None`` when it cannot be known here."""
    a = int(sel.actions[0, 0])
    given = getattr(sel, "propensity", None)
    if isinstance(given, torch.Tensor):
        return float(given.reshape(-1)[a] if given.numel() == K else given.reshape(-1)[0])
    if rule == "uniform":
        return 1.0 / K
    if rule == "epsilon":
        mean = sel.mean.detach().to(_CPU, torch.float64)
        eps = float(policy.epsilon)  # type: ignore[arg-type]
        return float(_epsilon_probabilities(mean, torch.ones_like(mean, dtype=torch.bool), eps)[0, a])
    return None


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
    as an online system would; each propensity is its exact probability of the played arm at that round:
    ``1 / K`` for ``Random``, ``epsilon / K + (1 - epsilon) 1[a greedy]`` (greedy ties shared equally) for
    ``EpsilonGreedy``, ``Selection.propensity`` when a policy provides it, else ``propensity_fn``. Other
    policies are refused: a deterministic logger (LinUCB, Greedy) gives no information about the arms it never
    plays. ``expected_rewards`` comes from ``info["expected_rewards"]`` (every banditlib environment), else from
    ``env.unwrapped.linear_model()`` for ``(K, d)`` observations, else it is ``None``.

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
        InvalidInputError: a policy whose propensities are unknown (and no ``propensity_fn``), a policy that does
            not fit the environment, a ``propensity_fn`` value outside ``(0, 1]``, bad ``n`` or ``seed``.

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
    rule = _rule(policy)
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
            known = _logging_propensity(logger, rule, sel, K)
            if known is None:
                raise InvalidInputError(
                    f"{where}: the propensities of {type(policy).__name__} are not known in closed form (Random and "
                    "EpsilonGreedy are); pass `propensity_fn` (deterministic loggers such as LinUCB or Greedy never "
                    "play most arms, so their logs cannot evaluate other policies)."
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
