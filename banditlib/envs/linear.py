"""Linear bandits: a stationary one (``Linear-v0``) and one whose parameter rotates (``Drifting-v0``)."""

from __future__ import annotations

import math

import numpy as np

from banditlib import _validation as V
from banditlib.envs.base import Array, BanditEnv, LinearModel, sample_sphere

__all__ = ["DriftingEnv", "LinearEnv"]


class LinearEnv(BanditEnv):
    """Stationary linear bandit: arm ``a`` pays ``x_a^T theta* + eps``, ``eps ~ N(0, noise^2)``.

    Each round offers ``K`` arms whose features are drawn independently and uniformly on the unit sphere of
    ``R^d`` (so ``L = max ||x|| = 1``); ``theta*`` is uniform on the sphere of radius ``norm`` (``S``), drawn
    once per instance. Observation ``(K, d)``: the shared-parameter model (``Policy(dim=d, arms=None)``).
    With ``S = L = 1`` every mean lies in ``[-1, 1]``, the setting of the OFUL regret bound.
    [`linear_model`][banditlib.envs.LinearEnv.linear_model] exposes ``theta*``, ``noise`` and ``L`` for the theory
    checks.

    Args:
        d: feature dimension.
        K: arms per round, ``>= 2``.
        noise: standard deviation ``sigma`` of the Gaussian reward noise, ``>= 0``.
        norm: ``S = ||theta*||``, ``> 0``.
        instance_seed: fixes ``theta*`` for every reset (``None``: drawn from the reset seed).

    Examples:
        >>> import gymnasium as gym, banditlib.envs
        >>> env = gym.make("banditlib/Linear-v0", d=3, K=5)
        >>> obs, _ = env.reset(seed=0)
        >>> obs.shape
        (5, 3)
        >>> _, reward, _, _, info = env.step(0)
        >>> sorted(info)
        ['expected_rewards', 'optimal_action', 'regret']

    References:
        Abbasi-Yadkori, Pal, Szepesvari. Improved algorithms for linear stochastic bandits. NeurIPS 2011.
    """

    def __init__(
        self, d: int = 10, K: int = 10, noise: float = 0.5, norm: float = 1.0, instance_seed: int | None = None
    ) -> None:
        where = f"{type(self).__name__}()"
        self.d: int = V.check_int(d, where, "d")  # type: ignore[assignment]
        self.K: int = V.check_int(K, where, "K", low=2)  # type: ignore[assignment]
        self.noise = V.check_float(noise, where, "noise", low=0.0)
        self.norm = V.check_float(norm, where, "norm", low=0.0, low_open=True)
        self.theta_star: Array = np.zeros(self.d)
        super().__init__(num_arms=self.K, obs_shape=(self.K, self.d), instance_seed=V.check_seed(instance_seed, where))

    def _draw_instance(self, rng: np.random.Generator) -> None:
        self.theta_star = self.norm * sample_sphere(rng, (), self.d)

    def _draw_round(self, rng: np.random.Generator) -> tuple[Array, Array]:
        x = sample_sphere(rng, (self.K,), self.d)
        return x, x @ self._theta()

    def _theta(self) -> Array:
        return self.theta_star

    def _noise_std(self, action: int) -> float:
        return self.noise

    def linear_model(self) -> LinearModel | None:
        """``theta*``, ``sigma = noise`` and ``L = 1``."""
        return LinearModel(theta=self.theta_star.copy(), noise_std=self.noise, context_bound=1.0)


class DriftingEnv(LinearEnv):
    """Linear bandit whose parameter rotates: ``theta*_t = S (cos(2 pi t / P) u + sin(2 pi t / P) v)``.

    ``u``, ``v`` are orthonormal, drawn once per instance, ``t`` is the round index (0 after ``reset``) and
    ``P = period`` is the number of rounds of one full turn. Everything else is as in
    [`LinearEnv`][banditlib.envs.LinearEnv]. The best arm keeps changing, so a policy must forget old data
    (``forget < 1``) to track it: without forgetting, the ridge estimate converges to the average of ``theta*_t``, which
    is zero over a turn. [`linear_model`][banditlib.envs.DriftingEnv.linear_model] is ``None`` (rewards are not
    stationary; the theory checks do not apply).

    Args:
        d: feature dimension, ``>= 2``.
        K: arms per round, ``>= 2``.
        noise: standard deviation of the Gaussian reward noise.
        norm: ``S = ||theta*_t||`` (constant).
        period: rounds per full rotation ``P``, ``>= 1``.
        instance_seed: fixes ``u`` and ``v`` for every reset.

    Examples:
        >>> import gymnasium as gym, banditlib.envs
        >>> env = gym.make("banditlib/Drifting-v0", d=4, K=3, period=100)
        >>> obs, _ = env.reset(seed=1)
        >>> obs.shape
        (3, 4)

    References:
        Russac, Vernade, Cappe. Weighted linear bandits for non-stationary environments. NeurIPS 2019
        (discounted LinUCB, the algorithm that ``forget`` implements).
    """

    def __init__(
        self,
        d: int = 10,
        K: int = 10,
        noise: float = 0.5,
        norm: float = 1.0,
        period: int = 2000,
        instance_seed: int | None = None,
    ) -> None:
        where = f"{type(self).__name__}()"
        self.period: int = V.check_int(period, where, "period")  # type: ignore[assignment]
        V.check_int(d, where, "d", low=2)
        self._u: Array = np.zeros(1)
        self._v: Array = np.zeros(1)
        super().__init__(d=d, K=K, noise=noise, norm=norm, instance_seed=instance_seed)

    def _draw_instance(self, rng: np.random.Generator) -> None:
        # Gram-Schmidt on two Gaussian vectors: an orthonormal pair spanning a uniformly random plane.
        u = sample_sphere(rng, (), self.d)
        w = rng.standard_normal(self.d)
        w -= (w @ u) * u
        self._u, self._v = u, w / np.linalg.norm(w)
        self.theta_star = self.norm * self._u

    def _theta(self) -> Array:
        angle = 2.0 * math.pi * self.round / self.period
        self.theta_star = self.norm * (math.cos(angle) * self._u + math.sin(angle) * self._v)
        return self.theta_star

    def linear_model(self) -> LinearModel | None:
        """``None``: the parameter drifts, so the stationary theory does not apply."""
        return None
