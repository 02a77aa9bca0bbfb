"""Exception classes of banditlib.

Every error raised on purpose by the library derives from [`BanditError`][banditlib.BanditError], and also from the
builtin exception a caller would expect (``ValueError`` for bad input, ``RuntimeError`` for a missing backend,
``ArithmeticError`` for a numerical breakdown), so ``except ValueError`` keeps working.
"""

from __future__ import annotations

__all__ = ["BackendUnavailableError", "BanditError", "InvalidInputError", "NumericalError", "StateError"]


class BanditError(Exception):
    """Base class of every exception banditlib raises on purpose.

    Examples:
        >>> import banditlib
        >>> try:
        ...     banditlib.LinUCB(dim=0)
        ... except banditlib.BanditError as error:
        ...     print(type(error).__name__)
        InvalidInputError
    """


class InvalidInputError(BanditError, ValueError):
    """An argument of a public method has the wrong type, shape, dtype, range or content.

    The message names the method, the argument, what was expected and what was received. The object the
    method was called on is left exactly as it was.

    Examples:
        >>> import torch, banditlib
        >>> policy = banditlib.LinUCB(dim=3, seed=0)
        >>> try:
        ...     policy.select(torch.ones(2, 4, 5))   # d = 5, not 3
        ... except ValueError as error:              # also an InvalidInputError
        ...     print(str(error).split(":")[0])
        LinUCB.select()
    """


class BackendUnavailableError(BanditError, RuntimeError):
    """A compute backend or device was requested explicitly (``backend="triton"``, ``device="cuda"``) but
    cannot run here.

    Examples:
        ``except RuntimeError`` catches it too:

        >>> import banditlib
        >>> issubclass(banditlib.BackendUnavailableError, RuntimeError)
        True
    """


class NumericalError(BanditError, ArithmeticError):
    """A computation produced non-finite values or lost positive definiteness beyond repair.

    Raised instead of repairing silently (no NaN -> 0, no quiet pseudo-inverse); the state is unchanged.

    Examples:
        >>> import banditlib
        >>> issubclass(banditlib.NumericalError, ArithmeticError)
        True
    """


class StateError(BanditError, RuntimeError):
    """A method was called in the wrong order (``observe`` before any ``schedule``, say).

    The message names the method and the call it needs first; the object is left exactly as it was.

    Examples:
        >>> import torch
        >>> from banditlib.adapters.rlvr import RolloutBatch, RolloutScheduler, StateError
        >>> batch = RolloutBatch.from_tensors(group=torch.zeros(2, dtype=torch.long), reward=torch.tensor([1., 0.]),
        ...                                   entropy=torch.zeros(2), length=torch.ones(2, dtype=torch.long))
        >>> try:
        ...     RolloutScheduler(seed=0).observe(batch)
        ... except StateError as error:
        ...     print(type(error).__name__)
        StateError
    """
