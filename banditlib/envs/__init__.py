"""Gymnasium environments for regret validation, registered as ``banditlib/<Name>-v0`` on import.

| id | observation | rewards |
|---|---|---|
| ``banditlib/Linear-v0`` | ``(K, d)`` | ``x^T theta*`` + Gaussian noise (exposes ``theta*``) |
| ``banditlib/Drifting-v0`` | ``(K, d)`` | linear with ``theta*`` rotating in a plane |
| ``banditlib/Quadratic-v0`` | ``(K, d)`` | NeuralUCB's ``h1 = 10 (x^T a)^2`` |
| ``banditlib/QuadraticForm-v0`` | ``(K, d)`` | NeuralUCB's ``h2 = x^T A^T A x`` |
| ``banditlib/Cosine-v0`` | ``(K, d)`` | NeuralUCB's ``h3 = cos(3 x^T a)`` |
| ``banditlib/Wheel-v0`` | ``(2,)`` | the wheel bandit (``delta``) |
| ``banditlib/Classification-v0`` | both | scikit-learn's bundled datasets, reward 1 for the class |

An observation ``(K, d)`` is a round's arm feature vectors (shared-parameter policies, ``arms=None``); ``(d,)``
is one context for ``K`` fixed arms (disjoint policies, ``arms=K``). See `banditlib.envs.base` for the
contract (``info["expected_rewards"]``, ``info["optimal_action"]``, seeding). Importing this module imports
gymnasium; ``import banditlib`` does not.
"""

from __future__ import annotations

import gymnasium as gym

from banditlib.envs.base import BanditEnv, LinearModel
from banditlib.envs.classification import ClassificationEnv
from banditlib.envs.linear import DriftingEnv, LinearEnv
from banditlib.envs.nonlinear import CosineEnv, QuadraticEnv, QuadraticFormEnv
from banditlib.envs.wheel import WheelEnv

__all__ = [
    "ENVS",
    "BanditEnv",
    "ClassificationEnv",
    "CosineEnv",
    "DriftingEnv",
    "LinearEnv",
    "LinearModel",
    "QuadraticEnv",
    "QuadraticFormEnv",
    "WheelEnv",
    "env_ids",
]

NAMESPACE = "banditlib"

#: Every environment of this package by id.
ENVS: dict[str, type[BanditEnv]] = {
    f"{NAMESPACE}/Linear-v0": LinearEnv,
    f"{NAMESPACE}/Drifting-v0": DriftingEnv,
    f"{NAMESPACE}/Quadratic-v0": QuadraticEnv,
    f"{NAMESPACE}/QuadraticForm-v0": QuadraticFormEnv,
    f"{NAMESPACE}/Cosine-v0": CosineEnv,
    f"{NAMESPACE}/Wheel-v0": WheelEnv,
    f"{NAMESPACE}/Classification-v0": ClassificationEnv,
}

for _id, _cls in ENVS.items():
    if _id not in gym.registry:
        gym.register(id=_id, entry_point=f"{_cls.__module__}:{_cls.__name__}")


def env_ids() -> list[str]:
    """Ids of every registered environment in the ``banditlib/`` namespace (this package's and any added later)."""
    return sorted(env_id for env_id in gym.registry if env_id.startswith(f"{NAMESPACE}/"))
