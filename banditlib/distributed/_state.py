"""What each state entry of a policy is, how it is synced, and the signature the ranks compare first."""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import weakref
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from banditlib.errors import InvalidInputError, StateError
from banditlib.policies._neural_base import _NeuralPolicy
from banditlib.policies.base import Policy
from banditlib.policies.neural import GradientEstimator
from banditlib.policies.neural_linear import NeuralLinearEstimator
from banditlib.policies.ridge import RidgeEstimator

# How each state entry is synced.
SUM = "summed"  # float64 statistics: base + sum of the ranks' increments
COUNT = "counted"  # int64 counters: likewise
ROUNDS = "rounds"  # the ridge round counter: counted, but with forgetting base + the rounds every rank made
MEAN = "averaged"  # network parameters, Adam's moments: base + mean of the increments
MAX = "max"  # Adam's step count: base + the largest increment
SAME = "shared"  # must be equal on every rank and unchanged since the last sync (the initial network)
DERIVED = "recomputed"  # inverses and estimates, recomputed from the summed statistics
RESET = "reset"  # bookkeeping of a recomputed inverse: zeroed by all_reduce_, copied by broadcast_
LOCAL = "per rank"  # the generator, the histories, the training schedule
SOURCE = (SUM, COUNT, ROUNDS, MEAN, MAX, SAME)  # what the state at the last sync keeps

RULES: list[tuple[type, dict[str, str]]] = [
    (Policy, {"rng_seed": LOCAL, "rng_counter": LOCAL}),
    (RidgeEstimator, {"A_": SUM, "b_": SUM, "n_updates_": COUNT, "n_rounds_": ROUNDS, "A_inv_": DERIVED,
                    "theta_": DERIVED, "refresh_counter": RESET}),
    (_NeuralPolicy, {"theta0_": SAME, "n_seen_": LOCAL, "since_train": LOCAL, "train_rounds": LOCAL}),
    (GradientEstimator, {"Z_diag_": SUM, "Z_": SUM, "Z_inv_": DERIVED}),
    (NeuralLinearEstimator, {"A_": SUM, "b_": SUM, "A_inv_": DERIVED, "theta_": DERIVED}),
]  # fmt: skip
NEURAL_PATTERNS = [(re.compile(r"\w+\.params"), MEAN), (re.compile(r"adam\d*_[mv]_"), MEAN),
                   (re.compile(r"adam\d*_t_"), MAX), (re.compile(r"hist_\w+_"), LOCAL)]  # fmt: skip
# What the signature's fields are called in messages, in the order they are compared.
FIELDS = {"policy": "class", "config": "constructor arguments", "dtype": "dtype", "state": "state shapes",
          "src": "`src`"}  # fmt: skip


@dataclass(frozen=True)
class Base:
    """The synced entries as every rank held them after the last sync, and a digest to compare ranks by."""

    tensors: dict[str, torch.Tensor]
    digest: str


BASES: weakref.WeakKeyDictionary[Policy, Base] = weakref.WeakKeyDictionary()


@dataclass
class View:
    """What one call needs of the local policy."""

    policy: Policy
    plan: dict[str, str]
    state: dict[str, torch.Tensor]
    base: Base | None
    rounds: int | None = None  # with forgetting: the rounds this rank made since the last sync


def lock_of(policy: Any) -> Any:
    return policy._lock if isinstance(policy, Policy) else contextlib.nullcontext()


def sync_plan(policy: Policy, state: dict[str, torch.Tensor]) -> tuple[dict[str, str], list[str]]:
    """How each state entry is synced, and the entries no rule covers."""
    rules: dict[str, str] = {}
    for cls, table in RULES:
        if isinstance(policy, cls):
            rules.update(table)
    plan, unknown = {}, []
    for name in state:
        kind = rules.get(name)
        if kind is None and isinstance(policy, _NeuralPolicy):
            kind = next((k for pattern, k in NEURAL_PATTERNS if pattern.fullmatch(name)), None)
        if kind is None:
            unknown.append(name)
        else:
            plan[name] = kind
    return plan, unknown


def inspect_policy(policy: Any, where: str, *, reduce: bool, src: Any) -> tuple[dict[str, Any], View | None]:
    """The local signature every rank compares, and what the call needs of the local policy."""
    problems: list[tuple[str, str]] = []
    signature: dict[str, Any] = {"policy": None, "config": None, "dtype": None, "state": None, "base": None,
                                 "rounds": None, "src": src if type(src) is int else repr(src),
                                 "problems": problems}  # fmt: skip
    if not isinstance(policy, Policy):
        problems.append(("policy", f"`policy` is a {type(policy).__name__}, not a banditlib Policy."))
        return signature, None
    name = type(policy).__name__
    state = dict(policy.state_dict(keep_vars=True))
    plan, unknown = sync_plan(policy, state)
    signature.update(
        policy=f"{type(policy).__module__}.{type(policy).__qualname__}",
        config=json.loads(json.dumps(policy.config)),
        dtype=str(policy.dtype).removeprefix("torch."),
        state={n: [list(t.shape), str(t.dtype).removeprefix("torch.")] for n, t in state.items()},
    )
    if unknown:
        problems.append(("input", f"banditlib.distributed has no rule for {name}'s state entries {unknown}."))
        return signature, None
    base, rounds = None, None
    if reduce:
        base, problem = base_of(policy, plan, state)
        if problem is not None:
            problems.append(("state", problem))
        signature["base"] = base.digest if base is not None else None
        if base is not None and isinstance(policy, RidgeEstimator) and policy.forget != 1.0:
            rounds = signature["rounds"] = int(state["n_rounds_"]) - int(base.tensors["n_rounds_"])
    return signature, View(policy, plan, state, base, rounds)


