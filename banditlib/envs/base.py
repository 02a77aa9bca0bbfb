"""The contract every banditlib environment follows: one bandit round per ``step``.

A round offers ``K`` arms. The observation is what a policy sees before deciding: either the arms' feature
vectors ``(K, d)`` (the shared-parameter model, ``Policy(dim=d, arms=None)``) or one context ``(d,)`` shared by
``K`` fixed arms (the disjoint model, ``Policy(dim=d, arms=K)``). The action is an arm index. ``step`` returns
the noisy reward of that arm and, in ``info``, what the round looked like to an oracle:

* ``info["expected_rewards"]`` ``(K,)`` float64: the mean reward of every arm in the round just played;
* ``info["optimal_action"]`` ``int``: the arm with the highest mean (lowest index on ties);
* ``info["regret"]`` ``float``: ``max(expected_rewards) - expected_rewards[action]``, the round's pseudo-regret.

The observation returned by ``step`` is the *next* round's. Episodes never end on their own (``terminated``
and ``truncated`` are always ``False``); pass ``max_episode_steps`` to ``gymnasium.make`` for a horizon.

Randomness. ``reset(seed=s)`` seeds ``self.np_random`` and draws a new problem instance (the hidden
parameters: ``theta*``, ``a``, ``A``, ...) from it, unless the constructor was given ``instance_seed``, which
fixes the instance once for all resets; ``reset()`` without a seed keeps the instance and continues the stream.
Every round draws its contexts and exactly one standard normal for the noise, whatever the action, so for a
given seed every policy faces the same sequence of rounds (common random numbers).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.error import InvalidAction, ResetNeeded
from numpy.typing import NDArray

__all__ = ["BanditEnv", "LinearModel", "sample_ball", "sample_sphere"]

Array = NDArray[np.float64]


@dataclass(frozen=True)
class LinearModel:
    """What an environment with stationary linear rewards reveals for the theory checks.

    ``E[r | x] = x^T theta`` for every arm feature vector ``x`` (``||x|| <= context_bound``), and the noise is
    ``noise_std``-sub-Gaussian (Gaussian with that standard deviation in banditlib's envs).

    Attributes:
        theta: ``(d,)`` float64, the true parameter ``theta*`` (``S = ||theta*||``).
        noise_std: the sub-Gaussian constant ``R`` (``sigma``) of the reward noise.
        context_bound: ``L``, a bound on the norm of every feature vector.
    """

    theta: Array
    noise_std: float
    context_bound: float

    @property
    def norm(self) -> float:
        """``S = ||theta*||_2``."""
        return float(np.linalg.norm(self.theta))


def sample_sphere(rng: np.random.Generator, shape: tuple[int, ...], dim: int) -> Array:
    """Points uniform on the unit sphere ``S^{d-1}``: ``(*shape, d)``, normalised Gaussian vectors."""
    z = rng.standard_normal((*shape, dim))
    norm = np.linalg.norm(z, axis=-1, keepdims=True)
    return np.clip(z / np.maximum(norm, np.finfo(np.float64).tiny), -1.0, 1.0)


def sample_ball(rng: np.random.Generator, shape: tuple[int, ...], dim: int) -> Array:
    """Points uniform in the closed unit ball of ``R^d``: a uniform direction times radius ``U^{1/d}``."""
    direction = sample_sphere(rng, shape, dim)
    radius = rng.random((*shape, 1)) ** (1.0 / dim)
    return np.clip(direction * radius, -1.0, 1.0)


class BanditEnv(gym.Env[NDArray[Any], np.int64]):
    """Base class of banditlib's environments (see the module docstring for the contract).

    Subclasses set ``num_arms``, ``obs_shape`` and implement `_draw_instance`, `_draw_round` and
    `_noise_std`; the base class does the seeding, the action checks, the noise and the ``info`` dict.

    Args:
        num_arms: ``K``.
        obs_shape: ``(K, d)`` (arm features, shared-parameter model) or ``(d,)`` (one shared context,
            disjoint model).
        instance_seed: seed of the problem instance; ``None`` draws it from the ``reset`` seed.

    Raises:
        gymnasium.error.ResetNeeded: ``step`` before the first ``reset``.
        gymnasium.error.InvalidAction: an action that is not an integer in ``[0, K)``.
    """

    # gymnasium declares `metadata` as an instance attribute with a class-level default.
    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012

    def __init__(self, *, num_arms: int, obs_shape: tuple[int, ...], instance_seed: int | None = None) -> None:
        super().__init__()
        self.num_arms = num_arms
        self.action_space = spaces.Discrete(num_arms)
        self.observation_space = spaces.Box(low=-1.0, high=1.0, shape=obs_shape, dtype=np.float64)
        self.instance_seed = instance_seed
        self._has_instance = False
        if instance_seed is not None:
            self._draw_instance(np.random.default_rng(instance_seed))
            self._has_instance = True
        self._obs: Array | None = None
        self._means: Array | None = None
        self.round = 0

    # ------------------------------------------------------------------------------------------ hooks

    def _draw_instance(self, rng: np.random.Generator) -> None:
        """Draw the hidden parameters of a problem instance (nothing for dataset-driven envs)."""

    def _draw_round(self, rng: np.random.Generator) -> tuple[Array, Array]:
        """The next round: observation (``obs_shape``) and expected rewards ``(K,)``."""
        raise NotImplementedError

    def _noise_std(self, action: int) -> float:
        """Standard deviation of the Gaussian reward noise of ``action`` in the current round."""
        raise NotImplementedError

    # ------------------------------------------------------------------------------------------ gymnasium API

    def linear_model(self) -> LinearModel | None:
        """The true linear model when rewards are stationary and linear in the arm features, else ``None``.

        The regret runner's theory checks (confidence radius, coverage, the OFUL bound) use it.
        """
        return None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Array, dict[str, Any]]:
        """Start over: seed (when given), draw a new instance (when seeded and no ``instance_seed``), first round.

        Returns:
            The first round's observation and an empty ``info``.
        """
        super().reset(seed=seed)
        if self.instance_seed is None and (seed is not None or not self._has_instance):
            self._draw_instance(self.np_random)
            self._has_instance = True
        self.round = 0
        self._obs, self._means = self._draw_round(self.np_random)
        return self._obs.copy(), {}

    def step(self, action: int | np.integer[Any]) -> tuple[Array, SupportsFloat, bool, bool, dict[str, Any]]:
        """Play ``action`` in the current round.

        Returns:
            ``(next observation, reward, False, False, info)`` with ``info`` as in the module docstring.
        """
        if self._obs is None or self._means is None:
            raise ResetNeeded(f"{type(self).__name__}.step(): call reset() before step().")
        a = self._check_action(action)
        means = self._means
        z = float(self.np_random.standard_normal())
        reward = float(means[a]) + self._noise_std(a) * z
        best = int(np.argmax(means))
        info = {
            "expected_rewards": means.copy(),
            "optimal_action": best,
            "regret": float(means[best] - means[a]),
        }
        self.round += 1
        self._obs, self._means = self._draw_round(self.np_random)
        return self._obs.copy(), reward, False, False, info

    def _check_action(self, action: Any) -> int:
        if isinstance(action, np.ndarray) and action.shape == () and np.issubdtype(action.dtype, np.integer):
            action = action.item()
        if isinstance(action, (bool, np.bool_)) or not isinstance(action, (int, np.integer)):
            raise InvalidAction(
                f"{type(self).__name__}.step(): `action` must be an integer arm index in [0, {self.num_arms}); "
                f"got {action!r} of type {type(action).__name__}."
            )
        if not 0 <= int(action) < self.num_arms:
            raise InvalidAction(
                f"{type(self).__name__}.step(): `action` must be in [0, {self.num_arms}); got {int(action)}."
            )
        return int(action)
