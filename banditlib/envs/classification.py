"""Classification bandits from the datasets scikit-learn ships inside its package (nothing is downloaded)."""

from __future__ import annotations

from typing import Any

import numpy as np

from banditlib.envs.base import Array, BanditEnv
from banditlib.errors import InvalidInputError

__all__ = ["DATASETS", "ClassificationEnv", "load_dataset"]

DATASETS = ("digits", "wine", "breast_cancer", "iris")
ENCODINGS = ("disjoint", "shared")


def load_dataset(name: str, *, standardize: bool = True) -> tuple[Array, np.ndarray]:
    """Features ``(n, d)`` with unit-norm rows and integer labels ``(n,)`` in ``[0, K)`` of a bundled dataset.

    Rows are scaled to unit Euclidean norm, as in the NeuralUCB experiments; with ``standardize`` every column is
    first centred and scaled to unit variance (constant columns are only centred), so that one large-valued
    feature (wine's proline, breast cancer's areas) does not dominate the norm.

    Args:
        name: one of ``"digits"``, ``"wine"``, ``"breast_cancer"``, ``"iris"``.
        standardize: standardize the columns before normalising the rows.

    Raises:
        InvalidInputError: unknown ``name``.
    """
    if name not in DATASETS:
        raise InvalidInputError(f"load_dataset(): `name` must be one of {DATASETS}; got {name!r}.")
    from sklearn import datasets  # type: ignore[import-untyped]  # scikit-learn ships no type information

    bunch: Any = getattr(datasets, f"load_{name}")()
    X = np.asarray(bunch.data, dtype=np.float64)
    y = np.unique(np.asarray(bunch.target), return_inverse=True)[1].astype(np.int64)
    if standardize:
        X = X - X.mean(axis=0)
        std = X.std(axis=0)
        X = X / np.where(std > 0, std, 1.0)
    norm = np.linalg.norm(X, axis=1, keepdims=True)
    return np.clip(X / np.where(norm > 0, norm, 1.0), -1.0, 1.0), y


class ClassificationEnv(BanditEnv):
    """Classification as a bandit: each round shows one example; the arm of its class pays 1, the others 0.

    Rounds sample an example uniformly at random with replacement from the whole dataset (an endless stream;
    the NeuralUCB experiments instead pass once through a shuffled dataset). Rewards are noise-free, so
    ``expected_rewards`` is the one-hot label and the pseudo-regret counts mistakes. Two encodings of the
    ``d``-dimensional example ``x`` for ``K`` classes:

    * ``"disjoint"`` (NeuralUCB's): observation ``(K, K d)``, arm ``a``'s feature vector holds ``x`` in block
      ``a`` and zeros elsewhere; for the shared-parameter model (``Policy(dim=K d, arms=None)``). A linear
      model over it is exactly ``K`` independent linear models, one per class.
    * ``"shared"``: observation ``(d,)``, one context shared by the ``K`` arms; for the disjoint model
      (``Policy(dim=d, arms=K)``), the same statistics with ``K`` times smaller matrices.

    Args:
        dataset: ``"digits"`` (1797 x 64, 10 classes), ``"wine"`` (178 x 13, 3), ``"breast_cancer"``
            (569 x 30, 2) or ``"iris"`` (150 x 4, 3).
        encoding: ``"disjoint"`` or ``"shared"``.
        standardize: standardize the columns before normalising the rows (see
            [`load_dataset`][banditlib.envs.classification.load_dataset]).
        instance_seed: accepted for a uniform signature; the dataset is the instance.

    Examples:
        >>> import gymnasium as gym, banditlib.envs
        >>> env = gym.make("banditlib/Classification-v0", dataset="iris")
        >>> env.reset(seed=0)[0].shape
        (3, 12)
        >>> env = gym.make("banditlib/Classification-v0", dataset="iris", encoding="shared")
        >>> env.reset(seed=0)[0].shape
        (4,)

    References:
        Zhou, Li, Gu. Neural contextual bandits with UCB-based exploration. ICML 2020, section 7.2.
        Pedregosa et al. Scikit-learn: machine learning in Python. JMLR 2011 (the bundled datasets).
    """

    def __init__(
        self,
        dataset: str = "digits",
        encoding: str = "disjoint",
        standardize: bool = True,
        instance_seed: int | None = None,
    ) -> None:
        where = f"{type(self).__name__}()"
        if dataset not in DATASETS:
            raise InvalidInputError(f"{where}: `dataset` must be one of {DATASETS}; got {dataset!r}.")
        if encoding not in ENCODINGS:
            raise InvalidInputError(f"{where}: `encoding` must be one of {ENCODINGS}; got {encoding!r}.")
        if not isinstance(standardize, bool):
            raise InvalidInputError(f"{where}: `standardize` must be True or False; got {standardize!r}.")
        self.dataset, self.encoding = dataset, encoding
        self.X, self.y = load_dataset(dataset, standardize=standardize)
        self.K = int(self.y.max()) + 1
        self.d = self.X.shape[1]
        shape = (self.K, self.K * self.d) if encoding == "disjoint" else (self.d,)
        super().__init__(num_arms=self.K, obs_shape=shape, instance_seed=instance_seed)

    def encode(self, x: Array) -> Array:
        """The observation for example ``x`` ``(d,)``: ``(K, K d)`` blocks or ``x`` itself."""
        if self.encoding == "shared":
            return x.copy()
        obs = np.zeros((self.K, self.K * self.d))
        for a in range(self.K):
            obs[a, a * self.d : (a + 1) * self.d] = x
        return obs

    def _draw_round(self, rng: np.random.Generator) -> tuple[Array, Array]:
        i = int(rng.integers(self.X.shape[0]))
        means = np.zeros(self.K)
        means[self.y[i]] = 1.0
        return self.encode(self.X[i]), means

    def _noise_std(self, action: int) -> float:
        return 0.0
