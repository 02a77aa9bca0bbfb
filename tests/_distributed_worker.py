"""One rank of the process groups that tests/test_distributed.py starts (not collected as a test).

`main` (or ``python tests/_distributed_worker.py SUITE OUT_DIR RANK WORLD INIT_FILE``) joins a gloo group through
the file store, runs the scenarios of SUITE and writes what the rank saw to ``OUT_DIR/rank<R>.pt`` (tensors,
strings and flags only, so the test reads it with ``weights_only=True``). The data, the policies' constructor
arguments and the split of the data between ranks are defined here once, for the workers and for the
single-process reference the test builds."""

from __future__ import annotations

import datetime
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest import mock

import torch

import banditlib
from banditlib import linalg
from banditlib.distributed import all_reduce_, broadcast_

F64 = torch.float64
DIM, ARMS = 3, 4
PHASES = ((0, 13), (13, 31))  # rows fed between the syncs: two syncs, so the second sums increments over a base
PROBE_ROWS = 5

# name -> (class, constructor arguments, shared-parameter model?)
RIDGE: dict[str, tuple[str, dict[str, Any], bool]] = {
    "LinUCB-disjoint": ("LinUCB", {"dim": DIM, "arms": ARMS, "alpha": 0.7, "dtype": F64}, False),
    "LinTS-shared": ("LinTS", {"dim": DIM, "scale": 0.5, "dtype": F64}, True),
    "LinTS-disjoint": ("LinTS", {"dim": DIM, "arms": ARMS, "scale": 0.5, "dtype": F64}, False),
    "Greedy-shared": ("Greedy", {"dim": DIM, "dtype": F64}, True),
    "EpsilonGreedy-disjoint": ("EpsilonGreedy", {"dim": DIM, "arms": ARMS, "epsilon": 0.3, "dtype": F64}, False),
    "LinUCB-float32": ("LinUCB", {"dim": DIM, "alpha": 1.0, "refresh_every": 7}, True),
    "Random": ("Random", {"dim": DIM, "arms": ARMS}, False),
}
_NEURAL = {"dim": DIM, "hidden": (5,), "history": 64, "dtype": F64}
# networks that never train: their statistics are sums, exact like the ridge policies'
FROZEN: dict[str, tuple[str, dict[str, Any], bool]] = {
    "NeuralUCB-diag": ("NeuralUCB", {**_NEURAL, "train_steps": 0}, True),
    "NeuralTS-last-layer": ("NeuralTS", {**_NEURAL, "arms": ARMS, "z": "last_layer", "train_steps": 0}, False),
    "NeuralLinUCB": ("NeuralLinUCB", {**_NEURAL, "train_steps": 0}, True),
}
_TRAIN = {"train_every": 4, "train_steps": 3, "batch_size": 4, "lr": 1e-2}
TRAINED: dict[str, tuple[str, dict[str, Any], bool]] = {
    "NeuralUCB": ("NeuralUCB", {**_NEURAL, **_TRAIN}, True),
    "NeuralLinTS": ("NeuralLinTS", {**_NEURAL, **_TRAIN, "arms": ARMS}, False),
    "EENet": ("EENet", {**_NEURAL, **_TRAIN, "explore_hidden": (4,), "decision": "neural", "decision_warmup": 5}, True),
}
# forgetting: every rank makes the same rounds between syncs; at round t rank r learns from row t * world + r
GAMMA = 0.8
FORGET_PHASES = ((0, 5), (5, 9))  # rounds between the syncs
FORGET: dict[str, tuple[str, dict[str, Any], bool]] = {
    "LinUCB-forget-shared": ("LinUCB", {"dim": DIM, "alpha": 0.7, "forget": GAMMA, "dtype": F64}, True),
    "LinTS-forget-disjoint": ("LinTS", {"dim": DIM, "arms": ARMS, "forget": GAMMA, "reg": 2.0, "dtype": F64}, False),
}
SUITES = {
    "two": (list(RIDGE) + list(FORGET), list(FROZEN), list(TRAINED), True),
    "three": (["LinUCB-disjoint", "LinTS-shared", *FORGET], ["NeuralUCB-diag"], ["NeuralUCB"], True),
}


def seed_of(rank: int) -> int:
    return 10 + rank  # the documented advice: seed = base + rank


def make(spec: tuple[str, dict[str, Any], bool], seed: int) -> banditlib.Policy:
    cls, kwargs, _ = spec
    return getattr(banditlib, cls)(**kwargs, seed=seed)


