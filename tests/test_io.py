"""Persistence: round trips, and every corrupted or foreign file is refused without running code."""

from __future__ import annotations

import json
import pickle
import re
import struct
from pathlib import Path

import pytest
import torch

import banditlib
from banditlib import _io
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


# ---------------------------------------------------------------------------------------------- the safetensors package


def _unchecked_file(path: Path, header: dict[str, object], body: bytes) -> None:
    """A file without a checksum (as older banditlib and other tools write them), so that what is wrong in it
    reaches the ``safetensors`` package rather than failing the checksum first."""
    meta = {"format": "banditlib.policy", "format_version": "1", "class": "LinUCB", "config": '{"dim": 1}'}
    raw = json.dumps({"__metadata__": meta, **header}).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + body)


def _f32(offsets: list[int], shape: list[int] | None = None) -> dict[str, object]:
    return {
        "dtype": "F32",
        "shape": [(offsets[1] - offsets[0]) // 4] if shape is None else shape,
        "data_offsets": offsets,
    }


@pytest.mark.parametrize(
    "header, body, message",
    [
        ({"x": _f32([0, 8]), "y": _f32([4, 12])}, b"\0" * 12, "data offsets overlap, leave a gap or are out of order"),
        ({"x": _f32([4, 8])}, b"\0" * 8, "data offsets overlap, leave a gap or are out of order"),  # a gap
        ({"x": _f32([0, 4]), "y": _f32([4, 8])}, b"\0" * 4, "truncated, or bytes left over"),  # truncated data
        ({"x": _f32([0, 16])}, b"\0" * 8, "truncated, or bytes left over"),
        ({"x": _f32([0, 4])}, b"\0" * 12, "truncated, or bytes left over"),  # bytes after the last tensor
        ({"x": _f32([0, 8], shape=[3])}, b"\0" * 8, "shape and dtype do not match its byte range"),
        ({"x": _f32([0, 4], shape=[2**62, 2**62])}, b"\0" * 4, "its size overflows"),
        ({"x": _f32([0, 4], shape=[-1])}, b"\0" * 4, "not a valid safetensors header"),  # rejected by the package
        ({"x": _f32([0, 4], shape=[1.0])}, b"\0" * 4, "not a valid safetensors header"),  # type: ignore[list-item]
        ({"x": {"dtype": "F32", "shape": [1], "data_offsets": ["0", "4"]}}, b"\0" * 4, "not a valid safetensors"),
        ({"x": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4, 8]}}, b"\0" * 8, "not a valid safetensors"),
        ({"x": {"dtype": "F32", "shape": [1], "data_offsets": [4, 0]}}, b"\0" * 4, "data offsets overlap"),
        ({"x": {"dtype": "U64", "shape": [1], "data_offsets": [0, 8]}}, b"\0" * 8, "unknown dtype 'U64'"),  # ours
        ({"x": {"dtype": "F8_E4M3", "shape": [1], "data_offsets": [0, 1]}}, b"\0", "unknown dtype 'F8_E4M3'"),
        ({"x": {"dtype": "F8_E8M0", "shape": [1], "data_offsets": [0, 1]}}, b"\0", "unknown dtype 'F8_E8M0'"),
        ({"x": {**_f32([0, 4]), "extra": 1}}, b"\0" * 4, "entry 'x' is malformed"),  # the package would accept it
        ({"x": {"dtype": "F32", "shape": [1]}}, b"\0" * 4, "entry 'x' is malformed"),
    ],
)  # fmt: skip
def test_what_safetensors_refuses_becomes_invalid_input(
    header: dict[str, object], body: bytes, message: str, tmp_path: Path
) -> None:
    path = tmp_path / "bad.safetensors"
    _unchecked_file(path, header, body)
    with pytest.raises(
        InvalidInputError, match=f"^test: {re.escape(repr(str(path)))} is not a banditlib file: .*{re.escape(message)}"
    ):
        read_tensors(path, "test")
    with pytest.raises(InvalidInputError, match=re.escape(message)):
        banditlib.load(path)


def test_safetensors_messages_are_quoted(tmp_path: Path) -> None:
    path = tmp_path / "overlap"
    _unchecked_file(path, {"x": _f32([0, 8]), "y": _f32([4, 12])}, b"\0" * 12)
    with pytest.raises(InvalidInputError, match=r"\(safetensors: .*y.*\)\.$"):
        read_tensors(path, "test")


