"""Checks every policy must pass, run over every registered policy by ``tests/test_common.py``.

Each check takes ``make(dim, arms, seed, dtype) -> Policy`` and the arm model (``arms=None`` for the
shared-parameter model, an int for disjoint arms), builds its own data with a seeded numpy generator, and
raises ``AssertionError`` with a message when the policy misbehaves. A new policy class joins these checks
by being importable from ``banditlib`` (the registry), with no edit here.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from banditlib.errors import InvalidInputError
from banditlib.policies.base import Policy

__all__ = ["ALL_CHECKS", "MakePolicy", "make_contexts"]

MakePolicy = Callable[..., Policy]
DIM = 4
NUM_ARMS = 5


def _expect(condition: object, message: object) -> None:
    """``assert`` that survives ``python -O``: raise AssertionError with ``message`` unless ``condition``."""
    if not condition:
        raise AssertionError(message)


def make_contexts(rng: np.random.Generator, batch: int, arms: int | None, k_shared: int = NUM_ARMS) -> np.ndarray:
    """Contexts for the arm model: ``(B, d)`` for disjoint arms, ``(B, K, d)`` for the shared model."""
    shape = (batch, DIM) if arms is not None else (batch, k_shared, DIM)
    return rng.normal(size=shape)


def _rewards(rng: np.random.Generator, actions: torch.Tensor) -> np.ndarray:
    return rng.normal(size=tuple(actions.shape)) + actions.numpy() * 0.3


def _train(policy: Policy, rng: np.random.Generator, arms: int | None, rounds: int = 6, batch: int = 3) -> None:
    for t in range(rounds):
        x = make_contexts(rng, batch if t % 2 else 1, arms)
        sel = policy.select(x, k=2)
        policy.update(x, sel.actions, _rewards(rng, sel.actions))


def _same_state(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], what: str, exact: bool = True) -> None:
    _expect(a.keys() == b.keys(), f"{what}: state keys differ: {sorted(a)} vs {sorted(b)}")
    for name in a:
        if exact:
            _expect(torch.equal(a[name], b[name]), f"{what}: `{name}` changed")
        else:
            _expect(
                torch.allclose(a[name].double(), b[name].double(), rtol=1e-9, atol=1e-10),
                f"{what}: `{name}` differs",
            )


def check_shapes_and_dtypes(make: MakePolicy, arms: int | None) -> None:
    """Outputs have the documented shapes, dtypes and devices; ``scores = mean + bonus``; actions valid."""
    rng = np.random.default_rng(0)
    for dtype in (torch.float32, torch.float64):
        policy = make(dim=DIM, arms=arms, seed=0, dtype=dtype)
        for batch in (1, 5):
            sel = policy.select(make_contexts(rng, batch, arms), k=2)
            _expect(sel.actions.shape == (batch, 2) and sel.actions.dtype == torch.long, sel.actions)
            for name in ("scores", "mean", "bonus"):
                t = getattr(sel, name)
                _expect(t.shape == (batch, NUM_ARMS), f"{name} has shape {tuple(t.shape)}")
                _expect(t.dtype == dtype and t.device == policy.device, f"{name}: {t.dtype} on {t.device}")
            _expect(torch.allclose(sel.scores, sel.mean + sel.bonus), "scores != mean + bonus")
            acts = sel.actions
            _expect(bool(((acts >= 0) & (acts < NUM_ARMS)).all()), acts)
            _expect(bool((acts[:, 0] != acts[:, 1]).all()), f"repeated arm in a row: {acts}")
            policy.update(make_contexts(rng, batch, arms), acts, np.zeros((batch, 2)))


def check_seeded_determinism(make: MakePolicy, arms: int | None) -> None:
    """Two policies with the same seed fed the same data make the same decisions."""
    p1, p2 = (make(dim=DIM, arms=arms, seed=11, dtype=torch.float64) for _ in range(2))
    r1, r2 = np.random.default_rng(5), np.random.default_rng(5)
    for _ in range(8):
        x1, x2 = make_contexts(r1, 3, arms), make_contexts(r2, 3, arms)
        s1, s2 = p1.select(x1, k=2), p2.select(x2, k=2)
        _expect(
            torch.equal(s1.actions, s2.actions) and torch.equal(s1.scores, s2.scores),
            "same seed, other result",
        )
        p1.update(x1, s1.actions, _rewards(r1, s1.actions))
        p2.update(x2, s2.actions, _rewards(r2, s2.actions))


def check_save_load_reproduces(make: MakePolicy, arms: int | None) -> None:
    """A policy saved mid-run and loaded makes the same later decisions as the original."""
    policy = make(dim=DIM, arms=arms, seed=3, dtype=torch.float64)
    _train(policy, np.random.default_rng(1), arms)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "policy.safetensors"
        policy.save(path)
        loaded = type(policy).load(path)
    _expect(
        type(loaded) is type(policy) and loaded.config == policy.config,
        "type(loaded) is type(policy) and loaded.config == policy.config",
    )
    _same_state(dict(policy.state_dict()), dict(loaded.state_dict()), "load")
    r1, r2 = np.random.default_rng(9), np.random.default_rng(9)
    for _ in range(6):
        x1, x2 = make_contexts(r1, 2, arms), make_contexts(r2, 2, arms)
        s1, s2 = policy.select(x1, k=2), loaded.select(x2, k=2)
        _expect(torch.equal(s1.actions, s2.actions), "loaded policy decides differently")
        policy.update(x1, s1.actions, _rewards(r1, s1.actions))
        loaded.update(x2, s2.actions, _rewards(r2, s2.actions))


def check_select_changes_no_learned_state(make: MakePolicy, arms: int | None) -> None:
    """``select`` (batched and single-row) leaves every learned buffer bit-identical."""
    policy = make(dim=DIM, arms=arms, seed=2, dtype=torch.float32)
    rng = np.random.default_rng(2)
    _train(policy, rng, arms)
    before = policy.learned_state()
    for batch in (1, 4):
        policy.select(make_contexts(rng, batch, arms), k=3)
    _same_state(before, policy.learned_state(), "select")


def _bad_calls(policy: Policy, arms: int | None) -> list[tuple[str, str, Callable[[], Any]]]:
    """(method, argument, call) triples that must raise InvalidInputError."""
    rng = np.random.default_rng(4)
    x = make_contexts(rng, 2, arms)
    K = NUM_ARMS
    acts = np.array([[0], [1]])
    nan_x = x.copy()
    nan_x[0, ...] = np.nan
    wrong_rank = x[0]
    wrong_dim = make_contexts(rng, 2, arms)[..., :-1]
    return [
        ("select", "contexts", lambda: policy.select(nan_x)),
        ("select", "contexts", lambda: policy.select(np.full(x.shape, np.inf))),
        ("select", "contexts", lambda: policy.select(wrong_rank)),
        ("select", "contexts", lambda: policy.select(wrong_dim)),
        ("select", "contexts", lambda: policy.select(x[:0])),
        ("select", "contexts", lambda: policy.select(x.astype(complex))),
        ("select", "contexts", lambda: policy.select(x > 0)),
        ("select", "contexts", lambda: policy.select(np.array(["a"] * x.size).reshape(x.shape))),
        ("select", "contexts", lambda: policy.select("not an array")),
        ("select", "k", lambda: policy.select(x, k=0)),
        ("select", "k", lambda: policy.select(x, k=K + 1)),
        ("select", "k", lambda: policy.select(x, k=1.5)),  # type: ignore[arg-type]
        ("select", "mask", lambda: policy.select(x, mask=np.zeros((2, K), dtype=bool))),
        ("select", "mask", lambda: policy.select(x, k=2, mask=np.eye(2, K, dtype=bool))),
        ("select", "mask", lambda: policy.select(x, mask=np.ones((2, K)))),
        ("select", "mask", lambda: policy.select(x, mask=np.ones((3, K), dtype=bool))),
        ("update", "rewards", lambda: policy.update(x, acts, np.array([[1.0], [np.nan]]))),
        ("update", "rewards", lambda: policy.update(x, acts, np.array([1.0, 2.0]))),
        ("update", "actions", lambda: policy.update(x, np.array([[0], [K]]), np.ones((2, 1)))),
        ("update", "actions", lambda: policy.update(x, np.array([[0], [-1]]), np.ones((2, 1)))),
        ("update", "actions", lambda: policy.update(x, np.array([[0, 0], [1, 2]]), np.ones((2, 2)))),
        ("update", "actions", lambda: policy.update(x, np.array([[0.0], [1.0]]), np.ones((2, 1)))),
        ("update", "actions", lambda: policy.update(x, np.array([0, 1]), np.ones((2, 1)))),
        ("update", "contexts", lambda: policy.update(nan_x, acts, np.ones((2, 1)))),
        ("update", "contexts", lambda: policy.update(wrong_dim, acts, np.ones((2, 1)))),
        ("update", "contexts", lambda: policy.update(x[:1], acts, np.ones((2, 1)))),
        ("update", "actions", lambda: policy.update(x[:1], acts[:1].astype(bool), np.ones((1, 1)))),
        ("update", "rewards", lambda: policy.update(x[:1], acts[:1], np.full((1, 1), np.inf))),
    ]


def check_bad_input_leaves_state(make: MakePolicy, arms: int | None) -> None:
    """Every bad input raises InvalidInputError naming method and argument; the state is unchanged."""
    policy = make(dim=DIM, arms=arms, seed=6, dtype=torch.float32)
    _train(policy, np.random.default_rng(6), arms)
    before = {k: v.clone() for k, v in policy.state_dict().items()}
    for method, argument, call in _bad_calls(policy, arms):
        try:
            call()
        except InvalidInputError as exc:
            msg = str(exc)
            _expect(f".{method}()" in msg and f"`{argument}`" in msg, f"unhelpful message for {argument}: {msg}")
        else:
            raise AssertionError(f"{method}() accepted a bad `{argument}`")
        _same_state(before, dict(policy.state_dict()), f"failed {method}() on `{argument}`")


def check_masks_respected(make: MakePolicy, arms: int | None) -> None:
    """Masked arms are never chosen; a row with exactly ``k`` available arms returns exactly those."""
    policy = make(dim=DIM, arms=arms, seed=8, dtype=torch.float32)
    rng = np.random.default_rng(8)
    _train(policy, rng, arms)
    for batch in (1, 6):
        for _ in range(5):
            mask = rng.random((batch, NUM_ARMS)) < 0.6
            mask[:, rng.integers(NUM_ARMS)] = True
            mask[:, rng.integers(NUM_ARMS)] = True
            k = int(mask.sum(1).min())
            sel = policy.select(make_contexts(rng, batch, arms), k=k, mask=mask)
            chosen = np.take_along_axis(mask, sel.actions.numpy(), axis=1)
            _expect(chosen.all(), f"masked arm chosen: {sel.actions} under {mask}")
            _expect(bool(torch.isinf(sel.scores[torch.from_numpy(~mask)]).all()), "masked score not -inf")


def check_k_respected(make: MakePolicy, arms: int | None) -> None:
    """``k`` distinct arms per row, best first (non-increasing scores along the row)."""
    policy = make(dim=DIM, arms=arms, seed=10, dtype=torch.float64)
    rng = np.random.default_rng(10)
    _train(policy, rng, arms)
    for k in range(1, NUM_ARMS + 1):
        for batch in (1, 4):
            sel = policy.select(make_contexts(rng, batch, arms), k=k)
            _expect(sel.actions.shape == (batch, k), "sel.actions.shape == (batch, k)")
            _expect(all(len(set(row)) == k for row in sel.actions.tolist()), sel.actions)
            picked = sel.scores.gather(1, sel.actions)
            _expect(bool((picked[:, :-1] >= picked[:, 1:]).all()), "actions not best first")
            if k < NUM_ARMS:
                rest = sel.scores.scatter(1, sel.actions, float("-inf")).max(dim=1).values
                _expect(bool((picked[:, -1] >= rest).all()), "a better arm was left out")


def check_batch_equals_rows(make: MakePolicy, arms: int | None) -> None:
    """A batched select/update equals the same rows one at a time (single-row fast path included)."""
    batched = make(dim=DIM, arms=arms, seed=12, dtype=torch.float64)
    rows = make(dim=DIM, arms=arms, seed=12, dtype=torch.float64)
    rng = np.random.default_rng(12)
    for _ in range(5):
        x = make_contexts(rng, 4, arms)
        sel = batched.select(x, k=2)
        singles = [rows.select(x[i : i + 1], k=2) for i in range(4)]
        _expect(torch.equal(sel.actions, torch.cat([s.actions for s in singles])), "batch and rows disagree")
        _expect(
            torch.allclose(sel.scores, torch.cat([s.scores for s in singles]), rtol=1e-9, atol=1e-12),
            "torch.allclose(sel.scores, torch.cat([s.scores for s in singles]), rtol=1e-9, atol=1e-12)",
        )
        if not batched._batch_update_equals_rows:
            continue  # its training schedule depends on how rows are grouped: compare selects only
        r = _rewards(rng, sel.actions)
        batched.update(x, sel.actions, r)
        for i in range(4):
            rows.update(x[i : i + 1], sel.actions[i : i + 1], r[i : i + 1])
        # Learned state only: when the exact inverse is refreshed is bookkeeping that may differ by path.
        _same_state(batched.learned_state(), rows.learned_state(), "batched vs row updates", exact=False)


def check_fast_path_matches_batched_path(make: MakePolicy, arms: int | None) -> None:
    """Single-row calls give the same decisions and state with and without the numpy fast path."""
    fast = make(dim=DIM, arms=arms, seed=14, dtype=torch.float32)
    slow = make(dim=DIM, arms=arms, seed=14, dtype=torch.float32)
    slow._fast_path = False
    rng = np.random.default_rng(14)
    for t in range(40):
        x = make_contexts(rng, 1, arms)
        k = 1 + t % 2
        s1, s2 = fast.select(x, k=k), slow.select(x, k=k)
        _expect(torch.equal(s1.actions, s2.actions), f"round {t}: fast {s1.actions} vs batched {s2.actions}")
        _expect(
            torch.allclose(s1.scores, s2.scores, rtol=1e-4, atol=1e-5),
            "torch.allclose(s1.scores, s2.scores, rtol=1e-4, atol=1e-5)",
        )
        r = _rewards(rng, s1.actions)
        fast.update(x, s1.actions, r)
        slow.update(x, s2.actions, r)
    for name, value in fast.learned_state().items():
        other = slow.learned_state()[name]
        _expect(torch.allclose(value.double(), other.double(), rtol=1e-4, atol=1e-5), f"`{name}` differs")


def check_accepts_any_real_input(make: MakePolicy, arms: int | None) -> None:
    """float64/float16/int numpy arrays, lists and tensors are converted; outputs keep the policy's dtype."""
    policy = make(dim=DIM, arms=arms, seed=16, dtype=torch.float32)
    x = make_contexts(np.random.default_rng(16), 2, arms)
    values = (x, x.astype(np.float16), np.rint(x).astype(np.int32), x.tolist(), torch.from_numpy(x))
    for value in (*values, torch.from_numpy(x).to(torch.bfloat16)):
        sel = policy.select(value)
        _expect(sel.scores.dtype == torch.float32, "sel.scores.dtype == torch.float32")
        policy.update(value, sel.actions, np.ones((2, 1), dtype=np.int64))
    for row in (x[:1], x[:1].tolist(), torch.from_numpy(x[:1]).to(torch.bfloat16)):
        sel = policy.select(row)
        policy.update(row, sel.actions.numpy(), [[0.5]])


