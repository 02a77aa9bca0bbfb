"""One save/load path for everything banditlib persists: policies, rollout schedulers and rollout buffers.

Each is one safetensors file (`banditlib._io`): its state as tensors, and string metadata naming the
``format`` (``"banditlib.policy"``, ...), the ``format_version``, the ``class`` (for formats that hold one of
several classes), the constructor arguments as JSON (``config``) and whatever else the class adds (a
policy's ``dtype``). [`Persistent`][banditlib._persist.Persistent] writes that metadata and, on reading,
checks it in one order with one set of messages: the file itself (`banditlib._io.read_tensors`), the
format, the version, the class, the constructor arguments. Building the object and loading its state stay
with each class.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from banditlib._io import parse_json, read_tensors, write_tensors
from banditlib.errors import InvalidInputError

__all__ = ["Persistent", "Saved"]


@dataclass(frozen=True)
class Saved:
    """A file whose format, version, class and constructor arguments were checked.

    Attributes:
        tensors: the state, name -> CPU tensor.
        metadata: the file's metadata (without the checksum).
        version: its format version (the assumed one for files written before versions were recorded).
        target: the class the file holds: a subclass of the class reading it (that class itself for formats
            that name no class).
        config: the constructor arguments (a fresh dict, the caller may change it).

    Examples:
        What [`Persistent._read_file`][banditlib.extend.Persistent] returns (see its example for a file):

        >>> import torch
        >>> saved = Saved({"n": torch.tensor(3)}, {"format": "example.counter"}, "1", object, {"start": 3})
        >>> saved.config["start"], int(saved.tensors["n"])
        (3, 3)
    """

    tensors: dict[str, torch.Tensor]
    metadata: dict[str, str]
    version: str
    target: type[Any]
    config: dict[str, Any]


class Persistent:
    """Mixin for classes saved as one banditlib safetensors file.

    A class sets the format it writes and reads, and provides its constructor arguments and its state (by default
    its ``config`` and ``state_dict()``) and any extra metadata; `_save_file` writes them, `_read_file` checks a
    file and returns a [`Saved`][banditlib.extend.Saved]. Files written before the checksum (version ``"1"``) still
    load; a file of a version that is always written with one is refused without it, so a damaged checksum key
    cannot pass as an old file.

    Attributes:
        _file_format: the ``format`` metadata value, e.g. ``"banditlib.policy"``.
        _file_kind: what the format holds, for messages (``"policy"`` -> "not a banditlib policy file").
        _file_version: the version written.
        _file_readable: the versions read.
        _file_unchecked: ``format_version`` values (``None``: the field is absent) of files written before
            the checksum.
        _file_unversioned: the version of a file without a ``format_version`` field (``None``: refused).
        _file_classes: class name -> class for formats that record the ``class`` (the registry, filled as
            subclasses are defined); ``None`` for formats of one class.

    Examples:
        >>> import pathlib, tempfile, torch
        >>> class Counter(Persistent):
        ...     _file_format, _file_kind, _file_version = "example.counter", "counter", "1"
        ...     _file_readable = ("1",)
        ...     def __init__(self, start: int = 0) -> None:
        ...         self.start, self.n = start, torch.tensor(start)
        ...     def _file_config(self): return {"start": self.start}
        ...     def _file_state(self): return {"n": self.n}
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "c.safetensors"
        >>> Counter(3)._save_file(path)
        >>> saved = Counter._read_file(path, "Counter.load()")
        >>> saved.target.__name__, saved.config, int(saved.tensors["n"])
        ('Counter', {'start': 3}, 3)
    """

    _file_format: ClassVar[str]
    _file_kind: ClassVar[str]
    _file_version: ClassVar[str]
    _file_readable: ClassVar[tuple[str, ...]]
    _file_unchecked: ClassVar[tuple[str | None, ...]] = ()
    _file_unversioned: ClassVar[str | None] = None
    _file_classes: ClassVar[Mapping[str, type[Any]] | None] = None

    # ------------------------------------------------------------------------------------------ hooks

    def _file_config(self) -> Mapping[str, Any]:
        """The constructor arguments, JSON-serialisable (default: the object's ``config``)."""
        return self.config  # type: ignore[attr-defined]

    def _file_state(self) -> Mapping[str, torch.Tensor]:
        """The state to save, name -> tensor (default: the object's ``state_dict()``)."""
        return self.state_dict()  # type: ignore[attr-defined]

    def _file_metadata(self) -> Mapping[str, str]:
        """Extra metadata (strings) written after the standard keys."""
        return {}

    # ------------------------------------------------------------------------------------------ files

    def _save_file(self, path: str | os.PathLike[str]) -> None:
        """Write the object to ``path``, pickle-free and atomically (see `banditlib._io.write_tensors`)."""
        meta = {"format": self._file_format, "format_version": self._file_version}
        if self._file_classes is not None:
            meta["class"] = type(self).__name__
        meta["config"] = json.dumps(dict(self._file_config()))
        meta.update(self._file_metadata())
        write_tensors(path, self._file_state(), meta)

    @classmethod
    def _read_file(cls, path: str | os.PathLike[str], where: str) -> Saved:
        """Read ``path`` and check its format, version, class and constructor arguments.

        Args:
            path: the file.
            where: the public method reading it, for error messages (``"LinUCB.load()"``).

        Returns:
            The checked [`Saved`][banditlib.extend.Saved] contents.

        Raises:
            InvalidInputError: the file is unreadable or corrupted (see `banditlib._io.read_tensors`), of
                another format, of a version this banditlib does not read, holds a class that is not ``cls``
                or a subclass, or its constructor arguments are not a JSON object.
        """
        unchecked = cls._file_unchecked
        tensors, meta = read_tensors(path, where, require_checksum=lambda m: m.get("format_version") not in unchecked)
        name = repr(os.fspath(path))
        if meta.get("format") != cls._file_format:
            raise InvalidInputError(f"{where}: {name} is not a banditlib {cls._file_kind} file.")
        version = meta.get("format_version", cls._file_unversioned)
        if version not in cls._file_readable:
            got = "without a format version" if version is None else f"of format version {version!r}"
            raise InvalidInputError(
                f"{where}: {name} is a banditlib {cls._file_kind} file {got}; this banditlib reads versions "
                f"{list(cls._file_readable)} (a newer banditlib wrote it?)."
            )
        target: type[Any] = cls
        if cls._file_classes is not None:
            found = cls._file_classes.get(meta.get("class", ""))
            if found is None or not issubclass(found, cls):
                raise InvalidInputError(f"{where}: the file holds a {meta.get('class')!r}, not a {cls.__name__}.")
            target = found
        if "config" not in meta:
            raise InvalidInputError(f"{where}: the file's constructor arguments are unreadable (they are missing).")
        try:
            config = parse_json(meta["config"], "the `config` metadata")
        except ValueError as exc:
            raise InvalidInputError(f"{where}: the file's constructor arguments are unreadable ({exc}).") from None
        if not isinstance(config, dict):
            raise InvalidInputError(
                f"{where}: the file's constructor arguments are unreadable (a JSON {type(config).__name__}, not an "
                "object)."
            )
        return Saved(tensors, meta, str(version), target, config)