def data(shared: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every row of the data set: contexts, actions ``(n, 1)``, rewards ``(n, 1)``."""
    g = torch.Generator().manual_seed(1234)
    n = PHASES[-1][1]
    x = torch.randn((n, ARMS, DIM) if shared else (n, DIM), generator=g, dtype=F64)
    a = torch.randint(0, ARMS, (n, 1), generator=g)
    r = torch.rand(n, 1, generator=g, dtype=F64)
    return x, a, r


def probe(shared: bool) -> torch.Tensor:
    g = torch.Generator().manual_seed(99)
    return torch.randn((PROBE_ROWS, ARMS, DIM) if shared else (PROBE_ROWS, DIM), generator=g, dtype=F64)


def rows_of(rank: int, world: int, phase: int) -> list[int]:
    """The rows rank ``rank`` updates on in ``phase`` (interleaved: uneven slices when world does not divide)."""
    start, stop = PHASES[phase]
    return list(range(start, stop))[rank::world]


def forget_rows(rank: int, world: int, phase: int) -> list[int]:
    """The rows rank ``rank`` learns from in ``phase`` of the forgetting runs: one per round."""
    return [t * world + rank for t in range(*FORGET_PHASES[phase])]


def feed(policy: banditlib.Policy, shared: bool, rows: list[int]) -> None:
    """Update on ``rows``: the first alone (the single-row path), the rest in batches of four."""
    x, a, r = data(shared)
    idx = torch.tensor(rows, dtype=torch.long)
    x, a, r = x[idx], a[idx], r[idx]
    if len(rows):
        policy.update(x[:1], a[:1], r[:1])
    for i in range(1, len(rows), 4):
        policy.update(x[i : i + 4], a[i : i + 4], r[i : i + 4])


def _snapshot(policy: banditlib.Policy) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in policy.state_dict().items()}


def _selection(policy: banditlib.Policy, shared: bool) -> dict[str, torch.Tensor]:
    before = policy.rng_counter.clone()
    sel = policy.select(probe(shared))
    return {"rng_counter": before, "scores": sel.scores, "mean": sel.mean, "actions": sel.actions}


def _attempt(policy: Any, call: Callable[[], Any]) -> dict[str, Any]:
    """Run ``call`` expecting an error: which one, its message, and whether ``policy``'s state survived."""
    before = _snapshot(policy) if isinstance(policy, banditlib.Policy) else {}
    try:
        call()
    except Exception as exc:  # the test asserts which
        error, message = type(exc).__name__, str(exc)
    else:
        error, message = "", ""
    after = _snapshot(policy) if isinstance(policy, banditlib.Policy) else {}
    unchanged = before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    return {"error": error, "message": message, "unchanged": unchanged}


def run(suite: str, rank: int, world: int) -> dict[str, Any]:
    ridge, frozen, trained, bad = SUITES[suite]
    out: dict[str, Any] = {}
    last = world - 1
    for name in ridge:
        spec = {**RIDGE, **FORGET}[name]
        policy = make(spec, seed_of(rank))
        for phase in range(len(PHASES)):
            feed(policy, spec[2], (forget_rows if name in FORGET else rows_of)(rank, world, phase))
            assert all_reduce_(policy) is policy
        out[name] = {"state": _snapshot(policy), **_selection(policy, spec[2])}
    for name in frozen:
        spec = FROZEN[name]
        policy = broadcast_(make(spec, seed_of(rank)))  # rank 0's initial network everywhere
        for phase in range(len(PHASES)):
            feed(policy, spec[2], rows_of(rank, world, phase))
            all_reduce_(policy)
        out[name] = {"state": _snapshot(policy), **_selection(policy, spec[2])}
    for name in trained:
        spec = TRAINED[name]
        policy = broadcast_(make(spec, seed_of(rank)))
        feed(policy, spec[2], rows_of(rank, world, 0))
        all_reduce_(policy)
        base = _snapshot(policy)
        feed(policy, spec[2], rows_of(rank, world, 1))
        pre = _snapshot(policy)
        all_reduce_(policy)
        out[name] = {"base": base, "pre": pre, "state": _snapshot(policy), **_selection(policy, spec[2])}
    if bad:
        out.update(bad_inputs(rank, world, last))
    # the group is still usable, and aligned, after every refusal above
    policy = make(RIDGE["LinUCB-disjoint"], seed_of(rank))
    feed(policy, False, rows_of(rank, world, 0))
    all_reduce_(policy)
    out["after-refusals"] = {"n_updates": policy.n_updates_.clone()}
    return out


def bad_inputs(rank: int, world: int, last: int) -> dict[str, Any]:
    """Each scenario: one rank (``last``) or every rank holds something that cannot be synced."""
    out: dict[str, Any] = {}

    def fed(policy: banditlib.Policy, shared: bool = False) -> banditlib.Policy:
        feed(policy, shared, rows_of(rank, world, 0))
        return policy

    ucb = {"dim": DIM, "arms": ARMS, "dtype": F64}
    mismatched = {
        "class": ("LinTS", ucb),
        "config": ("LinUCB", {**ucb, "alpha": 2.0}),
        "dim": ("LinUCB", {**ucb, "dim": DIM + 1}),
        "dtype": ("LinUCB", {**ucb, "dtype": torch.float32}),
    }
    for what, (cls, kwargs) in mismatched.items():
        spec = (cls, kwargs, False) if rank == last else ("LinUCB", ucb, False)
        policy = make(spec, seed_of(rank))
        if policy.dim == DIM:  # (the wider policy on the last rank cannot take these contexts)
            fed(policy)
        out[f"bad-{what}"] = _attempt(policy, lambda p=policy: all_reduce_(p))
    policy = fed(make(("LinUCB", ucb, False), seed_of(rank)))
    thing: Any = torch.nn.Linear(2, 2) if rank == last else policy
    out["bad-not-policy"] = _attempt(policy, lambda: all_reduce_(thing))
    # forgetting, and the last rank made one round more than the others since the last sync
    policy = make(("LinUCB", {**ucb, "forget": 0.9}, False), seed_of(rank))
    feed(policy, False, forget_rows(rank, world, 0))
    all_reduce_(policy)
    feed(policy, False, forget_rows(rank, world, 1)[: 3 + (rank == last)])
    out["bad-rounds"] = _attempt(policy, lambda: all_reduce_(policy))
    # neural policies built with different seeds and never broadcast: different initial networks
    neural = fed(make(FROZEN["NeuralUCB-diag"], seed_of(rank)), shared=True)
    out["bad-base"] = _attempt(neural, lambda: all_reduce_(neural))
    # a state loaded after a sync: n_updates_ went back
    policy = fed(make(("LinUCB", ucb, False), seed_of(rank)))
    all_reduce_(policy)
    policy.load_state_dict(make(("LinUCB", ucb, False), seed_of(rank)).state_dict())
    out["bad-loaded"] = _attempt(policy, lambda: all_reduce_(policy))
    # every rank's statistics are fine, their sum is too ill-conditioned: refused after the reduction
    policy = make(("LinUCB", {"dim": 2, "dtype": F64}, True), seed_of(rank))
    policy.update_features(torch.tensor([[6e12**0.5, 0.0]], dtype=F64), torch.tensor([1.0], dtype=F64))
    out["bad-conditioning"] = _attempt(policy, lambda: all_reduce_(policy))
    # one rank fails after the reduction: every rank raises, no rank commits
    policy = fed(make(("LinUCB", ucb, False), seed_of(rank)))

    def fail_on_last() -> None:
        if rank != last:
            all_reduce_(policy)
            return
        boom = banditlib.NumericalError("injected failure")
        with mock.patch.object(linalg, "refresh_inverse", side_effect=boom):
            all_reduce_(policy)

    out["bad-one-rank-fails"] = _attempt(policy, fail_on_last)
    out["bad-group"] = _attempt(policy, lambda: all_reduce_(policy, group="world"))  # type: ignore[arg-type]
    solo = torch.distributed.new_group([0])  # (every rank must take part in making it)
    out["not-a-member"] = _attempt(policy, lambda: all_reduce_(policy, group=solo))  # rank 0 alone: a group of one
    out["bad-src"] = _attempt(policy, lambda: broadcast_(policy, src=world))
    src = 0 if rank != last else 1
    out["bad-src-differs"] = _attempt(policy, lambda: broadcast_(policy, src=src))
    return out


def main(suite: str, out_dir: Path, rank: int, world: int, init_file: str) -> None:
    """Join the group, run ``suite``, write ``out_dir/rank<rank>.pt``."""
    torch.set_num_threads(1)
    torch.distributed.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=world,
        timeout=datetime.timedelta(seconds=120),
    )  # fmt: skip
    try:
        result = run(suite, rank, world)
    finally:
        torch.distributed.destroy_process_group()
    torch.save(result, out_dir / f"rank{rank}.pt")


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
