"""Attacks on the public API: random call sequences over every policy and scheduler, and a corpus of crafted
bad files that every loader must refuse with InvalidInputError (never a hang, a raw error or silent success).

The bounded versions run in ``make test``; ``-m slow`` runs the long ones."""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import pathlib
import struct
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import banditlib
from banditlib import _io
from banditlib.adapters.rlvr import RolloutBatch, RolloutBuffer, RolloutScheduler, Scheduler
from banditlib.errors import InvalidInputError, NumericalError
from banditlib.policies.base import Policy, registered_policies

POLICIES = sorted(registered_policies().items())
D, K = 3, 4
EXPECTED = (InvalidInputError, NumericalError)


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ---------------------------------------------------------------------------------------------- call sequences

values = st.one_of(
    st.floats(-3, 3), st.sampled_from([0.0, 1e-30, 1e8, -1e8, 1e20, math.nan, math.inf]), st.integers(-2, 2)
)


@st.composite
def calls(draw: st.DrawFn, arms: int | None) -> list[tuple[str, Any]]:
    out = []
    for _ in range(draw(st.integers(1, 8))):
        op = draw(st.sampled_from(["select", "update", "update_features", "copy", "save"]))
        B = draw(st.integers(0, 3))
        shape = (B, D) if arms is not None else (B, K, D)
        if draw(st.integers(0, 9)) == 0:  # a wrong shape now and then
            shape = (B, D + 1)
        x = np.array(draw(st.lists(values, min_size=int(np.prod(shape)), max_size=int(np.prod(shape)))))
        x = x.reshape(shape)
        if draw(st.booleans()):
            x = x[::-1]  # negative strides
        k = draw(st.integers(0, K + 1))
        acts = np.array(draw(st.lists(st.integers(-1, K), min_size=B, max_size=B)), dtype=np.int64).reshape(B, 1)
        r = np.array(draw(st.lists(values, min_size=B, max_size=B))).reshape(B, 1)
        out.append((op, (x, k, acts, r)))
    return out


def _drive(policy: Policy, seq: list[tuple[str, Any]], tmp: pathlib.Path) -> Policy:
    for op, (x, k, acts, r) in seq:
        before = policy.learned_state()
        try:
            if op == "select":
                sel = policy.select(x, k=k)
                assert bool(torch.isfinite(sel.scores).all())
            elif op == "update":
                policy.update(x, acts, r)
            elif op == "update_features":
                policy.update_features(x.reshape(-1, x.shape[-1]), r.reshape(-1)[: x.reshape(-1, x.shape[-1]).shape[0]])
            elif op == "copy":
                policy = copy.deepcopy(policy)
            else:
                policy.save(tmp / "p.safetensors")
                policy = banditlib.load(tmp / "p.safetensors")
        except EXPECTED:
            after = policy.learned_state()
            assert same(before, after), f"{op} raised but changed the state"
    # whatever happened, the state is usable and reloads
    policy.save(tmp / "final.safetensors")
    back = banditlib.load(tmp / "final.safetensors")
    x = np.ones((1, D)) if policy.arms is not None else np.ones((1, K, D))
    assert torch.equal(back.select(x).scores, policy.select(x).scores)
    return policy


