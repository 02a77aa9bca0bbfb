"""The uniform ``select`` / ``update`` API that every policy shares.

A policy is a ``torch.nn.Module`` whose buffers are its whole state. Subclasses supply two pieces:
``_score`` (predicted mean and exploration bonus of every arm in every row) and ``_learn`` (fold a batch of
observations into the statistics, transactionally). Everything else lives here once: input validation,
masks, top-k with random tie-breaking, the counter-based generator, ``state_dict`` checks and the
pickle-free ``save`` / ``load``.
"""

from __future__ import annotations

import functools
import math
import os
import secrets
import threading
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import numpy as np
import torch
from torch import nn

from banditlib import _random, linalg
from banditlib import _validation as V
from banditlib._persist import Persistent
from banditlib.errors import BackendUnavailableError, InvalidInputError, NumericalError, StateError
from banditlib.kernels import masked_topk, resolve_backend
from banditlib.policies import _online, _propensity

__all__ = ["Policy", "Selection", "load", "registered_policies"]

FORMAT = "banditlib.policy"
FORMAT_VERSION = "2"
READABLE_VERSIONS = ("1", "2")  # 2 adds the payload checksum (banditlib._io); the state layout is unchanged
_REGISTRY: dict[str, type[Policy]] = {}

# Conditioning. A >= reg I always holds, so cond(A) <= trace(A) / reg: updates keeping that bound under
# _COND_CHECK cost nothing more; above it the committed A is factorised and its condition number estimated
# from the Cholesky diagonal. An update that would take cond(A) past _COND_MAX is rejected (float64 can no
# longer factorise A reliably, so the saved state would not load); a float32 policy whose inverse cannot be
# held to about 1e-2 relative accuracy (cond(A) > _COND_FLOAT32) warns once.
_COND_CHECK = 1e8
_COND_MAX = 1e13
_COND_FLOAT32 = 1e5

P = TypeVar("P", bound="Policy")
F = TypeVar("F", bound=Callable[..., Any])


