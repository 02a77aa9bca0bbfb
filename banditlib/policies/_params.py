"""Constructor arguments declared once, per component, and the signature and ``Args:`` text derived from them.

A policy is an exploration rule over an estimator (`banditlib.policies.rules`): ``LinUCB`` is the UCB rule over
the ridge estimator, ``NeuralTS`` Thompson sampling over the gradient estimator. Each component declares the
arguments it owns as a tuple of [`Param`][banditlib.policies.Param] in ``_params``; `Policy.__init__` binds a
call against the arguments of every component in the class's MRO, validates each with its ``check``, stores it
as an attribute and in ``config``, and calls each component's ``_init`` hook, estimator before rule. The
public signature (``inspect.signature``, ``help``, the API docs) and the ``Args:`` section of the class
docstring are derived from the same declarations, so an argument's default, check and documentation are
written in one place however many policies share it.

Why not a dataclass or pydantic model per policy: the arguments are shared across class hierarchies
(``reg`` belongs to the estimator, ``alpha`` to the rule) and the validation messages are the library's own
(``LinUCB(): `reg` must be a finite number in (0.0, inf]; got int -1.``), which neither gives over mixins.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

from banditlib import _validation as V
from banditlib.errors import InvalidInputError

__all__ = ["REQUIRED", "Param", "choice", "float_in", "install_init", "int_at_least", "layer_widths"]

REQUIRED: Any = inspect.Parameter.empty
"""The default of an argument that must be given."""

Check = Callable[[Any, str, str], Any]


@dataclass(frozen=True)
class Param:
    """One constructor argument of a policy component.

    Attributes:
        name: the keyword.
        default: its default ([`REQUIRED`][banditlib.policies.REQUIRED]: none).
        annotation: its type as shown in the signature (a string, as under ``from __future__ import annotations``).
        doc: the ``Args:`` text (a class's ``_param_docs`` may override it for that class and its subclasses).
        check: ``check(value, where, name) -> value`` validates and normalises the value (raising
            [`InvalidInputError`][banditlib.InvalidInputError]); ``None`` leaves it to the component's
            ``_init`` hook.
        config: how the value is kept in ``config`` (JSON: e.g. ``list`` for a tuple); ``None``: not kept (the
            ``_init`` hook does it).

    Examples:
        >>> p = Param("delta", 0.05, "float", "tail probability.", float_in(0.0, 0.5, low_open=True))
        >>> p.check(0.1, "MyRule()", p.name), p.config(0.1)
        (0.1, 0.1)
    """

    name: str
    default: Any
    annotation: str
    doc: str
    check: Check | None = None
    config: Callable[[Any], Any] | None = lambda value: value


def float_in(low: float = float("-inf"), high: float = float("inf"), *, low_open: bool = False) -> Check:
    """A check for a finite float in ``[low, high]`` (``(low, high]`` with ``low_open``).

    Args:
        low: the lower end.
        high: the upper end.
        low_open: whether ``low`` itself is excluded.

    Examples:
        >>> float_in(0.0, low_open=True)(2, "MyRule()", "reg")
        2.0
    """
    return lambda value, where, name: V.check_float(value, where, name, low=low, high=high, low_open=low_open)


def int_at_least(low: int = 1, *, allow_none: bool = False) -> Check:
    """A check for an integer ``>= low`` (or ``None`` with ``allow_none``).

    Args:
        low: the smallest value allowed.
        allow_none: whether ``None`` passes.

    Examples:
        >>> int_at_least(0)(0, "MyRule()", "warmup"), int_at_least(allow_none=True)(None, "MyRule()", "pool")
        (0, None)
    """
    return lambda value, where, name: V.check_int(value, where, name, low=low, allow_none=allow_none)


def choice(options: Collection[str]) -> Check:
    """A check for one of ``options`` (a registry such as a dict is read when checking, so entries added later
    count).

    Args:
        options: the allowed strings.

    Examples:
        >>> choice(("linear", "neural"))("cubic", "MyPolicy()", "decision")
        Traceback (most recent call last):
        ...
        banditlib.errors.InvalidInputError: MyPolicy(): `decision` must be 'linear' or 'neural'; got 'cubic'.
    """

    def check(value: Any, where: str, name: str) -> str:
        if not isinstance(value, str) or value not in options:
            shown = " or ".join(map(repr, options)) if len(options) == 2 else f"one of {sorted(options)}"
            raise InvalidInputError(f"{where}: `{name}` must be {shown}; got {value!r}.")
        return value

    return check


def layer_widths(value: Any, where: str, name: str) -> tuple[int, ...]:
    """A check for a sequence of positive layer widths (possibly empty): ``(100,)``, ``[64, 64]``, ``()``.

    Args:
        value: the argument.
        where: the public call, for the message.
        name: the argument's name, for the message.

    Examples:
        >>> layer_widths([64, 64], "MyPolicy()", "hidden")
        (64, 64)
    """
    if isinstance(value, (int, str)) or not isinstance(value, Sequence):
        raise InvalidInputError(f"{where}: `{name}` must be a sequence of layer widths such as (100,); got {value!r}.")
    return tuple(V.check_int(w, where, f"{name}[i]") for w in value)  # type: ignore[misc]


def components(cls: type) -> list[type]:
    """The classes of ``cls``'s MRO that declare arguments (``_params``) or an ``_init`` hook, most derived first
    (`Policy` last)."""
    return [c for c in cls.__mro__ if "_params" in c.__dict__ or "_init" in c.__dict__]


def merged(cls: type, attribute: str) -> dict[str, str]:
    """The dicts ``attribute`` (``_param_names``, ``_param_docs``) of ``cls``'s MRO merged, the most derived class
    winning."""
    out: dict[str, str] = {}
    for c in reversed(cls.__mro__):
        out.update(c.__dict__.get(attribute, {}))
    return out


def _renamed(cls: type, p: Param) -> Param:
    """``p`` as ``cls`` calls it: a class's ``_param_names`` renames an inherited argument (NeuralUCB calls the
    UCB rule's width ``gamma``), its ``_param_docs`` rewrites one's text (the most derived class wins)."""
    name = merged(cls, "_param_names").get(p.name, p.name)
    return Param(name, p.default, p.annotation, merged(cls, "_param_docs").get(name, p.doc), p.check, p.config)


def plan(cls: type) -> list[tuple[type, tuple[Param, ...]]]:
    """Each component of ``cls`` but `Policy` with its arguments as ``cls`` names them, estimator before
    rule (the order `Policy.__init__` validates and initialises them in)."""
    cached = cls.__dict__.get("_derived_plan")
    if cached is None:
        cached = [
            (c, tuple(_renamed(cls, p) for p in c.__dict__.get("_params", ()))) for c in reversed(components(cls)[:-1])
        ]
        type.__setattr__(cls, "_derived_plan", cached)
    return cached


def declared(cls: type) -> dict[str, Param]:
    """Every argument of ``cls`` by name, in signature order: `Policy`'s ``dim`` and ``arms``, each
    component's own (most derived first), then `Policy`'s ``seed``, ``dtype``, ``device``, ``backend``."""
    base = components(cls)[-1]
    common = [_renamed(cls, p) for p in base.__dict__["_params"]]
    n_head = base.__dict__["_n_head"]
    middle = [p for _, params in reversed(plan(cls)) for p in params]
    out: dict[str, Param] = {}
    for p in (*common[:n_head], *middle, *common[n_head:]):
        if p.name in out:
            raise TypeError(f"{cls.__name__}: the argument `{p.name}` is declared by two of its components.")
        out[p.name] = p
    return out


def bind(cls: type, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    """``cls(*args, **kwargs)``'s arguments by name, defaults filled in, as Python binds them: ``TypeError`` for
    an unknown keyword, a missing required argument or too many positional ones."""
    bound = signature(cls).bind(*args, **kwargs)
    bound.apply_defaults()
    return dict(bound.arguments)


def signature(cls: type) -> inspect.Signature:
    """The constructor signature: ``dim`` and ``arms`` positional, everything else keyword-only."""
    cached = cls.__dict__.get("_derived_signature")
    if cached is not None:
        return cached
    params = []
    for i, p in enumerate(declared(cls).values()):
        kind = inspect.Parameter.POSITIONAL_OR_KEYWORD if i < 2 else inspect.Parameter.KEYWORD_ONLY
        params.append(inspect.Parameter(p.name, kind, default=p.default, annotation=p.annotation))
    sig = inspect.Signature(params, return_annotation="None")
    type.__setattr__(cls, "_derived_signature", sig)
    return sig


_SECTION = re.compile(r"^[ \t]*(Examples?|References|Raises|Attributes|Note|Notes):\s*$", re.MULTILINE)


def with_args(doc: str | None, params: dict[str, Param]) -> str | None:
    """``doc`` with an ``Args:`` section listing ``params`` before its first Examples/References/... section
    (unchanged when it has an ``Args:`` section already or is empty)."""
    if not doc or re.search(r"^\s*Args:\s*$", doc, re.MULTILINE):
        return doc
    doc = inspect.cleandoc(doc)
    lines = ["Args:"] + [f"    {p.name}: {p.doc}" for p in params.values()]
    block = "\n".join(lines) + "\n\n"
    m = _SECTION.search(doc)
    if m is None:
        return doc.rstrip() + "\n\n" + block.rstrip() + "\n"
    return doc[: m.start()] + block + doc[m.start() :]


def install_init(cls: Any) -> None:
    """Give ``cls`` an ``__init__`` of its own carrying the derived signature and its docstring the derived
    ``Args:`` section, so ``inspect.signature``, ``help`` and the API docs show every argument."""

    def __init__(self: Any, dim: int, arms: int | None = None, **kwargs: Any) -> None:
        super(cls, self).__init__(dim, arms, **kwargs)

    sig = signature(cls)
    self_param = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    __init__.__signature__ = sig.replace(parameters=self_param + list(sig.parameters.values()))  # type: ignore[attr-defined]
    __init__.__qualname__ = f"{cls.__qualname__}.__init__"
    __init__.__module__ = cls.__module__
    cls.__init__ = __init__
    if "__doc__" in cls.__dict__:
        cls.__doc__ = with_args(cls.__doc__, declared(cls))