def base_of(policy: Policy, plan: dict[str, str], state: dict[str, torch.Tensor]) -> tuple[Base | None, str | None]:
    """The state at the last sync (a fresh policy's before the first), or why it cannot be used."""
    advice = "call banditlib.distributed.broadcast_(policy) on every rank to make the ranks share one state first."
    base = BASES.get(policy)
    if base is None:
        try:
            fresh = type(policy)(**policy.config, seed=policy.seed, dtype=policy.dtype, device=policy.device)
        except (TypeError, ValueError, RuntimeError) as exc:
            return None, f"cannot rebuild a fresh {type(policy).__name__} to start from ({exc}); {advice}"
        base = capture(fresh, plan)
    for name, kind in plan.items():
        if kind not in SOURCE:
            continue
        now, then = state[name].detach(), base.tensors[name]
        if now.shape != then.shape:
            return None, f"`{name}` changed shape since the last sync; {advice}"
        then = then.to(now.device, now.dtype)
        if (kind == SAME and not torch.equal(now, then)) or (kind in (COUNT, ROUNDS) and bool((now < then).any())):
            return None, (
                f"`{name}` is not what it was at the last sync (before the first: in a fresh policy with this seed), "
                f"so the policy was loaded or edited since; {advice}"
            )
    return base, None


def capture(policy: Policy, plan: dict[str, str]) -> Base:
    """Copies of the synced entries of ``policy`` and their digest."""
    state = policy.state_dict()
    tensors = {n: state[n].detach().clone() for n, kind in plan.items() if kind in SOURCE}
    h = hashlib.blake2b(digest_size=16)
    for n in sorted(tensors):
        t = tensors[n].cpu().contiguous()
        h.update(f"{n}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.numpy().tobytes())
    return Base(tensors, h.hexdigest())


def agree(signature: dict[str, Any], group: Any, world: int, where: str, verb: str) -> None:
    """Exchange the signatures; raise the same error on every rank if any rank cannot take part."""
    sigs: list[Any] = [None] * world
    dist.all_gather_object(sigs, signature, group=group)
    tail = f" Nothing was {verb}: every rank's policy is unchanged."
    for r, s in enumerate(sigs):
        for kind, message in s["problems"]:
            if kind == "policy":
                raise InvalidInputError(f"{where}: rank {r}: {message}{tail}")
    ref = sigs[0]
    for field, label in FIELDS.items():
        for r, s in enumerate(sigs[1:], start=1):
            if s[field] != ref[field]:
                raise InvalidInputError(
                    f"{where}: the ranks' policies differ in {label}: {difference(field, r, s[field], ref[field])}; "
                    "every rank must hold a policy of the same class, constructor arguments, dtype and state "
                    f"shapes.{tail}"
                )
    for r, s in enumerate(sigs):
        for kind, message in s["problems"]:
            raise (StateError if kind == "state" else InvalidInputError)(f"{where}: rank {r}: {message}{tail}")
    # Then, field by field, what rank 0 must share with every rank once the signatures match.
    shared: list[tuple[str, type[Exception], Any]] = [
        ("base", StateError, lambda r, s: (
            f"rank {r} does not start from the state rank 0 starts from (the state of the last sync, or before the "
            "first a fresh policy: neural policies built with different seeds have different initial networks); "
            "call banditlib.distributed.broadcast_(policy) on every rank before the first update, and after "
            "loading a checkpoint.")),
        ("rounds", InvalidInputError, lambda r, s: (
            f"rank {r} made {s['rounds']} rounds since the last sync where rank 0 made {ref['rounds']}; with "
            "forgetting (forget < 1) every rank must make the same number of rounds (rows of update) between "
            "syncs: round t of every rank is then one round of the combined process, holding every rank's rows, "
            "discounted alike.")),
    ]  # fmt: skip
    for field, error, message in shared:
        for r, s in enumerate(sigs[1:], start=1):
            if s[field] != ref[field]:
                raise error(f"{where}: {message(r, s)}{tail}")


def difference(field: str, r: int, got: Any, want: Any) -> str:
    if field == "policy":
        return f"rank {r} holds a {str(got).rsplit('.', 1)[-1]} where rank 0 holds a {str(want).rsplit('.', 1)[-1]}"
    if field in ("config", "state"):
        keys = sorted(k for k in set(got) | set(want) if got.get(k) != want.get(k))[:3]
        show = (lambda v: v) if field == "config" else (lambda v: f"{tuple(v[0])} {v[1]}" if v else None)
        parts = [f"`{k}` = {show(got.get(k))!s} on rank {r}, {show(want.get(k))!s} on rank 0" for k in keys]
        return "; ".join(parts)
    if field == "src":
        return f"rank {r} passed src={got} where rank 0 passed src={want}"
    return f"rank {r} has {field} {got} where rank 0 has {want}"
