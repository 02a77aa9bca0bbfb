"""The neural-linear estimator's seeds (NeuralLinUCB, NeuralLinTS) as one computation.

What batches: the network (features for `select` and for each observation, and every training step, as for
the gradient estimator, `banditlib.policies._seeds`), the scores over the features and the Sherman-Morrison
fold of one observation into the ridge statistics, each product checked against the policy's own. What runs
seed by seed, with each seed's own policy code, so that it is exact by construction: the exact refresh of a
seed whose drift check fails, Thompson sampling's Cholesky factor, and the refit of the statistics over the
whole history after a training round (products over up to ``history`` rows, which batching would not make
cheaper).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from banditlib import linalg
from banditlib.errors import InvalidInputError, NumericalError
from banditlib.kernels.linear_score import _CHUNK_ELEMENTS
from banditlib.policies._exact import mv_batched, pad, rowsum
from banditlib.policies._seeds import SeedBatch, SeedBatchFallback

__all__ = ["NeuralLinearSeedBatch"]


def _mean_single(phi: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    return (phi[None] @ theta)[0]  # ThompsonRule's phi @ theta on the (1, K, q) features of one row


def _bonus_single(phi: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    return torch.bmm(phi[None], delta.unsqueeze(-1)).squeeze(-1)[0]  # (1, K, q) @ (1, q, 1) for one row


def _bonus_batched(phi: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    return torch.bmm(phi, delta.transpose(1, 2)).squeeze(-1)


def _zchol(z: torch.Tensor, L: torch.Tensor) -> torch.Tensor:
    return z @ L.T


def _zchol_batched(z: torch.Tensor, L: torch.Tensor) -> torch.Tensor:
    return torch.bmm(z, L.transpose(1, 2))


# The single-model calls of the neural-linear update (leading dimension of one, as the policy makes them) and,
# where the library function itself does not serve every seed at once, its batched form.


def _rank_update(A: torch.Tensor, U: torch.Tensor) -> torch.Tensor:
    return linalg.rank_update(A[None], U[None])[0]


def _sherman_morrison(A_inv: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return linalg.sherman_morrison(A_inv[None], x[None])[0]


def _residual(A: torch.Tensor, A_inv: torch.Tensor) -> torch.Tensor:
    return linalg.inverse_residual(A[None], A_inv[None])[0]


def _vector_update(b: torch.Tensor, U: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    return linalg.vector_update(b[None], U[None], c[None])[0]


def _ridge_solution(dtype: torch.dtype) -> Any:
    return lambda A_inv, b: linalg.ridge_solution(A_inv[None], b[None], dtype)[0]


def _ridge_solution_batched(dtype: torch.dtype) -> Any:
    return lambda A_inv, b: linalg.ridge_solution(A_inv, b, dtype)


class NeuralLinearSeedBatch(SeedBatch):
    """Ridge statistics over the learned features ``phi = [h_L, 1]`` per seed: ``A_`` and ``b_`` float64,
    ``A_inv_`` and ``theta_`` ``(S, q, q)`` and ``(S, q)`` (see `banditlib.policies.neural_linear`).

    The policies' own buffers serve the per-seed parts: before a refit each seed's network and history are
    copied into its policy, so a policy's state is defined only after `write_back`."""

    _stat_names = ("A_", "A_inv_", "b_", "theta_")

    def __init__(self, policies: Sequence[Any]) -> None:
        super().__init__(policies)
        self._chol: torch.Tensor | None = None

    def _changed(self) -> None:
        self._chol = None

    def _phi(self, enc: torch.Tensor) -> torch.Tensor:
        """`NeuralLinearEstimator._phi` per seed: ``(S, N, D)`` -> ``(S, N, q)``."""
        hs, _ = self._forward(enc, out_layer=False)
        h = hs[-1]
        return torch.cat([h, torch.ones_like(h[..., :1])], dim=-1)

    def _score(self, enc: torch.Tensor, row: int) -> tuple[torch.Tensor, torch.Tensor]:
        E, st = self._op, self.stats
        with self._phase("select", enc):
            phi = self._phi(enc)
            q = phi.shape[2]
            if phi.shape[1] > max(1, _CHUNK_ELEMENTS // q):  # shared_score would chunk the rows: not replicated
                raise SeedBatchFallback("too many arms per row for the batched neural-linear score")
            if self.rule == "ucb":
                mean = E("mv", torch.matmul, mv_batched, phi, st["theta_"])
                var = E("rowsum", rowsum, rowsum, E("matmul", torch.matmul, torch.bmm, phi, st["A_inv_"]) * phi)
                return mean, self._bonus(mean, var.clamp_min(0.0), row)
            # Thompson sampling over the features: one theta~ = theta + scale L z per row, shared by its arms
            rows = torch.tensor([row])
            z = torch.cat([p._normal(rows, q) for p in self.policies]).to(self.dtype).unsqueeze(1)  # (S, 1, q)
            delta = self.width * E("zchol", _zchol, _zchol_batched, pad(z), self._cholesky())
            mean = E("mean_ts", _mean_single, mv_batched, phi, st["theta_"])
            return mean, E("bonus_ts", _bonus_single, _bonus_batched, phi, pad(delta))

    def _cholesky(self) -> torch.Tensor:
        """Each seed's lower Cholesky factor of ``A^-1`` ``(S, q, q)`` by the policy's own function, cached until
        the statistics change."""
        if self._chol is None:
            A, A_inv = self.stats["A_"], self.stats["A_inv_"]
            try:
                factors = [linalg.inverse_factor(A_inv[s], A[s]).to(self.dtype) for s in range(self.S)]
            except NumericalError:
                raise SeedBatchFallback("a seed's A^-1 has no Cholesky factor") from None
            self._chol = pad(torch.stack(factors))
        return self._chol

    def _fold(self, enc: torch.Tensor, rewards: torch.Tensor) -> dict[str, torch.Tensor]:
        """`NeuralLinearEstimator._fold` per seed: `banditlib.linalg.ridge_fold` of one row, step by step (its
        Sherman-Morrison path with the drift check on every model), each product checked by `_op`; a seed whose
        check fails is refreshed exactly on its own, as `banditlib.linalg.grown_inverse` does."""
        E, st, dtype = self._op, self.stats, self.dtype
        U = pad(self._phi(enc).to(torch.float64))  # (S, 1, q) float64 rows
        c = pad(rewards.to(torch.float64).unsqueeze(1))  # (S, 1)
        A = E("rank_update", _rank_update, linalg.rank_update, st["A_"], U)
        x = pad(U.to(dtype)[:, 0])  # (S, q): U.to(dtype)[:, 0], a fresh tensor in the policy unless dtype is float64
        A_inv = E("sherman_morrison", _sherman_morrison, linalg.sherman_morrison, st["A_inv_"], x)
        residual = E("residual", _residual, linalg.inverse_residual, A, A_inv)
        for s in (~(residual <= linalg.drift_tolerance(dtype))).nonzero().flatten().tolist():
            A_inv[s] = linalg.refresh_inverse(A[s : s + 1].clone(), dtype)[0]
        b = E("vector_update", _vector_update, linalg.vector_update, st["b_"], U, c)
        theta = E("ridge_solution", _ridge_solution(dtype), _ridge_solution_batched(dtype), A_inv, b)
        try:
            self.p0._check_conditioning(A, self.p0.reg)  # what each policy's _stats checks, for every seed at once
        except InvalidInputError as exc:
            raise SeedBatchFallback(f"a seed's own update would raise: {exc}") from None
        sums = torch.stack([t.sum().to(torch.float64) for t in (A, A_inv, b, theta)])
        if not bool(torch.isfinite(sums.sum())):
            raise SeedBatchFallback("an update would make a seed's statistics non-finite")
        return {"A_": A, "A_inv_": A_inv, "b_": b, "theta_": theta}

    def _refit(self, stats: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Each seed's statistics refit over its whole history by its own policy's `_refit` (its network and
        history copied in first); what that refuses (ill-conditioned or non-finite statistics) stops the batch."""
        out = {name: pad(torch.empty_like(value)) for name, value in self.stats.items()}
        with torch.no_grad():
            for s, p in enumerate(self.policies):
                p.net.params.copy_(self.P[s])
                p.hist_x_.copy_(self.hist_x[s])
                p.hist_r_.copy_(self.hist_r[s])
                p.n_seen_.fill_(self.n_seen)
                try:
                    refit = p._refit({})
                except (InvalidInputError, NumericalError) as exc:
                    raise SeedBatchFallback(f"seed {s}'s own update would raise: {exc}") from None
                for name, value in refit.items():
                    if not bool(torch.isfinite(value).all()):
                        raise SeedBatchFallback(f"seed {s}'s update would make {name} non-finite")
                    out[name][s].copy_(value)
        return out
