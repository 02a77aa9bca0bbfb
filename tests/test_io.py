"""Persistence: round trips, and every corrupted or foreign file is refused without running code."""

from __future__ import annotations

import json
import pickle
import struct
from pathlib import Path

import pytest
import torch

import banditlib
from banditlib._io import read_tensors, write_tensors
from banditlib.errors import InvalidInputError


def test_round_trip_every_dtype(tmp_path: Path) -> None:
    tensors = {
        "f64": torch.randn(3, 2, dtype=torch.float64),
        "f32": torch.randn(4),
        "bf16": torch.randn(2, 2).to(torch.bfloat16),
        "i64": torch.tensor(7),
        "empty": torch.zeros(0, 3),
        "flag": torch.tensor([True, False]),
    }
    write_tensors(tmp_path / "t.st", tensors, {"k": "v"})
    got, meta = read_tensors(tmp_path / "t.st", "test")
    assert meta == {"k": "v"}
    for name, t in tensors.items():
        assert torch.equal(got[name], t), name


def _trained(tmp_path: Path) -> Path:
    policy = banditlib.LinTS(3, arms=2, seed=5)
    policy.update(torch.randn(4, 3), torch.tensor([[0], [1], [1], [0]]), torch.randn(4, 1))
    path = tmp_path / "p.safetensors"
    policy.save(path)
    return path


def _rewrite_header(path: Path, edit) -> None:  # type: ignore[no-untyped-def]
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    edit(header)
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data[8 + n :])


@pytest.mark.parametrize(
    "corrupt",
    [
        lambda p: p.write_bytes(b""),
        lambda p: p.write_bytes(b"\x00" * 3),
        lambda p: p.write_bytes(p.read_bytes()[:-5]),
        lambda p: p.write_bytes(struct.pack("<Q", 2**40) + b"{}"),
        lambda p: p.write_bytes(struct.pack("<Q", 4) + b"\xff\xfe{}"),
        lambda p: p.write_bytes(struct.pack("<Q", 2) + b"[]"),
        lambda p: _rewrite_header(p, lambda h: h["A_"].update(dtype="X9")),
        lambda p: _rewrite_header(p, lambda h: h["A_"].update(shape=[2, 3, 4])),
        lambda p: _rewrite_header(p, lambda h: h["A_"].update(data_offsets=[0, 10**9])),
        lambda p: _rewrite_header(p, lambda h: h["b_"].update(data_offsets=h["A_"]["data_offsets"][:1] * 2)),
        lambda p: _rewrite_header(p, lambda h: h["__metadata__"].update(format="other")),
        lambda p: _rewrite_header(p, lambda h: h["__metadata__"].update(format_version="99")),
        lambda p: _rewrite_header(p, lambda h: h["__metadata__"].update({"class": "os.system"})),
        lambda p: _rewrite_header(p, lambda h: h["__metadata__"].update(config="{not json")),
        lambda p: _rewrite_header(p, lambda h: h["__metadata__"].update(config='{"alpha": 1}')),
        lambda p: _rewrite_header(p, lambda h: h["__metadata__"].update(config='{"dim": -3, "arms": 2}')),
        lambda p: _rewrite_header(p, lambda h: h["__metadata__"].update(x=5)),
        lambda p: _rewrite_header(p, lambda h: h.pop("theta_")),
    ],
)
def test_corrupted_files_are_refused(tmp_path: Path, corrupt) -> None:  # type: ignore[no-untyped-def]
    path = _trained(tmp_path)
    corrupt(path)
    with pytest.raises(InvalidInputError):
        banditlib.load(path)


def test_foreign_pickle_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):  # type: ignore[no-untyped-def]
            return (Path.touch, (marker,))

    bad = tmp_path / "bad.pt"
    bad.write_bytes(pickle.dumps(Exploit()))
    with pytest.raises(InvalidInputError):
        banditlib.load(bad)
    torch.save({"A_": torch.eye(2)}, tmp_path / "torch.pt")
    with pytest.raises(InvalidInputError):
        banditlib.LinUCB.load(tmp_path / "torch.pt")
    assert not marker.exists()


def test_class_mismatch_and_generic_load(tmp_path: Path) -> None:
    path = _trained(tmp_path)
    with pytest.raises(InvalidInputError, match="holds a 'LinTS', not a LinUCB"):
        banditlib.LinUCB.load(path)
    assert isinstance(banditlib.load(path), banditlib.LinTS)
    assert isinstance(banditlib.LinTS.load(path), banditlib.LinTS)


def test_state_that_is_not_positive_definite_is_refused(tmp_path: Path) -> None:
    path = _trained(tmp_path)
    tensors, meta = read_tensors(path, "test")
    tensors["A_"] = -tensors["A_"]
    write_tensors(path, tensors, meta)
    with pytest.raises(InvalidInputError, match="positive definite"):
        banditlib.load(path)


def test_save_to_missing_folder_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        banditlib.Random(2, seed=0).save(tmp_path / "nope" / "p.safetensors")
    assert list(tmp_path.iterdir()) == []


def test_loaded_policy_keeps_dtype_and_goes_to_device(tmp_path: Path) -> None:
    policy = banditlib.LinUCB(3, dtype=torch.float64, seed=1)
    policy.save(tmp_path / "p")
    loaded = banditlib.load(tmp_path / "p", device="cpu")
    assert loaded.dtype == torch.float64 and loaded.A_.dtype == torch.float64 and loaded.seed == 1
