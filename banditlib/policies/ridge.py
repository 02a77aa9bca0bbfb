"""The ridge-regression estimator that the linear policies share.

Per model ``m`` (one for the shared-parameter model, one per arm for disjoint arms):

    A_m = reg I + sum_i gamma^(n-i) x_i x_i^T,   b_m = sum_i gamma^(n-i) r_i x_i,   theta_m = A_m^-1 b_m,

with ``gamma = forget`` applied once per round (row of ``update``) to every model. Without forgetting
``A^-1`` is maintained by Sherman-Morrison / Woodbury updates ([`banditlib.linalg`][banditlib.linalg]) and recomputed
exactly by Cholesky every ``refresh_every`` observations of a model, whenever the drift check fails, and
whenever a single call adds at least ``d`` observations to a model (then the exact inverse is cheaper than
Woodbury).

**Forgetting is regularised toward the prior** (the discounted ridge regression of D-LinUCB, Russac et al.
2019): the data are discounted, the prior ``reg I`` is not. One round is
``A <- gamma A + (1 - gamma) reg I + x x^T``, so ``A >= reg I`` always holds and ``A^-1 <= I / reg``: a
direction, or a disjoint arm, that receives no data relaxes back to exactly the prior's uncertainty and
never beyond it (the earlier ``A <- gamma A + x x^T`` discounted the prior too and drove the inverse of an
unobserved direction to overflow after ``log(max float) / log(1 / gamma)`` rounds). The update is no longer
rank-one, so with ``forget < 1`` every call recomputes every model's inverse exactly by Cholesky, ``O(M
d^3)`` per call. A single row on the CPU does the same in numpy (`RidgeEstimator._learn_row_forgetting`): the
same elementwise discount and rank-one sums, bit for bit, and the inverses from the same float64 Cholesky
refresh ([`banditlib.linalg.refresh_inverse`][banditlib.linalg.refresh_inverse]) as the batched path.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import torch

from banditlib import linalg
from banditlib.errors import InvalidInputError, NumericalError
from banditlib.kernels import disjoint_score, shared_score
from banditlib.policies._params import Param, float_in, int_at_least
from banditlib.policies._state import _COND_CHECK
from banditlib.policies.base import Policy

__all__ = ["RidgeEstimator"]

# The drift check runs whenever a model's count of observations since its last refresh crosses a multiple
# of this: often enough to catch a drifting inverse long before the scheduled refresh, rarely enough to cost
# nothing on the single-row path.
DRIFT_CHECK_EVERY = 16

_NONFINITE = (
    "{}.update(): the update produced non-finite statistics (rewards or features too large for the dtype); the "
    "state is unchanged."
)


class RidgeEstimator(Policy):
    """The ridge estimator: its statistics, posterior and transactional update; a rule (`banditlib.policies.rules`)
    over it makes a policy (``LinUCB``, ``LinTS``, ``Greedy``, ``EpsilonGreedy``).

    Learned buffers (``M = 1`` shared, ``M = K`` disjoint):

    * ``A_`` ``(M, d, d)`` float64: regularised (discounted) Gram matrix;
    * ``A_inv_`` ``(M, d, d)``: its inverse;
    * ``b_`` ``(M, d)`` float64: reward-weighted feature sums;
    * ``theta_`` ``(M, d)``: ridge estimate ``A^-1 b``;
    * ``n_updates_`` ``(M,)`` int64: observations per model;
    * ``refresh_counter`` ``(M,)`` int64: observations since the last exact inverse;
    * ``n_rounds_`` ``()`` int64: rounds learned from (rows of ``update``), each one discount step with
      forgetting (files written before it existed load with 0).

    ``A_`` and ``b_`` are sums over every observation ever made and are what the exact refresh starts from,
    so they are kept in float64 whatever ``dtype`` is (in float32, a million updates would erode the small
    eigenvalues of ``A`` until it is no longer positive definite). ``A_inv_`` and ``theta_``, which every
    ``select`` reads, are in ``dtype``.
    """

    _float64_buffers = ("A_", "b_")
    _bookkeeping = Policy._bookkeeping | {"refresh_counter"}
    _state_defaults: ClassVar[Mapping[str, int]] = {"n_rounds_": 0}  # files written before the round counter existed
    A_: torch.Tensor
    A_inv_: torch.Tensor
    b_: torch.Tensor
    theta_: torch.Tensor
    n_updates_: torch.Tensor
    refresh_counter: torch.Tensor
    n_rounds_: torch.Tensor
    reg: float
    forget: float
    refresh_every: int

    _abstract = True
    weights_by_scaling = True
    _params: ClassVar[tuple[Param, ...]] = (
        Param("reg", 1.0, "float", "ridge regularizer ``lambda > 0``.", float_in(0.0, low_open=True)),
        Param("forget", 1.0, "float", "forgetting factor ``gamma`` in ``(0, 1]`` applied once per round (``1``: no "
              "forgetting; see `banditlib.policies.ridge`).", float_in(0.0, 1.0, low_open=True)),
        Param("refresh_every", 1000, "int", "observations of a model between exact Cholesky refreshes of "
              "``A^-1``.", int_at_least(1)),
    )  # fmt: skip

    def _init(self, values: dict[str, Any]) -> None:
        M, d = self.num_models, self.dim
        eye = torch.eye(d, dtype=self.dtype, device=self.device).expand(M, d, d)
        self.register_buffer("A_", eye.to(torch.float64) * self.reg)
        self.register_buffer("A_inv_", eye / self.reg)
        self.register_buffer("b_", torch.zeros(M, d, dtype=torch.float64, device=self.device))
        self.register_buffer("theta_", torch.zeros(M, d, dtype=self.dtype, device=self.device))
        self.register_buffer("n_updates_", torch.zeros(M, dtype=torch.long, device=self.device))
        self.register_buffer("refresh_counter", torch.zeros(M, dtype=torch.long, device=self.device))
        self.register_buffer("n_rounds_", torch.zeros((), dtype=torch.long, device=self.device))
        self._probe: np.ndarray | None = None
        # Whether every entry sum of A that the single-row path can produce is finite: the row path admits A
        # only with trace(A) <= _COND_CHECK reg, and sum_ij |A_ij| <= d trace(A) for positive definite A.
        self._row_sum_A_finite = self.dim * _COND_CHECK * self.reg < 1e300
        # (1 - gamma) reg I, the prior's share of a round of forgetting, for the single-row path.
        self._row_prior: np.ndarray | None = None
        self._chol: torch.Tensor | None = None
        self._chol_np: np.ndarray | None = None

    # --------------------------------------------------------------------------------------- prediction

    def _state_views(self) -> dict[str, np.ndarray]:
        views = super()._state_views()
        if "n_rounds_1d" not in views:
            views["n_rounds_1d"] = views["n_rounds_"].reshape(1)
        return views

    def _mean(self, x: torch.Tensor) -> torch.Tensor:
        """Predicted reward ``x^T theta`` of every (row, arm): ``(B, K)``."""
        if self.arms is None:
            return x @ self.theta_[0]
        return x @ self.theta_.T

    def _mean_var(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Predicted reward and ``x^T A^-1 x`` of every (row, arm): each ``(B, K)``."""
        if self.arms is None:
            B, K, d = x.shape
            mean, var = shared_score(x.reshape(B * K, d), self.A_inv_[0], self.theta_[0], backend=self.backend)
            return mean.view(B, K), var.view(B, K)
        return disjoint_score(x, self.A_inv_, self.theta_, backend=self.backend)

    def _mean_row(self, x: np.ndarray) -> np.ndarray:
        """`_mean` for one row in numpy: ``x`` ``(d,)`` or ``(K, d)`` -> ``(K,)``."""
        theta = (self._views or self._state_views())["theta_"]
        return theta @ x if self.arms is not None else x @ theta[0]

    def _mean_var_row(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """`_mean_var` for one row in numpy: each ``(K,)``."""
        views = self._views or self._state_views()
        A_inv, theta = views["A_inv_"], views["theta_"]
        if self.arms is not None:
            return theta @ x, (A_inv @ x) @ x
        return x @ theta[0], ((x @ A_inv[0]) * x).sum(axis=1)

    def _invalidate_caches(self) -> None:
        cache = self.__dict__  # plain attributes: skip nn.Module.__setattr__ on the single-row path
        if cache.get("_chol") is not None or cache.get("_chol_np") is not None:
            cache["_chol"] = cache["_chol_np"] = None

    def _sample_form(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
        """Shared-parameter model: the contexts, ``theta`` and the Cholesky factor of ``A^-1`` (disjoint arms:
        ``None``, each arm's score drawn on its own, exactly ``N(x^T theta_a, x^T A_a^-1 x)``)."""
        if self.arms is not None:
            return None
        return x, self.theta_[0], self._cholesky()

    def _cholesky(self) -> torch.Tensor:
        """Lower Cholesky factor of the shared model's ``A^-1`` ``(d, d)``, cached until the state changes."""
        chol = self._chol
        if chol is None:
            chol = self.__dict__["_chol"] = linalg.inverse_factor(self.A_inv_[0], self.A_[0]).to(self.dtype)
        return chol

    def _sample_form_row(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """`_sample_form` in numpy (LAPACK without torch's dispatch cost)."""
        if self.arms is not None:
            return None
        chol = self._chol_np
        if chol is None:
            try:
                chol = np.linalg.cholesky(self._state_views()["A_inv_"][0].astype(np.float64)).astype(self._np_dtype)
            except np.linalg.LinAlgError:  # let the torch path raise its NumericalError
                chol = self._cholesky().numpy()
            self.__dict__["_chol_np"] = chol
        return x, chol

    def _learn_row(
        self, x: np.ndarray, models: np.ndarray | tuple[int, ...], rewards: np.ndarray | tuple[float, ...]
    ) -> bool:
        """One round, one observation per touched model: Sherman-Morrison in numpy, committed at the end.

        Returns ``False``, having changed nothing, when a result is not finite or the refresh fails."""
        if self.forget != 1.0:
            return self._learn_row_forgetting(x, models, rewards)
        views = self._views or self._state_views()
        A_all = views["A_"]
        if len(models) == 1:
            m = int(models[0])
            diag = views.get("A_diag")
            if diag is None:  # a view of every model's diagonal, dropped with the other views
                if not A_all.flags.c_contiguous:
                    diag = np.diagonal(A_all, axis1=1, axis2=2)
                else:
                    diag = views["A_diag"] = A_all.reshape(A_all.shape[0], -1)[:, :: self.dim + 1]
            # |x|^2 + trace(A): a bound, so summed the cheap way (the batched path sums in another order)
            grow = float(np.dot(x[0], x[0])) + sum(diag[m].tolist())
        else:
            grow = float(np.einsum("md,md->", x, x)) + float(A_all[np.asarray(models)].trace(axis1=-2, axis2=-1).max())
        if not grow <= _COND_CHECK * self.reg:
            return False  # possibly ill-conditioned (or not finite): the batched path checks it
        if len(models) == 1:  # the common case, without the list
            new = self._sherman_morrison_row(views, m, x[0], float(rewards[0]))
            if new is None:
                return False
            _, A, A_inv, b, theta, since = new
            if type(A) is tuple:  # the outer product x x^T, added in place: the same sum as A + x x^T
                A_all[m] += A[0]
            else:
                A_all[m] = A
            views["A_inv_"][m], views["b_"][m], views["theta_"][m] = A_inv, b, theta
            views["n_updates_"][m] += 1
            views["refresh_counter"][m] = since
            views["n_rounds_1d"][0] += 1  # a 1-d view: an element add is cheaper than a 0-d one
            self._invalidate_caches()
            return True
        pending = []
        for j in range(len(models)):
            one = self._sherman_morrison_row(views, int(models[j]), x[j], float(rewards[j]))
            if one is None:
                return False
            pending.append(one)
        # Commit: nothing below can fail.
        A_inv_all, b_all, theta_all = views["A_inv_"], views["b_"], views["theta_"]
        n_all, since_all = views["n_updates_"], views["refresh_counter"]
        for m, A, A_inv, b, theta, since in pending:
            if type(A) is tuple:
                A_all[m] += A[0]
            else:
                A_all[m] = A
            A_inv_all[m], b_all[m], theta_all[m] = A_inv, b, theta
            n_all[m] += 1
            since_all[m] = since
        views["n_rounds_1d"][0] += 1  # a 1-d view: an element add is cheaper than a 0-d one
        self._invalidate_caches()
        return True

    def _sherman_morrison_row(
        self, views: dict[str, np.ndarray], m: int, x1: np.ndarray, r: float
    ) -> tuple[int, np.ndarray | tuple[np.ndarray], np.ndarray, np.ndarray, np.ndarray, int] | None:
        """Model ``m``'s statistics after the observation ``(x1, r)``, uncommitted: ``A`` as the new matrix, or
        as ``(x x^T,)`` to add in place when nothing needed the new matrix; ``None`` when a result is not
        finite or the refresh fails. Runs under ``ignoring_fp`` (overflow is reported by the batched path as
        NumericalError, not as a numpy warning)."""
        x64 = x1.astype(np.float64)
        M = views["A_inv_"][m]
        Mx = M @ x1
        denom = 1.0 + float(x1 @ Mx)
        A_inv = M - Mx[:, None] * (Mx / denom)
        xx = x64[:, None] * x64
        A: np.ndarray | tuple[np.ndarray] = (xx,)
        b = views["b_"][m] + r * x64
        since = int(views["refresh_counter"][m]) + 1
        if since >= self.refresh_every or since % DRIFT_CHECK_EVERY == 0 or not self._row_sum_A_finite:
            A = A_full = views["A_"][m] + xx
            if since >= self.refresh_every or (since % DRIFT_CHECK_EVERY == 0 and self._drifted_row(A_full, A_inv)):
                try:
                    A_inv = linalg.refresh_inverse(torch.from_numpy(A_full)[None], self.dtype)[0].numpy()
                except NumericalError:
                    return None
                since = 0
        theta = (A_inv @ b).astype(A_inv.dtype, copy=False)
        # NaN or inf anywhere in x, r or the result shows in these sums (in float64: an overflow of finite
        # values beyond ~1e307 only costs a detour): the batched path then raises the right error. The sum of A
        # is finite by the trace bound checked before (unless reg is astronomically large): skipped then.
        total = sum(theta.tolist())
        if not self._row_sum_A_finite:
            total += float(np.add.reduce(views["A_"][m] + xx, axis=None))
        if not (math.isfinite(denom) and denom > 0 and math.isfinite(total)):
            return None
        return m, A, A_inv, b, theta, since

    def _learn_row_forgetting(
        self, x: np.ndarray, models: np.ndarray | tuple[int, ...], rewards: np.ndarray | tuple[float, ...]
    ) -> bool:
        """`_learn_forgetting` for one round in numpy: every model's ``A <- gamma A + (1 - gamma) reg I`` and
        ``b <- gamma b``, the touched models' ``x x^T`` and ``r x`` added, every inverse refreshed exactly
        (by the batched path's float64 Cholesky), committed at the end. The same elementwise operations as
        the batched path, so ``A_`` and ``b_`` are bit-identical to it.

        Returns ``False``, having changed nothing, when the batched path must do it (non-finite results, a
        possibly ill-conditioned ``A``, a failed factorisation)."""
        views = self._views or self._state_views()
        gamma, d = self.forget, self.dim
        if self._row_prior is None:
            self._row_prior = ((1.0 - gamma) * self.reg) * np.eye(d)
        A_new = views["A_"] * gamma
        A_new += self._row_prior
        b_new = views["b_"] * gamma
        for j in range(len(models)):
            m = int(models[j])
            x64 = x[j].astype(np.float64)
            A_new[m] += x64[:, None] * x64
            b_new[m] += float(rewards[j]) * x64
        A_new = 0.5 * (A_new + A_new.transpose(0, 2, 1))  # exactly symmetric, as the batched path keeps it
        # One sum settles the common case; only a non-finite sum (possibly an overflow) checks elementwise.
        sums_finite = np.isfinite(np.add.reduce(A_new, axis=None)) and np.isfinite(np.add.reduce(b_new, axis=None))
        if not sums_finite and not (np.isfinite(A_new).all() and np.isfinite(b_new).all()):
            return False
        traces = np.trace(A_new, axis1=1, axis2=2)
        if not float(traces.max()) / self.reg <= _COND_CHECK:
            return False  # possibly ill-conditioned: the batched path checks it (and may warn or raise)
        try:
            A_inv_t = linalg.refresh_inverse(torch.from_numpy(A_new), self.dtype)
        except NumericalError:
            return False
        A_inv_new = A_inv_t.numpy()
        theta_new = np.matmul(A_inv_new.astype(np.float64, copy=False), b_new[:, :, None])[:, :, 0].astype(
            self._np_dtype, copy=False
        )
        if not (np.isfinite(A_inv_new).all() and np.isfinite(theta_new).all()):
            return False
        # Commit: nothing below can fail.
        views["A_"][...] = A_new
        views["A_inv_"][...] = A_inv_new
        views["b_"][...] = b_new
        views["theta_"][...] = theta_new
        n_all = views["n_updates_"]
        for j in range(len(models)):
            n_all[int(models[j])] += 1
        views["refresh_counter"][...] = 0
        views["n_rounds_1d"][0] += 1  # a 1-d view: an element add is cheaper than a 0-d one
        self._invalidate_caches()
        return True

    def _drifted_row(self, A: np.ndarray, A_inv: np.ndarray) -> bool:
        """[`banditlib.linalg.inverse_residual`][banditlib.linalg.inverse_residual] for one ``(d, d)`` pair in numpy."""
        u = self._probe_row()
        r = A @ (A_inv @ u) - u
        return not float(r @ r) <= linalg.drift_tolerance(self.dtype) ** 2

    def _probe_row(self) -> np.ndarray:
        if self._probe is None:
            self._probe = linalg.probe_vector(self.dim, torch.float64, torch.device("cpu")).numpy()
        return self._probe

    def posterior(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The ridge estimate and ``A^-1``: ``theta`` ``(M, d)`` and ``A_inv`` ``(M, d, d)`` (copies)."""
        return self.theta_.clone(), self.A_inv_.clone()

    # ------------------------------------------------------------------------------------------ learning

    def _learn(
        self, x: torch.Tensor, model: torch.Tensor, rewards: torch.Tensor, steps: torch.Tensor, num_steps: int
    ) -> None:
        weights, scale = linalg.discount_weights(steps, num_steps, self.forget)
        # Rows sqrt(w) x and coefficients sqrt(w) r: float64 for the sums A and b, policy dtype for A^-1.
        U64, c64 = x.to(torch.float64), rewards.to(torch.float64)
        if self.forget != 1.0:
            sw = weights.sqrt()
            self._learn_forgetting(U64 * sw[:, None], c64 * sw, model, scale)
        else:
            self._learn_accumulate(x, model, rewards, U64, c64)
        self.n_rounds_.add_(num_steps)  # both commit everything or raise having changed nothing

    def _learn_accumulate(
        self, x: torch.Tensor, model: torch.Tensor, rewards: torch.Tensor, U64: torch.Tensor, c64: torch.Tensor
    ) -> None:
        """One call without forgetting: Woodbury (or an exact refresh) per touched model; committed at the end."""
        scale = 1.0  # grouped_gram takes a discount; this path has none
        N, d = x.shape
        if N == 1 or self.num_models == 1:
            touched = model[:1]
            counts = torch.full((1,), N, dtype=torch.long, device=x.device)
            groups = None
        else:
            touched, inverse, counts = torch.unique(model, return_inverse=True, return_counts=True)
            groups = torch.argsort(inverse, stable=True)
        n_max = N if groups is None else int(counts.max())
        A_old, A_inv_old, b_old = self.A_[touched], self.A_inv_[touched], self.b_[touched]
        since = self.refresh_counter[touched] + counts
        if n_max >= d:
            # At least d rows for some model: the exact inverse costs no more than Woodbury (and the Gram
            # matrices are summed group by group, not over rows padded to the largest group).
            A_new, b_new = linalg.grouped_gram(A_old, b_old, U64, c64, groups, counts, scale)
            A_inv_new = linalg.refresh_inverse(A_new, self.dtype)
            theta_new = linalg.ridge_solution(A_inv_new, b_new, self.dtype)
            since = torch.zeros_like(since)
        else:
            if groups is None:
                U3, c2 = U64.unsqueeze(0), c64.unsqueeze(0)
            else:  # zero-padded (T, n_max, d) with n_max < d: smaller than A itself
                U3, c2 = linalg.pad_groups(U64, c64, groups, inverse, counts, n_max)
            # drift checked when a model's count crosses a multiple of DRIFT_CHECK_EVERY; exact every refresh_every
            check = (since // DRIFT_CHECK_EVERY) > ((since - counts) // DRIFT_CHECK_EVERY)
            fold = linalg.ridge_fold(
                A_old, A_inv_old, b_old, U3, c2, self.dtype, check=check, stale=since >= self.refresh_every
            )
            A_new, A_inv_new, b_new, theta_new = fold.A, fold.A_inv, fold.b, fold.theta
            since = since.masked_fill(fold.refreshed, 0)
        finite = [bool(torch.isfinite(t).all()) for t in (A_new, b_new, A_inv_new, theta_new)]
        if not all(finite):
            raise NumericalError(_NONFINITE.format(type(self).__name__))
        self._check_conditioning(A_new, self.reg)
        # Commit: nothing below can fail.
        with torch.no_grad():
            self.A_.index_copy_(0, touched, A_new)
            self.A_inv_.index_copy_(0, touched, A_inv_new)
            self.b_.index_copy_(0, touched, b_new)
            self.theta_.index_copy_(0, touched, theta_new)
            self.n_updates_.index_add_(0, touched, counts)
            self.refresh_counter.index_copy_(0, touched, since)
        self._invalidate_caches()

    def _learn_forgetting(self, U: torch.Tensor, c: torch.Tensor, model: torch.Tensor, scale: float) -> None:
        """One call with forgetting: every model's ``A <- scale A + (1 - scale) reg I`` (its data discounted,
        its prior not), plus the weighted rows ``U`` ``(N, d)`` with coefficients ``c`` ``(N,)`` of the models
        in ``model``; every inverse recomputed exactly; committed at the end."""
        M, d = self.num_models, self.dim
        eye = torch.eye(d, dtype=torch.float64, device=U.device)
        A_new = self.A_ * scale + ((1.0 - scale) * self.reg) * eye
        b_new = self.b_ * scale
        if M == 1:
            A_new[0] += U.T @ U
            b_new[0] += c @ U
        else:  # one GEMM per touched model
            touched, inverse, counts_t = torch.unique(model, return_inverse=True, return_counts=True)
            order = torch.argsort(inverse, stable=True)
            A_t, b_t = linalg.grouped_gram(A_new[touched], b_new[touched], U, c, order, counts_t, 1.0)
            A_new[touched], b_new[touched] = A_t, b_t
        # Symmetric by construction up to rounding; keep it exactly symmetric for the Cholesky factor.
        A_new = 0.5 * (A_new + A_new.transpose(-1, -2))
        finite = bool(torch.isfinite(A_new).all()) and bool(torch.isfinite(b_new).all())
        if not finite:
            raise NumericalError(_NONFINITE.format(type(self).__name__))
        self._check_conditioning(A_new, self.reg)
        A_inv_new = linalg.refresh_inverse(A_new, self.dtype)
        theta_new = linalg.ridge_solution(A_inv_new, b_new, self.dtype)
        if not (bool(torch.isfinite(A_inv_new).all()) and bool(torch.isfinite(theta_new).all())):
            raise NumericalError(_NONFINITE.format(type(self).__name__))
        counts = torch.bincount(model, minlength=M)
        with torch.no_grad():
            self.A_.copy_(A_new)
            self.A_inv_.copy_(A_inv_new)
            self.b_.copy_(b_new)
            self.theta_.copy_(theta_new)
            self.n_updates_.add_(counts)
            self.refresh_counter.zero_()
        self._invalidate_caches()

    def _check_state(self, state: Mapping[str, torch.Tensor], where: str) -> None:
        super()._check_state(state, where)  # counters, A_ symmetric positive definite, A_inv_ its inverse
        theta = linalg.ridge_solution(state["A_inv_"], state["b_"], torch.float64)
        err = (theta - state["theta_"].to(torch.float64)).norm(dim=-1) / (1.0 + theta.norm(dim=-1))
        if not bool((err <= 1e-2).all()):
            raise InvalidInputError(f"{where}: `theta_` is not A_inv_ b_; the state was edited or corrupted.")
