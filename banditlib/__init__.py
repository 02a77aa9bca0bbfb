"""banditlib: batched contextual bandits for PyTorch.

Every policy has the same two verbs, ``select`` and ``update``, over two arm models (shared-parameter
features ``(B, K, d)`` or ``K`` disjoint arms with contexts ``(B, d)``). Importing banditlib loads neither
triton, gymnasium, matplotlib nor trl.
"""

from __future__ import annotations

from banditlib.errors import BackendUnavailableError, BanditError, InvalidInputError, NumericalError, StateError
from banditlib.policies import (
    EENet,
    EpsilonGreedy,
    Greedy,
    LinTS,
    LinUCB,
    NeuralEpsilonGreedy,
    NeuralLinTS,
    NeuralLinUCB,
    NeuralTS,
    NeuralUCB,
    Policy,
    Prediction,
    Random,
    Selection,
    load,
)

__version__ = "0.1.0"

__all__ = [
    "BackendUnavailableError",
    "BanditError",
    "EENet",
    "EpsilonGreedy",
    "Greedy",
    "InvalidInputError",
    "LinTS",
    "LinUCB",
    "NeuralEpsilonGreedy",
    "NeuralLinTS",
    "NeuralLinUCB",
    "NeuralTS",
    "NeuralUCB",
    "NumericalError",
    "Policy",
    "Prediction",
    "Random",
    "Selection",
    "StateError",
    "__version__",
    "load",
]
