"""Pickle-free persistence in the safetensors layout.

A file is an 8-byte little-endian header length ``n``, ``n`` bytes of JSON describing every tensor (dtype,
shape, byte offsets) plus a string-to-string ``__metadata__`` map, then the raw little-endian tensor bytes.
That is the safetensors format, so the files open with the ``safetensors`` package too; reading one here
parses JSON and copies bytes, and never executes anything. Every field is checked before use, so a
truncated, corrupted or foreign file raises :class:`~banditlib.errors.InvalidInputError`.
"""

from __future__ import annotations

import itertools
import json
import os
import struct
import sys
import tempfile
from pathlib import Path

import torch

from banditlib.errors import InvalidInputError

__all__ = ["read_tensors", "write_tensors"]

_CODES: dict[torch.dtype, str] = {
    torch.float64: "F64",
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.int16: "I16",
    torch.int8: "I8",
    torch.uint8: "U8",
    torch.bool: "BOOL",
}
_DTYPES = {code: dtype for dtype, code in _CODES.items()}
_MAX_HEADER = 16 << 20


def _tensor_bytes(t: torch.Tensor) -> bytes:
    t = t.detach().to("cpu").contiguous()
    if sys.byteorder != "little":  # pragma: no cover - no big-endian CI
        raise NotImplementedError("saving on a big-endian machine is not supported")
    return t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""


def write_tensors(path: str | os.PathLike[str], tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    """Write ``tensors`` and ``metadata`` to ``path`` atomically (a temporary file, then a rename).

    Args:
        path: destination file.
        tensors: name -> tensor of a dtype listed in the safetensors specification.
        metadata: name -> string.
    """
    header: dict[str, object] = {"__metadata__": dict(metadata)}
    blobs = []
    offset = 0
    for name in sorted(tensors):
        t = tensors[name]
        blob = _tensor_bytes(t)
        header[name] = {
            "dtype": _CODES[t.dtype],
            "shape": list(t.shape),
            "data_offsets": [offset, offset + len(blob)],
        }
        blobs.append(blob)
        offset += len(blob)
    raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
    raw += b" " * (-len(raw) % 8)
    target = Path(path)
    fd, tmp = tempfile.mkstemp(dir=target.parent if str(target.parent) else ".", prefix=f".{target.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(struct.pack("<Q", len(raw)))
            fh.write(raw)
            for blob in blobs:
                fh.write(blob)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_tensors(path: str | os.PathLike[str], where: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read a file written by :func:`write_tensors` (or any safetensors file), validating every field.

    Args:
        path: the file.
        where: the public method on whose behalf the file is read, for error messages.

    Returns:
        ``(tensors, metadata)``, tensors on the CPU.

    Raises:
        InvalidInputError: the file is not a well-formed safetensors file.
    """
    data = Path(path).read_bytes()

    def bad(why: str) -> InvalidInputError:
        return InvalidInputError(f"{where}: {os.fspath(path)!r} is not a banditlib file: {why}.")

    if len(data) < 8:
        raise bad(f"it is only {len(data)} bytes long")
    (n,) = struct.unpack("<Q", data[:8])
    if n > min(_MAX_HEADER, len(data) - 8):
        raise bad("the header length field is out of range")
    try:
        header = json.loads(data[8 : 8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise bad("the header is not JSON") from None
    if not isinstance(header, dict):
        raise bad("the header is not a JSON object")
    metadata = header.pop("__metadata__", {})
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise bad("__metadata__ must map strings to strings")
    body = memoryview(data)[8 + n :]
    tensors: dict[str, torch.Tensor] = {}
    spans = []
    for name, info in header.items():
        if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
            raise bad(f"entry {name!r} is malformed")
        dtype = _DTYPES.get(info["dtype"]) if isinstance(info["dtype"], str) else None
        shape, offsets = info["shape"], info["data_offsets"]
        if dtype is None:
            raise bad(f"entry {name!r} has unknown dtype {info['dtype']!r}")
        if not (
            isinstance(shape, list) and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape)
        ):
            raise bad(f"entry {name!r} has an invalid shape")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) for o in offsets)):
            raise bad(f"entry {name!r} has invalid data offsets")
        start, end = offsets
        numel = 1
        for s in shape:
            numel *= s
        itemsize = torch.empty((), dtype=dtype).element_size()
        if not 0 <= start <= end <= len(body) or end - start != numel * itemsize:
            raise bad(f"entry {name!r} does not fit the file (truncated or corrupted)")
        spans.append((start, end))
        buf = bytearray(body[start:end])
        flat = torch.frombuffer(buf, dtype=dtype) if buf else torch.empty(0, dtype=dtype)
        tensors[name] = flat.reshape(shape)
    spans.sort()
    for (_, e0), (s1, _) in itertools.pairwise(spans):
        if s1 < e0:
            raise bad("tensor data overlaps")
    return tensors, metadata