def check_copies_learn_on_their_own(make: MakePolicy, arms: int | None) -> None:
    """``copy.deepcopy`` and ``pickle`` give independent policies that learn exactly as the original would
    (single-row and batched paths alike), while the original stays as it was."""
    import copy
    import pickle

    rng = np.random.default_rng(18)
    original = make(dim=DIM, arms=arms, seed=18, dtype=torch.float64)
    _train(original, rng, arms, rounds=2, batch=2)
    original.select(make_contexts(rng, 1, arms))  # builds the single-row path's cached views
    before = original.learned_state()
    twin = make(dim=DIM, arms=arms, seed=18, dtype=torch.float64)
    twin.load_state_dict(original.state_dict())
    # An in-memory round trip of a policy this check just built (what users do with copy and multiprocessing),
    # never bytes from a file: policies persist through safetensors-style files, not pickle.
    for copied in (copy.deepcopy(original), pickle.loads(pickle.dumps(original))):
        reference = copy.deepcopy(twin)
        data = np.random.default_rng(19)
        for _ in range(6):
            x = make_contexts(data, 1, arms)
            for p in (copied, reference):
                sel = p.select(x)
                p.update(x, sel.actions, np.ones((1, 1)))
        _same_state(copied.learned_state(), reference.learned_state(), "copy vs an equal policy", exact=False)
        counts = {name: int(t.sum()) for name, t in copied.state_dict().items() if name in ("n_updates_", "n_seen_")}
        for name, n in counts.items():
            _expect(n == int(original.state_dict()[name].sum()) + 6, f"the copy counted its updates in `{name}`")
    _same_state(original.learned_state(), before, "the original after its copies learned")