def _locked(fn: F) -> F:
    """Run a public method under the policy's lock: concurrent calls on one policy are serialised, so two
    threads can share a policy without corrupting its statistics (one thread's update is all-or-nothing with
    respect to the other's select)."""

    @functools.wraps(fn)
    def wrapper(self: Policy, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            return fn(self, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


@dataclass(frozen=True)
class Selection:
    """What [`Policy.select`][banditlib.Policy.select] returns.

    Attributes:
        actions: ``(B, k)`` int64 chosen arm indices per row, best first.
        scores: ``(B, K)`` the index the rule ranks by (UCB, sampled value, ...); ``-inf`` where masked.
        mean: ``(B, K)`` predicted reward.
        bonus: ``(B, K)`` exploration term, ``scores = mean + bonus`` where unmasked (zero for greedy rules).
        propensity: ``(B, k)`` float64, the probability with which each chosen arm was chosen (for ``k > 1``: of
            being among the ``k`` chosen), computed when first read: exact for the argmax rules (ties included),
            Random and EpsilonGreedy, a Monte Carlo estimate for Thompson sampling (see
            [`Policy.propensity_rule`][banditlib.Policy.propensity_rule]). For that, a Thompson-sampling
            selection keeps what its draw was made from: the ``(B, K)`` standard deviations, or for the
            shared-feature rules the contexts (LinTS) or the ``(B, K, q)`` learned features (NeuralLinTS),
            until the selection is dropped.

    Examples:
        >>> import torch, banditlib
        >>> sel = banditlib.LinUCB(dim=2, seed=0).select(torch.eye(2).expand(3, 2, 2), k=1)
        >>> sel.actions.shape, sel.scores.shape, bool(torch.equal(sel.scores, sel.mean + sel.bonus))
        (torch.Size([3, 1]), torch.Size([3, 2]), True)
        >>> sel.propensity.tolist()  # the two arms tie before any update: each is chosen with probability 1/2
        [[0.5], [0.5], [0.5]]
    """

    actions: torch.Tensor
    scores: torch.Tensor
    mean: torch.Tensor
    bonus: torch.Tensor

    @property
    def propensity(self) -> torch.Tensor:
        """``(B, k)`` float64 probability of each chosen arm (see the class docstring)."""
        cached = self.__dict__.get("_propensity")
        if cached is None:
            raw = self.__dict__.get("_how")
            if raw is None:
                raise StateError(
                    "Selection.propensity: only a Selection returned by Policy.select knows how its arms were chosen; "
                    "this one was constructed directly."
                )
            how = _propensity.How(*raw)
            if how.rule is None:
                raise StateError(
                    f"Selection.propensity: {how.owner} does not say how it chooses its arms; set its class "
                    f"attribute `propensity_rule` to one of {', '.join(map(repr, _propensity.RULES))} (see "
                    "Policy.propensity_rule)."
                )
            cached = _propensity.propensity(how, self.actions, self.scores, self.mean)
            self.__dict__["_propensity"] = cached
        return cached


def _selection(
    actions: torch.Tensor, scores: torch.Tensor, mean: torch.Tensor, bonus: torch.Tensor, how: tuple[Any, ...]
) -> Selection:
    """``Selection(actions, scores, mean, bonus)`` without the frozen dataclass's per-field ``__setattr__``
    (the same object: the class has no ``__post_init__`` and no slots), with what ``propensity`` needs: the
    fields of a `banditlib.policies._propensity.How` as a plain tuple (cheaper to make on every call)."""
    sel = object.__new__(Selection)
    sel.__dict__.update(actions=actions, scores=scores, mean=mean, bonus=bonus, _how=how)
    return sel


class Policy(nn.Module, Persistent):
    """Base class of every bandit policy: one batched ``select`` / ``update`` API for both arm models.

    Two arm models:

    * shared-parameter (``arms=None``): one model over arm feature vectors; contexts ``(B, K, d)``, and ``K``
      may change from call to call;
    * disjoint (``arms=K``): ``K`` fixed arms, each with its own statistics; contexts ``(B, d)``.

    Args:
        dim: feature dimension ``d``.
        arms: ``None`` for the shared-parameter model, or the number of disjoint arms ``K``.
        seed: seed of the policy's own generator (``None``: drawn from the operating system and saved with
            the state, so a loaded policy continues the same stream).
        dtype: ``torch.float32`` or ``torch.float64``, the dtype of the state and of the outputs.
        device: where the state lives and the outputs are returned; a device this machine cannot use
            (``"cuda"`` without CUDA) raises [`BackendUnavailableError`][banditlib.BackendUnavailableError].
        backend: ``"auto"``, ``"torch"`` or ``"triton"`` for the scoring kernels.

    Examples:
        Every policy is used the same way: score a batch of rounds, play, learn from the rewards.

        >>> import torch, banditlib
        >>> policy = banditlib.LinUCB(dim=3, arms=4, seed=0)   # 4 disjoint arms, contexts (B, 3)
        >>> contexts = torch.randn(8, 3)
        >>> sel = policy.select(contexts)
        >>> policy.update(contexts, sel.actions, torch.rand(8, 1))
        >>> isinstance(policy, banditlib.Policy), policy.config["arms"]
        (True, 4)
    """

    # Buffers kept in float64 whatever the policy's dtype (accumulated sums; see policies/ridge.py).
    _float64_buffers: ClassVar[tuple[str, ...]] = ()
    # Whether every score depends on the contexts, so that non-finite contexts show in the scores (the
    # single-row path relies on it to skip a separate finiteness check).
    _scores_use_contexts: ClassVar[bool] = True
    # Whether single rows on the CPU may take the numpy path (policies/_online.py); needs _score_row/_learn_row.
    _row_path: ClassVar[bool] = True
    # Whether one update of B rows leaves the same state as B one-row updates (false for policies that
    # train on a schedule counted in calls or observations: the grouping changes when training happens).
    _batch_update_equals_rows: ClassVar[bool] = True
    # State entries that are not learned: the generator and maintenance counters.
    _bookkeeping: ClassVar[frozenset[str]] = frozenset({"rng_seed", "rng_counter"})
    # Integer state entries added after files were first written: a state without them loads with this value.
    _state_defaults: ClassVar[Mapping[str, int]] = {}
    propensity_rule: ClassVar[str | None] = None
    """How the policy chooses, which is how [`Selection.propensity`][banditlib.Selection] is computed:
    ``"argmax"`` (top ``k`` of deterministic scores, exact ties broken uniformly: exact), ``"uniform"``
    (exact), ``"epsilon"`` (exact, with the ``epsilon`` attribute) or ``"gaussian"`` (Thompson sampling: a
    Monte Carlo estimate from 1,000 fresh draws plus the one decided with, standard error at most
    ``sqrt(p (1 - p) / 1000)``, never below ``1 / 1001`` for a chosen arm). ``None`` (a subclass that has not
    said) makes ``propensity`` raise [`StateError`][banditlib.StateError] rather than guess."""
    # Whether the scores hold Gaussian noise the policy describes through _score_noise / _score_row_noise.
    _noisy: ClassVar[bool] = False
    rng_seed: torch.Tensor
    rng_counter: torch.Tensor

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not cls.__name__.startswith("_"):
            _REGISTRY[cls.__name__] = cls

    def __init__(
        self,
        *,
        dim: int,
        arms: int | None,
        seed: int | None,
        dtype: torch.dtype | str,
        device: torch.device | str,
        backend: str,
    ) -> None:
        super().__init__()
        where = f"{type(self).__name__}()"
        self.dim: int = V.check_int(dim, where, "dim")  # type: ignore[assignment]
        self.arms: int | None = V.check_int(arms, where, "arms", allow_none=True)
        self.dtype: torch.dtype = V.check_dtype(dtype, where)
        self.device: torch.device = V.check_device(device, where)
        self.backend: str = V.check_backend(backend, where)
        resolve_backend(self.backend)  # backend="triton" needs triton to import; devices are checked per call
        seed = V.check_seed(seed, where)
        self.seed: int = secrets.randbits(63) if seed is None else seed
        self.register_buffer("rng_seed", torch.tensor(self.seed, dtype=torch.long, device=self.device))
        self.register_buffer("rng_counter", torch.tensor(0, dtype=torch.long, device=self.device))
        self._config: dict[str, Any] = {"dim": self.dim, "arms": self.arms, "backend": self.backend}
        # Single-row calls on the CPU take the numpy fast path (policies/_online.py); tests switch it off
        # to compare both paths.
        self._fast_path = self._row_path
        self._views: dict[str, np.ndarray] | None = None
        self._lock = threading.RLock()
        self._set_row_flags()

    def _set_row_flags(self) -> None:
        """What the single-row dispatch reads on every call, computed when the dtype or device is set."""
        self._np_dtype: np.dtype[Any] = np.dtype(np.float64 if self.dtype == torch.float64 else np.float32)
        self._row_update_ok = self.device.type == "cpu"
        self._row_select_ok = self._row_update_ok and self.backend != "triton"

    # ------------------------------------------------------------------------------------------ copies

    def __getstate__(self) -> dict[str, Any]:
        """What ``copy.deepcopy`` and ``pickle`` copy: everything but the caches derived from the buffers (the
        numpy views would otherwise keep pointing at the original's memory) and the lock."""
        state = dict(self.__dict__)
        state["_views"] = None
        state.pop("_lock", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)  # type: ignore[no-untyped-call]
        self._views = None
        self._lock = threading.RLock()
        self._invalidate_caches()

    # ------------------------------------------------------------------------------------------ public API

    @property
    def config(self) -> dict[str, Any]:
        """The constructor arguments (without ``seed``, ``dtype`` and ``device``), JSON-serialisable."""
        return dict(self._config)

    @property
    def num_models(self) -> int:
        """``M``: 1 for the shared-parameter model, ``K`` for disjoint arms."""
        return 1 if self.arms is None else self.arms

    def select(self, contexts: Any, k: int = 1, mask: Any = None) -> Selection:
        """Choose ``k`` arms in each of ``B`` rounds. Never changes learned state.

        Args:
            contexts: ``(B, K, d)`` arm features (shared model) or ``(B, d)`` contexts (disjoint model); a
                numpy array or tensor of any real dtype, converted to the policy's dtype and device.
            k: arms per row, in ``[1, K]``.
            mask: optional ``(B, K)`` bool, ``True`` where an arm is available; each row needs ``>= k``.

        Returns:
            A [`Selection`][banditlib.Selection]; ``actions`` ``(B, k)`` best first, ties broken by the policy's
            generator.

        Raises:
            InvalidInputError: bad shapes, dtypes, non-finite values, ``k`` out of range, rows with fewer
                than ``k`` available arms.
        """
        with self._lock:  # what @_locked does, inlined: one frame less on the single-row path
            if mask is None and self._fast_path and self._row_select_ok and type(k) is int:
                fast = _online.select(self, contexts, k)
                if fast is not None:
                    return _selection(*fast)
            return self._select_batched(contexts, k, mask)

    forward = select

    def _select_batched(self, contexts: Any, k: int, mask: Any) -> Selection:
        where = f"{type(self).__name__}.select()"
        x = V.as_real_tensor(contexts, where, "contexts", dtype=self.dtype, device=self.device)
        V.check_contexts(x, where, dim=self.dim, arms=self.arms)
        B = x.shape[0]
        K = self.arms if self.arms is not None else x.shape[1]
        k = V.check_k(k, where, num_arms=K)
        m = None
        if mask is not None:
            m = V.as_bool_tensor(mask, where, "mask", device=self.device)
            V.check_mask(m, where, batch=B, num_arms=K, k=k)
        first = int(self.rng_counter)
        rows = torch.arange(first, first + B, device=self.device)
        if self._noisy:
            mean, bonus, noise = self._score_noise(x, rows)
        else:
            (mean, bonus), noise = self._score(x, rows), None
        scores = mean + bonus
        if not V.all_finite(scores):
            raise NumericalError(f"{where}: the policy produced non-finite scores; its state is degenerate.")
        if m is not None:
            scores = scores.masked_fill(~m, float("-inf"))
        actions = self._top_k(scores, k, rows)
        self.rng_counter.fill_(first + B)
        return _selection(actions, scores, mean, bonus, self._how(k, first, noise))

    def update(self, contexts: Any, actions: Any, rewards: Any) -> None:
        """Learn from the rewards of the chosen arms. All-or-nothing: on error the state is unchanged.

        Each row is one round; with forgetting (``forget < 1``) the statistics are discounted once per row.

        Args:
            contexts: the contexts given to [`select`][banditlib.Policy.select]: ``(B, K, d)`` or ``(B, d)``.
            actions: ``(B, k)`` integer arm indices, distinct within a row.
            rewards: ``(B, k)`` observed rewards of those arms.

        Raises:
            InvalidInputError: bad shapes, dtypes, non-finite values, out-of-range or repeated actions.
        """
        with self._lock:  # what @_locked does, inlined
            if self._fast_path and self._row_update_ok and _online.update(self, contexts, actions, rewards):
                return
            self._update_batched(contexts, actions, rewards)

    def _update_batched(self, contexts: Any, actions: Any, rewards: Any) -> None:
        where = f"{type(self).__name__}.update()"
        x = V.as_real_tensor(contexts, where, "contexts", dtype=self.dtype, device=self.device)
        V.check_contexts(x, where, dim=self.dim, arms=self.arms)
        B = x.shape[0]
        K = self.arms if self.arms is not None else x.shape[1]
        a = V.as_index_tensor(actions, where, "actions", device=self.device)
        V.check_actions(a, where, batch=B, num_arms=K)
        r = V.as_real_tensor(rewards, where, "rewards", dtype=self.dtype, device=self.device)
        V.check_rewards(r, where, shape=tuple(a.shape), against="actions")
        k = a.shape[1]
        steps = (
            torch.arange(B, device=self.device).repeat_interleave(k) if k > 1 else torch.arange(B, device=self.device)
        )
        if self.arms is None:
            obs = x[steps, a.reshape(-1)]
            model = torch.zeros_like(steps)
        else:
            obs = x[steps] if k > 1 else x
            model = a.reshape(-1)
        self._learn(obs, model, r.reshape(-1), steps, B)

    @_locked
    def update_features(self, x: Any, rewards: Any) -> None:
        """Shared-parameter model only: learn from the feature vectors of the chosen arms directly.

        Each row is one round (one discount step with forgetting).

        Args:
            x: ``(N, d)`` feature vectors of the arms that were played.
            rewards: ``(N,)`` their rewards.

        Raises:
            InvalidInputError: disjoint model, bad shapes, dtypes or non-finite values.
        """
        if self.arms is None and self._fast_path and self._row_update_ok and _online.update_features(self, x, rewards):
            return
        where = f"{type(self).__name__}.update_features()"
        if self.arms is not None:
            raise InvalidInputError(
                f"{where}: only the shared-parameter model (arms=None) learns from feature vectors alone; this "
                f"policy has {self.arms} disjoint arms, use update(contexts, actions, rewards)."
            )
        feats = V.as_real_tensor(x, where, "x", dtype=self.dtype, device=self.device)
        if feats.dim() != 2 or feats.shape[1] != self.dim or feats.shape[0] == 0:
            raise InvalidInputError(
                f"{where}: `x` must have shape (N, d) with N >= 1 and d = {self.dim}; got {V.fmt_shape(feats.shape)}."
            )
        r = V.as_real_tensor(rewards, where, "rewards", dtype=self.dtype, device=self.device)
        V.check_rewards(r, where, shape=(feats.shape[0],), against="x")
        steps = torch.arange(feats.shape[0], device=self.device)
        self._learn(feats, torch.zeros_like(steps), r, steps, feats.shape[0])

    def _state_views(self) -> dict[str, np.ndarray]:
        """numpy views sharing memory with the CPU buffers (rebuilt when ``.to()`` replaces them)."""
        if self._views is None:
            self._views = {name: buf.numpy() for name, buf in self.named_buffers()}
        return self._views

    def learned_state(self) -> dict[str, torch.Tensor]:
        """Copies of the learned state: every entry of ``state_dict()`` except the generator's counters and
        maintenance bookkeeping (``_bookkeeping``). ``select`` never changes any of it."""
        return {k: v.detach().clone() for k, v in self.state_dict().items() if k not in self._bookkeeping}

    def _how(self, k: int, first_row: int, noise: _propensity.Noise | None) -> tuple[Any, ...]:
        """What a Selection of ``k`` arms per row, decided at rows ``first_row, ...``, needs for its propensities:
        the fields of a `banditlib.policies._propensity.How`."""
        # `epsilon` is read where it is stored (a plain attribute of EpsilonGreedy), so a changed value counts
        epsilon = self.__dict__.get("epsilon", 0.0)
        return (self.propensity_rule, k, self.seed, first_row, epsilon, noise, type(self).__name__)

    # ------------------------------------------------------------------------------------------ hooks

    def _score_noise(
        self, x: torch.Tensor, rows: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, _propensity.Noise | None]:
        """`_score` plus the distribution of its random part (``_noisy`` policies; ``None``: no noise)."""
        raise NotImplementedError

    def _score_row_noise(self, x: np.ndarray, row: int) -> tuple[np.ndarray, np.ndarray, _propensity.Noise | None]:
        """`_score_row` plus the distribution of its random part (``_noisy`` policies with a row path)."""
        raise NotImplementedError

    def _score(self, x: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Predicted mean and exploration bonus, each ``(B, K)``; ``rows`` ``(B,)`` are decision indices."""
        raise NotImplementedError

    def _learn(
        self, x: torch.Tensor, model: torch.Tensor, rewards: torch.Tensor, steps: torch.Tensor, num_steps: int
    ) -> None:
        """Fold ``N`` observations into the state, all-or-nothing.

        Args:
            x: ``(N, d)`` observed feature vectors (validated, policy dtype and device).
            model: ``(N,)`` int64 index of the model each observation updates (0 for the shared model).
            rewards: ``(N,)``.
            steps: ``(N,)`` int64 round of each observation within the call, in ``[0, num_steps)``.
            num_steps: rounds in the call (discount steps).
        """
        raise NotImplementedError

    def _score_row(self, x: np.ndarray, row: int) -> tuple[np.ndarray, np.ndarray]:
        """`_score` for one row in numpy: ``x`` ``(d,)`` or ``(K, d)`` -> mean and bonus ``(K,)``."""
        raise NotImplementedError

    def _learn_row(
        self, x: np.ndarray, models: np.ndarray | tuple[int, ...], rewards: np.ndarray | tuple[float, ...]
    ) -> bool:
        """`_learn` for one round in numpy: ``x`` ``(n, d)``, distinct ``models`` ``(n,)``, ``rewards``
        ``(n,)`` (arrays, or tuples of Python numbers for one observation). Runs under
        `banditlib.policies._online.ignoring_fp`. Returns ``False`` (changing nothing) when the batched path
        must do it."""
        return False

    def _invalidate_caches(self) -> None:
        """Drop anything derived from the state (called after the state changes from outside)."""

    def _check_conditioning(self, A_new: torch.Tensor, reg: float) -> None:
        """Reject statistics ``A_new`` ``(T, d, d)`` (a Gram matrix ``>= reg I``, ``reg`` the ridge prior) that
        float64 cannot factorise reliably (the saved state would not load), and warn once when a float32 inverse
        cannot hold them; cheap unless ``trace / reg`` is large. Used by every policy with ridge statistics."""
        bound = A_new.diagonal(dim1=-2, dim2=-1).sum(-1) / reg
        risky = bound > _COND_CHECK
        if not bool(risky.any()):
            return
        name = type(self).__name__
        try:
            L = linalg.cholesky_factor(A_new[risky], "A")
            diag = L.diagonal(dim1=-2, dim2=-1)
            cond = float(((diag.max(-1).values / diag.min(-1).values) ** 2).max())
        except NumericalError:
            cond = math.inf
        if not cond <= _COND_MAX:
            raise InvalidInputError(
                f"{name}.update(): the features are too large for the statistics: the update would make A "
                f"ill-conditioned (condition number about {cond:.1e}, beyond {_COND_MAX:.0e}, where float64 no longer "
                "factorises it reliably); rescale the features (unit scale is best). The state is unchanged."
            )
        if self.dtype == torch.float32 and cond > _COND_FLOAT32 and not getattr(self, "_warned_float32", False):
            self._warned_float32 = True
            warnings.warn(
                f"{name}: A has condition number about {cond:.1e}; a float32 A^-1 holds its small eigenvalues "
                f"to no better than about {cond * 6e-8:.0e} relative error, so decisions may differ from a float64 "
                "policy's. Use dtype=torch.float64 or rescale the features.",
                RuntimeWarning,
                stacklevel=4,
            )

    def _check_state(self, state: Mapping[str, torch.Tensor], where: str) -> None:
        """Semantic checks of a candidate state beyond shapes, dtypes and finiteness (extended per family).

        By the buffers' naming conventions: every integer buffer (counters, the generator's seed and counter)
        is non-negative; Adam's second moments (``*_v_``) and diagonal precisions (``Z_diag_``) are
        non-negative (positive for ``Z_diag_``); every matrix ``X_`` with an inverse ``X_inv_`` (``A_``,
        ``Z_``) is symmetric positive definite and its stored inverse satisfies ``||X (X_inv u) - u|| <= 1e-2 +
        50 cond(X) eps`` for a fixed unit ``u`` (what an exact inverse rounded to its dtype achieves, ``eps`` of the
        inverse's dtype, ``cond`` estimated from the Cholesky factor)."""
        for name, t in state.items():
            if not t.is_floating_point() and t.dtype != torch.bool and t.numel() and int(t.min()) < 0:
                raise InvalidInputError(f"{where}: `{name}` must be non-negative; got {int(t.min())}.")
            if name.endswith("_v_") and t.numel() and float(t.min()) < 0:
                raise InvalidInputError(f"{where}: `{name}` (a second moment) must be non-negative.")
        if "Z_diag_" in state and state["Z_diag_"].numel() and not float(state["Z_diag_"].min()) > 0:
            raise InvalidInputError(f"{where}: `Z_diag_` must be positive.")
        for name in ("A_", "Z_"):
            inv = name.removesuffix("_") + "_inv_"
            if name not in state or inv not in state:
                continue
            X = state[name].to(torch.float64)
            X3 = X if X.dim() == 3 else X[None]
            if not bool(torch.allclose(X3, X3.transpose(-1, -2), rtol=1e-5, atol=0.0)):
                raise InvalidInputError(f"{where}: `{name}` must be symmetric.")
            try:
                L = linalg.cholesky_factor(X3, f"`{name}`")
            except NumericalError as exc:
                raise InvalidInputError(f"{where}: {exc}") from None
            inv3 = state[inv] if state[inv].dim() == 3 else state[inv][None]
            res = linalg.inverse_residual(X3, inv3)
            # An exact inverse rounded to its dtype leaves a residual of about cond(X) * eps: allow that.
            diag = L.diagonal(dim1=-2, dim2=-1)
            cond = (diag.max(-1).values / diag.min(-1).values) ** 2
            tol = 1e-2 + 50.0 * cond * torch.finfo(inv3.dtype).eps
            if not bool((res <= tol).all()):
                raise InvalidInputError(
                    f"{where}: `{inv}` is not the inverse of `{name}` (residual {float(res.max()):.2e}); the state was "
                    "edited or corrupted."
                )

    # ------------------------------------------------------------------------------------------ selection

    def _top_k(self, scores: torch.Tensor, k: int, rows: torch.Tensor) -> torch.Tensor:
        """Top-``k`` per row, best first; exact ties ordered uniformly at random by the generator."""
        K = scores.shape[1]
        if k == 1 and not scores.is_cuda:
            # One max and a count of the rows' top value: the same decisions as the top-2 below (a row is tied
            # exactly when its top value occurs twice), at about half the cost of torch.topk on a CPU.
            top_vals, idx = scores.max(dim=1, keepdim=True)
            vals = top_vals
            tied = (scores == top_vals).sum(dim=1) > 1
        else:
            vals, idx = masked_topk(scores, min(k + 1, K), backend=self.backend)
            tied = (vals[:, 1:] == vals[:, :-1]).any(dim=1)
            idx = idx[:, :k]
        if bool(tied.any()):
            t = torch.nonzero(tied).squeeze(1)
            keys = _random.uniform(self.seed, _random.STREAM_TIES, rows[t], K)
            if k == 1:  # the tied best arm with the smallest key, in O(K): what the sort below picks first
                top = scores[t] == vals[t, :1]
                idx = idx.clone()
                idx[t] = torch.where(top, keys, torch.inf).argmin(dim=1, keepdim=True)
                return idx
            perm = keys.argsort(dim=1)
            order = scores[t].gather(1, perm).sort(dim=1, descending=True, stable=True).indices[:, :k]
            idx = idx.clone()
            idx[t] = perm.gather(1, order)
        return idx

    # ------------------------------------------------------------------------------------------ state

    def _apply(self, fn: Callable[[torch.Tensor], torch.Tensor], recurse: bool = True) -> Policy:
        try:
            probe = fn(torch.empty(0, dtype=self.dtype, device=self.device))
        except (AssertionError, RuntimeError, NotImplementedError) as exc:  # .to("cuda") on a machine without
            reason = (str(exc).splitlines() or [type(exc).__name__])[0]  # CUDA: torch's bare AssertionError
            raise BackendUnavailableError(
                f"{type(self).__name__}.to(): cannot move the state there ({reason}); the state is unchanged, "
                f"keep the policy on {self.device} or on a device this machine has."
            ) from None
        if probe.dtype not in V.SUPPORTED_DTYPES:
            raise InvalidInputError(
                f"{type(self).__name__}: cannot convert the state to {probe.dtype}; float32 and float64 are supported."
            )
        super()._apply(fn, recurse)  # type: ignore[no-untyped-call]
        for name in self._float64_buffers:
            if name in self._buffers:
                setattr(self, name, getattr(self, name).to(torch.float64))
        self.dtype, self.device = probe.dtype, probe.device
        self._views = None
        self._set_row_flags()
        self._invalidate_caches()
        return self

    @_locked
    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False) -> Any:
        """Load a state after checking every entry; on error the current state is unchanged.

        Raises:
            InvalidInputError: missing or unexpected keys (``strict``), wrong shapes, non-numeric or non-finite
                values, or a state that is inconsistent for this policy.
        """
        where = f"{type(self).__name__}.load_state_dict()"
        own = dict(self.state_dict(keep_vars=True))
        defaulted = {k: v for k, v in self._state_defaults.items() if k in own and k not in state_dict}
        missing = sorted(set(own) - set(state_dict) - set(defaulted))
        unexpected = sorted(set(state_dict) - set(own))
        if strict and (missing or unexpected):
            raise InvalidInputError(f"{where}: state keys do not match: missing {missing}, unexpected {unexpected}.")
        clean: dict[str, torch.Tensor] = {k: torch.full_like(own[k], v) for k, v in defaulted.items()}
        for name, value in state_dict.items():
            if name not in own:
                continue
            ref = own[name]
            if ref.is_floating_point():
                t = V.as_real_tensor(value, where, name, dtype=ref.dtype, device=ref.device)
            else:
                t = V.as_index_tensor(value, where, name, device=ref.device)
            if t.shape != ref.shape:
                raise InvalidInputError(
                    f"{where}: `{name}` must have shape {V.fmt_shape(ref.shape)}; got {V.fmt_shape(t.shape)}."
                )
            clean[name] = t
        self._check_state({**own, **clean}, where)
        with torch.no_grad():
            for name, t in clean.items():
                own[name].copy_(t)
        self.seed = int(self.rng_seed)
        self._invalidate_caches()
        return None

    _file_format, _file_kind, _file_version = FORMAT, "policy", FORMAT_VERSION
    _file_readable, _file_unchecked, _file_classes = READABLE_VERSIONS, ("1",), _REGISTRY

    def _file_config(self) -> dict[str, Any]:
        return self._config

    def _file_state(self) -> dict[str, torch.Tensor]:
        return dict(self.state_dict())

    def _file_metadata(self) -> dict[str, str]:
        return {"dtype": str(self.dtype).removeprefix("torch.")}

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the policy (class, constructor arguments, state) to ``path``, pickle-free and atomically."""
        self._save_file(path)

    @classmethod
    def load(
        cls: type[P], path: str | os.PathLike[str], *, device: torch.device | str = "cpu", backend: str | None = None
    ) -> P:
        """Rebuild a policy saved by [`save`][banditlib.Policy.save]; it makes the same decisions as the saved one.

        Reading never executes code from the file: only classes of banditlib can be named by it. The file is
        checked before anything is allocated for it (see `banditlib._io.read_tensors` for the limits on
        the file itself): the constructor arguments it names must produce exactly the state it holds (built
        first on torch's ``meta`` device, which allocates nothing, so a 1 KB file asking for ``dim = 20000``
        is refused at no cost), and the state must pass the policy's invariants (finite values, non-negative
        counters, symmetric positive definite matrices, inverses consistent with their matrices).

        Args:
            path: the file.
            device: where to put the loaded state.
            backend: replaces the saved scoring backend (a policy saved with ``backend="triton"`` runs only on
                CUDA; pass ``"auto"`` or ``"torch"`` to load it elsewhere).

        Raises:
            InvalidInputError: the file is corrupted, foreign, holds a policy of another class, names arguments
                that do not fit its state, holds a state that breaks the policy's invariants, or a backend that
                cannot run on ``device``.
            BackendUnavailableError: ``device`` is one this machine cannot use (``"cuda"`` without CUDA).
        """
        where = f"{cls.__name__}.load()"
        saved = cls._read_file(path, where)
        config = saved.config
        if backend is not None:
            config["backend"] = V.check_backend(backend, where)
        dtype = saved.metadata.get("dtype", "float32")
        policy = build_for_state(saved.target, config, dtype, device, saved.tensors, where)
        policy.load_state_dict(saved.tensors)
        return policy

    def extra_repr(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._config.items())
        return f"{args}, dtype={self.dtype}, device={self.device}"


def build_for_state(
    target: type[P], config: Mapping[str, Any], dtype: str, device: torch.device | str,
    tensors: Mapping[str, torch.Tensor], where: str,
) -> P:  # fmt: skip
    """``target(**config)`` for loading ``tensors`` into, after checking on the ``meta`` device (no memory) that
    the arguments produce exactly the state's names and shapes, and that a Triton backend can run on
    ``device``.

    Raises:
        InvalidInputError: arguments that do not fit ``target`` or the state, or an unusable backend.
    """
    name = target.__name__
    device = V.check_device(device, where)
    if config.get("backend") == "triton" and device.type != "cuda":
        raise InvalidInputError(
            f"{where}: the policy was saved with backend='triton', which runs on CUDA only; load it with "
            f"backend='auto' (or 'torch') to use it on {device}."
        )
    try:
        shell = target(**config, seed=0, dtype=dtype, device="meta")
        want = {k: tuple(v.shape) for k, v in shell.state_dict().items()}
    except (TypeError, ValueError, RuntimeError, OverflowError, InvalidInputError) as exc:
        raise InvalidInputError(f"{where}: the file's constructor arguments do not fit {name}: {exc}") from None
    got = {k: tuple(v.shape) for k, v in tensors.items()}
    got.update({k: want[k] for k in target._state_defaults if k in want and k not in got})  # older files
    if want != got:
        diff = sorted(k for k in want.keys() | got.keys() if want.get(k) != got.get(k))[:4]
        detail = ", ".join(f"`{k}` {got.get(k)} vs {want.get(k)}" for k in diff)
        raise InvalidInputError(
            f"{where}: the file's constructor arguments do not fit its state ({detail}: file vs arguments); it is "
            "corrupted or was edited."
        )
    try:
        return target(**config, seed=0, dtype=dtype, device=device)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"{where}: the file's constructor arguments do not fit {name}: {exc}") from None


def registered_policies() -> dict[str, type[Policy]]:
    """Every public policy class by name (what [`load`][banditlib.load] can rebuild and the common checks cover)."""
    return dict(_REGISTRY)


def load(path: str | os.PathLike[str], *, device: torch.device | str = "cpu") -> Policy:
    """Load any policy saved by [`Policy.save`][banditlib.Policy.save], whatever its class.

    Args:
        path: the file written by ``save``.
        device: where to put the loaded state.

    Returns:
        The policy, of the class that saved it, making the same decisions as the saved one.

    Raises:
        InvalidInputError: the file is missing, not a banditlib policy, malformed or fails its checks.

    Examples:
        >>> import tempfile, pathlib, torch, banditlib
        >>> policy = banditlib.LinTS(dim=2, seed=0)
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "policy.safetensors"
        >>> policy.save(path)
        >>> back = banditlib.load(path)
        >>> type(back).__name__, torch.equal(back.select(torch.ones(1, 3, 2)).scores,
        ...                                  policy.select(torch.ones(1, 3, 2)).scores)
        ('LinTS', True)
    """
    return Policy.load(path, device=device)
