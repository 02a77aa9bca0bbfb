"""Theory checks for linear bandits, as pure functions over a run's recorded data.

Setting (Abbasi-Yadkori, Pal, Szepesvari 2011, "OFUL"): in round ``t`` the learner plays a feature vector
``x_t`` (``||x_t|| <= L``) and observes ``y_t = x_t^T theta* + eta_t`` with ``||theta*|| <= S`` and
``eta_t`` conditionally ``R``-sub-Gaussian (``R = sigma``, the noise standard deviation, for Gaussian noise).
With a ridge regulariser ``lambda > 0``:

    V_t = lambda I + sum_{s<=t} x_s x_s^T,     theta_hat_t = V_t^{-1} sum_{s<=t} y_s x_s.

Nothing here assumes how the ``x_t`` were chosen: the confidence set and the elliptical potential lemma hold
for any sequence chosen from the past (any policy). The regret bound is a guarantee for OFUL, whose
exploration radius is ``beta_t``; banditlib's ``LinUCB`` uses a constant ``alpha`` instead, so for it the bound
is a reference curve, not a theorem. Everything is computed in float64 from the recorded vectors.

References:
    Abbasi-Yadkori, Pal, Szepesvari. Improved algorithms for linear stochastic bandits. NeurIPS 2011
    (Theorem 2: confidence set; Theorem 3: regret of OFUL; Lemma 11: elliptical potential).
    Lattimore, Szepesvari. Bandit Algorithms. Cambridge University Press 2020, Lemma 19.4 and Theorem 20.5.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from banditlib.errors import InvalidInputError

__all__ = [
    "Coverage",
    "Potential",
    "confidence_coverage",
    "confidence_radius",
    "elliptical_potential",
    "oful_regret_bound",
]

Array = NDArray[np.float64]


def _check_positive(value: float, where: str, name: str, *, allow_zero: bool = False) -> float:
    ok = isinstance(value, (int, float, np.floating, np.integer)) and not isinstance(value, bool)
    v = float(value) if ok else math.nan
    if not (math.isfinite(v) and (v >= 0 if allow_zero else v > 0)):
        bound = ">= 0" if allow_zero else "> 0"
        raise InvalidInputError(f"{where}: `{name}` must be a finite number {bound}; got {value!r}.")
    return v


def _check_delta(delta: float, where: str) -> float:
    v = _check_positive(delta, where, "delta")
    if v >= 1:
        raise InvalidInputError(f"{where}: `delta` must be in (0, 1); got {delta!r}.")
    return v


def _check_features(x: Any, where: str) -> Array:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0 or not np.isfinite(arr).all():
        raise InvalidInputError(
            f"{where}: `x` must be a finite (T, d) array of played feature vectors with T, d >= 1; "
            f"got shape {arr.shape}."
        )
    return arr


def confidence_radius(logdet_v: Any, d: int, reg: float, noise: float, norm_bound: float, delta: float) -> Any:
    """The OFUL confidence radius ``beta_t(delta)`` from ``log det V_t``.

    ``beta_t = R sqrt(2 log(det(V_t)^{1/2} det(lambda I)^{-1/2} / delta)) + sqrt(lambda) S``
    ``      = R sqrt(log det V_t - d log lambda + 2 log(1/delta)) + sqrt(lambda) S``.

    With probability at least ``1 - delta``, ``||theta_hat_t - theta*||_{V_t} <= beta_t`` for all ``t >= 0``
    simultaneously.

    Args:
        logdet_v: ``log det V_t``, a float or an array ``(T,)``.
        d: dimension.
        reg: ``lambda > 0``.
        noise: ``R >= 0``, the sub-Gaussian constant of the noise.
        norm_bound: ``S >= 0``, a bound on ``||theta*||``.
        delta: failure probability in ``(0, 1)``.

    Returns:
        ``beta_t``, same shape as ``logdet_v``.

    Examples:
        >>> round(float(confidence_radius(0.0, d=2, reg=1.0, noise=1.0, norm_bound=1.0, delta=0.05)), 4)
        3.4477

    References:
        Abbasi-Yadkori, Pal, Szepesvari. Improved algorithms for linear stochastic bandits. NeurIPS 2011,
        Theorem 2.
    """
    where = "confidence_radius()"
    reg = _check_positive(reg, where, "reg")
    noise = _check_positive(noise, where, "noise", allow_zero=True)
    norm_bound = _check_positive(norm_bound, where, "norm_bound", allow_zero=True)
    delta = _check_delta(delta, where)
    inner = np.maximum(np.asarray(logdet_v, dtype=np.float64) - d * math.log(reg) + 2.0 * math.log(1.0 / delta), 0.0)
    return noise * np.sqrt(inner) + math.sqrt(reg) * norm_bound


def oful_regret_bound(
    t: Any, d: int, reg: float, noise: float, norm_bound: float, context_bound: float, delta: float
) -> Any:
    """The OFUL regret bound after ``t`` rounds (Theorem 3 of Abbasi-Yadkori et al. 2011).

    ``R_t <= 4 sqrt(t d log(lambda + t L^2 / d)) (sqrt(lambda) S + R sqrt(2 log(1/delta) + d log(1 + t L^2 /
    (lambda d))))``, with probability at least ``1 - delta`` for all ``t``, when every mean reward lies in
    ``[-1, 1]`` and ``lambda >= max(1, L^2)``. The ``L^2`` terms come from the determinant-trace inequality
    ``det V_t <= (lambda + t L^2 / d)^d`` (their Lemma 10); the theorem is also quoted with ``t L / d``, and we
    could not check the printed version. The two agree for ``L = 1``, the case of ``Linear-v0``.

    Args:
        t: rounds, an int or an array.
        d: dimension.
        reg: ``lambda > 0``.
        noise: ``R >= 0``.
        norm_bound: ``S >= 0``.
        context_bound: ``L > 0``.
        delta: failure probability in ``(0, 1)``.

    Returns:
        The bound, same shape as ``t``.

    Examples:
        >>> round(float(oful_regret_bound(100, d=1, reg=1.0, noise=0.0, norm_bound=1.0, context_bound=1.0,
        ...                               delta=0.05)), 3)
        85.931

    References:
        Abbasi-Yadkori, Pal, Szepesvari. Improved algorithms for linear stochastic bandits. NeurIPS 2011,
        Theorem 3 and Lemma 10.
    """
    where = "oful_regret_bound()"
    reg = _check_positive(reg, where, "reg")
    noise = _check_positive(noise, where, "noise", allow_zero=True)
    norm_bound = _check_positive(norm_bound, where, "norm_bound", allow_zero=True)
    L2 = _check_positive(context_bound, where, "context_bound") ** 2
    delta = _check_delta(delta, where)
    n = np.asarray(t, dtype=np.float64)
    width = math.sqrt(reg) * norm_bound + noise * np.sqrt(2 * math.log(1 / delta) + d * np.log1p(n * L2 / (reg * d)))
    return 4.0 * np.sqrt(n * d * np.log(reg + n * L2 / d)) * width


@dataclass(frozen=True)
class Potential:
    """Both sides of the elliptical potential lemma for one sequence.

    Attributes:
        terms: ``(T,)`` ``||x_t||^2_{V_{t-1}^{-1}}``.
        total: ``sum_t min(1, terms_t)``.
        bound: ``2 log(det V_T / det V_0)``.
    """

    terms: Array
    total: float
    bound: float

    @property
    def holds(self) -> bool:
        """``total <= bound`` (up to float64 rounding of ``bound``)."""
        return self.total <= self.bound * (1 + 1e-12) + 1e-12


def elliptical_potential(x: Any, reg: float) -> Potential:
    """The elliptical potential lemma on a sequence ``x`` ``(T, d)``, computed exactly in float64.

    ``sum_{t=1}^T min(1, ||x_t||^2_{V_{t-1}^{-1}}) <= 2 log(det V_T / det V_0)``, ``V_0 = lambda I``. It holds for
    every sequence: ``min(1, u) <= 2 log(1 + u)`` for ``u >= 0``, and ``det V_t = det V_{t-1} (1 + u_t)``. The
    left side comes from a Sherman-Morrison pass; the right side from one ``slogdet`` of ``V_T``, so the
    check compares two independent computations.

    Args:
        x: ``(T, d)`` the played feature vectors in order.
        reg: ``lambda > 0``.

    Returns:
        A [`Potential`][banditlib.experiments.theory.Potential].

    Examples:
        >>> p = elliptical_potential([[1.0, 0.0], [1.0, 0.0]], reg=1.0)
        >>> p.terms.tolist(), p.holds
        ([1.0, 0.5], True)

    References:
        Abbasi-Yadkori, Pal, Szepesvari. NeurIPS 2011, Lemma 11. Lattimore, Szepesvari. Bandit Algorithms,
        Lemma 19.4.
    """
    where = "elliptical_potential()"
    X = _check_features(x, where)
    reg = _check_positive(reg, where, "reg")
    T, d = X.shape
    V_inv = np.eye(d) / reg
    terms = np.empty(T)
    for t in range(T):
        Vx = V_inv @ X[t]
        u = float(X[t] @ Vx)
        terms[t] = u
        V_inv -= np.outer(Vx, Vx) / (1.0 + u)
    sign, logdet = np.linalg.slogdet(reg * np.eye(d) + X.T @ X)
    bound = 2.0 * (float(logdet) - d * math.log(reg)) if sign > 0 else math.inf
    return Potential(terms=terms, total=float(np.minimum(1.0, terms).sum()), bound=bound)


@dataclass(frozen=True)
class Coverage:
    """Whether ``theta*`` lay in the OFUL confidence ellipsoid after each round.

    Attributes:
        distance: ``(T,)`` ``||theta_hat_t - theta*||_{V_t}`` after ``t = 1..T`` observations.
        radius: ``(T,)`` ``beta_t(delta)``.
        inside: ``(T,)`` bool, ``distance <= radius``.
    """

    distance: Array
    radius: Array
    inside: NDArray[np.bool_]

    @property
    def fraction(self) -> float:
        """Fraction of rounds with ``theta*`` inside the ellipsoid."""
        return float(self.inside.mean())

    @property
    def always(self) -> bool:
        """``theta*`` inside at every round: the event Theorem 2 gives probability ``>= 1 - delta``."""
        return bool(self.inside.all())


def confidence_coverage(
    x: Any, y: Any, theta: Any, reg: float, noise: float, delta: float, norm_bound: float | None = None
) -> Coverage:
    """Confidence-set coverage: is ``||theta_hat_t - theta*||_{V_t} <= beta_t(delta)`` after each round?

    Computed without forming ``theta_hat_t``: since ``V_t theta_hat_t = b_t``,
    ``V_t (theta_hat_t - theta*) = s_t`` with ``s_t = sum_{s<=t} x_s (y_s - x_s^T theta*) - lambda theta*``, so
    ``||theta_hat_t - theta*||^2_{V_t} = s_t^T V_t^{-1} s_t`` and ``log det V_t`` accumulates
    ``log(1 + ||x_t||^2_{V_{t-1}^{-1}})`` (matrix determinant lemma); ``V_t^{-1}`` by Sherman-Morrison.

    Args:
        x: ``(T, d)`` played feature vectors.
        y: ``(T,)`` observed (noisy) rewards.
        theta: ``(d,)`` the true parameter ``theta*``.
        reg: ``lambda > 0``.
        noise: ``R``, the sub-Gaussian constant of the noise.
        delta: failure probability in ``(0, 1)``.
        norm_bound: ``S``; ``None`` uses ``||theta*||``.

    Returns:
        A [`Coverage`][banditlib.experiments.theory.Coverage].

    Examples:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> x = rng.normal(size=(200, 3)); theta = np.array([0.6, 0.0, -0.8])
        >>> y = x @ theta + 0.1 * rng.normal(size=200)
        >>> confidence_coverage(x, y, theta, reg=1.0, noise=0.1, delta=0.05).always
        True

    References:
        Abbasi-Yadkori, Pal, Szepesvari. Improved algorithms for linear stochastic bandits. NeurIPS 2011,
        Theorem 2.
    """
    where = "confidence_coverage()"
    X = _check_features(x, where)
    T, d = X.shape
    Y = np.asarray(y, dtype=np.float64)
    th = np.asarray(theta, dtype=np.float64)
    if Y.shape != (T,) or th.shape != (d,) or not (np.isfinite(Y).all() and np.isfinite(th).all()):
        raise InvalidInputError(
            f"{where}: `y` must be finite with shape (T,) = ({T},) and `theta` with shape (d,) = ({d},); "
            f"got {Y.shape} and {th.shape}."
        )
    reg = _check_positive(reg, where, "reg")
    S = float(np.linalg.norm(th)) if norm_bound is None else norm_bound
    V_inv = np.eye(d) / reg
    s = -reg * th
    logdet = d * math.log(reg)
    residual = Y - X @ th
    distance = np.empty(T)
    logdets = np.empty(T)
    for t in range(T):
        Vx = V_inv @ X[t]
        u = float(X[t] @ Vx)
        V_inv -= np.outer(Vx, Vx) / (1.0 + u)
        logdet += math.log1p(u)
        s += residual[t] * X[t]
        distance[t] = math.sqrt(max(float(s @ V_inv @ s), 0.0))
        logdets[t] = logdet
    radius = np.asarray(confidence_radius(logdets, d, reg, noise, S, delta), dtype=np.float64)
    return Coverage(distance=distance, radius=radius, inside=distance <= radius)
