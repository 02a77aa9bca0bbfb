"""NeuralUCB and NeuralTS: a network's prediction plus a bonus from its gradient.

With ``g(x)`` the gradient of the network output ``f(x)`` with respect to its parameters and

    Z = reg I + sum_t g(x_t) g(x_t)^T     (over the arms played, at the parameters they were played with),

NeuralUCB scores ``f(x) + gamma sqrt(g^T Z^-1 g)`` and NeuralTS samples ``N(f(x), nu^2 g^T Z^-1 g)`` per arm.
``z="diag"`` (default) keeps the exact diagonal of ``Z`` over all parameters, as the published reference code
does; per layer ``y = W h + c`` the bonus is ``sum delta^2 Z_W^-1 h^2 + delta^2 . Z_c^-1`` and the update of
the diagonal is ``(delta^2)^T h^2``, both from one forward and one backward pass over all arms (see
`banditlib.policies._network`). ``z="last_layer"`` keeps the full matrix over the output layer's
weights and bias, whose gradient is ``[h_L, 1]`` (the last hidden features), by Sherman-Morrison/Woodbury
with an exact refresh when the drift check fails.

Parametrisation: PyTorch's default initialisation and no ``1/m`` width scaling, like the reference code;
its ``sqrt(lambda nu g^2 / U)`` with ``U = lambda + sum g^2`` is ``gamma = sqrt(lambda nu)`` here with ``reg = lambda``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from banditlib import linalg
from banditlib.kernels import neural_bonus, resolve_backend, shared_score
from banditlib.policies._network import gradient_pieces
from banditlib.policies._neural_base import _NeuralPolicy
from banditlib.policies._params import Param, choice
from banditlib.policies.rules import EpsilonGreedyRule, ThompsonRule, UCBRule

__all__ = ["GradientEstimator", "NeuralEpsilonGreedy", "NeuralTS", "NeuralUCB"]


class GradientEstimator(_NeuralPolicy):
    """The gradient estimator: ``f(x)`` and ``g^T Z^-1 g`` with ``Z`` diagonal or over the last layer (buffers
    ``Z_diag_`` (p,) float64, or ``Z_`` float64 and ``Z_inv_`` ``(q, q)`` with ``q = width + 1``); a rule over it
    makes a policy (``NeuralUCB``, ``NeuralTS``, ``NeuralEpsilonGreedy``)."""

    _abstract = True
    _float64_buffers = ("Z_diag_", "Z_")
    _params: ClassVar[tuple[Param, ...]] = (
        Param("z", "diag", "str", "``'diag'`` (exact diagonal of ``Z`` over all parameters) or ``'last_layer'`` "
              "(full ``Z`` over the output layer).", choice(("diag", "last_layer"))),
    )  # fmt: skip
    _param_docs: ClassVar[dict[str, str]] = {
        "reg": "``lambda > 0``: the prior ``Z = lambda I`` and the regulariser's weight.",
    }
    z: str
    Z_diag_: torch.Tensor
    Z_: torch.Tensor
    Z_inv_: torch.Tensor

    def _init(self, values: dict[str, Any]) -> None:
        if self.z == "diag":
            p = self.net.params.numel()
            self.register_buffer("Z_diag_", torch.full((p,), self.reg, dtype=torch.float64, device=self.device))
        else:
            q = self.net.width + 1
            eye = torch.eye(q, dtype=torch.float64, device=self.device)
            self.register_buffer("Z_", eye * self.reg)
            self.register_buffer("Z_inv_", (eye / self.reg).to(self.dtype))
        self._zinv: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] | None = None
        self._zinv_store: (
            tuple[Any, torch.Tensor, torch.Tensor, list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]] | None
        ) = None

    def _invalidate_caches(self) -> None:
        self.__dict__["_zinv"] = None  # (plain attributes: skip nn.Module.__setattr__, which costs microseconds)

    def _zinv_layers(self) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """``1 / Z`` per layer as ``(W part (out, in), its transpose, bias part (out,))`` in the policy's dtype,
        cached until the next update; recomputed into the same vectors, whose views are kept (rebuilt when
        ``Z_diag_`` moves to another storage, as after ``.to()`` or a copy)."""
        if self._zinv is not None:
            return self._zinv
        Z = self.Z_diag_
        key = (Z.data_ptr(), Z.device, self.dtype)
        store = self._zinv_store
        if store is None or store[0] != key:
            inv64, inv = torch.empty_like(Z), torch.empty(Z.shape, dtype=self.dtype, device=Z.device)
            store = (key, inv64, inv, [(w, w.T, b) for w, b in self.net.layers(inv)])
            self.__dict__["_zinv_store"] = store
        _, inv64, inv, views = store
        inv.copy_(torch.div(1.0, Z, out=inv64))  # (1.0 / Z_diag_).to(dtype), into the same vectors
        self.__dict__["_zinv"] = views
        return views

    def _mean_var_inputs(self, enc: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``f`` and ``g^T Z^-1 g`` for network inputs ``enc`` ``(N, D)``: each ``(N,)``."""
        f, pieces = gradient_pieces(self.net, enc)
        if self.z == "diag":
            layers = self._zinv_layers()
            if resolve_backend(self.backend, enc, what="neural_bonus") == "triton":
                total = torch.zeros_like(f)
                for (h, delta), (w_inv, _, b_inv) in zip(pieces, layers, strict=True):
                    total = total + neural_bonus(delta, h, w_inv, backend=self.backend) + (delta * delta) @ b_inv
                return f, total
            # neural_bonus_torch's arithmetic with each layer's delta^2 computed once; the output layer's delta
            # is exactly 1, so its terms are h^2 @ Z_inv^T and the bias' Z_inv, without multiplying by 1 (and the
            # sum starts from the first terms rather than from 0 + them: the same values)
            var: torch.Tensor | None = None
            for (h, delta), (_, w_inv_t, b_inv) in zip(pieces[:-1], layers[:-1], strict=True):
                d2 = delta * delta
                term = ((h * h) @ w_inv_t * d2).sum(-1)
                var = term + d2 @ b_inv if var is None else var + term + d2 @ b_inv
            h = pieces[-1][0]
            _, w_inv_t, b_inv = layers[-1]
            term = ((h * h) @ w_inv_t).squeeze(-1)
            return f, term + b_inv if var is None else var + term + b_inv
        G = torch.cat([pieces[-1][0], torch.ones_like(f).unsqueeze(1)], dim=1)
        _, var = shared_score(G, self.Z_inv_, torch.zeros_like(G[0]), backend=self.backend)
        return f, var.to(f.dtype)

    def _fold(self, enc: torch.Tensor, rewards: torch.Tensor) -> dict[str, torch.Tensor]:
        _, pieces = gradient_pieces(self.net, enc)
        if self.z == "diag":
            # sum_n g_n^2 per parameter, written layer by layer into one vector (W part (delta^2)^T h^2, bias
            # part sum delta^2; the output layer's delta is exactly 1), then Z_diag_ added
            Z = torch.empty_like(self.Z_diag_)
            N, last = enc.shape[0], len(pieces) - 1
            for i, ((h, delta), (zW, zc)) in enumerate(zip(pieces, self.net.layers(Z), strict=True)):
                if i == last:
                    d2 = torch.ones(N, 1, dtype=torch.float64, device=Z.device)
                    zc.fill_(float(N))
                else:
                    d2 = (delta * delta).to(torch.float64)
                    torch.sum(d2, 0, out=zc)
                # a fresh product, copied: MKL's rounding can depend on where its output lies
                zW.copy_(d2.T @ (h * h).to(torch.float64))
            return {"Z_diag_": Z.add_(self.Z_diag_)}
        G = torch.cat([pieces[-1][0], torch.ones_like(enc[:, :1])], dim=1)
        Z_new = linalg.rank_update(self.Z_[None], G.to(torch.float64)[None])
        Z_inv_new, _ = linalg.grown_inverse(Z_new, self.Z_inv_[None], G[None], self.dtype)
        return {"Z_": Z_new[0], "Z_inv_": Z_inv_new[0]}

    def _mean_var(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean ``f(x)`` and ``g^T Z^-1 g`` of every (row, arm): each ``(B, K)``."""
        B = x.shape[0]
        f, var = self._mean_var_inputs(self._inputs(x))
        return f.view(B, -1), var.clamp_min(0.0).view(B, -1)


class NeuralUCB(UCBRule, GradientEstimator):
    """NeuralUCB: ``score(x) = f(x) + gamma sqrt(g(x)^T Z^-1 g(x))`` (see `banditlib.policies.neural`).

    Examples:
        >>> import torch, banditlib
        >>> policy = banditlib.NeuralUCB(dim=3, hidden=(16,), seed=0)
        >>> sel = policy.select(torch.randn(2, 5, 3), k=2)
        >>> sel.actions.shape, bool((sel.bonus > 0).all())
        (torch.Size([2, 2]), True)

    References:
        Zhou, Li, Gu. Neural Contextual Bandits with UCB-based Exploration. ICML 2020.
    """

    _param_names: ClassVar[dict[str, str]] = {"alpha": "gamma"}  # the paper's name
    gamma: float


class NeuralTS(ThompsonRule, GradientEstimator):
    """NeuralTS: each arm's score is a draw from ``N(f(x), nu^2 g(x)^T Z^-1 g(x))``, independent across arms and
    rows (see `banditlib.policies.neural`).

    Examples:
        >>> import torch, banditlib
        >>> policy = banditlib.NeuralTS(dim=3, arms=4, hidden=(16,), seed=0)
        >>> policy.select(torch.randn(2, 3)).actions.shape
        torch.Size([2, 1])

    References:
        Zhang, Zhou, Li, Gu. Neural Thompson Sampling. ICLR 2021.
    """

    _param_names: ClassVar[dict[str, str]] = {"scale": "nu"}  # the paper's name
    nu: float


class NeuralEpsilonGreedy(EpsilonGreedyRule, GradientEstimator):
    """Epsilon-greedy over the network's prediction ``f(x)``: with probability ``epsilon`` a row explores
    uniformly, otherwise it plays the arms the network rates highest.

    The network is the one NeuralUCB trains (the same loss, schedule and history); the gradient statistics ``Z``
    are kept too, so [`predict`][banditlib.Policy.predict] reports the same uncertainty NeuralUCB would use,
    though this rule ignores it. A baseline for the neural policies: what the bonus buys over plain
    exploration, on the same network.

    Examples:
        >>> import torch, banditlib
        >>> policy = banditlib.NeuralEpsilonGreedy(dim=3, hidden=(16,), epsilon=0.0, seed=0)
        >>> sel = policy.select(torch.randn(2, 5, 3))
        >>> bool((sel.bonus == 0).all()), sel.actions.shape  # epsilon = 0: greedy on f(x)
        (True, torch.Size([2, 1]))

    References:
        Riquelme, Tucker, Snoek. Deep Bayesian Bandits Showdown. ICLR 2018 (the neural greedy baselines).
    """
