"""The three synthetic reward functions of the NeuralUCB paper: quadratic, quadratic form and cosine.

Zhou, Li, Gu (ICML 2020), section 7.1: ``d = 20``, ``K = 4``, ``T = 10,000``, rewards ``r = h(x) + xi`` with
``xi ~ N(0, 1)`` and

    h1(x) = 10 (x^T a)^2,      h2(x) = x^T A^T A x,      h3(x) = cos(3 x^T a),

where the entries of ``A`` (``d x d``) are drawn from ``N(0, 1)``, ``a`` uniformly from the unit ball, and every
arm's context ``x_{t,a}`` uniformly from the unit ball. We read the paper as drawing both ``a`` and the
contexts from the *ball*; later re-implementations (for instance the NeuralTS code) normalise Gaussian
vectors, which puts them on the unit *sphere*. ``support="sphere"`` selects that convention for both. In
``d = 20`` the two differ little (a uniform point of the ball has norm ``U^{1/20}``, mean ``20/21``), but the
scale of ``h1`` and ``h3`` depends on it, so regret numbers are comparable only under the same convention.
"""

from __future__ import annotations

import numpy as np

from banditlib import _validation as V
from banditlib.envs.base import Array, BanditEnv, sample_ball, sample_sphere
from banditlib.errors import InvalidInputError

__all__ = ["CosineEnv", "QuadraticEnv", "QuadraticFormEnv"]

SUPPORTS = ("ball", "sphere")


class _NeuralUCBEnv(BanditEnv):
    """Common part: ``K`` arm contexts per round in the unit ball (or sphere), Gaussian noise, ``h`` per arm."""

    def __init__(self, d: int, K: int, noise: float, support: str, instance_seed: int | None) -> None:
        where = f"{type(self).__name__}()"
        self.d: int = V.check_int(d, where, "d")  # type: ignore[assignment]
        self.K: int = V.check_int(K, where, "K", low=2)  # type: ignore[assignment]
        self.noise = V.check_float(noise, where, "noise", low=0.0)
        if support not in SUPPORTS:
            raise InvalidInputError(f"{where}: `support` must be one of {SUPPORTS}; got {support!r}.")
        self.support = support
        self.a: Array = np.zeros(self.d)
        self.A: Array = np.zeros((self.d, self.d))
        super().__init__(num_arms=self.K, obs_shape=(self.K, self.d), instance_seed=V.check_seed(instance_seed, where))

    def _sample(self, rng: np.random.Generator, shape: tuple[int, ...]) -> Array:
        return (sample_ball if self.support == "ball" else sample_sphere)(rng, shape, self.d)

    def _draw_instance(self, rng: np.random.Generator) -> None:
        # Both parameters are drawn for every function, so an instance seed means the same a and A for all three.
        self.a = self._sample(rng, ())
        self.A = rng.standard_normal((self.d, self.d))

    def _draw_round(self, rng: np.random.Generator) -> tuple[Array, Array]:
        x = self._sample(rng, (self.K,))
        return x, self.h(x)

    def _noise_std(self, action: int) -> float:
        return self.noise

    def h(self, x: Array) -> Array:
        """Expected reward of feature vectors ``x`` ``(..., d)`` -> ``(...)``."""
        raise NotImplementedError


class QuadraticEnv(_NeuralUCBEnv):
    """NeuralUCB's ``h1(x) = 10 (x^T a)^2`` with ``a`` uniform in the unit ball; contexts ``(K, d)``.

    Args:
        d: context dimension (paper: 20).
        K: arms per round (paper: 4).
        noise: standard deviation of the Gaussian reward noise (paper: 1).
        support: ``"ball"`` (paper, as we read it) or ``"sphere"`` for ``a`` and the contexts.
        instance_seed: fixes ``a`` and ``A`` for every reset (``None``: drawn from the reset seed).

    Examples:
        >>> import gymnasium as gym, banditlib.envs
        >>> env = gym.make("banditlib/Quadratic-v0")
        >>> env.reset(seed=0)[0].shape
        (4, 20)

    References:
        Zhou, Li, Gu. Neural contextual bandits with UCB-based exploration. ICML 2020, section 7.1.
    """

    def __init__(
        self, d: int = 20, K: int = 4, noise: float = 1.0, support: str = "ball", instance_seed: int | None = None
    ) -> None:
        super().__init__(d, K, noise, support, instance_seed)

    def h(self, x: Array) -> Array:
        """``10 (x^T a)^2``."""
        return 10.0 * (x @ self.a) ** 2


class QuadraticFormEnv(_NeuralUCBEnv):
    """NeuralUCB's ``h2(x) = x^T A^T A x = ||A x||^2`` with ``A_ij ~ N(0, 1)``; contexts ``(K, d)``.

    Args:
        d: context dimension (paper: 20).
        K: arms per round (paper: 4).
        noise: standard deviation of the Gaussian reward noise (paper: 1).
        support: ``"ball"`` (paper, as we read it) or ``"sphere"`` for the contexts.
        instance_seed: fixes ``a`` and ``A`` for every reset.

    Examples:
        >>> import gymnasium as gym, banditlib.envs
        >>> env = gym.make("banditlib/QuadraticForm-v0", d=3, K=2)
        >>> _ = env.reset(seed=0)
        >>> info = env.step(1)[-1]
        >>> info["expected_rewards"].shape
        (2,)

    References:
        Zhou, Li, Gu. Neural contextual bandits with UCB-based exploration. ICML 2020, section 7.1.
    """

    def __init__(
        self, d: int = 20, K: int = 4, noise: float = 1.0, support: str = "ball", instance_seed: int | None = None
    ) -> None:
        super().__init__(d, K, noise, support, instance_seed)

    def h(self, x: Array) -> Array:
        """``||A x||^2``."""
        Ax = x @ self.A.T
        return (Ax * Ax).sum(axis=-1)


class CosineEnv(_NeuralUCBEnv):
    """NeuralUCB's ``h3(x) = cos(3 x^T a)`` with ``a`` uniform in the unit ball; contexts ``(K, d)``.

    Args:
        d: context dimension (paper: 20).
        K: arms per round (paper: 4).
        noise: standard deviation of the Gaussian reward noise (paper: 1).
        support: ``"ball"`` (paper, as we read it) or ``"sphere"`` for ``a`` and the contexts.
        instance_seed: fixes ``a`` and ``A`` for every reset.

    Examples:
        >>> import gymnasium as gym, banditlib.envs
        >>> env = gym.make("banditlib/Cosine-v0", support="sphere")
        >>> env.reset(seed=0)[0].shape
        (4, 20)

    References:
        Zhou, Li, Gu. Neural contextual bandits with UCB-based exploration. ICML 2020, section 7.1.
    """

    def __init__(
        self, d: int = 20, K: int = 4, noise: float = 1.0, support: str = "ball", instance_seed: int | None = None
    ) -> None:
        super().__init__(d, K, noise, support, instance_seed)

    def h(self, x: Array) -> Array:
        """``cos(3 x^T a)``."""
        return np.cos(3.0 * (x @ self.a))