def check_propensities(make: MakePolicy, arms: int | None) -> None:
    """``Selection.propensity`` is ``(B, k)`` float64 in ``(0, 1]``, agrees with the frequencies of repeated
    selections, is the same on the single-row and batched paths, and reading it changes no later decision."""
    import copy

    from banditlib.policies._propensity import RULES

    policy = make(dim=DIM, arms=arms, seed=20, dtype=torch.float64)
    _expect(policy.propensity_rule in RULES, f"propensity_rule {policy.propensity_rule!r} is not one of {RULES}")
    rng = np.random.default_rng(20)
    _train(policy, rng, arms)
    x = make_contexts(rng, 3, arms)
    mask = np.ones((3, NUM_ARMS), dtype=bool)
    mask[1, [0, 2]] = False
    draws = 400
    for k in (1, 2):
        twin = copy.deepcopy(policy)
        sel = policy.select(x, k=k, mask=mask)
        p = sel.propensity
        _expect(p.shape == (3, k) and p.dtype == torch.float64, f"propensity {tuple(p.shape)} {p.dtype}")
        _expect(bool(((p > 0) & (p <= 1)).all()), f"propensities outside (0, 1]: {p}")
        _expect(torch.equal(twin.select(x, k=k, mask=mask).actions, sel.actions), "twin decided differently")
        _expect(torch.equal(policy.select(x, k=k).actions, twin.select(x, k=k).actions), "reading it changed decisions")
        # frequencies of the same decision over many fresh selections (successive generator rows)
        probe = copy.deepcopy(policy)
        probe.rng_counter.fill_(int(sel.__dict__["_how"][3]))
        reps = probe.select(np.repeat(x[None], draws, axis=0).reshape(3 * draws, *x.shape[1:]), k=k,
                            mask=np.repeat(mask[None], draws, axis=0).reshape(3 * draws, NUM_ARMS))  # fmt: skip
        chosen = torch.zeros(draws, 3, NUM_ARMS, dtype=torch.float64)
        chosen.scatter_(2, reps.actions.view(draws, 3, k), 1.0)
        freq = chosen.mean(dim=0).gather(1, sel.actions)
        _expect(
            bool(((freq - p).abs() <= 0.15).all()), f"k={k}: propensities {p.tolist()} vs frequencies {freq.tolist()}"
        )
    one = make_contexts(rng, 1, arms)
    fast, slow = copy.deepcopy(policy), copy.deepcopy(policy)
    slow._fast_path = False
    a, b = fast.select(one, k=2), slow.select(one, k=2)
    _expect(torch.equal(a.actions, b.actions), "fast and batched paths decided differently")
    _expect(torch.allclose(a.propensity, b.propensity, atol=1e-9), f"fast path {a.propensity} vs {b.propensity}")


