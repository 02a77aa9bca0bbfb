"""The uniform ``select`` / ``update`` / ``predict`` API that every policy shares.

A policy is a ``torch.nn.Module`` whose buffers are its whole state, made of two pieces: an estimator
(``_mean_var``, the posterior at the contexts, and ``_learn``, which folds a batch of observations into the
statistics, transactionally) and an exploration rule (``_score``: predicted mean and exploration bonus of every
arm in every row, from the estimator's posterior; `banditlib.policies.rules`). Everything else lives here
once: the constructor (`banditlib.policies._params`), input validation, masks, top-k with random
tie-breaking and the counter-based generator; `banditlib.policies._state` holds the ``state_dict`` checks and
the pickle-free ``save`` / ``load``.
"""

from __future__ import annotations

import math
import os
import secrets
import threading
from typing import Any, ClassVar

import numpy as np
import torch

from banditlib import _random
from banditlib import _validation as V
from banditlib.errors import InvalidInputError, NumericalError
from banditlib.kernels import resolve_backend
from banditlib.policies import _online, _params, _propensity
from banditlib.policies._params import REQUIRED, Param
from banditlib.policies._state import _REGISTRY, _locked, _StatefulPolicy, build_for_state
from banditlib.policies.selection import Prediction, Selection, _selection, top_k

__all__ = ["Policy", "Prediction", "Selection", "build_for_state", "load", "registered_policies"]