@pytest.mark.parametrize("arms", [None, K], ids=["shared", "disjoint"])
@pytest.mark.parametrize("name,cls", POLICIES, ids=[n for n, _ in POLICIES])
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_call_sequences(name: str, cls: type[Policy], arms: int | None, data: st.DataObject,
                               tmp_path: pathlib.Path) -> None:  # fmt: skip
    kwargs: dict[str, Any] = {"hidden": (4,)} if "Neural" in name or name == "EENet" else {}
    if name in ("LinUCB", "LinTS"):
        kwargs["forget"] = data.draw(st.sampled_from([1.0, 0.9]))
    policy = cls(D, arms, seed=0, **kwargs)
    _drive(policy, data.draw(calls(arms)), tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("name,cls", POLICIES, ids=[n for n, _ in POLICIES])
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_call_sequences_long(name: str, cls: type[Policy], data: st.DataObject, tmp_path: pathlib.Path) -> None:
    arms = data.draw(st.sampled_from([None, K]))
    kwargs: dict[str, Any] = {"hidden": (4,)} if "Neural" in name or name == "EENet" else {}
    _drive(cls(D, arms, seed=0, **kwargs), data.draw(calls(arms)), tmp_path)


@st.composite
def rounds(draw: st.DrawFn, t: int) -> RolloutBatch:
    n = draw(st.integers(1, 10))
    reward = draw(st.lists(st.sampled_from([0.0, 1.0, 0.5]), min_size=n, max_size=n))
    return RolloutBatch.from_tensors(
        group=sorted(draw(st.lists(st.integers(0, 2), min_size=n, max_size=n))), reward=reward,
        entropy=[0.1] * n, length=draw(st.lists(st.integers(1, 9), min_size=n, max_size=n)),
        truncated=draw(st.lists(st.booleans(), min_size=n, max_size=n)),
        answer=draw(st.lists(st.integers(-1, 2), min_size=n, max_size=n)), round=t,
        logprobs=-np.ones((n, 2)),
    )  # fmt: skip


R = banditlib.adapters.rlvr
SCHEDULERS: list[Callable[[], Scheduler]] = [
    lambda: RolloutScheduler(seed=0),
    lambda: RolloutScheduler(mode="both", reuse=3, buffer_rounds=2, seed=0),
    lambda: RolloutScheduler(preset="paper", mode="global", reuse=2, seed=0),
    lambda: RolloutScheduler(rule=R.SoftWeights(), label=R.BaselinedGain(prompt_key="nope"), seed=0),
    lambda: R.UniformScheduler(),
    lambda: R.MaxVarianceScheduler(0.5),
    lambda: R.DynamicSamplingFilter(),
    lambda: R.ThresholdScheduler(0.5),
    lambda: R.RecencyReplay(reuse=3),
    lambda: R.PriorityReplay(seed=0),
    lambda: R.ConsistencyFilter(),
    lambda: R.OverlongFilter(),
    lambda: R.InfluenceFilter(),  # no probe, no sketches: every schedule must refuse cleanly
]


@pytest.mark.parametrize("make", SCHEDULERS)
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_scheduler_protocols(make: Callable[[], Scheduler], data: st.DataObject, tmp_path: pathlib.Path) -> None:
    sch = make()
    t = 0
    for _ in range(data.draw(st.integers(1, 6))):
        op = data.draw(st.sampled_from(["schedule", "observe", "save", "old-round"]))
        b = data.draw(rounds(t - 1 if op == "old-round" else t))
        before = sch.state_dict()
        try:
            if op in ("schedule", "old-round"):
                sch.schedule(b)
                t += 1
            elif op == "observe":
                sch.observe(b)
            else:
                sch.save(tmp_path / "s.safetensors")
                sch = Scheduler.load(tmp_path / "s.safetensors")
        except (InvalidInputError, banditlib.errors.StateError):
            assert before.keys() == sch.state_dict().keys()
            assert all(torch.equal(before[k], v) for k, v in sch.state_dict().items()), op
    sch.save(tmp_path / "final.safetensors")
    Scheduler.load(tmp_path / "final.safetensors")


# ---------------------------------------------------------------------------------------------- bad files


def _raw_file(path: pathlib.Path, header: Any, body: bytes = b"", length: int | None = None) -> None:
    raw = json.dumps(header).encode() if not isinstance(header, bytes) else header
    raw += b" " * (-len(raw) % 8)
    path.write_bytes(struct.pack("<Q", len(raw) if length is None else length) + raw + body)


Edit = Callable[[dict[str, torch.Tensor], dict[str, str]], None]


def _edited(src: pathlib.Path, dst: pathlib.Path, edit: Edit) -> None:
    tensors, meta = _io.read_tensors(src, "test")
    tensors = {k: v.clone() for k, v in tensors.items()}
    edit(tensors, meta)
    _io.write_tensors(dst, tensors, meta)


def _corpus(tmp: pathlib.Path) -> dict[str, pathlib.Path]:
    """Name -> crafted file (or special path)."""
    out: dict[str, pathlib.Path] = {}
    good_policy = tmp / "good-policy.st"
    p = banditlib.LinUCB(3, seed=0)
    p.update(np.ones((2, 2, 3)), np.zeros((2, 1), dtype=np.int64), np.ones((2, 1)))
    p.save(good_policy)
    good_neural = tmp / "good-neural.st"
    banditlib.NeuralUCB(3, hidden=(4,), seed=0).save(good_neural)
    good_sched = tmp / "good-scheduler.st"
    sch = RolloutScheduler(preset="paper", mode="both", reuse=2, seed=0)
    b = RolloutBatch.from_tensors(group=[0, 0, 1, 1], reward=[1.0, 0.0, 1.0, 0.0], entropy=[0.1] * 4,
                                  length=[3] * 4, logprobs=-np.ones((4, 2)))  # fmt: skip
    sch.schedule(b)
    b1 = RolloutBatch.from_tensors(group=[0, 0], reward=[1.0, 0.0], entropy=[0.1] * 2, length=[3] * 2,
                                   logprobs=-np.ones((2, 2)), round=1)  # fmt: skip
    sch.observe(b1)
    sch.schedule(b1)  # a round awaiting its label: pending contexts are saved
    sch.save(good_sched)
    good_buffer = tmp / "good-buffer.st"
    sch.buffer.save(good_buffer)

    fifo = tmp / "fifo"
    os.mkfifo(fifo)
    out["fifo"] = fifo
    out["directory"] = tmp
    link = tmp / "zero-link"
    link.symlink_to("/dev/zero")
    out["link to /dev/zero"] = link
    sparse = tmp / "sparse"
    with sparse.open("wb") as fh:
        fh.truncate(3 << 20)  # beyond the 1 MiB limit the test sets
    out["large sparse file"] = sparse
    out["missing"] = tmp / "does-not-exist"
    (tmp / "empty").write_bytes(b"")
    out["empty"] = tmp / "empty"
    (tmp / "short").write_bytes(b"\x01\x02\x03")
    out["seven bytes"] = tmp / "short"
    _raw_file(tmp / "hlen", {"__metadata__": {}}, length=1 << 40)
    out["header length out of range"] = tmp / "hlen"
    _raw_file(tmp / "notjson", b"{not json")
    out["header not JSON"] = tmp / "notjson"
    _raw_file(tmp / "nested", b"[" * 100_000 + b"]" * 100_000)
    out["deeply nested JSON"] = tmp / "nested"
    _raw_file(tmp / "bigint", b'{"x": {"dtype": "F32", "shape": [' + b"9" * 5000 + b'], "data_offsets": [0, 0]}}')
    out["5000-digit integer"] = tmp / "bigint"
    _raw_file(tmp / "list", [1, 2, 3])
    out["header not an object"] = tmp / "list"
    _raw_file(tmp / "meta", {"__metadata__": {"format": 3}})
    out["metadata not strings"] = tmp / "meta"
    _raw_file(tmp / "dtype", {"x": {"dtype": "F128", "shape": [1], "data_offsets": [0, 16]}}, b"\0" * 16)
    out["unknown dtype"] = tmp / "dtype"
    _raw_file(tmp / "trunc", {"x": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, b"\0" * 8)
    out["truncated data"] = tmp / "trunc"
    _raw_file(tmp / "overlap", {"x": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                                "y": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}, b"\0" * 12)  # fmt: skip
    out["overlapping tensors"] = tmp / "overlap"
    # Layouts only the safetensors package checks (offsets, sizes, coverage), and entries only we refuse.
    f32 = {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}
    for name, header, body in [
        ("gap between tensors", {"x": {**f32, "data_offsets": [4, 8]}}, b"\0" * 8),
        ("bytes after the data", {"x": f32}, b"\0" * 8),
        ("offsets reversed", {"x": {**f32, "data_offsets": [4, 0]}}, b"\0" * 4),
        ("shape size overflows", {"x": {**f32, "shape": [2**62, 2**62]}}, b"\0" * 4),
        ("negative shape", {"x": {**f32, "shape": [-1]}}, b"\0" * 4),
        ("float shape", {"x": {**f32, "shape": [1.5]}}, b"\0" * 4),
        ("dtype only the package knows", {"x": {**f32, "dtype": "U32"}}, b"\0" * 4),
        ("dtype the package cannot map to torch", {"x": {**f32, "dtype": "F8_E8M0", "data_offsets": [0, 1]}}, b"\0"),
        ("extra key in an entry", {"x": {**f32, "offset": 0}}, b"\0" * 4),
    ]:  # fmt: skip
        _raw_file(tmp / name.replace(" ", "-"), header, body)
        out[name] = tmp / name.replace(" ", "-")
    data = bytearray(good_policy.read_bytes())
    data[-3] ^= 0x10
    (tmp / "flip").write_bytes(bytes(data))
    out["bit flip in the data"] = tmp / "flip"
    text = good_policy.read_bytes().replace(b'"__checksum__"', b'"__checksumX_"')
    (tmp / "nosum").write_bytes(text)
    out["checksum key damaged"] = tmp / "nosum"

    def cfg(key: str, value: Any) -> Callable[[dict[str, torch.Tensor], dict[str, str]], None]:
        def edit(t: dict[str, torch.Tensor], m: dict[str, str]) -> None:
            c = json.loads(m["config"])
            c[key] = value
            m["config"] = json.dumps(c)

        return edit

    def state(key: str, fn: Callable[[torch.Tensor], torch.Tensor]) -> Callable[..., None]:
        def edit(t: dict[str, torch.Tensor], m: dict[str, str]) -> None:
            t[key] = fn(t[key])

        return edit

    for name, src, edit in [
        ("config dim = 20000", good_policy, cfg("dim", 20_000)),
        ("config history = 1e12", good_neural, cfg("history", 10**12)),
        ("config backend triton", good_policy, cfg("backend", "triton")),
        ("config not a dict", good_policy, lambda t, m: m.update(config="[1, 2]")),
        ("config nested 100,000 deep", good_policy, lambda t, m: m.update(config="[" * 100_000 + "]" * 100_000)),
        ("config with a 5000-digit integer", good_policy, lambda t, m: m.update(config='{"dim": ' + "9" * 5000 + "}")),
        ("scheduler config nested deep", good_sched, lambda t, m: m.update(config="[" * 100_000 + "]" * 100_000)),
        ("scheduler policy config nested deep", good_sched,
         lambda t, m: m.update(policy_config="[" * 100_000 + "]" * 100_000)),
        ("NaN in A_", good_policy, state("A_", lambda a: a * math.nan)),
        ("negative counter", good_policy, state("n_updates_", lambda a: a - 10)),
        ("A_inv_ inconsistent with A_", good_policy, state("A_inv_", lambda a: a * 3)),
        ("theta_ inconsistent", good_policy, state("theta_", lambda a: a + 5)),
        ("negative second moment", good_neural, state("adam_v_", lambda a: a - 1)),
        ("non-positive Z_diag_", good_neural, state("Z_diag_", lambda a: a * 0)),
        ("foreign format", good_policy, lambda t, m: m.update(format="something.else")),
        ("future format version", good_policy, lambda t, m: m.update(format_version="7")),
        ("NaN label statistic", good_sched, state("label.standardiser", lambda a: a * math.nan)),
        ("NaN buffered rewards", good_sched, state("buffer.rows.reward", lambda a: a * math.nan)),
        ("negative buffer uses", good_sched, state("buffer.rows.uses", lambda a: a - 5)),
        ("buffer capacity 1e12", good_sched, state("buffer.capacity", lambda a: a * 0 + 10**12)),
        ("scheduler policy config dim = 20000", good_sched,
         lambda t, m: m.update(policy_config=json.dumps({**json.loads(m["policy_config"]), "dim": 20_000}))),
        ("NaN pending contexts", good_sched, state("pending_x", lambda a: a * math.nan)),
        ("buffer file with NaN rewards", good_buffer, state("rows.reward", lambda a: a * math.nan)),
        ("buffer file with negative uses", good_buffer, state("rows.uses", lambda a: a - 3)),
    ]:  # fmt: skip
        dst = tmp / (name.replace(" ", "-") + ".st")
        _edited(src, dst, edit)
        out[name] = dst
    return out


LOADERS: dict[str, Callable[[pathlib.Path], Any]] = {
    "banditlib.load": lambda p: banditlib.load(p),
    "LinUCB.load": lambda p: banditlib.LinUCB.load(p),
    "NeuralUCB.load": lambda p: banditlib.NeuralUCB.load(p),
    "RolloutScheduler.load": lambda p: RolloutScheduler.load(p),
    "Scheduler.load": lambda p: Scheduler.load(p),
    "RolloutBuffer.load": lambda p: RolloutBuffer.load(p),
}


def test_every_loader_refuses_every_crafted_file(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_io, "MAX_FILE_BYTES", 1 << 20)
    corpus = _corpus(tmp_path)
    assert len(corpus) >= 40
    for fname, path in corpus.items():
        for lname, load in LOADERS.items():
            with pytest.raises(InvalidInputError):
                load(path)
                pytest.fail(f"{lname} accepted {fname!r}")


def _unchecked(path: pathlib.Path) -> bytes:
    """The bytes of a saved policy rewritten as format 1 (no checksum), so damage reaches the parsers."""
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    del header["__metadata__"]["__checksum__"]
    header["__metadata__"]["format_version"] = "1"
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data[8 + n :]


entries = st.fixed_dictionaries(
    {
        "dtype": st.sampled_from(["F32", "F64", "I64", "BOOL", "U64", "F8_E4M3", "F8_E8M0", "C64", "X", 3]),
        "shape": st.lists(st.sampled_from([-1, 0, 1, 2, 3, 2**31, 2**62, 2**64, 1.5, "2"]), max_size=3),
        "data_offsets": st.lists(st.sampled_from([-1, 0, 1, 4, 8, 12, 16, 2**63, 2**64]), min_size=0, max_size=3),
    },
    optional={"extra": st.just(1)},
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_damaged_headers_and_bytes_only_raise_invalid_input(data: st.DataObject, tmp_path: pathlib.Path) -> None:
    """Random headers (valid JSON, so they get past our parser to the package) and random damage to a real
    file without a checksum: loading succeeds or raises InvalidInputError, whatever safetensors makes of it."""
    path = tmp_path / "f.st"
    if data.draw(st.booleans(), "random header"):
        header: dict[str, Any] = {f"t{i}": e for i, e in enumerate(data.draw(st.lists(entries, max_size=3), "tensors"))}
        header["__metadata__"] = {
            "format": "banditlib.policy",
            "format_version": "1",
            "class": "LinUCB",
            "config": "{}",
        }
        _raw_file(path, header, b"\0" * data.draw(st.sampled_from([0, 1, 4, 8, 12, 16, 17])))
    else:
        good = tmp_path / "good.st"
        p = banditlib.LinUCB(2, arms=2, seed=0)
        p.update(np.ones((1, 2)), np.zeros((1, 1), dtype=np.int64), np.ones((1, 1)))
        p.save(good)
        raw = bytearray(_unchecked(good))
        for _ in range(data.draw(st.integers(1, 4), "flips")):
            i = data.draw(st.integers(0, len(raw) - 1))
            raw[i] = data.draw(st.integers(0, 255))
        path.write_bytes(bytes(raw[: data.draw(st.integers(0, len(raw)), "length")]))
    with contextlib.suppress(InvalidInputError):
        _io.read_tensors(path, "test")
    with contextlib.suppress(*EXPECTED):
        banditlib.load(path)


def test_saved_files_follow_the_umask(tmp_path: pathlib.Path) -> None:
    old = os.umask(0o022)
    try:
        banditlib.LinUCB(2, seed=0).save(tmp_path / "p.st")
        assert (tmp_path / "p.st").stat().st_mode & 0o777 == 0o644
    finally:
        os.umask(old)
    stale = tmp_path / ".p.st.leftover"
    stale.write_bytes(b"x" * 100)
    os.utime(stale, (0, 0))  # an interrupted write from long ago
    banditlib.LinUCB(2, seed=0).save(tmp_path / "p.st")
    assert not stale.exists()
