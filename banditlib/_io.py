"""Pickle-free persistence in the safetensors format, through the ``safetensors`` package.

A file is an 8-byte little-endian header length ``n``, ``n`` bytes of JSON describing every tensor (dtype,
shape, byte offsets) plus a string-to-string ``__metadata__`` map, then the raw little-endian tensor bytes.
The ``safetensors`` package writes that layout (`write_tensors`) and, on reading, validates it and turns
the bytes into tensors: offsets that overlap, leave gaps or run past the data, shapes whose size overflows
or does not match its byte range, and any other malformed header are refused by it. Whatever it raises
becomes an [`InvalidInputError`][banditlib.InvalidInputError] naming the file and what is wrong; nothing is
ever executed.

What is still written here, and why (the package offers none of it):

* **The bounded read.** The package reads a path (memory-mapped) or a bytes object; it does not guard the
  path. So the bytes are read here and handed to ``safetensors.torch.load``: only a regular file (a FIFO,
  a device such as ``/dev/zero`` or a directory is refused before any byte is read, and opening never
  blocks), at most `MAX_FILE_BYTES` of it (checked against its size first, so a huge sparse file is refused
  too; ``BANDITLIB_MAX_FILE_BYTES`` raises the limit). Reading the bytes once also means the file cannot
  change between the checks and the decoding, and a file truncated while mapped cannot crash the process.
* **The header, parsed once more.** ``safetensors.torch.load`` returns neither ``__metadata__`` nor the
  offsets the checksum covers, so the header is parsed here first, bounded at least as tightly as the
  package's own parser (at most 16 MiB rather than 100 MB; integers of at most 20 digits; nesting deep
  enough to exhaust the stack is refused). Its entries must have exactly the keys ``dtype``, ``shape``
  and ``data_offsets`` and one of the ten dtypes banditlib writes: the package accepts extra keys and
  dtypes banditlib never writes (unsigned integers, float8, complex), some of which its torch layer cannot
  even map.
* **The checksum.** Files written here carry a SHA-256 checksum of the header and the data in their
  metadata (``__checksum__``; not part of the safetensors format), verified on reading, so a flipped bit is
  detected; files without one (written by older versions or by other tools) are read without it.
* **Atomic writes.** ``safetensors.torch.save_file`` writes in place, so a crash would leave half a file:
  here the bytes go to a temporary file in the destination's directory, renamed over the destination. The
  file gets the permissions a newly created file would get under the process's umask (``mkstemp`` alone
  would give 0600). A process killed between the two steps can leave a ``.<name>.*`` temporary file behind;
  the next successful `write_tensors` to the same destination removes such leftovers older than an hour.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import struct
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import safetensors
import safetensors.torch
import torch

from banditlib.errors import InvalidInputError

__all__ = ["MAX_FILE_BYTES", "parse_json", "read_tensors", "write_tensors"]

# The dtypes banditlib writes (the safetensors codes of torch's float64 ... bool).
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
_PLACEHOLDER = "sha256:" + "0" * 64  # as long as a real checksum, so filling it in moves no byte
_STALE_SECONDS = 3600
# What the package's errors mean, by a fragment of their text (its Display text since 0.6, its Debug names
# before): the reader says what is wrong in our words and quotes the package.
_MEANINGS = (
    (("invalid JSON", "InvalidHeaderDeserialization"), "the header is not a valid safetensors header"),
    (("invalid offset", "InvalidOffset"), "the tensors' data offsets overlap, leave a gap or are out of order"),
    (("not fully covered", "MetadataIncompleteBuffer"),
     "its data section does not match the tensors' offsets (truncated, or bytes left over)"),
    (("invalid shape, data type, or offset", "TensorInvalidInfo"),
     "a tensor's shape and dtype do not match its byte range (truncated or corrupted)"),
    (("overflow", "ValidationOverflow"), "a tensor's shape is too large (its size overflows)"),
)  # fmt: skip
# What the package raises on a bad file: SafetensorError from its parser; its torch layer adds KeyError (a
# dtype it parses but cannot map), ValueError and AssertionError (empty buffers), RuntimeError (torch).
_PACKAGE_ERRORS = (
    safetensors.SafetensorError, KeyError, ValueError, TypeError, RuntimeError, AssertionError, OverflowError
)  # fmt: skip


def _digest(header: Mapping[str, object], body: bytes | memoryview) -> str:
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


def _for_saving(tensors: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Dense CPU tensors the package accepts: contiguous, and no two sharing storage (it refuses those)."""
    out: dict[str, torch.Tensor] = {}
    storages: set[int] = set()
    for name, t in tensors.items():
        if t.dtype not in _CODES:
            raise ValueError(f"write_tensors(): tensor {name!r} has dtype {t.dtype}, which banditlib does not write")
        t = t.detach().to("cpu").contiguous()
        if t.numel():
            ptr = t.untyped_storage().data_ptr()
            if ptr in storages:
                t = t.clone()
            storages.add(t.untyped_storage().data_ptr())
        out[name] = t
    return out


def _fill_checksum(header: bytes, checksum: str) -> bytes | None:
    """``header`` with the placeholder checksum replaced by ``checksum`` (same length), or ``None`` if the
    placeholder is not found exactly once as the value of ``__checksum__``. JSON escapes every quote inside
    a string, so ``"__checksum__":"<placeholder>"`` can only be the reserved key itself."""
    token = json.dumps({_CHECKSUM: _PLACEHOLDER}, separators=(",", ":"))[1:-1].encode("utf-8")
    if header.count(token) != 1:
        return None
    return header.replace(token, token.replace(_PLACEHOLDER.encode("ascii"), checksum.encode("ascii")))


