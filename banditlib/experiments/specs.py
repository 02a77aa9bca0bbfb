"""Policies and environments named on the command line: ``"linucb:alpha=0.5"``, ``"Linear-v0:d=5"``.

A spec is a name, optionally followed by a colon and comma-separated ``key=value`` pairs whose values are read
as Python literals (int, float, bool, ``None``, a quoted string, a tuple or list of those such as
``hidden=(64,64)``) and otherwise taken as a bare string (``backend=torch``). Policies are every class of
`banditlib.policies.base.registered_policies`, addressed by their lowercase class name, so a policy
registered later is available without edits here. Environments are gymnasium ids; a name without a namespace
means ``banditlib/<name>``.

How a policy is built for an environment ([`arm_model`][banditlib.experiments.specs.arm_model]): an observation of shape
``(K, d)`` means arm feature vectors, so the policy is ``cls(d, None, seed=seed, **kwargs)`` (shared-parameter model);
an observation of shape ``(d,)`` means one context for ``K = action_space.n`` fixed arms, so it is
``cls(d, K, seed=seed, **kwargs)`` (disjoint model).
"""

from __future__ import annotations

import ast
import inspect
from dataclasses import dataclass, field
from typing import Any

from banditlib.errors import InvalidInputError
from banditlib.policies.base import Policy, registered_policies

__all__ = [
    "EnvSpec",
    "PolicySpec",
    "arm_model",
    "available_envs",
    "available_policies",
    "parse_env",
    "parse_policy",
]

# Set by the runner for every run; naming them in a spec is an error.
RESERVED_POLICY_ARGS = ("dim", "arms", "seed")
RESERVED_ENV_ARGS = ("render_mode",)


def available_policies() -> dict[str, type[Policy]]:
    """Every registered policy class by lowercase name, sorted."""
    return {name.lower(): cls for name, cls in sorted(registered_policies().items(), key=lambda kv: kv[0].lower())}


def available_envs() -> list[str]:
    """Ids of every registered environment in the ``banditlib/`` namespace."""
    from banditlib.envs import env_ids

    return env_ids()


