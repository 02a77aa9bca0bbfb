"""Exception classes of banditlib.

Every error raised on purpose by the library derives from :class:`BanditError`, and also from the builtin
exception a caller would expect (``ValueError`` for bad input, ``RuntimeError`` for a missing backend,
``ArithmeticError`` for a numerical breakdown), so ``except ValueError`` keeps working.
"""

from __future__ import annotations

__all__ = ["BackendUnavailableError", "BanditError", "InvalidInputError", "NumericalError", "StateError"]


class BanditError(Exception):
    """Base class of every exception banditlib raises on purpose."""


class InvalidInputError(BanditError, ValueError):
    """An argument of a public method has the wrong type, shape, dtype, range or content.

    The message names the method, the argument, what was expected and what was received. The object the
    method was called on is left exactly as it was.
    """


class BackendUnavailableError(BanditError, RuntimeError):
    """A compute backend was requested explicitly (``backend="triton"``) but cannot run here."""


class NumericalError(BanditError, ArithmeticError):
    """A computation produced non-finite values or lost positive definiteness beyond repair.

    Raised instead of repairing silently (no NaN -> 0, no quiet pseudo-inverse); the state is unchanged.
    """


class StateError(BanditError, RuntimeError):
    """A method was called in the wrong order (``observe`` before any ``schedule``, say).

    The message names the method and the call it needs first; the object is left exactly as it was.
    """
