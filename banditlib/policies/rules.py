"""Exploration rules, each written once over any estimator's posterior.

An estimator (the ridge model of `banditlib.policies.ridge`, the gradient model of `banditlib.policies.neural`,
the neural-linear model of `banditlib.policies.neural_linear`) answers one question, ``_mean_var(x)``: the
predicted reward of every (row, arm) and its variance factor, each ``(B, K)`` (public as
[`Policy.predict`][banditlib.Policy.predict]). A rule turns that into scores:

| rule | ``bonus`` (``scores = mean + bonus``) | argument |
| --- | --- | --- |
| [`UCBRule`][banditlib.policies.UCBRule] | ``alpha sqrt(var)`` | ``alpha`` |
| [`ThompsonRule`][banditlib.policies.ThompsonRule] | ``scale sqrt(var) z``, or one ``theta~`` per row | ``scale`` |
| [`GreedyRule`][banditlib.policies.GreedyRule] | ``0`` | |
| [`EpsilonGreedyRule`][banditlib.policies.EpsilonGreedyRule] | ``u - mean`` if the row explores | ``epsilon`` |

(``z ~ N(0, 1)``; ``u`` uniform per arm, drawn on a row that explores, with probability ``epsilon``.)

A policy is a rule over an estimator, by inheritance, rule first: ``class LinUCB(UCBRule, RidgeEstimator)``,
``class NeuralEpsilonGreedy(EpsilonGreedyRule, GradientEstimator)``. A class may rename a rule's argument
(``_param_names = {"alpha": "gamma"}`` for NeuralUCB, as in its paper). Each rule has a numpy single-row form,
used when the estimator has one (``_row_path``).

Thompson sampling over an estimator that is linear and Gaussian in some features (``_sample_form``: the ridge
model with shared parameters, the neural-linear model) draws one ``theta~ = theta + scale L z`` per row,
shared by the row's arms, as the published algorithms do; otherwise each arm's score is an independent draw
from ``N(mean, scale^2 var)`` (for disjoint ridge arms that is exactly the distribution of ``x^T theta~_a``).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch

from banditlib import _random
from banditlib.policies import _params
from banditlib.policies._params import Param, float_in
from banditlib.policies._propensity import Noise
from banditlib.policies.base import Policy

__all__ = ["EpsilonGreedyRule", "GreedyRule", "ThompsonRule", "UCBRule"]


class _Rule(Policy):
    """A rule whose one argument (``_width_param``) a concrete class may rename (``_param_names``); the name it
    is stored under, ``_width_attr``, is resolved once per class, as the rule reads it on every ``select``."""

    _abstract = True
    has_posterior = True  # every rule ranks by the estimator's posterior
    _width_param: ClassVar[str] = ""
    _width_attr: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: object) -> None:
        cls._width_attr = _params.merged(cls, "_param_names").get(cls._width_param, cls._width_param)
        super().__init_subclass__(**kwargs)

    def _width(self) -> float:
        """The value of the rule's argument (``alpha`` of UCB, ``scale`` of Thompson sampling) under the name the
        class gives it (NeuralUCB's ``gamma``, NeuralTS's ``nu``)."""
        return getattr(self, self._width_attr)


class UCBRule(_Rule):
    """Upper confidence bound: ``scores = mean + alpha sqrt(var)``."""

    _abstract = True
    _params: ClassVar[tuple[Param, ...]] = (
        Param("alpha", 1.0, "float", "width of the confidence bonus, ``>= 0`` (``0``: greedy).", float_in(0.0)),
    )
    _width_param = "alpha"
    propensity_rule = "argmax"

    def _score(self, x: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, var = self._mean_var(x)
        return mean, getattr(self, self._width_attr) * var.clamp_min(0.0).sqrt()

    def _score_row(self, x: np.ndarray, row: int) -> tuple[np.ndarray, np.ndarray]:
        mean, var = self._mean_var_row(x)
        # alpha * sqrt(max(var, 0)) in place on the fresh `var` (alpha = 1 multiplies by nothing)
        np.sqrt(np.maximum(var, 0.0, out=var), out=var)
        alpha = getattr(self, self._width_attr)
        if alpha != 1.0:
            var *= alpha
        return mean, var


class ThompsonRule(_Rule):
    """Thompson sampling: rank by a draw from the posterior with its spread scaled by ``scale`` (see the module)."""

    _abstract = True
    _params: ClassVar[tuple[Param, ...]] = (
        Param("scale", 1.0, "float", "posterior scale ``v >= 0`` (``0`` is greedy).", float_in(0.0)),
    )
    _width_param = "scale"
    propensity_rule = "gaussian"
    _noisy = True

    def _score(self, x: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, bonus, _ = self._score_noise(x, rows)
        return mean, bonus

    def _score_noise(self, x: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, Noise | None]:
        scale = getattr(self, self._width_attr)
        form = self._sample_form(x)
        if form is not None:
            phi, theta, chol = form
            z = self._normal(rows, chol.shape[0]).to(self.dtype)
            delta = scale * (z @ chol.T)  # (B, q): theta~ - theta per row
            noise = Noise(factor=phi, chol=chol, scale=scale) if scale else None
            return phi @ theta, torch.bmm(phi, delta.unsqueeze(-1)).squeeze(-1), noise
        mean, var = self._mean_var(x)
        z = self._normal(rows, mean.shape[1]).to(mean.dtype)
        sd = scale * var.clamp_min(0.0).sqrt()
        return mean, sd * z, Noise(sd=sd) if scale else None

    def _score_row(self, x: np.ndarray, row: int) -> tuple[np.ndarray, np.ndarray]:
        mean, bonus, _ = self._score_row_noise(x, row)
        return mean, bonus

    def _score_row_noise(self, x: np.ndarray, row: int) -> tuple[np.ndarray, np.ndarray, Noise | None]:
        scale = getattr(self, self._width_attr)
        form = self._sample_form_row(x)
        if form is not None:
            phi, chol = form
            z = _random.normal_np(self.seed, _random.STREAM_NOISE, row, chol.shape[0]).astype(x.dtype)
            delta = scale * (chol @ z)
            noise = Noise(factor=phi[None].copy(), chol=chol, scale=scale) if scale else None
            return self._mean_row(x), phi @ delta, noise
        mean, var = self._mean_var_row(x)
        z = _random.normal_np(self.seed, _random.STREAM_NOISE, row, mean.shape[0]).astype(x.dtype)
        sd = scale * np.sqrt(np.maximum(var, 0.0))
        return mean, sd * z, Noise(sd=sd[None]) if scale else None


class GreedyRule(_Rule):
    """Greedy: rank by the posterior mean (exact ties broken at random)."""

    _abstract = True
    _params: ClassVar[tuple[Param, ...]] = ()
    propensity_rule = "argmax"

    def _score(self, x: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean = self._mean(x)
        return mean, torch.zeros_like(mean)

    def _score_row(self, x: np.ndarray, row: int) -> tuple[np.ndarray, np.ndarray]:
        mean = self._mean_row(x)
        return mean, np.zeros_like(mean)


class EpsilonGreedyRule(_Rule):
    """Epsilon-greedy: with probability ``epsilon`` a row explores, otherwise it is greedy.

    An exploring row ranks its arms by independent uniform draws, so its ``k`` arms are a uniformly random subset
    of the available ones; ``bonus`` is then ``draw - mean`` (``scores = mean + bonus`` holds)."""

    _abstract = True
    _params: ClassVar[tuple[Param, ...]] = (
        Param("epsilon", 0.1, "float", "exploration probability in ``[0, 1]``.", float_in(0.0, 1.0)),
    )
    propensity_rule = "epsilon"
    epsilon: float  # the propensity computation reads it under this name: not to be renamed

    def _score(self, x: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean = self._mean(x)
        bonus = torch.zeros_like(mean)
        if self.epsilon == 0.0:
            return mean, bonus
        K = mean.shape[1]
        draws = _random.uniform(self.seed, _random.STREAM_EXPLORE, rows, K + 1)
        explore = draws[:, 0] < self.epsilon
        if bool(explore.any()):
            bonus[explore] = draws[explore, 1:].to(mean.dtype) - mean[explore]
        return mean, bonus

    def _score_row(self, x: np.ndarray, row: int) -> tuple[np.ndarray, np.ndarray]:
        mean = self._mean_row(x)
        if self.epsilon == 0.0:
            return mean, np.zeros_like(mean)
        draws = _random.uniform_np(self.seed, _random.STREAM_EXPLORE, row, mean.shape[0] + 1)
        if draws[0] < self.epsilon:
            return mean, draws[1:].astype(mean.dtype) - mean
        return mean, np.zeros_like(mean)
