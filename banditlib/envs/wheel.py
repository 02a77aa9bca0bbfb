"""The wheel bandit of Riquelme, Tucker, Snoek (ICLR 2018): exploration with a tunable difficulty ``delta``."""

from __future__ import annotations

import numpy as np

from banditlib import _validation as V
from banditlib.envs.base import Array, BanditEnv, sample_ball

__all__ = ["WheelEnv"]


class WheelEnv(BanditEnv):
    """Wheel bandit: a context ``X`` uniform in the unit disc, five arms, a rare high-paying region.

    Arm 0 always pays ``N(mu_1, sigma^2)``, ``mu_1 = 1.2``. Inside the inner disc ``||X|| < delta`` arms 1-4 pay
    ``N(mu_2, sigma^2)``, ``mu_2 = 1.0``, so arm 0 is optimal. Outside it, the arm of ``X``'s quadrant pays
    ``N(mu_3, sigma^2)``, ``mu_3 = 50``, and is optimal; the other three still pay ``mu_2``:

    | quadrant | arm |
    |---|---|
    | ``x_1 > 0``, ``x_2 > 0`` | 1 |
    | ``x_1 > 0``, ``x_2 <= 0`` | 2 |
    | ``x_1 <= 0``, ``x_2 > 0`` | 3 |
    | ``x_1 <= 0``, ``x_2 <= 0`` | 4 |

    The probability of the outer region is ``1 - delta^2``: the larger ``delta``, the longer a policy must
    keep exploring to find the large rewards (the paper evaluates ``delta`` in {0.5, 0.7, 0.9, 0.95, 0.99}).
    ``sigma = 0.01`` for every arm, as published; the authors' example script uses ``0.05`` for the ``mu_1``
    and ``mu_2`` rewards, which ``std`` reproduces. Their code lists the safe arm last (index 4) and the
    quadrant arms first; here it is arm 0, as in the paper's text. The observation is the context ``(2,)``:
    the disjoint arm model (``Policy(dim=2, arms=5)``). Rewards are not linear in ``X``.

    Args:
        delta: exploration parameter in ``(0, 1)``.
        mu_1: mean reward of arm 0.
        mu_2: mean reward of a non-optimal quadrant arm (and of every quadrant arm inside the disc).
        mu_3: mean reward of the quadrant arm outside the disc.
        std: noise standard deviation of every arm's reward.
        instance_seed: accepted for a uniform signature; the wheel has no hidden parameters.

    Examples:
        >>> import gymnasium as gym, banditlib.envs
        >>> env = gym.make("banditlib/Wheel-v0", delta=0.5)
        >>> obs, _ = env.reset(seed=0)
        >>> obs.shape, int(env.action_space.n)
        ((2,), 5)

    References:
        Riquelme, Tucker, Snoek. Deep Bayesian bandits showdown: an empirical comparison of Bayesian deep
        networks for Thompson sampling. ICLR 2018, section 5 ("wheel bandit").
    """

    def __init__(
        self,
        delta: float = 0.95,
        mu_1: float = 1.2,
        mu_2: float = 1.0,
        mu_3: float = 50.0,
        std: float = 0.01,
        instance_seed: int | None = None,
    ) -> None:
        where = f"{type(self).__name__}()"
        self.delta = V.check_float(delta, where, "delta", low=0.0, high=1.0, low_open=True, high_open=True)
        self.mu_1 = V.check_float(mu_1, where, "mu_1")
        self.mu_2 = V.check_float(mu_2, where, "mu_2")
        self.mu_3 = V.check_float(mu_3, where, "mu_3")
        self.std = V.check_float(std, where, "std", low=0.0)
        super().__init__(num_arms=5, obs_shape=(2,), instance_seed=V.check_seed(instance_seed, where))

    def means(self, x: Array) -> Array:
        """Expected rewards ``(5,)`` of the five arms for a context ``x`` ``(2,)``."""
        mu = np.array([self.mu_1, self.mu_2, self.mu_2, self.mu_2, self.mu_2])
        if np.hypot(x[0], x[1]) >= self.delta:
            mu[1 + 2 * int(x[0] <= 0) + int(x[1] <= 0)] = self.mu_3
        return mu

    def _draw_round(self, rng: np.random.Generator) -> tuple[Array, Array]:
        x = sample_ball(rng, (), 2)
        return x, self.means(x)

    def _noise_std(self, action: int) -> float:
        return self.std
