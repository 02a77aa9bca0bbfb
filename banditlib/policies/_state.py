"""What a policy's state must satisfy, and how it moves, loads and saves: the half of
[`Policy`][banditlib.Policy] that is about its buffers rather than its decisions.

Every check here reads the buffers by their naming conventions (``A_`` with ``A_inv_``, ``*_v_``, integer
counters), so a new estimator gets them by naming its buffers the same way.
"""

from __future__ import annotations

import functools
import math
import os
import threading
import warnings
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, TypeVar

import numpy as np
import torch
from torch import nn

from banditlib import _validation as V
from banditlib import linalg
from banditlib._persist import Persistent
from banditlib.errors import BackendUnavailableError, InvalidInputError, NumericalError

__all__: list[str] = []

FORMAT = "banditlib.policy"
FORMAT_VERSION = "2"
READABLE_VERSIONS = ("1", "2")  # 2 adds the payload checksum (banditlib._io); the state layout is unchanged
_REGISTRY: dict[str, type[Any]] = {}  # public policy classes by name (filled by Policy.__init_subclass__)

# Conditioning. A >= reg I always holds, so cond(A) <= trace(A) / reg: updates keeping that bound under
# _COND_CHECK cost nothing more; above it the committed A is factorised and its condition number estimated
# from the Cholesky diagonal. An update that would take cond(A) past _COND_MAX is rejected (float64 can no
# longer factorise A reliably, so the saved state would not load); a float32 policy whose inverse cannot be
# held to about 1e-2 relative accuracy (cond(A) > _COND_FLOAT32) warns once.
_COND_CHECK = 1e8
_COND_MAX = 1e13
_COND_FLOAT32 = 1e5

P = TypeVar("P", bound="_StatefulPolicy")
F = TypeVar("F", bound=Callable[..., Any])


def _locked(fn: F) -> F:
    """Run a public method under the policy's lock: concurrent calls on one policy are serialised, so two
    threads can share a policy without corrupting its statistics (one thread's update is all-or-nothing with
    respect to the other's select)."""

    @functools.wraps(fn)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            return fn(self, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


class _StatefulPolicy(nn.Module, Persistent):
    """State checks, device and dtype moves, ``load_state_dict`` and the policy file format (see the module)."""

    # Buffers kept in float64 whatever the policy's dtype (accumulated sums; see policies/ridge.py).
    _float64_buffers: ClassVar[tuple[str, ...]] = ()
    # Integer state entries added after files were first written: a state without them loads with this value.
    _state_defaults: ClassVar[Mapping[str, int]] = {}
    dtype: torch.dtype
    device: torch.device
    seed: int
    rng_seed: torch.Tensor
    _config: dict[str, Any]
    _views: dict[str, np.ndarray] | None
    _lock: threading.RLock

    def _set_row_flags(self) -> None:
        """Recompute what depends on the dtype and device (after a move)."""

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

    # ------------------------------------------------------------------------------------------ state

    def _apply(self, fn: Callable[[torch.Tensor], torch.Tensor], recurse: bool = True) -> _StatefulPolicy:
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
