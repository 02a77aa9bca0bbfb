"""Pickle-free persistence in the safetensors layout.

A file is an 8-byte little-endian header length ``n``, ``n`` bytes of JSON describing every tensor (dtype,
shape, byte offsets) plus a string-to-string ``__metadata__`` map, then the raw little-endian tensor bytes.
That is the safetensors format, so the files open with the ``safetensors`` package too; reading one here
parses JSON and copies bytes, and never executes anything. Every field is checked before use, so a
truncated, corrupted or foreign file raises [`InvalidInputError`][banditlib.InvalidInputError].

Reading an untrusted file is bounded: only a regular file is read (a FIFO, a device such as ``/dev/zero``
or a directory is refused before any byte is read, and opening never blocks), at most `MAX_FILE_BYTES`
of it (checked against its size first, so a huge sparse file is refused too; ``BANDITLIB_MAX_FILE_BYTES``
raises the limit), the JSON header at most 16 MiB with integers of at most 20 digits and no nesting deeper
than the format needs. Files written here carry a SHA-256 checksum of the header and the data in their
metadata (``__checksum__``), verified on reading, so a flipped bit is detected; files without one (written by
older versions or by other tools) are read without it.

Writing is atomic: a temporary file in the destination's directory, renamed over the destination. The file
gets the permissions a newly created file would get under the process's umask (``mkstemp`` alone would
give 0600). A process killed between the two steps can leave a ``.<name>.*`` temporary file behind; the next
successful `write_tensors` to the same destination removes such leftovers older than an hour.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import stat
import struct
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from banditlib.errors import InvalidInputError

__all__ = ["MAX_FILE_BYTES", "parse_json", "read_tensors", "write_tensors"]

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
MAX_FILE_BYTES = int(os.environ.get("BANDITLIB_MAX_FILE_BYTES", 4 << 30))  # 4 GiB
_CHECKSUM = "__checksum__"
_STALE_SECONDS = 3600


def _digest(header: dict[str, object], body: bytes | memoryview) -> str:
    """SHA-256 of the canonical header (without the checksum) and the data."""
    h = hashlib.sha256(json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8"))
    h.update(body)
    return "sha256:" + h.hexdigest()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _remove_stale_temporaries(target: Path) -> None:
    """Leftovers ``.<name>.*`` of interrupted writes to ``target`` older than an hour (best effort)."""
    now = time.time()
    try:
        for p in target.parent.glob(f".{target.name}.*"):
            try:
                if now - p.stat().st_mtime > _STALE_SECONDS and p.is_file():
                    p.unlink()
            except OSError:
                continue
    except OSError:
        return


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
    if _CHECKSUM in metadata:
        raise ValueError(f"write_tensors(): metadata key {_CHECKSUM!r} is reserved")
    header["__metadata__"][_CHECKSUM] = _digest(header, b"".join(blobs))  # type: ignore[index]
    raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
    raw += b" " * (-len(raw) % 8)
    target = Path(path)
    fd, tmp = tempfile.mkstemp(dir=target.parent if str(target.parent) else ".", prefix=f".{target.name}.")
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as fh:
            fh.write(struct.pack("<Q", len(raw)))
            fh.write(raw)
            for blob in blobs:
                fh.write(blob)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _remove_stale_temporaries(target)


def _read_bounded(path: str | os.PathLike[str], limit: int, bad: object) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes; anything else raises ``bad(why)``."""
    fail = bad  # callable(why) -> InvalidInputError
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise fail(f"it cannot be opened ({exc.strerror or exc})") from None  # type: ignore[operator]
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = "a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file (a FIFO, socket or device)"
            raise fail(f"it is {kind}")  # type: ignore[operator]
        if info.st_size > limit:
            raise fail(  # type: ignore[operator]
                f"it is {info.st_size:,} bytes, more than the limit of {limit:,} (BANDITLIB_MAX_FILE_BYTES)"
            )
        chunks, total = [], 0
        while True:
            chunk = os.read(fd, min(1 << 24, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:
                raise fail(f"it grew beyond the limit of {limit:,} bytes while being read")  # type: ignore[operator]
        return b"".join(chunks)
    finally:
        os.close(fd)


def _parse_int(text: str) -> int:
    if len(text.lstrip("-")) > 20:
        raise ValueError(f"an integer of {len(text)} digits")
    return int(text)


def parse_json(text: str, what: str) -> object:
    """A metadata string as JSON, bounded like the header (integers of at most 20 digits, no nesting deep
    enough to exhaust the stack); ``ValueError`` naming ``what`` otherwise (callers turn it into an
    ``InvalidInputError``)."""
    try:
        return json.loads(text, parse_int=_parse_int)
    except RecursionError:
        raise ValueError(f"{what} is nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError included
        raise ValueError(f"{what} is not valid JSON ({exc})") from None


def read_tensors(
    path: str | os.PathLike[str],
    where: str,
    *,
    max_bytes: int | None = None,
    require_checksum: Callable[[dict[str, str]], bool] | None = None,
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read a file written by `write_tensors` (or any safetensors file), validating every field.

    Args:
        path: the file.
        where: the public method on whose behalf the file is read, for error messages.
        max_bytes: refuse larger files (default `MAX_FILE_BYTES`).
        require_checksum: given the metadata, whether the file must carry a checksum (its format version is
            one that is always written with one), so that a damaged checksum key cannot pass as an old file.

    Returns:
        ``(tensors, metadata)``, tensors on the CPU (the checksum is removed from the metadata).

    Raises:
        InvalidInputError: the file is not a regular file within the size limit, not a well-formed
            safetensors file, or fails its checksum.
    """

    def bad(why: str) -> InvalidInputError:
        return InvalidInputError(f"{where}: {os.fspath(path)!r} is not a banditlib file: {why}.")

    data = _read_bounded(path, MAX_FILE_BYTES if max_bytes is None else max_bytes, bad)
    if len(data) < 8:
        raise bad(f"it is only {len(data)} bytes long")
    (n,) = struct.unpack("<Q", data[:8])
    if n > min(_MAX_HEADER, len(data) - 8):
        raise bad("the header length field is out of range")
    try:
        header = json.loads(data[8 : 8 + n].decode("utf-8"), parse_int=_parse_int)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise bad("the header is not JSON") from None
    except (ValueError, RecursionError) as exc:
        raise bad(f"the header holds {'nesting too deep' if isinstance(exc, RecursionError) else exc}") from None
    if not isinstance(header, dict):
        raise bad("the header is not a JSON object")
    metadata = header.pop("__metadata__", {})
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise bad("__metadata__ must map strings to strings")
    body = memoryview(data)[8 + n :]
    checksum = metadata.pop(_CHECKSUM, None)
    if checksum is not None and checksum != _digest({"__metadata__": metadata, **header}, body):
        raise bad("its checksum does not match its contents (the file is corrupted)")
    if checksum is None and require_checksum is not None and require_checksum(metadata):
        raise bad("it has no checksum although its format version is always written with one (corrupted)")
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
