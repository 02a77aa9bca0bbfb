"""NeuralLinUCB and NeuralLinTS: a linear bandit over a network's learned features.

With ``phi(x) = [h_L(x), 1]`` the last hidden layer's activations and a constant, the policies keep ridge
statistics over ``phi`` (``A = reg I + sum phi phi^T``, ``b = sum r phi``, ``theta = A^-1 b``) and score
``phi^T theta + alpha sqrt(phi^T A^-1 phi)`` (UCB) or ``phi^T theta~`` with one ``theta~ ~ N(theta, scale^2
A^-1)`` per row (TS). The network is trained by regression on the history (see
`banditlib.policies._neural_base`); whenever a training round changes the representation, the linear
statistics are rebuilt from the whole history under the new ``phi``, so they never mix features of two
different networks. Between training rounds they are kept by Sherman-Morrison/Woodbury updates.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from banditlib import linalg
from banditlib.kernels import shared_score
from banditlib.policies._neural_base import _NeuralPolicy
from banditlib.policies.rules import ThompsonRule, UCBRule

__all__ = ["NeuralLinTS", "NeuralLinUCB", "NeuralLinearEstimator"]


class NeuralLinearEstimator(_NeuralPolicy):
    """The neural-linear estimator: ridge statistics over ``phi``, ``A_`` float64 and ``A_inv_`` ``(q, q)``,
    ``b_`` float64 and ``theta_`` ``(q,)``, with ``q = width + 1``; a rule over it makes a policy
    (``NeuralLinUCB``, ``NeuralLinTS``)."""

    _abstract = True
    _float64_buffers = ("A_", "b_")
    _param_docs: ClassVar[dict[str, str]] = {
        "hidden": "hidden layer widths (the last one is the feature dimension ``q - 1``).",
        "reg": "``lambda > 0``: the ridge prior ``A = lambda I`` and the network regulariser's weight.",
        "train_every": "observations between training rounds (each followed by a rebuild of the statistics).",
    }
    A_: torch.Tensor
    A_inv_: torch.Tensor
    b_: torch.Tensor
    theta_: torch.Tensor

    def _init(self, values: dict[str, Any]) -> None:
        q = self.net.width + 1
        eye = torch.eye(q, dtype=torch.float64, device=self.device)
        self.register_buffer("A_", eye * self.reg)
        self.register_buffer("A_inv_", (eye / self.reg).to(self.dtype))
        self.register_buffer("b_", torch.zeros(q, dtype=torch.float64, device=self.device))
        self.register_buffer("theta_", torch.zeros(q, dtype=self.dtype, device=self.device))
        self._chol: torch.Tensor | None = None

    def _invalidate_caches(self) -> None:
        self.__dict__["_chol"] = None  # (a plain attribute: skip nn.Module.__setattr__)

    def _phi(self, enc: torch.Tensor) -> torch.Tensor:
        """``[h_L(x), 1]`` for network inputs ``enc`` ``(N, D)`` -> ``(N, q)``, without autograd."""
        with torch.no_grad():
            h = self.net.features(enc)
        return torch.cat([h, torch.ones_like(h[:, :1])], dim=1)

    def _fold(self, enc: torch.Tensor, rewards: torch.Tensor) -> dict[str, torch.Tensor]:
        phi64 = self._phi(enc).to(torch.float64)
        fold = linalg.ridge_fold(self.A_[None], self.A_inv_[None], self.b_[None], phi64[None],
                                 rewards.to(torch.float64)[None], self.dtype)  # fmt: skip
        return self._stats(fold.A[0], fold.b[0], fold.A_inv[0], fold.theta[0])

    def _refit(self, stats: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        x, r = self._history()
        phi = self._phi(x).to(torch.float64)
        A = self.reg * torch.eye(phi.shape[1], dtype=torch.float64, device=self.device) + phi.T @ phi
        b = phi.T @ r.to(torch.float64)
        A_inv = linalg.refresh_inverse(A[None], self.dtype)
        return self._stats(A, b, A_inv[0], linalg.ridge_solution(A_inv, b[None], self.dtype)[0])

    def _stats(
        self, A: torch.Tensor, b: torch.Tensor, A_inv: torch.Tensor, theta: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        self._check_conditioning(A[None], self.reg)  # features so large that the saved state would not load: refused
        return {"A_": A, "b_": b, "A_inv_": A_inv, "theta_": theta}

    def _mean_var(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        B = x.shape[0]
        mean, var = shared_score(self._phi(self._inputs(x)), self.A_inv_, self.theta_, backend=self.backend)
        return mean.view(B, -1).to(self.dtype), var.clamp_min(0.0).view(B, -1).to(self.dtype)

    def _sample_form(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
        """The learned features ``(B, K, q)``, ``theta`` and the Cholesky factor of ``A^-1`` (cached until the
        state changes): one ``theta~`` per row, shared by its arms."""
        B = x.shape[0]
        phi = self._phi(self._inputs(x)).view(B, -1, self.A_inv_.shape[0])
        chol = self._chol
        if chol is None:  # cached until the state changes
            chol = self.__dict__["_chol"] = linalg.inverse_factor(self.A_inv_, self.A_).to(self.dtype)
        return phi, self.theta_, chol


class NeuralLinUCB(UCBRule, NeuralLinearEstimator):
    """NeuralLinUCB: LinUCB over learned features, ``phi^T theta + alpha sqrt(phi^T A^-1 phi)``.

    Examples:
        >>> import torch, banditlib
        >>> policy = banditlib.NeuralLinUCB(dim=3, hidden=(8,), seed=0)
        >>> policy.select(torch.randn(2, 4, 3)).actions.shape
        torch.Size([2, 1])

    References:
        Riquelme, Tucker, Snoek. Deep Bayesian Bandits Showdown. ICLR 2018 (neural-linear). Xu, Wen, Zhao, Gu.
        Neural Contextual Bandits with Deep Representation and Shallow Exploration. ICLR 2022.
    """

    alpha: float


class NeuralLinTS(ThompsonRule, NeuralLinearEstimator):
    """NeuralLinTS: linear Thompson sampling over learned features; one ``theta~ ~ N(theta, scale^2 A^-1)``
    per row, shared by the row's arms (as [`banditlib.LinTS`][banditlib.LinTS] with the shared-parameter model).

    Examples:
        >>> import torch, banditlib
        >>> policy = banditlib.NeuralLinTS(dim=3, arms=4, hidden=(8,), seed=0)
        >>> policy.select(torch.randn(2, 3), k=2).actions.shape
        torch.Size([2, 2])

    References:
        Riquelme, Tucker, Snoek. Deep Bayesian Bandits Showdown. ICLR 2018.
    """

    scale: float
