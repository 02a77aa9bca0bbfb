"""Linear bandits: LinUCB and linear Thompson sampling over the shared ridge estimator."""

from __future__ import annotations

import numpy as np
import torch

from banditlib import _random, linalg
from banditlib import _validation as V
from banditlib.policies._propensity import Noise
from banditlib.policies.ridge import _RidgePolicy

__all__ = ["LinTS", "LinUCB"]


class LinUCB(_RidgePolicy):
    """LinUCB: ridge regression plus an upper-confidence bonus.

    ``score(x) = x^T theta + alpha * sqrt(x^T A^-1 x)``, with ``A = reg I + sum x x^T`` and
    ``theta = A^-1 sum r x`` per model (see `banditlib.policies.ridge` for forgetting).

    Args:
        dim: feature dimension ``d``.
        arms: ``None`` for the shared-parameter model (contexts ``(B, K, d)``), or ``K`` disjoint arms
            (contexts ``(B, d)``).
        alpha: width of the confidence bonus, ``>= 0`` (``alpha = 0`` is greedy).
        reg: ridge regularizer ``lambda > 0``.
        forget: forgetting factor ``gamma`` in ``(0, 1]`` applied once per round (1 = no forgetting).
        refresh_every: observations of a model between exact Cholesky refreshes of ``A^-1``.
        seed: seed of the policy's generator (tie-breaking).
        dtype: ``torch.float32`` or ``torch.float64``.
        device: device of the state and outputs.
        backend: ``"auto"``, ``"torch"`` or ``"triton"`` for the scoring kernels.

    Examples:
        >>> import torch, banditlib
        >>> policy = banditlib.LinUCB(dim=3, arms=2, alpha=1.0, seed=0)
        >>> x = torch.tensor([[1.0, 0.0, 0.0]])
        >>> policy.update(x, torch.tensor([[0]]), torch.tensor([[0.1]]))
        >>> policy.select(x).actions.tolist()  # arm 1 is unexplored: its bonus wins
        [[1]]

    References:
        Li, Chu, Langford, Schapire. A contextual-bandit approach to personalized news article
        recommendation. WWW 2010. Abbasi-Yadkori, Pal, Szepesvari. Improved algorithms for linear
        stochastic bandits. NeurIPS 2011.
    """

    propensity_rule = "argmax"

    def __init__(
        self,
        dim: int,
        arms: int | None = None,
        *,
        alpha: float = 1.0,
        reg: float = 1.0,
        forget: float = 1.0,
        refresh_every: int = 1000,
        seed: int | None = None,
        dtype: torch.dtype | str = torch.float32,
        device: torch.device | str = "cpu",
        backend: str = "auto",
    ) -> None:
        super().__init__(
            dim=dim, arms=arms, reg=reg, forget=forget, refresh_every=refresh_every,
            seed=seed, dtype=dtype, device=device, backend=backend,
        )  # fmt: skip
        self.alpha = V.check_float(alpha, f"{type(self).__name__}()", "alpha", low=0.0)
        self._config["alpha"] = self.alpha

    def _score(self, x: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, var = self._mean_var(x)
        return mean, self.alpha * var.clamp_min(0.0).sqrt()

    def _score_row(self, x: np.ndarray, row: int) -> tuple[np.ndarray, np.ndarray]:
        mean, var = self._mean_var_row(x)
        # alpha * sqrt(max(var, 0)) in place on the fresh `var` (alpha = 1 multiplies by nothing)
        np.sqrt(np.maximum(var, 0.0, out=var), out=var)
        if self.alpha != 1.0:
            var *= self.alpha
        return mean, var


class LinTS(_RidgePolicy):
    """Linear Thompson sampling: rank arms by ``x^T theta~`` with ``theta~ ~ N(theta, scale^2 A^-1)``.

    Shared-parameter model: one ``theta~ = theta + scale * L z`` per row (``A^-1 = L L^T``, the Cholesky
    factor, ``z ~ N(0, I_d)``), so the arms of a row are scored by the same sample. Disjoint model: one
    sample per row and arm; its score ``x^T theta~_a`` is exactly ``N(x^T theta_a, scale^2 x^T A_a^-1 x)``,
    drawn as ``x^T theta_a + scale * sqrt(x^T A_a^-1 x) z`` (the one-dimensional Cholesky factor), which
    costs ``K`` normals per row instead of ``K d``. Draws come from the counter-based generator, so a
    batch of rows gets the same samples as the same rows one at a time.

    Args:
        dim: feature dimension ``d``.
        arms: ``None`` (shared-parameter model) or the number of disjoint arms ``K``.
        scale: posterior scale ``v >= 0`` (``v = 0`` is greedy).
        reg: ridge regularizer ``lambda > 0``.
        forget: forgetting factor in ``(0, 1]``.
        refresh_every: observations of a model between exact refreshes of ``A^-1``.
        seed: seed of the policy's generator (samples and ties).
        dtype: ``torch.float32`` or ``torch.float64``.
        device: device of the state and outputs.
        backend: ``"auto"``, ``"torch"`` or ``"triton"`` for the scoring kernels.

    Examples:
        >>> import torch, banditlib
        >>> policy = banditlib.LinTS(dim=2, scale=0.5, seed=3)
        >>> sel = policy.select(torch.ones(4, 5, 2))
        >>> sel.actions.shape, torch.allclose(sel.scores, sel.mean + sel.bonus)
        (torch.Size([4, 1]), True)

    References:
        Agrawal, Goyal. Thompson sampling for contextual bandits with linear payoffs. ICML 2013.
    """

    propensity_rule = "gaussian"
    _noisy = True

    def __init__(
        self,
        dim: int,
        arms: int | None = None,
        *,
        scale: float = 1.0,
        reg: float = 1.0,
        forget: float = 1.0,
        refresh_every: int = 1000,
        seed: int | None = None,
        dtype: torch.dtype | str = torch.float32,
        device: torch.device | str = "cpu",
        backend: str = "auto",
    ) -> None:
        super().__init__(
            dim=dim, arms=arms, reg=reg, forget=forget, refresh_every=refresh_every,
            seed=seed, dtype=dtype, device=device, backend=backend,
        )  # fmt: skip
        self.scale = V.check_float(scale, f"{type(self).__name__}()", "scale", low=0.0)
        self._config["scale"] = self.scale
        self._chol: torch.Tensor | None = None
        self._chol_np: np.ndarray | None = None

    def _invalidate_caches(self) -> None:
        self._chol = None
        self._chol_np = None

    def _cholesky(self) -> torch.Tensor:
        """Lower Cholesky factor of the shared model's ``A^-1`` ``(d, d)``, cached until the state changes."""
        if self._chol is None:
            self._chol = linalg.inverse_factor(self.A_inv_[0], self.A_[0]).to(self.dtype)
        return self._chol

    def _cholesky_row(self) -> np.ndarray:
        """`_cholesky` in numpy, for the single-row path (LAPACK without torch's dispatch cost)."""
        if self._chol_np is None:
            try:
                self._chol_np = np.linalg.cholesky(self._state_views()["A_inv_"][0].astype(np.float64)).astype(
                    self._np_dtype
                )
            except np.linalg.LinAlgError:  # let the torch path raise its NumericalError
                self._chol_np = self._cholesky().numpy()
        return self._chol_np

    def _score(self, x: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, bonus, _ = self._score_noise(x, rows)
        return mean, bonus

    def _score_noise(self, x: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, Noise | None]:
        if self.arms is None:
            mean = self._mean(x)
            z = _random.normal(self.seed, _random.STREAM_NOISE, rows, self.dim).to(self.dtype)
            delta = self.scale * (z @ self._cholesky().T)  # (B, d): theta~ - theta per row
            noise = Noise(factor=x, chol=self._cholesky(), scale=self.scale) if self.scale else None
            return mean, torch.bmm(x, delta.unsqueeze(-1)).squeeze(-1), noise
        mean, var = self._mean_var(x)
        z = _random.normal(self.seed, _random.STREAM_NOISE, rows, self.arms).to(self.dtype)
        sd = self.scale * var.clamp_min(0.0).sqrt()
        return mean, sd * z, Noise(sd=sd) if self.scale else None

    def _score_row(self, x: np.ndarray, row: int) -> tuple[np.ndarray, np.ndarray]:
        mean, bonus, _ = self._score_row_noise(x, row)
        return mean, bonus

    def _score_row_noise(self, x: np.ndarray, row: int) -> tuple[np.ndarray, np.ndarray, Noise | None]:
        if self.arms is None:
            z = _random.normal_np(self.seed, _random.STREAM_NOISE, row, self.dim).astype(x.dtype)
            chol = self._cholesky_row()
            delta = self.scale * (chol @ z)
            noise = Noise(factor=x[None].copy(), chol=chol, scale=self.scale) if self.scale else None
            return self._mean_row(x), x @ delta, noise
        mean, var = self._mean_var_row(x)
        z = _random.normal_np(self.seed, _random.STREAM_NOISE, row, self.arms).astype(x.dtype)
        sd = self.scale * np.sqrt(np.maximum(var, 0.0))
        return mean, sd * z, Noise(sd=sd[None]) if self.scale else None

    def posterior(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The sampling distribution: mean ``theta`` ``(M, d)`` and covariance ``scale^2 A^-1`` ``(M, d, d)``."""
        theta, A_inv = super().posterior()
        return theta, A_inv * self.scale**2