def _split(text: str, where: str, what: str) -> tuple[str, dict[str, Any]]:
    """``"name:k=v,k2=v2"`` -> ``("name", {"k": v, "k2": v2})`` with literal values."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidInputError(f"{where}: a {what} must be a non-empty name; got {text!r}.")
    name, _, rest = text.strip().partition(":")
    kwargs: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in _top_level_split(rest))):
        key, eq, raw = item.partition("=")
        key = key.strip()
        if not eq or not key.isidentifier():
            raise InvalidInputError(
                f"{where}: {what} {text!r}: hyperparameters must be written key=value, separated by commas; "
                f"got {item!r}."
            )
        if key in kwargs:
            raise InvalidInputError(f"{where}: {what} {text!r}: `{key}` is given twice.")
        kwargs[key] = _literal(raw.strip())
    return name.strip(), kwargs


def _top_level_split(text: str) -> list[str]:
    """Split on the commas that are outside brackets and quotes: ``"a=1,h=(64,64)"`` -> ``["a=1", "h=(64,64)"]``."""
    parts, depth, quote, start = [], 0, "", 0
    for i, ch in enumerate(text):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, (bool, int, float, str))


def _literal(raw: str) -> Any:
    """A Python literal: a scalar, or a tuple / list of scalars (``hidden=(64,64)``); anything else stays text."""
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return raw
    if _scalar(value) or (isinstance(value, (tuple, list)) and all(_scalar(v) for v in value)):
        return value
    return raw


def _label(name: str, kwargs: dict[str, Any]) -> str:
    args = ",".join(f"{k}={v!r}" if isinstance(v, str) else f"{k}={v}" for k, v in kwargs.items())
    return f"{name}({args})" if args else name


def _keywords(fn: Any, reserved: tuple[str, ...]) -> tuple[list[str], bool]:
    """Keyword arguments a callable accepts (minus ``reserved``), and whether it takes ``**kwargs``."""
    params = inspect.signature(fn).parameters.values()
    names = [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in reserved]
    return names, any(p.kind is p.VAR_KEYWORD for p in params)


@dataclass(frozen=True)
class PolicySpec:
    """A policy class and the constructor arguments to build it with (besides ``dim``, ``arms``, ``seed``).

    Attributes:
        cls: a registered policy class.
        kwargs: hyperparameters, e.g. ``{"alpha": 0.5}``.
        label: display name, e.g. ``"LinUCB(alpha=0.5)"`` (unique within a suite).
    """

    cls: type[Policy]
    kwargs: dict[str, Any] = field(default_factory=dict)
    label: str = ""

    def build(self, dim: int, arms: int | None, seed: int) -> Policy:
        """``cls(dim, arms, seed=seed, **kwargs)``."""
        return self.cls(dim, arms, seed=seed, **self.kwargs)


def parse_policy(text: str) -> PolicySpec:
    """Parse ``"name[:key=value,...]"`` into a `PolicySpec`, checking the name and the hyperparameters.

    The arguments are checked against the constructor's signature and by building the policy once
    (``dim=2``), so a bad value fails here with the policy's own message, not in a worker process.

    Examples:
        >>> spec = parse_policy("linucb:alpha=0.5,reg=2")
        >>> spec.label, spec.kwargs
        ('LinUCB(alpha=0.5,reg=2)', {'alpha': 0.5, 'reg': 2})

    Raises:
        InvalidInputError: unknown policy, malformed pair, unknown argument or a value the policy rejects.
    """
    where = "parse_policy()"
    name, kwargs = _split(text, where, "policy")
    policies = available_policies()
    cls = policies.get(name.lower())
    if cls is None:
        raise InvalidInputError(
            f"{where}: unknown policy {name!r}; available: {', '.join(policies)} (see `banditlib policies`)."
        )
    valid, _ = _keywords(cls.__init__, ("self", *RESERVED_POLICY_ARGS))
    for key in kwargs:
        if key not in valid:
            hint = " (set by the runner)" if key in RESERVED_POLICY_ARGS else ""
            raise InvalidInputError(
                f"{where}: {cls.__name__} has no hyperparameter `{key}`{hint}; valid: {', '.join(valid)}."
            )
    try:
        cls(2, None, seed=0, **kwargs)
    except (InvalidInputError, TypeError, ValueError) as exc:
        raise InvalidInputError(f"{where}: bad hyperparameter for {cls.__name__} in {text!r}: {exc}") from None
    return PolicySpec(cls=cls, kwargs=kwargs, label=_label(cls.__name__, kwargs))


@dataclass(frozen=True)
class EnvSpec:
    """A registered gymnasium id and the keyword arguments for ``gymnasium.make``.

    Attributes:
        env_id: full id, e.g. ``"banditlib/Linear-v0"``.
        kwargs: environment arguments, e.g. ``{"d": 5}``.
        label: display name without the ``banditlib/`` namespace, e.g. ``"Linear-v0(d=5)"``.
    """

    env_id: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    label: str = ""

    def make(self) -> Any:
        """``gymnasium.make(env_id, **kwargs)`` without the passive checker (the envs pass ``check_env``)."""
        import gymnasium as gym

        import banditlib.envs  # noqa: F401  registers the ids in this process

        return gym.make(self.env_id, disable_env_checker=True, **self.kwargs)


def parse_env(text: str) -> EnvSpec:
    """Parse ``"[namespace/]Name-vN[:key=value,...]"`` into an `EnvSpec`, checking it can be made.

    Examples:
        >>> spec = parse_env("Linear-v0:d=5")
        >>> spec.env_id, spec.label
        ('banditlib/Linear-v0', 'Linear-v0(d=5)')

    Raises:
        InvalidInputError: unknown id, malformed pair, unknown argument or a value the environment rejects.
    """
    import gymnasium as gym
    from gymnasium.envs.registration import load_env_creator

    import banditlib.envs  # noqa: F401  registers the ids

    where = "parse_env()"
    name, kwargs = _split(text, where, "environment")
    env_id = name if "/" in name else f"banditlib/{name}"
    if env_id not in gym.registry:
        raise InvalidInputError(
            f"{where}: unknown environment {name!r}; available: "
            f"{', '.join(e.removeprefix('banditlib/') for e in available_envs())} (see `banditlib envs`)."
        )
    entry = gym.registry[env_id].entry_point
    if isinstance(entry, str):
        creator = load_env_creator(entry)
        valid, open_ended = _keywords(creator.__init__ if inspect.isclass(creator) else creator, ("self",))
        for key in kwargs:
            if (key not in valid and not open_ended) or key in RESERVED_ENV_ARGS:
                raise InvalidInputError(
                    f"{where}: {env_id} has no argument `{key}`; valid: "
                    f"{', '.join(v for v in valid if v not in RESERVED_ENV_ARGS)}."
                )
    spec = EnvSpec(env_id=env_id, kwargs=kwargs, label=_label(env_id.removeprefix("banditlib/"), kwargs))
    try:
        spec.make().close()
    except (InvalidInputError, TypeError, ValueError) as exc:
        raise InvalidInputError(f"{where}: bad argument for {env_id} in {text!r}: {exc}") from None
    return spec


def arm_model(env: Any) -> tuple[int, int | None]:
    """``(dim, arms)`` for the policies on ``env``: ``(d, None)`` for ``(K, d)`` observations, ``(d, K)`` for ``(d,)``.

    Raises:
        InvalidInputError: the environment's spaces are not those of a bandit environment.
    """
    shape = getattr(env.observation_space, "shape", None)
    n = getattr(env.action_space, "n", None)
    if shape is not None and n is not None and len(shape) == 2 and shape[0] == int(n):
        return int(shape[1]), None
    if shape is not None and n is not None and len(shape) == 1:
        return int(shape[0]), int(n)
    raise InvalidInputError(
        f"arm_model(): a bandit environment has a Discrete(K) action space and observations (K, d) or (d,); "
        f"got {env.action_space} and {env.observation_space}."
    )
