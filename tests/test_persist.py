"""The persistence mixin shared by policies, rollout schedulers and rollout buffers, and files written before it.

``tests/data/*.safetensors`` were written by banditlib at commit 77a6d85, before the ``safetensors`` package
replaced the hand-written writer (tensors sorted by name, metadata in insertion order): LinTS (disjoint,
float32) and NeuralUCB (float64) policies of format 2, a LinUCB of format 1 (the same writer without the
checksum, as banditlib wrote before format 2), a RolloutScheduler (paper preset, mode "both", a round awaiting
its label) of format 2, and its buffer in format 2 and in format 1 (no version field, no checksum).
``persistence_v2.json`` holds, as the old reader returned them, each file's SHA-256, its metadata and every
tensor's dtype, shape and SHA-256 of its bytes, and the decisions the loaded object made next.
"""

from __future__ import annotations

import hashlib
import json
import pathlib
import re
from collections.abc import Callable
from typing import Any, ClassVar

import pytest
import torch

import banditlib
from banditlib import _io
from banditlib._persist import Persistent, Saved
from banditlib.adapters.rlvr import RolloutBatch, RolloutBuffer, RolloutScheduler, Scheduler
from banditlib.errors import InvalidInputError

DATA = pathlib.Path(__file__).parent / "data"
EXPECTED = json.loads((DATA / "persistence_v2.json").read_text())


def _digest(t: torch.Tensor) -> str:
    return hashlib.sha256(t.contiguous().view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"").hexdigest()


def _summary(tensors: dict[str, torch.Tensor]) -> dict[str, list[Any]]:
    return {k: [str(v.dtype).removeprefix("torch."), list(v.shape), _digest(v)] for k, v in sorted(tensors.items())}


# ---------------------------------------------------------------------------------------------- old files


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_files_written_by_the_hand_written_writer_read_identically(name: str) -> None:
    path = DATA / f"{name}.safetensors"
    want = EXPECTED[name]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == want["file_sha256"]  # the old code's exact bytes
    tensors, meta = _io.read_tensors(path, "test")
    assert meta == want["meta"]
    assert _summary(tensors) == want["tensors"]


def test_old_policy_files_load_and_decide_as_before() -> None:
    g = torch.Generator().manual_seed(0)  # the contexts the fixtures' decisions were recorded on
    x_shared, x_disjoint = torch.randn(3, 4, 3, generator=g), torch.randn(3, 3, generator=g)
    lints = banditlib.load(DATA / "policy_lints_v2.safetensors")
    assert type(lints).__name__ == "LinTS" and lints.arms == 4
    assert lints.select(x_disjoint).scores.tolist() == EXPECTED["policy_lints_v2"]["scores"]
    assert lints.select(x_disjoint).actions.tolist() == EXPECTED["policy_lints_v2"]["actions"]  # the next draw
    neural = banditlib.NeuralUCB.load(DATA / "policy_neuralucb_v2.safetensors")
    assert neural.dtype == torch.float64
    assert neural.select(x_shared.double()).scores.tolist() == EXPECTED["policy_neuralucb_v2"]["scores"]
    linucb = banditlib.LinUCB.load(DATA / "policy_linucb_v1.safetensors")  # format 1: no checksum
    assert linucb.select(x_shared).scores.tolist() == EXPECTED["policy_linucb_v1"]["scores"]


