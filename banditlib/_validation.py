"""Every input check of the public API.

Policies call these at their public boundary, once per call, and nowhere else: kernels and ``linalg`` trust
their inputs. Each check raises [`InvalidInputError`][banditlib.InvalidInputError] with a message of the form
``LinUCB.update(): `rewards` must have shape (B, k) = (32, 1) to match `actions`; got (32,).``
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from banditlib.errors import BackendUnavailableError, InvalidInputError

__all__ = [
    "SUPPORTED_DTYPES",
    "all_finite",
    "as_bool_tensor",
    "as_index_tensor",
    "as_real_tensor",
    "check_actions",
    "check_backend",
    "check_contexts",
    "check_device",
    "check_dtype",
    "check_float",
    "check_int",
    "check_k",
    "check_mask",
    "check_rewards",
    "check_seed",
    "fmt_shape",
]

SUPPORTED_DTYPES = (torch.float32, torch.float64)
BACKENDS = ("auto", "torch", "triton")


def fmt_shape(shape: Sequence[int]) -> str:
    """Format a shape the way Python prints a tuple, for error messages: ``(32,)``, ``(3, 4)``.

    Args:
        shape: a ``torch.Size`` or a sequence of ints.

    Examples:
        >>> import torch
        >>> fmt_shape(torch.zeros(32).shape), fmt_shape([3, 4])
        ('(32,)', '(3, 4)')
    """
    return str(tuple(int(s) for s in shape))


def _describe(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"a tensor of dtype {value.dtype} and shape {fmt_shape(value.shape)}"
    if isinstance(value, np.ndarray):
        return f"a numpy array of dtype {value.dtype} and shape {fmt_shape(value.shape)}"
    return f"{type(value).__name__} {value!r}"[:200]


def _to_numpy(value: Any, where: str, name: str) -> np.ndarray:
    """Turn a numpy array (subclasses such as ``np.matrix`` included), a nested sequence or a number into a
    native-byte-order numpy array that torch can wrap: positive strides, and ``np.longdouble`` narrowed to
    float64 (torch has no extended precision; values beyond float64's range become infinite and are then
    rejected as non-finite)."""
    if isinstance(value, np.ndarray):
        arr = np.asarray(value)
    elif isinstance(value, (list, tuple, numbers.Number, np.generic)):
        try:
            arr = np.asarray(value)
        except (ValueError, TypeError) as exc:  # ragged nested lists
            raise InvalidInputError(f"{where}: `{name}` could not be read as an array: {exc}") from None
    else:
        raise InvalidInputError(f"{where}: `{name}` must be a numpy array or a torch tensor; got {_describe(value)}.")
    if not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    if arr.dtype == np.longdouble and np.longdouble != np.float64:
        with np.errstate(over="ignore"):
            arr = arr.astype(np.float64)
    if any(st < 0 for st in arr.strides):  # e.g. x[::-1]: torch cannot wrap negative strides
        arr = arr.copy(order="C")  # (ascontiguousarray keeps a view whose only negative stride is of size 1)
    return arr


def _check_layout(value: torch.Tensor, where: str, name: str) -> None:
    """Only dense tensors with data: sparse layouts and meta tensors are rejected (densifying a sparse input
    could take more memory than the caller expects; a meta tensor has no values)."""
    if value.layout != torch.strided:
        raise InvalidInputError(
            f"{where}: `{name}` must be a dense tensor; got layout {value.layout} (call .to_dense() first)."
        )
    if value.device.type == "meta":
        raise InvalidInputError(f"{where}: `{name}` is a meta tensor, which holds no values.")


def all_finite(t: torch.Tensor) -> bool:
    """Whether every element is finite. A NaN or infinity anywhere makes the sum non-finite, so one
    reduction settles the common case; only a non-finite sum (possibly an overflow of finite values) pays
    for the elementwise check.

    Args:
        t: a tensor of any shape.

    Examples:
        >>> import torch
        >>> big = torch.tensor([3e38, 3e38])  # finite values whose float32 sum overflows
        >>> all_finite(torch.tensor([1.0, 2.0])), all_finite(big), all_finite(torch.tensor([float("nan")]))
        (True, True, False)
    """
    if t.numel() == 0 or bool(torch.isfinite(t.sum())):
        return True
    return bool(torch.isfinite(t).all())


def as_real_tensor(
    value: Any,
    where: str,
    name: str,
    *,
    dtype: torch.dtype,
    device: torch.device,
    finite: bool = True,
) -> torch.Tensor:
    """Convert real-valued input of any real dtype to ``dtype`` on ``device``, rejecting everything else.

    Integer and floating inputs are accepted (a float64 numpy row into a float32 policy just works);
    boolean, complex, object and string data raise, as do NaN or infinite values when ``finite``.
    A tensor that already has the right dtype and device is returned as is, without a copy.

    Args:
        value: a tensor, numpy array, nested sequence or number.
        where: the public call, for the message (``"MyRule.select()"``).
        name: the argument's name, for the message.
        dtype: the dtype to convert to.
        device: the device to put it on.
        finite: whether NaN and infinite values raise.

    Raises:
        InvalidInputError: non-real or (with ``finite``) non-finite input, ragged sequences, sparse tensors.

    Examples:
        >>> import numpy as np, torch
        >>> as_real_tensor(np.arange(3), "f()", "x", dtype=torch.float32, device=torch.device("cpu"))
        tensor([0., 1., 2.])
        >>> as_real_tensor([1.0, float("nan")], "f()", "x", dtype=torch.float32, device=torch.device("cpu"))
        Traceback (most recent call last):
        ...
        banditlib.errors.InvalidInputError: f(): `x` must be finite; got 1 NaN or infinite value(s) in shape (2,).
    """
    if isinstance(value, torch.Tensor):
        _check_layout(value, where, name)
        if value.dtype == torch.bool or value.is_complex():
            raise InvalidInputError(f"{where}: `{name}` must be real numbers; got {_describe(value)}.")
        t = value
    else:
        arr = _to_numpy(value, where, name)
        if arr.dtype.kind not in "fiu":
            raise InvalidInputError(f"{where}: `{name}` must be real numbers; got {_describe(arr)}.")
        if not arr.flags.writeable:
            arr = arr.copy()
        t = torch.from_numpy(arr)
    t = t.to(device=device, dtype=dtype)
    if finite and not all_finite(t):
        bad = int((~torch.isfinite(t)).sum())
        raise InvalidInputError(
            f"{where}: `{name}` must be finite; got {bad} NaN or infinite value(s) in shape {fmt_shape(t.shape)}."
        )
    return t


def as_index_tensor(value: Any, where: str, name: str, *, device: torch.device) -> torch.Tensor:
    """Convert integer input (arm indices) to an int64 tensor on ``device``; floats and booleans raise.

    Args:
        value: a tensor, numpy array or nested sequence of integers.
        where: the public call, for the message.
        name: the argument's name, for the message.
        device: the device to put it on.

    Raises:
        InvalidInputError: non-integer input.

    Examples:
        >>> import torch
        >>> as_index_tensor([[0, 2]], "f()", "actions", device=torch.device("cpu"))
        tensor([[0, 2]])
    """
    if isinstance(value, torch.Tensor):
        _check_layout(value, where, name)
        if value.dtype == torch.bool or value.is_floating_point() or value.is_complex():
            raise InvalidInputError(f"{where}: `{name}` must be integer arm indices; got {_describe(value)}.")
        t = value
    else:
        arr = _to_numpy(value, where, name)
        if arr.dtype.kind not in "iu":
            raise InvalidInputError(f"{where}: `{name}` must be integer arm indices; got {_describe(arr)}.")
        if arr.dtype == np.uint64 and arr.size and int(arr.max()) > np.iinfo(np.int64).max:
            raise InvalidInputError(f"{where}: `{name}` holds indices too large for int64.")
        t = torch.from_numpy(arr.astype(np.int64, copy=False))
    return t.to(device=device, dtype=torch.long)


def as_bool_tensor(value: Any, where: str, name: str, *, device: torch.device) -> torch.Tensor:
    """Convert a boolean mask to a bool tensor on ``device``; any other dtype raises."""
    if isinstance(value, torch.Tensor):
        _check_layout(value, where, name)
        t = value
    else:
        arr = _to_numpy(value, where, name)
        t = torch.from_numpy(arr.copy() if not arr.flags.writeable else arr)
    if t.dtype != torch.bool:
        raise InvalidInputError(
            f"{where}: `{name}` must be a boolean mask (True = arm available); got {_describe(value)}."
        )
    return t.to(device=device)


# --------------------------------------------------------------------------------------------- shapes


def check_contexts(x: torch.Tensor, where: str, *, dim: int, arms: int | None) -> None:
    """Check a batch of contexts against the arm model.

    Shared-parameter model (``arms is None``): ``(B, K, d)``. Disjoint model: ``(B, d)``.
    """
    if arms is None:
        if x.dim() != 3 or x.shape[2] != dim:
            raise InvalidInputError(
                f"{where}: `contexts` must have shape (B, K, d) with d = {dim} for the shared-parameter model "
                f"(one feature vector per arm); got {fmt_shape(x.shape)}."
            )
        if x.shape[1] == 0:
            raise InvalidInputError(f"{where}: `contexts` must hold at least one arm (K >= 1); got K = 0.")
    elif x.dim() != 2 or x.shape[1] != dim:
        raise InvalidInputError(
            f"{where}: `contexts` must have shape (B, d) with d = {dim} for the disjoint model with "
            f"{arms} arms (one context per round); got {fmt_shape(x.shape)}."
        )
    if x.shape[0] == 0:
        raise InvalidInputError(f"{where}: `contexts` must hold at least one round (B >= 1); got B = 0.")


def check_k(k: Any, where: str, *, num_arms: int) -> int:
    """Check the number of arms to select per row: an integer in ``[1, K]``."""
    if isinstance(k, bool) or not isinstance(k, numbers.Integral):
        raise InvalidInputError(f"{where}: `k` must be a positive integer; got {_describe(k)}.")
    k = int(k)
    if not 1 <= k <= num_arms:
        raise InvalidInputError(f"{where}: `k` must be in [1, K] = [1, {num_arms}]; got {k}.")
    return k


def check_mask(mask: torch.Tensor, where: str, *, batch: int, num_arms: int, k: int) -> None:
    """Check a ``(B, K)`` availability mask: every row must leave at least ``k`` arms available."""
    if tuple(mask.shape) != (batch, num_arms):
        raise InvalidInputError(
            f"{where}: `mask` must have shape (B, K) = {fmt_shape((batch, num_arms))}; got {fmt_shape(mask.shape)}."
        )
    available = mask.sum(dim=1)
    short = available < k
    if bool(short.any()):
        row = int(torch.nonzero(short)[0, 0])
        raise InvalidInputError(
            f"{where}: every row of `mask` must leave at least k = {k} arm(s) available; row {row} leaves "
            f"{int(available[row])} ({int(short.sum())} row(s) in all)."
        )


def check_actions(actions: torch.Tensor, where: str, *, batch: int, num_arms: int) -> None:
    """Check ``(B, k)`` arm indices: in ``[0, K)`` and distinct within each row."""
    if actions.dim() != 2 or actions.shape[0] != batch or actions.shape[1] == 0:
        raise InvalidInputError(
            f"{where}: `actions` must have shape (B, k) with B = {batch} to match `contexts` and k >= 1; "
            f"got {fmt_shape(actions.shape)}."
        )
    if actions.shape[1] > num_arms:
        raise InvalidInputError(
            f"{where}: `actions` has k = {actions.shape[1]} columns but there are only K = {num_arms} arms."
        )
    low, high = int(actions.min()), int(actions.max())
    if low < 0 or high >= num_arms:
        bad = low if low < 0 else high
        raise InvalidInputError(f"{where}: `actions` must be arm indices in [0, {num_arms}); got {bad}.")
    if actions.shape[1] > 1:
        ordered = actions.sort(dim=1).values
        dup = (ordered[:, 1:] == ordered[:, :-1]).any(dim=1)
        if bool(dup.any()):
            row = int(torch.nonzero(dup)[0, 0])
            raise InvalidInputError(
                f"{where}: `actions` must not repeat an arm within a row; row {row} is {actions[row].tolist()}."
            )


def check_rewards(rewards: torch.Tensor, where: str, *, shape: tuple[int, ...], against: str) -> None:
    """Check that ``rewards`` has exactly ``shape`` (named after the argument it must match)."""
    if tuple(rewards.shape) != shape:
        dims = "(B, k)" if len(shape) == 2 else "(N,)"
        raise InvalidInputError(
            f"{where}: `rewards` must have shape {dims} = {fmt_shape(shape)} to match `{against}`; "
            f"got {fmt_shape(rewards.shape)}."
        )


# ------------------------------------------------------------------------------------ constructor args


def check_int(value: Any, where: str, name: str, *, low: int = 1, allow_none: bool = False) -> int | None:
    """An integer ``>= low`` (``None`` passes when ``allow_none``); booleans are not integers here.

    Args:
        value: the argument.
        where: the public call, for the message.
        name: the argument's name, for the message.
        low: the smallest value allowed.
        allow_none: whether ``None`` passes.

    Raises:
        InvalidInputError: anything else.

    Examples:
        >>> check_int(3, "MyRule()", "window")
        3
        >>> check_int(0, "MyRule()", "window")
        Traceback (most recent call last):
        ...
        banditlib.errors.InvalidInputError: MyRule(): `window` must be an integer >= 1; got int 0.
    """
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) < low:
        raise InvalidInputError(f"{where}: `{name}` must be an integer >= {low}; got {_describe(value)}.")
    return int(value)


def check_float(
    value: Any,
    where: str,
    name: str,
    *,
    low: float = -math.inf,
    high: float = math.inf,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """A finite real number in the given interval (``low_open``/``high_open`` exclude the ends), as a float.

    Args:
        value: the argument.
        where: the public call, for the message.
        name: the argument's name, for the message.
        low: the interval's lower end.
        high: the interval's upper end.
        low_open: whether ``low`` itself is excluded.
        high_open: whether ``high`` itself is excluded.

    Raises:
        InvalidInputError: a non-number, a boolean, NaN, an infinity or a value outside the interval.

    Examples:
        >>> check_float(1, "MyRule()", "delta", low=0.0, high=1.0)
        1.0
        >>> check_float(1.5, "MyRule()", "delta", low=0.0, high=1.0, high_open=True)
        Traceback (most recent call last):
        ...
        banditlib.errors.InvalidInputError: MyRule(): `delta` must be a finite number in [0.0, 1.0); got float 1.5.
    """
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(float(value))
    if ok:
        v = float(value)
        ok = (v > low if low_open else v >= low) and (v < high if high_open else v <= high)
    if not ok:
        lo = "(" if low_open else "["
        hi = ")" if high_open else "]"
        raise InvalidInputError(
            f"{where}: `{name}` must be a finite number in {lo}{low}, {high}{hi}; got {_describe(value)}."
        )
    return float(value)


def check_dtype(value: Any, where: str) -> torch.dtype:
    """``torch.float32`` or ``torch.float64`` (also given as the strings ``"float32"`` / ``"float64"``)."""
    if isinstance(value, str):
        value = getattr(torch, value, value)
    if value not in SUPPORTED_DTYPES:
        raise InvalidInputError(
            f"{where}: `dtype` must be torch.float32 or torch.float64 (the statistics need at least single "
            f"precision); got {_describe(value)}."
        )
    return value


def check_device(value: Any, where: str) -> torch.device:
    """Anything ``torch.device`` accepts, on a backend this machine can use.

    ``cpu`` and ``meta`` always pass. Another device type must be available (``torch.cuda.is_available()``
    for ``cuda``, and likewise ``torch.<type>.is_available()`` where torch has one), its index must exist,
    and a tensor must be creatable on it: this is checked here, once, so that no policy fails later with
    torch's bare ``AssertionError("Torch not compiled with CUDA enabled")``.

    Raises:
        InvalidInputError: ``value`` is not a device (``"cuda:x"``, ``"nonsense"``, ``None``).
        BackendUnavailableError: a well-formed device this machine cannot use (``"cuda"`` without CUDA,
            ``"cuda:3"`` with fewer GPUs, ``"mps"`` off Apple silicon, ...).
    """
    try:
        device = torch.device(value)
    except (RuntimeError, TypeError) as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InvalidInputError(
            f"{where}: `device` is not a valid torch device: {message} (use e.g. device='cpu' or 'cuda:0')."
        ) from None
    if device.type in ("cpu", "meta"):
        return device
    shown = f"device={str(device)!r} requested but"
    kind = device.type
    module = getattr(torch, kind, None) if kind.isidentifier() else None
    is_available = getattr(module, "is_available", None)
    if callable(is_available) and not is_available():
        raise BackendUnavailableError(
            f"{where}: {shown} {kind.upper()} is not available (torch.{kind}.is_available() is False); "
            "use device='cpu'."
        )
    count = getattr(module, "device_count", None)
    if device.index is not None and callable(count) and device.index >= count():
        n = int(count())
        raise BackendUnavailableError(
            f"{where}: {shown} this machine has {n} {kind.upper()} device(s) ({kind}:0 to {kind}:{n - 1}); "
            f"use one of them or device='cpu'."
        )
    try:
        torch.empty(0, device=device)
    except (AssertionError, RuntimeError, NotImplementedError, ImportError) as exc:
        reason = (str(exc).splitlines() or [type(exc).__name__])[0].split(". ")[0].rstrip(".")[:160]
        raise BackendUnavailableError(
            f"{where}: {shown} this PyTorch build cannot use it ({reason}); use device='cpu'."
        ) from None
    return device


def check_backend(value: Any, where: str) -> str:
    """One of ``"auto"``, ``"torch"``, ``"triton"``."""
    if value not in BACKENDS:
        raise InvalidInputError(f"{where}: `backend` must be one of {BACKENDS}; got {_describe(value)}.")
    return str(value)


def check_seed(value: Any, where: str) -> int | None:
    """``None`` or an integer in ``[0, 2**63)`` (a seed of the counter-based generator).

    Args:
        value: the argument.
        where: the public call, for the message.

    Raises:
        InvalidInputError: anything else.

    Examples:
        >>> check_seed(7, "MyRule()"), check_seed(None, "MyRule()")
        (7, None)
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not 0 <= int(value) < 2**63:
        raise InvalidInputError(f"{where}: `seed` must be None or an integer in [0, 2**63); got {_describe(value)}.")
    return int(value)