def write_tensors(
    path: str | os.PathLike[str], tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str]
) -> None:
    """Write ``tensors`` and ``metadata`` to ``path`` atomically (a temporary file, then a rename).

    ``safetensors.torch.save`` lays the file out; the metadata gains ``__checksum__``, the SHA-256 of the
    header and the data that `read_tensors` verifies.

    Args:
        path: destination file.
        tensors: name -> tensor of one of the dtypes float64, float32, float16, bfloat16, int64, int32, int16,
            int8, uint8 or bool (any device; written from a CPU copy).
        metadata: name -> string (``__checksum__`` is reserved).

    Raises:
        ValueError: a reserved metadata key or a dtype banditlib does not write.
        OSError: the destination cannot be written (nothing is left behind).
    """
    if _CHECKSUM in metadata:
        raise ValueError(f"write_tensors(): metadata key {_CHECKSUM!r} is reserved")
    ready = _for_saving(tensors)
    blob = safetensors.torch.save(ready, {**metadata, _CHECKSUM: _PLACEHOLDER})
    (n,) = struct.unpack_from("<Q", blob)
    header = json.loads(blob[8 : 8 + n])
    del header["__metadata__"][_CHECKSUM]
    body = memoryview(blob)[8 + n :]
    checksum = _digest(header, body)
    filled = _fill_checksum(blob[8 : 8 + n], checksum)
    if filled is None:  # the package spaced its JSON differently: serialise again (offsets ignore metadata)
        again = safetensors.torch.save(ready, {**metadata, _CHECKSUM: checksum})
        parts: tuple[bytes | memoryview, ...] = (again,)
    else:
        parts = (blob[:8], filled, body)
    target = Path(path)
    fd, tmp = tempfile.mkstemp(dir=target.parent if str(target.parent) else ".", prefix=f".{target.name}.")
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as fh:
            for part in parts:
                fh.write(part)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _remove_stale_temporaries(target)


def _read_bounded(path: str | os.PathLike[str], limit: int, bad: Callable[[str], InvalidInputError]) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes; anything else raises ``bad(why)``."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise bad(f"it cannot be opened ({exc.strerror or exc})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = "a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file (a FIFO, socket or device)"
            raise bad(f"it is {kind}")
        if info.st_size > limit:
            raise bad(f"it is {info.st_size:,} bytes, more than the limit of {limit:,} (BANDITLIB_MAX_FILE_BYTES)")
        chunks, total = [], 0
        while True:
            chunk = os.read(fd, min(1 << 24, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:
                raise bad(f"it grew beyond the limit of {limit:,} bytes while being read")
        return b"".join(chunks)
    finally:
        os.close(fd)


def _parse_int(text: str) -> int:
    if len(text.lstrip("-")) > 20:
        raise ValueError(f"an integer of {len(text)} digits")
    return int(text)


def parse_json(text: str, what: str) -> object:
    """A metadata string as JSON, bounded like the header.

    Args:
        text: the JSON text (from an untrusted file).
        what: what the text holds, for the error message.

    Returns:
        The parsed value.

    Raises:
        ValueError: invalid JSON, an integer of more than 20 digits or nesting deep enough to exhaust the
            stack, naming ``what`` (callers turn it into an ``InvalidInputError``).

    Examples:
        >>> parse_json('{"alpha": 0.5}', "the constructor arguments")
        {'alpha': 0.5}
    """
    try:
        return json.loads(text, parse_int=_parse_int)
    except RecursionError:
        raise ValueError(f"{what} is nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError included
        raise ValueError(f"{what} is not valid JSON ({exc})") from None


def _explain(exc: BaseException) -> str:
    """Why the package refused a file, in our words, quoting it."""
    text = str(exc).strip() or type(exc).__name__
    for prefix in ("Error while deserializing header: ", "Error while deserializing: "):
        text = text.removeprefix(prefix)
    for fragments, meaning in _MEANINGS:
        if any(f in text for f in fragments):
            return f"{meaning} (safetensors: {text})"
    return f"safetensors cannot read it ({type(exc).__name__}: {text})"


def read_tensors(
    path: str | os.PathLike[str],
    where: str,
    *,
    max_bytes: int | None = None,
    require_checksum: Callable[[dict[str, str]], bool] | None = None,
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read a file written by `write_tensors` (or any safetensors file of banditlib's dtypes), validating it.

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
            safetensors file (by our header checks or by the ``safetensors`` package), or fails its checksum.
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
    checksum = metadata.pop(_CHECKSUM, None)
    if checksum is not None and checksum != _digest({"__metadata__": metadata, **header}, memoryview(data)[8 + n :]):
        raise bad("its checksum does not match its contents (the file is corrupted)")
    if checksum is None and require_checksum is not None and require_checksum(metadata):
        raise bad("it has no checksum although its format version is always written with one (corrupted)")
    for name, info in header.items():
        if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
            raise bad(f"entry {name!r} is malformed")
        if not isinstance(info["dtype"], str) or info["dtype"] not in _DTYPES:
            raise bad(f"entry {name!r} has unknown dtype {info['dtype']!r}")
    try:
        tensors = safetensors.torch.load(data)
    except _PACKAGE_ERRORS as exc:
        raise bad(_explain(exc)) from None
    # The package parsed the header again; what it built must be what was checked above.
    if tensors.keys() != header.keys() or any(
        t.dtype != _DTYPES[header[k]["dtype"]] or list(t.shape) != header[k]["shape"] for k, t in tensors.items()
    ):
        raise bad("its header is ambiguous (safetensors reads other tensors from it than it lists)")
    return tensors, metadata