def check_predict(make: MakePolicy, arms: int | None) -> None:
    """``predict`` gives ``(B, K)`` mean and non-negative variance in the policy's dtype, the mean that ``select``
    ranks by (and for the UCB rule the bonus ``alpha sqrt(var)``), changes no state and draws nothing; a policy
    without a posterior raises ``NotImplementedError``; bad contexts raise ``InvalidInputError``."""
    from banditlib.policies.rules import UCBRule

    policy = make(dim=DIM, arms=arms, seed=18, dtype=torch.float64)
    rng = np.random.default_rng(18)
    _train(policy, rng, arms)
    x = make_contexts(rng, 4, arms)
    if not policy.has_posterior:
        try:
            policy.predict(x)
        except NotImplementedError:
            return
        raise AssertionError("predict() on a policy without a posterior did not raise NotImplementedError")
    before = {k: v.clone() for k, v in policy.state_dict().items()}
    pred = policy.predict(x)
    _same_state(before, dict(policy.state_dict()), "predict()")
    K = arms if arms is not None else NUM_ARMS
    for name, t in (("mean", pred.mean), ("var", pred.var)):
        _expect(t.shape == (4, K) and t.dtype == torch.float64, f"predict().{name}: {tuple(t.shape)} {t.dtype}")
    _expect(bool((pred.var >= 0).all()), f"predict().var has negative entries: {pred.var}")
    sel = policy.select(x)
    _expect(torch.allclose(sel.mean, pred.mean, rtol=1e-9, atol=1e-12), "select().mean differs from predict().mean")
    if isinstance(policy, UCBRule):
        bonus = policy._width() * pred.var.sqrt()
        _expect(torch.allclose(sel.bonus, bonus, rtol=1e-9, atol=1e-12), "UCB bonus is not alpha sqrt(var)")
    try:
        policy.predict(np.zeros((4, DIM + 1)))
    except InvalidInputError:
        pass
    else:
        raise AssertionError("predict() accepted contexts of the wrong dimension")


ALL_CHECKS: list[Callable[[MakePolicy, int | None], None]] = [
    check_shapes_and_dtypes,
    check_seeded_determinism,
    check_save_load_reproduces,
    check_select_changes_no_learned_state,
    check_bad_input_leaves_state,
    check_masks_respected,
    check_k_respected,
    check_batch_equals_rows,
    check_fast_path_matches_batched_path,
    check_accepts_any_real_input,
    check_copies_learn_on_their_own,
    check_propensities,
    check_predict,
]
