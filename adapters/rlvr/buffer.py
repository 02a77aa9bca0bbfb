"""FIFO storage of the last rounds' rollouts: [`RolloutBuffer`][banditlib.adapters.rlvr.RolloutBuffer].

Rows live in preallocated ring tensors (one per field, payload entry and the static features), so pushing a
round, gathering candidates and counting uses are a few indexed copies whatever the number of rollouts: no
Python loop over rows or groups. Rounds are evicted whole, oldest first.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from banditlib import extend as V
from banditlib.errors import InvalidInputError
from banditlib.extend import Persistent

from .batch import FIELDS, OPTIONAL, RolloutBatch, make_batch

__all__ = ["RolloutBuffer"]

FORMAT = "banditlib.rlvr.buffer"


class RolloutBuffer(Persistent):
    """The rollouts of the last ``rounds`` rounds (optionally at most ``max_rollouts`` of them), with their age
    and usage counts.

    * **Eviction.** Pushing a round first evicts whole rounds, oldest first, until at most ``rounds - 1``
      rounds remain and the new rows fit under ``max_rollouts``. Rounds are counted as pushed (the round
      numbers may skip values); the age of a row is ``current round - row.round``.
    * **Storage.** Ring tensors sized by the first push (``rounds x`` its rows, or ``max_rollouts``) and grown
      (doubling) only if a later round does not fit.
    * **Ragged trailing shapes.** ``logprobs`` and payload tensors whose trailing sizes differ between rounds
      are right-padded with zeros to the largest size seen (so right-padded token ids stay consistent with
      their right-padded masks; pad left-padded tensors such as prompt ids to a fixed width yourself). Keys,
      dtypes and number of dimensions must not change, nor may ``logprobs``, ``answer`` or ``grad`` appear or
      disappear (``grad`` keeps its width).
    * **Uses.** [`add_uses`][banditlib.adapters.rlvr.buffer.RolloutBuffer.add_uses] counts every selection of a row for
    training (fresh or replayed).

    Args:
        rounds: ``L >= 1``, rounds kept.
        max_rollouts: optional cap on stored rows (``>= 1``).

    Examples:
        >>> import torch
        >>> buf = RolloutBuffer(rounds=2)
        >>> for t in range(3):
        ...     _ = buf.push(RolloutBatch.from_groups([{"reward": [1.0, 0.0], "entropy": [0.1, 0.2],
        ...                                             "length": [3, 4]}], round=t))
        >>> len(buf), buf.rounds_held().tolist()
        (4, [1, 2])
        >>> buf.add_uses(buf.live_slots()[:1]); buf.uses_at(buf.live_slots()).tolist()
        [1, 0, 0, 0]

    References:
        Lu et al. Contextual Rollout Bandits for Reinforcement Learning with Verifiable Rewards, arXiv
        2602.08499, 2026 (historical reuse from a FIFO buffer).
    """

    def __init__(self, rounds: int = 4, max_rollouts: int | None = None) -> None:
        where = "RolloutBuffer()"
        self.rounds: int = V.check_int(rounds, where, "rounds")  # type: ignore[assignment]
        self.max_rollouts = V.check_int(max_rollouts, where, "max_rollouts", allow_none=True)
        self._store: dict[str, torch.Tensor] = {}
        self._payload_keys: tuple[str, ...] = ()
        self._optional: tuple[str, ...] = ()  # the optional fields (logprobs, answer, grad) the rows carry
        self._capacity = 0
        self._head = 0
        self._size = 0
        self._round_ids: list[int] = []
        self._round_counts: list[int] = []

    # ------------------------------------------------------------------------------------------ queries

    def __len__(self) -> int:
        return self._size

    @property
    def capacity(self) -> int:
        """Rows the ring tensors hold before they must grow."""
        return self._capacity

    @property
    def feature_dim(self) -> int:
        """Columns of the stored static features (0 before the first push or when none are stored)."""
        return int(self._store["features"].shape[1]) if self._store else 0

    def rounds_held(self) -> torch.Tensor:
        """Round numbers of the rounds held, oldest first: ``(R,)`` int64."""
        return torch.tensor(self._round_ids, dtype=torch.long)

    def round_counts(self) -> list[int]:
        """Rows held per round, oldest first."""
        return list(self._round_counts)

    def live_slots(self, skip_rounds: int = 0) -> torch.Tensor:
        """Ring slots of the stored rows, oldest first, leaving out the ``skip_rounds`` oldest rounds: ``(M,)``."""
        skip = sum(self._round_counts[:skip_rounds])
        device = self._store["round"].device if self._store else torch.device("cpu")
        if self._capacity == 0:
            return torch.zeros(0, dtype=torch.long, device=device)
        return (self._head + skip + torch.arange(self._size - skip, device=device)) % self._capacity

    def evictions(self, n_new: int) -> int:
        """How many of the oldest rounds a push of ``n_new`` rows would evict (nothing changes)."""
        counts = self._round_counts
        e, size = 0, self._size
        while e < len(counts) and (
            len(counts) - e >= self.rounds or (self.max_rollouts is not None and size + n_new > self.max_rollouts)
        ):
            size -= counts[e]
            e += 1
        return e

    def slots_of(self, positions: torch.Tensor, skip_rounds: int = 0) -> torch.Tensor:
        """Ring slots of the rows at ``positions`` in
        [`live_slots`][banditlib.adapters.rlvr.buffer.RolloutBuffer.live_slots] ``(skip_rounds)`` (without building
        it)."""
        skip = sum(self._round_counts[:skip_rounds])
        return (self._head + skip + positions) % max(self._capacity, 1)

    def live_column(self, name: str, skip_rounds: int = 0) -> torch.Tensor:
        """A stored column for the rows of [`live_slots`][banditlib.adapters.rlvr.buffer.RolloutBuffer.live_slots]
        ``(skip_rounds)``, in that order, read as (at most two) contiguous slices of the ring rather than gathered row
        by row."""
        store = self._store[name]
        skip = sum(self._round_counts[:skip_rounds])
        start, count = (self._head + skip) % max(self._capacity, 1), self._size - skip
        end = start + count
        if end <= self._capacity:
            return store[start:end]
        return torch.cat([store[start:], store[: end - self._capacity]])

    def column(self, name: str, slots: torch.Tensor) -> torch.Tensor:
        """A stored column at ``slots``: a field name, ``uses``, ``features``, an optional field (``logprobs``,
        ``answer``, ``grad``) the rows carry, or ``payload.<key>``."""
        return self._store[name][slots]

    def uses_at(self, slots: torch.Tensor) -> torch.Tensor:
        """Usage counts ``(M,)`` int64 at ``slots``."""
        return self._store["uses"][slots]

    def features_at(self, slots: torch.Tensor) -> torch.Tensor:
        """Stored static features ``(M, S)`` at ``slots``."""
        return self._store["features"][slots]

    def rows(self, slots: torch.Tensor) -> RolloutBatch:
        """The stored rollouts at ``slots`` as a batch (``logprobs`` and payload padded to the stored widths)."""
        s = self._store
        if not s:
            raise InvalidInputError("RolloutBuffer.rows(): the buffer is empty (nothing was pushed yet).")
        return make_batch(
            [s[f][slots] for f in FIELDS],
            s["logprobs"][slots] if "logprobs" in self._optional else None,
            {k: s[f"payload.{k}"][slots] for k in self._payload_keys},
            *(s[f][slots] if f in self._optional else None for f in ("answer", "grad")),
        )

    def batch(self) -> RolloutBatch:
        """Every stored rollout, oldest first."""
        return self.rows(self.live_slots())

    # ------------------------------------------------------------------------------------------ writing

    def check_compatible(self, batch: RolloutBatch, where: str, features: torch.Tensor | None = None) -> None:
        """Raise [`InvalidInputError`][banditlib.InvalidInputError] if
        [`push`][banditlib.adapters.rlvr.buffer.RolloutBuffer.push] would reject ``batch``."""
        n = len(batch)
        if n == 0:
            raise InvalidInputError(f"{where}: the batch holds no rollouts.")
        if self.max_rollouts is not None and n > self.max_rollouts:
            raise InvalidInputError(
                f"{where}: the batch has {n} rollouts, more than the buffer's `max_rollouts` = {self.max_rollouts}."
            )
        if features is not None and (features.dim() != 2 or features.shape[0] != n):
            raise InvalidInputError(f"{where}: `features` must have shape (N, S) with N = {n}.")
        if not self._store:
            return
        if features is not None and features.shape[1] != self.feature_dim:
            raise InvalidInputError(
                f"{where}: `features` has {features.shape[1]} columns; the buffer stores {self.feature_dim}."
            )
        for name in OPTIONAL:
            have = getattr(batch, name) is not None
            if have != (name in self._optional):
                raise InvalidInputError(
                    f"{where}: `{name}` must be {'given' if not have else 'None'} in every round, as in the first "
                    "round "
                    f"stored; got {'None' if not have else 'a tensor'}."
                )
        if batch.grad is not None and batch.grad.shape[1] != self._store["grad"].shape[1]:
            raise InvalidInputError(
                f"{where}: `grad` must keep its width {self._store['grad'].shape[1]}; got {batch.grad.shape[1]}."
            )
        if tuple(sorted(batch.payload)) != self._payload_keys:
            raise InvalidInputError(
                f"{where}: the payload keys must stay {list(self._payload_keys)}; got {sorted(batch.payload)}."
            )
        for key, t in batch.payload.items():
            ref = self._store[f"payload.{key}"]
            if t.dtype != ref.dtype or t.dim() != ref.dim():
                raise InvalidInputError(
                    f"{where}: `payload[{key!r}]` must keep dtype {ref.dtype} and {ref.dim()} dimensions; got "
                    f"{t.dtype} with {t.dim()}."
                )
        if batch.group.device != self._store["round"].device:
            raise InvalidInputError(
                f"{where}: the batch is on {batch.group.device}; the buffer is on {self._store['round'].device}."
            )

    def push(self, batch: RolloutBatch, features: torch.Tensor | None = None) -> torch.Tensor:
        """Store a round's rollouts (evicting old rounds first) with zero uses.

        Args:
            batch: the round's rollouts (``N >= 1``; its round number is that of its first row).
            features: optional ``(N, S)`` static features to store with them.

        Returns:
            ``(N,)`` int64 ring slots of the new rows.

        Raises:
            InvalidInputError: see [`check_compatible`][banditlib.adapters.rlvr.buffer.RolloutBuffer.check_compatible];
                nothing changes.
        """
        where = "RolloutBuffer.push()"
        self.check_compatible(batch, where, features)
        n = len(batch)
        feats = features if features is not None else torch.zeros(n, 0, device=batch.group.device)
        cols = {f: getattr(batch, f) for f in FIELDS}
        cols["features"] = feats.to(torch.float32)
        cols["uses"] = torch.zeros(n, dtype=torch.long, device=batch.group.device)
        for name in OPTIONAL:
            if getattr(batch, name) is not None:
                cols[name] = getattr(batch, name)
        cols.update({f"payload.{k}": v for k, v in batch.payload.items()})
        if not self._store:
            self._payload_keys = tuple(sorted(batch.payload))
            self._optional = tuple(name for name in OPTIONAL if getattr(batch, name) is not None)
            cap = self.rounds * n if self.max_rollouts is None else min(self.rounds * n, self.max_rollouts)
            self._allocate(cols, cap)
        e = self.evictions(n)
        if e:
            gone = sum(self._round_counts[:e])
            self._head = (self._head + gone) % self._capacity
            self._size -= gone
            del self._round_ids[:e], self._round_counts[:e]
        self._fit_trailing(cols)
        if self._size + n > self._capacity:
            self._grow(max(2 * self._capacity, self._size + n))
        start = (self._head + self._size) % self._capacity
        slots = (start + torch.arange(n, device=batch.group.device)) % self._capacity
        # At most two contiguous runs of the ring: plain slice copies, no scatter.
        first = min(n, self._capacity - start)
        runs = [(slice(start, start + first), slice(0, first))]
        if first < n:
            runs.append((slice(0, n - first), slice(first, n)))
        for name, value in cols.items():
            store = self._store[name]
            for dst, src in runs:
                if value.dim() > 1 and value.shape[1:] != store.shape[1:]:
                    store[dst] = 0
                    store[_prefix(dst, value.shape[1:])] = value[src]
                else:
                    store[dst] = value[src]
        self._size += n
        self._round_ids.append(int(batch.round[0]))
        self._round_counts.append(n)
        return slots

    def assign(self, name: str, slots: torch.Tensor, values: torch.Tensor, column: int | None = None) -> None:
        """Overwrite a stored column at ``slots`` (``features`` needs the ``column``); no checks (internal)."""
        store = self._store[name]
        if column is None:
            store[slots] = values.to(store.dtype)
        else:
            store[slots, column] = values.to(store.dtype)

    def add_uses(self, slots: torch.Tensor) -> None:
        """Count one more use of each row at ``slots`` (a slot listed twice counts twice)."""
        if slots.numel():
            self._store["uses"].index_add_(0, slots, torch.ones_like(slots))

    def _allocate(self, cols: Mapping[str, torch.Tensor], capacity: int) -> None:
        self._store = {k: v.new_zeros((capacity, *v.shape[1:])) for k, v in cols.items()}
        self._capacity = capacity

    def _fit_trailing(self, cols: Mapping[str, torch.Tensor]) -> None:
        """Grow stored trailing dimensions (zero right-padding) to fit the new rows."""
        for name, value in cols.items():
            store = self._store[name]
            if value.dim() > 1 and any(a > b for a, b in zip(value.shape[1:], store.shape[1:], strict=True)):
                shape = [max(a, b) for a, b in zip(value.shape[1:], store.shape[1:], strict=True)]
                bigger = store.new_zeros((self._capacity, *shape))
                bigger[_prefix(slice(None), store.shape[1:])] = store
                self._store[name] = bigger

    def _grow(self, capacity: int) -> None:
        """Reallocate every ring tensor with ``capacity`` rows, live rows compacted to the front in order."""
        live = self.live_slots()
        for name, store in self._store.items():
            bigger = store.new_zeros((capacity, *store.shape[1:]))
            bigger[: self._size] = store[live]
            self._store[name] = bigger
        self._capacity, self._head = capacity, 0

    # ------------------------------------------------------------------------------------------ state

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The live rows (oldest first, so independent of the ring position), their usage counts and static
        features, the round bookkeeping and the capacity."""
        state: dict[str, torch.Tensor] = {
            "round_ids": torch.tensor(self._round_ids, dtype=torch.long),
            "round_counts": torch.tensor(self._round_counts, dtype=torch.long),
            "capacity": torch.tensor(self._capacity, dtype=torch.long),
        }
        if self._store:
            live = self.live_slots()
            state.update({f"rows.{k}": v[live].clone() for k, v in self._store.items()})
        return state

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        """Load a state from [`state_dict`][banditlib.adapters.rlvr.buffer.RolloutBuffer.state_dict]; on error nothing
        changes.

        Raises:
            InvalidInputError: missing or inconsistent entries.
        """
        where = "RolloutBuffer.load_state_dict()"
        try:
            ids = torch.as_tensor(state["round_ids"]).long().reshape(-1).tolist()
            counts = torch.as_tensor(state["round_counts"]).long().reshape(-1).tolist()
            capacity = int(state["capacity"])
        except (KeyError, RuntimeError, TypeError, ValueError) as exc:
            raise InvalidInputError(f"{where}: missing or malformed bookkeeping entries: {exc}") from None
        rows = {k.removeprefix("rows."): torch.as_tensor(v) for k, v in state.items() if k.startswith("rows.")}
        size = sum(counts)
        if len(ids) != len(counts) or any(c <= 0 for c in counts) or len(ids) > self.rounds:
            raise InvalidInputError(f"{where}: `round_ids` / `round_counts` are inconsistent (or exceed `rounds`).")
        needed = {*FIELDS, "features", "uses"}
        if rows or size:
            if not needed <= set(rows) or any(v.dim() == 0 or v.shape[0] != size for v in rows.values()):
                raise InvalidInputError(f"{where}: the stored rows are missing fields or do not hold {size} rows.")
            if capacity < size:
                raise InvalidInputError(f"{where}: `capacity` {capacity} is smaller than the {size} stored rows.")
            if (
                rows["uses"].dtype != torch.long
                or rows["features"].dtype != torch.float32
                or rows["features"].dim() != 2
            ):
                raise InvalidInputError(f"{where}: `uses` must be int64 and `features` a float32 matrix.")
            if size:
                stored = make_batch(
                    [rows[f] for f in FIELDS], rows.get("logprobs"), {}, rows.get("answer"), rows.get("grad")
                )
                stored.check_finite(where)  # NaN rewards would be replayed straight into the loss
                if bool((rows["uses"] < 0).any()) or not bool(torch.isfinite(rows["features"]).all()):
                    raise InvalidInputError(f"{where}: the stored `uses` must be non-negative and `features` finite.")
                held = stored.round
                if bool((held[1:] < held[:-1]).any()) or sorted(set(held.tolist())) != sorted(ids):
                    raise InvalidInputError(f"{where}: the stored rows' rounds do not match `round_ids`.")
            # Capacity is a performance detail: refuse one far beyond what the rounds need (it is allocated).
            if capacity > max(2 * size, 2 * self.rounds * max(counts, default=1), 1024):
                raise InvalidInputError(
                    f"{where}: `capacity` {capacity:,} is far beyond what {self.rounds} rounds of at most "
                    f"{max(counts, default=0):,} rows need; the file was edited or corrupted."
                )
        store = {k: v.new_zeros((capacity, *v.shape[1:])) for k, v in rows.items()}
        for k, v in rows.items():
            store[k][:size] = v
        self._store = store
        self._payload_keys = tuple(sorted(k.removeprefix("payload.") for k in rows if k.startswith("payload.")))
        self._optional = tuple(name for name in OPTIONAL if name in rows)
        self._capacity = capacity if rows else 0
        self._head, self._size = 0, size
        self._round_ids, self._round_counts = ids, counts

    @property
    def config(self) -> dict[str, Any]:
        """Constructor arguments."""
        return {"rounds": self.rounds, "max_rollouts": self.max_rollouts}

    # Format 2 adds the payload checksum; files of format 1 have no version field.
    _file_format, _file_kind, _file_version = FORMAT, "rollout-buffer", "2"
    _file_readable, _file_unchecked, _file_unversioned = ("1", "2"), (None,), "1"

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the buffer to ``path`` (pickle-free safetensors, atomically)."""
        self._save_file(path)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> RolloutBuffer:
        """Rebuild a buffer written by [`save`][banditlib.adapters.rlvr.buffer.RolloutBuffer.save].

        Raises:
            InvalidInputError: the file is corrupted or not a buffer file.
        """
        where = "RolloutBuffer.load()"
        saved = cls._read_file(path, where)
        try:
            buf = cls(**saved.config)
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(f"{where}: the file's constructor arguments are unreadable ({exc}).") from None
        buf.load_state_dict(saved.tensors)
        return buf


def _prefix(rows: torch.Tensor | slice, trailing: Sequence[int]) -> tuple[Any, ...]:
    """Index of ``rows`` and the leading ``trailing`` sizes of every later dimension."""
    return (rows, *[slice(0, s) for s in trailing])