def _round(t: int, reward: list[float], entropy: list[float], length: list[int], answers: bool = False) -> RolloutBatch:
    n = len(reward)
    return RolloutBatch.from_tensors(
        group=[i // 2 for i in range(n)], reward=reward, entropy=entropy, length=length,
        logprobs=-torch.ones(n, 2), payload={"ids": torch.arange(n)[:, None] + 10 * t}, round=t,
        answer=[i % 2 for i in range(n)] if answers else None,
    )  # fmt: skip


def test_old_scheduler_and_buffer_files_load_and_decide_as_before() -> None:
    sch = RolloutScheduler.load(DATA / "scheduler_v2.safetensors")
    want = EXPECTED["scheduler_v2"]
    b2 = _round(2, [0.0, 1.0, 1.0, 0.0], [0.3, 0.1, 0.2, 0.5], [5, 5, 6, 2])
    assert sch.observe(b2) == want["observe"]
    s = sch.schedule(b2)
    assert s.fresh.tolist() == want["fresh"] and s.fresh_weight.tolist() == want["fresh_weight"]
    assert s.replay.payload["ids"].view(-1).tolist() == want["replay_ids"] and s.scores.tolist() == want["scores"]
    assert isinstance(Scheduler.load(DATA / "scheduler_v2.safetensors"), RolloutScheduler)
    for name in ("buffer_v2", "buffer_v1"):
        buf = RolloutBuffer.load(DATA / f"{name}.safetensors")
        want = EXPECTED[name]
        assert len(buf) == want["len"] and buf.rounds_held().tolist() == want["rounds"]
        assert buf.uses_at(buf.live_slots()).tolist() == want["uses"] and buf.batch().reward.tolist() == want["reward"]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_old_files_saved_again_hold_the_same_state(name: str, tmp_path: pathlib.Path) -> None:
    """Loading an old file and saving it writes the same tensors and metadata (the package lays them out
    differently: tensors by dtype size, then name), and the new file carries a checksum."""
    path = DATA / f"{name}.safetensors"
    loader: Callable[[pathlib.Path], Any] = (
        banditlib.load
        if name.startswith("policy")
        else RolloutBuffer.load
        if name.startswith("buffer")
        else Scheduler.load
    )
    obj = loader(path)
    obj.save(tmp_path / "again.safetensors")
    tensors, meta = _io.read_tensors(tmp_path / "again.safetensors", "test")
    old_tensors, old_meta = _io.read_tensors(path, "test")
    # entries added since the file was written (the ridge round counter) are saved with their default, 0
    added = {k: tensors.pop(k) for k in sorted(set(tensors) - set(old_tensors))}
    assert {k.rsplit(".", 1)[-1] for k in added} <= {"n_rounds_"} and all(int(v) == 0 for v in added.values())
    assert bool(added) == (name in ("policy_linucb_v1", "policy_lints_v2", "scheduler_v2"))
    assert _summary(tensors) == _summary(old_tensors)
    version = {"policy_linucb_v1": "2", "buffer_v1": "2"}.get(name, old_meta.get("format_version"))
    assert meta == {**old_meta, "format_version": version}
    assert "__checksum__" in json.dumps(_header(tmp_path / "again.safetensors")["__metadata__"])


def _header(path: pathlib.Path) -> dict[str, Any]:
    data = path.read_bytes()
    n = int.from_bytes(data[:8], "little")
    return json.loads(data[8 : 8 + n])  # type: ignore[no-any-return]


# ---------------------------------------------------------------------------------------------- the mixin


class _Counter(Persistent):
    """A minimal persistent class: format "test.counter", versions 1 (no checksum) and 2."""

    _file_format, _file_kind, _file_version = "test.counter", "counter", "2"
    _file_readable, _file_unchecked = ("1", "2"), ("1",)
    _file_classes: ClassVar[dict[str, type[Any]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _Counter._file_classes[cls.__name__] = cls

    def __init__(self, start: int = 0) -> None:
        self.start, self.n = start, torch.tensor([start, start + 1])

    def _file_config(self) -> dict[str, Any]:
        return {"start": self.start}

    def _file_state(self) -> dict[str, torch.Tensor]:
        return {"n": self.n, "empty": torch.zeros(0, 2, dtype=torch.float64)}

    def _file_metadata(self) -> dict[str, str]:
        return {"note": "hello"}


class CountUp(_Counter):
    pass


class CountDown(_Counter):
    pass


def test_mixin_round_trip_and_metadata(tmp_path: pathlib.Path) -> None:
    CountUp(4)._save_file(tmp_path / "c")
    saved = _Counter._read_file(tmp_path / "c", "Counter.load()")
    assert isinstance(saved, Saved) and saved.target is CountUp and saved.version == "2"
    assert saved.config == {"start": 4} and saved.tensors["n"].tolist() == [4, 5]
    assert saved.tensors["empty"].shape == (0, 2) and saved.tensors["empty"].dtype == torch.float64
    assert saved.metadata == {"format": "test.counter", "format_version": "2", "class": "CountUp",
                              "config": '{"start": 4}', "note": "hello"}  # fmt: skip


def _write(path: pathlib.Path, meta: dict[str, str], checksum: bool = True) -> None:
    """A file with ``meta`` (with or without a checksum), as the writer of that version would make it."""
    _io.write_tensors(path, {"n": torch.tensor([1, 2])}, meta)
    if not checksum:
        data = path.read_bytes()
        n = int.from_bytes(data[:8], "little")
        header = json.loads(data[8 : 8 + n])
        del header["__metadata__"]["__checksum__"]
        raw = json.dumps(header).encode()
        path.write_bytes(len(raw).to_bytes(8, "little") + raw + data[8 + n :])


GOOD = {"format": "test.counter", "format_version": "2", "class": "CountDown", "config": '{"start": 1}'}


@pytest.mark.parametrize(
    "meta, checksum, message",
    [
        ({**GOOD, "format": "other"}, True, r"'{path}' is not a banditlib counter file\.$"),
        ({**GOOD, "format_version": "9"}, True,
         r"'{path}' is a banditlib counter file of format version '9'; this banditlib reads versions \['1', '2'\]"),
        ({k: v for k, v in GOOD.items() if k != "format_version"}, True, r"counter file without a format version"),
        ({**GOOD, "class": "os.system"}, True, r"the file holds a 'os.system', not a CountDown\.$"),
        ({**GOOD, "class": "CountUp"}, True, r"the file holds a 'CountUp', not a CountDown\.$"),
        ({k: v for k, v in GOOD.items() if k != "class"}, True, r"the file holds a None, not a CountDown"),
        ({**GOOD, "config": "[1, 2]"}, True, r"constructor arguments are unreadable \(a JSON list, not an object\)"),
        ({**GOOD, "config": "{nope"}, True, r"arguments are unreadable \(the `config` metadata is not valid"),
        ({**GOOD, "config": "[" * 100_000 + "]" * 100_000}, True, r"unreadable \(the `config` metadata is nested too"),
        ({**GOOD, "config": '{"start": ' + "9" * 50 + "}"}, True, r"unreadable \(.*an integer of 50 digits"),
        ({k: v for k, v in GOOD.items() if k != "config"}, True, r"arguments are unreadable \(they are missing\)"),
        (GOOD, False, r"it has no checksum although its format version is always written with one"),
    ],
)  # fmt: skip
def test_mixin_refuses_with_one_set_of_messages(
    meta: dict[str, str], checksum: bool, message: str, tmp_path: pathlib.Path
) -> None:
    path = tmp_path / "c.safetensors"
    _write(path, meta, checksum)
    with pytest.raises(
        InvalidInputError, match=r"^CountDown\.load\(\): .*" + message.replace("{path}", re.escape(str(path)))
    ):
        CountDown._read_file(path, "CountDown.load()")


def test_mixin_reads_version_1_without_checksum_and_unversioned_files(tmp_path: pathlib.Path) -> None:
    _write(tmp_path / "v1", {**GOOD, "format_version": "1"}, checksum=False)
    assert _Counter._read_file(tmp_path / "v1", "x").version == "1"

    class Unversioned(Persistent):
        _file_format, _file_kind, _file_version = "test.counter", "counter", "2"
        _file_readable, _file_unchecked, _file_unversioned = ("1", "2"), (None,), "1"

    meta = {k: v for k, v in GOOD.items() if k not in ("format_version", "class")}
    _write(tmp_path / "old", meta, checksum=False)
    saved = Unversioned._read_file(tmp_path / "old", "x")
    assert saved.version == "1" and saved.target is Unversioned  # a format of one class names none
    _write(tmp_path / "v1-no-sum", {**meta, "format_version": "1"}, checksum=False)
    with pytest.raises(InvalidInputError, match="no checksum although"):  # only the field's absence marks format 1
        Unversioned._read_file(tmp_path / "v1-no-sum", "x")


def _saved_objects(tmp: pathlib.Path) -> dict[str, tuple[pathlib.Path, Callable[[pathlib.Path], Any], str]]:
    """Kind -> (a good file, its loader, the kind named in messages) for the three classes on the mixin."""
    p = banditlib.LinUCB(3, seed=0)
    p.save(tmp / "policy")
    sch = RolloutScheduler(seed=0)
    sch.schedule(_round(0, [1.0, 0.0, 1.0, 1.0], [0.1] * 4, [3] * 4, answers=True))
    sch.save(tmp / "scheduler")
    sch.buffer.save(tmp / "buffer")
    return {
        "policy": (tmp / "policy", banditlib.LinUCB.load, "policy"),
        "scheduler": (tmp / "scheduler", RolloutScheduler.load, "rollout-scheduler"),
        "buffer": (tmp / "buffer", RolloutBuffer.load, "rollout-buffer"),
    }


@pytest.mark.parametrize("kind", ["policy", "scheduler", "buffer"])
def test_every_persistent_class_refuses_foreign_and_future_files_alike(kind: str, tmp_path: pathlib.Path) -> None:
    path, load, named = _saved_objects(tmp_path)[kind]
    tensors, meta = _io.read_tensors(path, "test")
    _io.write_tensors(tmp_path / "foreign", tensors, {**meta, "format": "banditlib.other"})
    with pytest.raises(InvalidInputError, match=rf"is not a banditlib {named} file\.$"):
        load(tmp_path / "foreign")
    _io.write_tensors(tmp_path / "future", tensors, {**meta, "format_version": "7"})
    with pytest.raises(
        InvalidInputError, match=rf"is a banditlib {named} file of format version '7'; .*newer banditlib"
    ):
        load(tmp_path / "future")
    _io.write_tensors(tmp_path / "config", tensors, {**meta, "config": '"a string"'})
    with pytest.raises(InvalidInputError, match=r"constructor arguments are unreadable \(a JSON str, not an object\)"):
        load(tmp_path / "config")
    assert type(load(path)).__name__ == {"policy": "LinUCB", "scheduler": "RolloutScheduler"}.get(kind, "RolloutBuffer")


def test_the_metadata_each_class_writes(tmp_path: pathlib.Path) -> None:
    """The keys and values of the file formats are unchanged by the mixin."""
    files = _saved_objects(tmp_path)
    _, policy = _io.read_tensors(files["policy"][0], "t")
    assert set(policy) == {"format", "format_version", "class", "config", "dtype"}
    assert (policy["format"], policy["format_version"], policy["class"], policy["dtype"]) == (
        "banditlib.policy", "2", "LinUCB", "float32"
    )  # fmt: skip
    assert json.loads(policy["config"]) == banditlib.LinUCB(3, seed=0).config
    _, sch = _io.read_tensors(files["scheduler"][0], "t")
    assert set(sch) == {"format", "format_version", "class", "config", "policy_class", "policy_config", "policy_dtype"}
    assert (sch["format"], sch["format_version"], sch["class"]) == ("banditlib.rlvr.scheduler", "2", "RolloutScheduler")
    _, buf = _io.read_tensors(files["buffer"][0], "t")
    assert buf == {
        "format": "banditlib.rlvr.buffer",
        "format_version": "2",
        "config": '{"rounds": 4, "max_rollouts": null}',
    }
