"""The gradient estimator's seeds (NeuralUCB, NeuralTS, NeuralEpsilonGreedy with ``z="diag"``) as one computation:
the diagonal ``Z`` with the seed first, and the bonus from one forward and one backward pass over all arms of all
seeds (see `banditlib.policies._seeds` for the network, the training and how every seed keeps its bits)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from banditlib.policies._exact import colsum, colsum_batched, column_batched, mv_batched, pad, rowsum, tmm, tmm_batched
from banditlib.policies._seeds import SeedBatch, SeedBatchFallback, _layers

__all__ = ["GradientSeedBatch"]


class GradientSeedBatch(SeedBatch):
    """The gradient estimator's seeds (NeuralUCB, NeuralTS, NeuralEpsilonGreedy with ``z="diag"``): ``Z_diag_``
    ``(S, p)`` float64, its inverse per layer, and the bonus ``g^T Z^-1 g`` from one forward and one backward
    pass over all arms of all seeds."""

    _stat_names = ("Z_diag_",)

    def __init__(self, policies: Sequence[Any]) -> None:
        super().__init__(policies)
        self.Z = self.stats["Z_diag_"]
        self.Z_inv64 = pad(torch.empty_like(self.Z))
        self.Z_inv = pad(torch.empty(self.Z.shape, dtype=self.dtype))
        self.inv_layers = [(W, W.transpose(1, 2), c) for W, c in _layers(self.Z_inv, self.shapes)]
        self._inv_fresh = False

    def _changed(self) -> None:
        self._inv_fresh = False

    def _score(self, enc: torch.Tensor, row: int) -> tuple[torch.Tensor, torch.Tensor]:
        with self._phase("select", enc):
            mean, var = self._mean_var(enc)
        return mean, self._bonus(mean, var.clamp_min(0.0), row)

    def _inv(self) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        if not self._inv_fresh:
            self.Z_inv.copy_(torch.div(1.0, self.Z, out=self.Z_inv64))
            self._inv_fresh = True
        return self.inv_layers

    def _pieces(self, enc: torch.Tensor, out_layer: bool = True) -> tuple[list[torch.Tensor], list[Any]]:
        """`gradient_pieces` per seed: the pre-activations ``y_l`` (with the output ``(S, N, 1)`` last unless
        ``out_layer`` is false) and ``[(h_l, delta_l)]``, each ``(S, N, .)``."""
        hs, ys = self._forward(enc, out_layer)
        return ys, list(zip(hs, self._backward(hs, None), strict=True))

    def _mean_var(self, enc: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`GradientEstimator._mean_var_inputs` (diagonal ``Z``, torch backend) per seed: each ``(S, N)``."""
        ys, pieces = self._pieces(enc)
        f = ys[-1].squeeze(-1)
        E, layers = self._op, self._inv()
        var: torch.Tensor | None = None
        for (h, delta), (_, w_inv_t, b_inv) in zip(pieces[:-1], layers[:-1], strict=True):
            d2 = delta * delta
            term = E("rowsum", rowsum, rowsum, E("matmul", torch.matmul, torch.bmm, h * h, w_inv_t) * d2)
            dv = E("mv", torch.matmul, mv_batched, d2, b_inv)
            var = term + dv if var is None else var + term + dv
        h = pieces[-1][0]
        _, w_inv_t, b_inv = layers[-1]
        term = E("column", torch.matmul, column_batched, h * h, w_inv_t).squeeze(-1)
        return f, term + b_inv if var is None else var + term + b_inv

    def _fold(self, enc: torch.Tensor, rewards: torch.Tensor) -> dict[str, torch.Tensor]:
        """`GradientEstimator._fold` (diagonal ``Z``) per seed: ``Z_diag_`` after observing ``enc`` ``(S, N, D)``."""
        _, pieces = self._pieces(enc, out_layer=False)  # an update's pieces need no output
        E = self._op
        Z = pad(torch.empty_like(self.Z))
        S, N, last = enc.shape[0], enc.shape[1], len(pieces) - 1
        for i, ((h, delta), (zW, zc)) in enumerate(zip(pieces, _layers(Z, self.shapes), strict=True)):
            if i == last:
                d2 = torch.ones(S, N, 1, dtype=torch.float64)
                zc.fill_(float(N))
            else:
                d2 = (delta * delta).to(torch.float64)
                zc.copy_(E("colsum", colsum, colsum_batched, d2))
            zW.copy_(E("tmm", tmm, tmm_batched, d2, (h * h).to(torch.float64)))
        Z.add_(self.Z)
        if not bool(torch.isfinite(Z.sum())) and not bool(torch.isfinite(Z).all()):
            raise SeedBatchFallback("an update would make Z non-finite")
        return {"Z_diag_": Z}