@pytest.mark.parametrize("error", [KeyError("F9"), ValueError("bad"), RuntimeError("bad"), AssertionError()])
def test_any_error_of_the_package_becomes_invalid_input(
    error: Exception, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its torch layer raises more than SafetensorError (a KeyError for a dtype it parses but cannot map,
    an AssertionError on an empty buffer with a non-empty shape)."""
    write_tensors(tmp_path / "t", {"x": torch.ones(2)}, {})

    def load(data: bytes) -> dict[str, torch.Tensor]:
        raise error

    monkeypatch.setattr(_io.safetensors.torch, "load", load)
    with pytest.raises(InvalidInputError, match=rf"{re.escape(repr(str(tmp_path / 't')))} is not a banditlib file: "):
        read_tensors(tmp_path / "t", "test")


def test_tensors_that_differ_from_the_checked_header_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The header is parsed twice (here, for the checksum and the limits; by the package, to decode): what the
    package returns must be what was checked."""
    write_tensors(tmp_path / "t", {"x": torch.ones(2)}, {})
    real = _io.safetensors.torch.load
    for fake in (
        {"x": torch.ones(2), "y": torch.ones(1)},
        {"x": torch.ones(3)},
        {"x": torch.ones(2, dtype=torch.float64)},
    ):
        monkeypatch.setattr(_io.safetensors.torch, "load", lambda data, fake=fake: fake)
        with pytest.raises(InvalidInputError, match="its header is ambiguous"):
            read_tensors(tmp_path / "t", "test")
    monkeypatch.setattr(_io.safetensors.torch, "load", real)
    assert torch.equal(read_tensors(tmp_path / "t", "test")[0]["x"], torch.ones(2))


def test_our_header_limits_are_tighter_than_the_package(tmp_path: Path) -> None:
    """The package accepts headers up to 100 MB; ours stop at 16 MiB, within the file-size limit."""
    n = (16 << 20) + 8
    raw = b"{" + b" " * (n - 2) + b"}"
    (tmp_path / "big").write_bytes(struct.pack("<Q", n) + raw)
    with pytest.raises(InvalidInputError, match="header length field is out of range"):
        read_tensors(tmp_path / "big", "test")


def test_files_of_other_tools_and_their_layout(tmp_path: Path) -> None:
    """Any safetensors file of banditlib's dtypes reads (without a checksum); files written here open with
    the package, metadata included, and carry the checksum."""
    import safetensors
    import safetensors.torch

    tensors = {"b": torch.arange(3.0), "a": torch.tensor([1, 2]), "flag": torch.tensor([True]), "none": torch.zeros(0)}
    (tmp_path / "hf").write_bytes(safetensors.torch.save(tensors, {"k": "v"}))
    got, meta = read_tensors(tmp_path / "hf", "test")
    assert meta == {"k": "v"} and all(torch.equal(got[k], v) for k, v in tensors.items())
    write_tensors(tmp_path / "ours", tensors, {"k": "v"})
    with safetensors.safe_open(tmp_path / "ours", framework="pt") as f:
        assert set(f.keys()) == set(tensors) and f.metadata()["k"] == "v"
        assert f.metadata()["__checksum__"].startswith("sha256:")


def test_the_writer_accepts_what_the_package_alone_would_refuse(tmp_path: Path) -> None:
    base = torch.arange(12.0).reshape(3, 4)
    tensors = {"all": base, "row": base[1], "col": base[:, 2], "t": base.T, "grad": torch.ones(2, requires_grad=True)}
    write_tensors(tmp_path / "t", tensors, {})  # shared storage, non-contiguous, requires_grad
    got, _ = read_tensors(tmp_path / "t", "test")
    assert all(torch.equal(got[k], v.detach()) for k, v in tensors.items())
    with pytest.raises(ValueError, match="reserved"):
        write_tensors(tmp_path / "u", {}, {"__checksum__": "x"})
    with pytest.raises(ValueError, match="complex64"):
        write_tensors(tmp_path / "u", {"z": torch.zeros(1, dtype=torch.complex64)}, {})
    assert not (tmp_path / "u").exists()


def test_the_checksum_is_filled_in_or_the_file_serialised_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tensors = {"x": torch.randn(3, 2, dtype=torch.float64), "n": torch.tensor(4)}
    write_tensors(tmp_path / "filled", tensors, {"k": "v"})
    monkeypatch.setattr(_io, "_fill_checksum", lambda header, checksum: None)
    write_tensors(tmp_path / "again", tensors, {"k": "v"})
    for name in ("filled", "again"):
        got, meta = read_tensors(tmp_path / name, "test", require_checksum=lambda m: True)
        assert meta == {"k": "v"} and all(torch.equal(got[k], v) for k, v in tensors.items())


def test_a_placeholder_like_value_in_the_metadata_is_left_alone(tmp_path: Path) -> None:
    """JSON escapes quotes inside strings, so only the reserved key's own value can be filled in."""
    tricky = json.dumps({"__checksum__": _io._PLACEHOLDER})
    write_tensors(tmp_path / "t", {"x": torch.ones(1)}, {"note": tricky, "plain": _io._PLACEHOLDER})
    _, meta = read_tensors(tmp_path / "t", "test", require_checksum=lambda m: True)
    assert meta == {"note": tricky, "plain": _io._PLACEHOLDER}