class Policy(_StatefulPolicy):
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
    propensity_rule: ClassVar[str | None] = None
    """How the policy chooses, which is how [`Selection.propensity`][banditlib.Selection] is computed:
    ``"argmax"`` (top ``k`` of deterministic scores, exact ties broken uniformly: exact), ``"uniform"``
    (exact), ``"epsilon"`` (exact, with the ``epsilon`` attribute) or ``"gaussian"`` (Thompson sampling: a
    Monte Carlo estimate from 1,000 fresh draws plus the one decided with, standard error at most
    ``sqrt(p (1 - p) / 1000)``, never below ``1 / 1001`` for a chosen arm). ``None`` (a subclass that has not
    said) makes ``propensity`` raise [`StateError`][banditlib.StateError] rather than guess."""
    # Whether the scores hold Gaussian noise the policy describes through _score_noise / _score_row_noise.
    _noisy: ClassVar[bool] = False
    has_posterior: ClassVar[bool] = False
    """Whether the policy's estimator answers [`predict`][banditlib.Policy.predict] (every estimator family:
    ridge, gradient, neural-linear); ``False`` for [`Random`][banditlib.Random] and
    [`EENet`][banditlib.EENet], whose exploration is not a posterior."""
    weights_by_scaling: ClassVar[bool] = False
    """Whether an observation of weight ``w`` is exactly its row and reward scaled by ``sqrt(w)``: true for the
    ridge estimator, whose statistics are sums of ``x x^T`` and ``r x``; what lets a rollout scheduler count a
    round of ``n`` rows as one observation (``weighting="round"``)."""
    _abstract: ClassVar[bool] = True  # set in a class body: a building block, neither registered nor given a signature
    rng_seed: torch.Tensor
    rng_counter: torch.Tensor

    # The arguments every policy takes (see banditlib.policies._params): dim and arms first, seed, dtype,
    # device and backend last, each component's own in between. Validated by __init__ itself.
    _params: ClassVar[tuple[Param, ...]] = (
        Param("dim", REQUIRED, "int", "feature dimension ``d``.", config=None),
        Param("arms", None, "int | None", "``None`` for the shared-parameter model (contexts ``(B, K, d)``), or "
              "``K`` disjoint arms (contexts ``(B, d)``).", config=None),
        Param("seed", None, "int | None", "seed of the policy's counter-based generator (ties, and the rule's "
              "random draws); ``None``: drawn from the operating system and saved with the state.", config=None),
        Param("dtype", torch.float32, "torch.dtype | str", "``torch.float32`` or ``torch.float64``.", config=None),
        Param("device", "cpu", "torch.device | str", "device of the state and outputs.", config=None),
        Param("backend", "auto", "str", "``\"auto\"``, ``\"torch\"`` or ``\"triton\"`` for the scoring kernels and "
              "top-k.", config=None),
    )  # fmt: skip
    _n_head: ClassVar[int] = 2

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__name__.startswith("_") or cls.__dict__.get("_abstract", False):
            return  # a building block (an estimator or a rule), not a policy
        _REGISTRY[cls.__name__] = cls
        if "__init__" not in cls.__dict__:
            _params.install_init(cls)

    def __init__(self, dim: int, arms: int | None = None, **kwargs: Any) -> None:
        """Bind the arguments against every component's ``_params``, validate the common ones, then run each
        component's checks and ``_init`` hook, estimator before rule (see `banditlib.policies._params`).

        Raises:
            TypeError: an unknown or missing argument, as for any Python call.
            InvalidInputError: an argument out of its range.
        """
        cls = type(self)
        values = _params.bind(cls, (dim, arms), kwargs)
        super().__init__()
        where = f"{cls.__name__}()"
        self.dim: int = V.check_int(values["dim"], where, "dim")  # type: ignore[assignment]
        self.arms: int | None = V.check_int(values["arms"], where, "arms", allow_none=True)
        self.dtype: torch.dtype = V.check_dtype(values["dtype"], where)
        self.device: torch.device = V.check_device(values["device"], where)
        self.backend: str = V.check_backend(values["backend"], where)
        resolve_backend(self.backend)  # backend="triton" needs triton to import; devices are checked per call
        seed = V.check_seed(values["seed"], where)
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
        for component, params in _params.plan(cls):  # the estimator's before the rule's
            for p in params:
                if p.check is not None:
                    values[p.name] = p.check(values[p.name], where, p.name)
                    setattr(self, p.name, values[p.name])
                if p.config is not None:
                    self._config[p.name] = p.config(values[p.name])
            init = component.__dict__.get("_init")
            if init is not None:
                init(self, values)

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

    def _contexts(self, contexts: Any, where: str) -> tuple[torch.Tensor, int, int]:
        """Validated contexts in the policy's dtype and device, with their rows ``B`` and arms ``K``."""
        x = V.as_real_tensor(contexts, where, "contexts", dtype=self.dtype, device=self.device)
        V.check_contexts(x, where, dim=self.dim, arms=self.arms)
        return x, x.shape[0], self.arms if self.arms is not None else x.shape[1]

    def _select_batched(self, contexts: Any, k: int, mask: Any) -> Selection:
        where = f"{type(self).__name__}.select()"
        x, B, K = self._contexts(contexts, where)
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
        x, B, K = self._contexts(contexts, where)
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

    def predict(self, contexts: Any) -> Prediction:
        """The estimator's posterior at ``contexts``: every arm's predicted reward and its uncertainty. Never
        changes any state, and draws nothing from the generator.

        ``var`` is the estimator's variance factor: ``x^T A^-1 x`` for the ridge estimator, ``g^T Z^-1 g`` for
        the gradient estimator, ``phi^T A^-1 phi`` for the neural-linear one (times the noise variance
        ``sigma^2`` it is the posterior variance of the mean reward). The rules rank by it: UCB adds
        ``alpha sqrt(var)``, Thompson sampling draws with standard deviation ``scale sqrt(var)``.

        Args:
            contexts: ``(B, K, d)`` arm features (shared model) or ``(B, d)`` contexts (disjoint model), as for
                [`select`][banditlib.Policy.select].

        Returns:
            A [`Prediction`][banditlib.Prediction]: ``mean`` and ``var``, each ``(B, K)`` in the policy's dtype.

        Raises:
            InvalidInputError: bad shapes, dtypes or non-finite values.
            NotImplementedError: a policy without a posterior (``has_posterior`` is ``False``).

        Examples:
            >>> import torch, banditlib
            >>> policy = banditlib.LinUCB(dim=2, arms=3, reg=2.0, seed=0)
            >>> policy.predict(torch.tensor([[1.0, 1.0]])).var.tolist()  # x^T (2 I)^-1 x = 1 per arm
            [[1.0, 1.0, 1.0]]
        """
        where = f"{type(self).__name__}.predict()"
        if not self.has_posterior:
            raise NotImplementedError(f"{where}: {type(self).__name__} has no posterior (has_posterior is False).")
        x, _, _ = self._contexts(contexts, where)
        with self._lock:
            mean, var = self._mean_var(x)
        return Prediction(mean, var.clamp_min(0.0))

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

    # An estimator supplies _mean_var (and, with a single-row path, _mean_var_row); _mean, _sample_form and
    # their row forms where it has something cheaper or more exact; a rule (banditlib.policies.rules) turns
    # them into _score / _score_noise and their row forms.

    def _mean_var(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The posterior at validated contexts ``x`` (``(B, K, d)`` or ``(B, d)``): mean and variance factor of
        every (row, arm), each ``(B, K)`` (the variance may round slightly below zero; the rules clamp it)."""
        raise NotImplementedError

    def _mean(self, x: torch.Tensor) -> torch.Tensor:
        """The posterior mean alone, ``(B, K)`` (the greedy rules' score)."""
        return self._mean_var(x)[0]

    def _mean_var_row(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """`_mean_var` for one row in numpy: ``x`` ``(d,)`` or ``(K, d)`` -> each ``(K,)``."""
        raise NotImplementedError

    def _mean_row(self, x: np.ndarray) -> np.ndarray:
        """`_mean` for one row in numpy: ``(K,)``."""
        return self._mean_var_row(x)[0]

    def _sample_form(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
        """For an estimator that is linear and Gaussian in some features: ``(phi, theta, L)`` with ``phi``
        ``(B, K, q)`` the features, ``theta`` ``(q,)`` the posterior mean and ``L`` ``(q, q)`` the lower
        Cholesky factor of the posterior covariance factor, so that Thompson sampling draws one ``theta~`` per
        row shared by its arms. ``None`` (the default): the arms are drawn independently from `_mean_var`."""
        return None

    def _sample_form_row(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """`_sample_form` for one row in numpy: ``(phi (K, q), L (q, q))`` (the mean from `_mean_row`)."""
        return None

    def _normal(self, rows: torch.Tensor, cols: int) -> torch.Tensor:
        """Standard normals ``(B, cols)`` for decision ``rows``: ``_random.normal(seed, STREAM_NOISE, rows,
        cols)``; for one row on the CPU from the bit-identical ``uniform_np`` (the same Box-Muller arithmetic
        in torch), a fraction of the overhead."""
        if rows.numel() != 1 or rows.device.type != "cpu":
            return _random.normal(self.seed, _random.STREAM_NOISE, rows, cols)
        u = torch.from_numpy(_random.uniform_np(self.seed, _random.STREAM_NOISE, int(rows[0]), 2 * cols))[None]
        radius = torch.sqrt(-2.0 * torch.log1p(-u[:, :cols]))
        return radius * torch.cos((2.0 * math.pi) * u[:, cols:])

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

    # ------------------------------------------------------------------------------------------ selection

    def _top_k(self, scores: torch.Tensor, k: int, rows: torch.Tensor) -> torch.Tensor:
        """Top-``k`` per row, best first; exact ties ordered uniformly at random by the generator."""
        return top_k(scores, k, rows, self.seed, self.backend)


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
