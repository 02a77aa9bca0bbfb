"""What every rollout scheduler shares: [`Schedule`][banditlib.adapters.rlvr.Schedule],
[`Scheduler`][banditlib.adapters.rlvr.Scheduler], and vectorised ranking."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import torch

from banditlib import extend
from banditlib.errors import InvalidInputError, StateError
from banditlib.extend import Persistent

from .batch import RolloutBatch

__all__ = ["Schedule", "Scheduler", "SchedulerLike"]

FORMAT = "banditlib.rlvr.scheduler"
FORMAT_VERSION = "2"
READABLE_VERSIONS = ("1", "2")  # 1: before the rule/label redesign (no checksum), upgraded on load
_REGISTRY: dict[str, type[Scheduler]] = {}
S = TypeVar("S", bound="Scheduler")


@dataclass(frozen=True)
class Schedule:
    """What a scheduler decides for one round.

    Attributes:
        fresh: ``(n_fresh,)`` int64 ascending indices into the batch given to ``schedule()``: the fresh
            rollouts to train on.
        fresh_weight: ``(n_fresh,)`` float32 loss weight of each.
        replay: buffered rollouts to train on again (``len`` 0 when none), with their stored ``logprobs``,
            ``payload`` and ``round`` (age = current round - ``round``).
        replay_weight: ``(n_replay,)`` float32.
        scores: ``(N,)`` float32 score of every fresh rollout (NaN when the scheduler does not score).
        predicted_gain: the model's prediction of this round's gain (NaN without a model).

    Examples:
        Schedulers build it; by hand, keeping rows 0 and 2 of a round of four, at half weight for row 2:

        >>> b = RolloutBatch.from_groups([{"reward": [1.0, 0.0, 1.0, 0.0], "entropy": [0.1] * 4, "length": [3] * 4}])
        >>> s = Schedule(fresh=torch.tensor([0, 2]), fresh_weight=torch.tensor([1.0, 0.5]),
        ...              replay=RolloutBatch.empty_like(b), replay_weight=torch.ones(0),
        ...              scores=torch.full((4,), math.nan), predicted_gain=math.nan)
        >>> s.num_train, s.kept_share  # (1 + 0.5) / 4
        (2, 0.375)
    """

    fresh: torch.Tensor
    fresh_weight: torch.Tensor
    replay: RolloutBatch
    replay_weight: torch.Tensor
    scores: torch.Tensor
    predicted_gain: float

    @classmethod
    def keep(
        cls,
        batch: RolloutBatch,
        rows: torch.Tensor,
        *,
        scores: torch.Tensor | None = None,
        replay: RolloutBatch | None = None,
        predicted_gain: float = math.nan,
    ) -> Schedule:
        """The schedule that trains on some of ``batch``'s fresh rollouts at weight 1, plus replayed ones at
        weight 1: what most schedulers return.

        Args:
            batch: the round's rollouts (``N`` rows), as given to ``schedule()``.
            rows: the fresh rollouts to keep: ``(N,)`` bool, or ``(n_fresh,)`` int64 ascending indices.
            scores: ``(N,)`` scores of the fresh rollouts (default NaN: the scheduler does not score).
            replay: buffered rollouts to train on again (default none).
            predicted_gain: the model's prediction of the round's gain (default NaN).

        Returns:
            The [`Schedule`][banditlib.adapters.rlvr.Schedule].

        Examples:
            >>> b = RolloutBatch.from_groups([{"reward": [1.0, 0.0, 1.0], "entropy": [0.1] * 3, "length": [3] * 3}])
            >>> s = Schedule.keep(b, b.reward > 0)
            >>> s.fresh.tolist(), s.fresh_weight.tolist(), len(s.replay), s.kept_share
            ([0, 2], [1.0, 1.0], 0, 0.6666666666666666)
        """
        device = batch.group.device
        fresh = torch.nonzero(rows).squeeze(1) if rows.dtype == torch.bool else rows
        replay = RolloutBatch.empty_like(batch) if replay is None else replay
        return cls(
            fresh=fresh, fresh_weight=torch.ones(fresh.shape[0], device=device), replay=replay,
            replay_weight=torch.ones(len(replay), device=device),
            scores=nan_scores(len(batch), device) if scores is None else scores, predicted_gain=predicted_gain,
        )  # fmt: skip

    @property
    def num_train(self) -> int:
        """Rollouts in the loss this round: fresh plus replayed."""
        return int(self.fresh.shape[0]) + len(self.replay)

    @property
    def kept_share(self) -> float:
        """Share of the round's fresh rollouts kept, weighted: ``sum(fresh_weight) / N`` (1.0 keeps all)."""
        n = int(self.scores.shape[0])
        return float(self.fresh_weight.double().sum()) / n if n else 0.0


class SchedulerLike(Protocol):
    """What the simulator's loop ([`run`][banditlib.adapters.rlvr.sim.loop.run]) and the trainer adapters need of a
    scheduler; every [`Scheduler`][banditlib.adapters.rlvr.Scheduler] has it. A structural type: any object with
    these members will do, no base class needed. A scheduler whose ``uses_probe`` attribute is true also gets
    the round's trusted probe batch, as ``probe=``, in both calls, where there is one
    ([`Simulator.probe`][banditlib.adapters.rlvr.sim.loop.Simulator.probe]); one whose ``replays`` attribute is
    false may be run where rows cannot travel (verl's sampler, ``BanditGRPOTrainer(gather="statistics")``).
    Replayed rows must come from earlier batches (they need their ``logprobs`` and ``payload``).

    Attributes:
        name: the run's name ([`RunResult.name`][banditlib.adapters.rlvr.sim.loop.RunResult]).

    Examples:
        A minimal scheduler: the first half of every round, nothing learned.

        >>> class FirstHalf:
        ...     name = "first-half"
        ...     def schedule(self, batch):
        ...         return Schedule.keep(batch, torch.arange(len(batch) // 2))
        ...     def observe(self, batch):
        ...         return None
        >>> b = RolloutBatch.from_groups([{"reward": [1.0, 0.0, 1.0, 0.0], "entropy": [0.1] * 4, "length": [3] * 4}])
        >>> FirstHalf().schedule(b).fresh.tolist()
        [0, 1]
    """

    name: str

    def schedule(self, batch: RolloutBatch) -> Schedule:
        """The decision for round ``t``'s fresh rollouts.

        Args:
            batch: the round's rollouts.

        Returns:
            The [`Schedule`][banditlib.adapters.rlvr.Schedule]; the simulator and the trainers check its shapes.
        """
        ...

    def observe(self, batch: RolloutBatch) -> float | None:
        """Round ``t + 1``'s fresh rollouts, the outcome of the last decision.

        Args:
            batch: the next round's rollouts.

        Returns:
            The observed gain (the simulator records it as ``observed_gain``), or ``None``.
        """
        ...


class Scheduler(Persistent):
    """Base class of rollout schedulers: the round protocol, input checks and pickle-free persistence.

    The loop::

        b = generate()
        while training:
            s = scheduler.schedule(b)   # round t: which rollouts to train on
            train(b, s)
            b = generate()              # round t + 1
            scheduler.observe(b)        # the label of round t's selection (CBS learns; baselines check order)

    ``schedule`` takes one round's fresh rollouts (all with the same ``round``, larger than any round seen
    before; NaN statistics are rejected); ``observe`` the next round's, and raises
    [`StateError`][banditlib.StateError] unless a ``schedule`` is waiting for its label (calling
    ``schedule`` twice without ``observe`` is allowed: the first selection's label is then never learned).
    Every method that raises leaves ``state_dict()`` unchanged.

    Examples:
        >>> from banditlib.adapters.rlvr import RolloutBatch, UniformScheduler
        >>> mk = lambda t: RolloutBatch.from_groups([{"reward": [1.0, 0.0], "entropy": [0.3, 0.4],
        ...                                           "length": [5, 9]}], round=t)
        >>> sch = UniformScheduler()
        >>> s = sch.schedule(mk(0)); s.fresh.tolist(), s.num_train
        ([0, 1], 2)
        >>> sch.observe(mk(1)) is None
        True

    References:
        Lu et al. Contextual Rollout Bandits for Reinforcement Learning with Verifiable Rewards, arXiv
        2602.08499, 2026 (the round protocol).
    """

    name: str = "scheduler"
    uses_probe: bool = False  # whether the scheduler reads a trusted `probe` batch (trainers skip building one)
    replays: bool = False  # whether its schedules may replay buffered rollouts (hooks that only select refuse it)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not cls.__name__.startswith("_"):
            _REGISTRY[cls.__name__] = cls

    def __init__(self) -> None:
        self._last_round: int | None = None
        self._pending = False

    # ------------------------------------------------------------------------------------------ protocol

    @property
    def config(self) -> dict[str, Any]:
        """Constructor arguments, JSON-serialisable."""
        return {}

    def schedule(self, batch: RolloutBatch, probe: RolloutBatch | None = None) -> Schedule:
        """Decide which of round ``t``'s fresh rollouts to train on and which buffered ones to replay.

        Args:
            batch: the round's rollouts (``N >= 1``, one ``round`` value, finite statistics).
            probe: optional rollouts of a small trusted prompt set scored by a strict verifier (or their
                reference answers), of the same round, with gradient sketches; used by schedulers that align
                with a probe ([`InfluenceFilter`][banditlib.adapters.rlvr.InfluenceFilter]), ignored by the others.

        Returns:
            The [`Schedule`][banditlib.adapters.rlvr.Schedule].

        Raises:
            InvalidInputError: an empty batch, mixed or non-increasing rounds, NaN or infinite statistics,
                a batch the buffer cannot store, or a probe of another round; the state is unchanged.
        """
        where = f"{type(self).__name__}.schedule()"
        round_ = self._check_batch(batch, where)
        self._check_probe(probe, round_, where)
        out = self._schedule(batch, round_, where, probe)
        self._last_round, self._pending = round_, True
        return out

    def observe(self, batch: RolloutBatch, probe: RolloutBatch | None = None) -> float | None:
        """Take the next round's fresh rollouts as the outcome of the last ``schedule``.

        Args:
            batch: round ``t + 1``'s rollouts (before ``schedule`` of that round).
            probe: optional trusted probe rollouts of round ``t + 1`` (see
                [`schedule`][banditlib.adapters.rlvr.Scheduler.schedule]), for labels that measure the last selection
                against a probe ([`InfluenceLabel`][banditlib.adapters.rlvr.InfluenceLabel]).

        Returns:
            The observed gain of round ``t`` for a round-level label, the mean label of the round's labelled
            rollouts for a per-rollout label (``None`` for schedulers that learn nothing, or when nothing was
            labelled).

        Raises:
            StateError: no ``schedule`` awaits its outcome.
            InvalidInputError: a bad batch or probe (as for [`schedule`][banditlib.adapters.rlvr.Scheduler.schedule]);
                the state is unchanged.
        """
        where = f"{type(self).__name__}.observe()"
        if not self._pending:
            why = (
                "no round was scheduled yet"
                if self._last_round is None
                else f"round {self._last_round} was already observed"
            )
            raise StateError(
                f"{where}: call schedule() on round t's rollouts before observe() on round t + 1's; {why}."
            )
        round_ = self._check_batch(batch, where)
        self._check_probe(probe, round_, where)
        out = self._observe(batch, round_, where, probe)
        self._pending = False
        return out

    @staticmethod
    def _check_probe(probe: RolloutBatch | None, round_: int, where: str) -> None:
        if probe is None:
            return
        if not isinstance(probe, RolloutBatch):
            raise InvalidInputError(f"{where}: `probe` must be a RolloutBatch or None; got {type(probe).__name__}.")
        if len(probe) == 0:
            raise InvalidInputError(f"{where}: `probe` holds no rollouts.")
        probe.check_finite(f"{where} (probe)")
        lo, hi = int(probe.round.min()), int(probe.round.max())
        if lo != round_ or hi != round_:
            raise InvalidInputError(
                f"{where}: `probe` must come from the same round as `batch` ({round_}); got round {lo}"
                f"{'' if lo == hi else f' to {hi}'}."
            )

    def _check_batch(self, batch: RolloutBatch, where: str) -> int:
        if not isinstance(batch, RolloutBatch):
            raise InvalidInputError(f"{where}: `batch` must be a RolloutBatch; got {type(batch).__name__}.")
        if len(batch) == 0:
            raise InvalidInputError(f"{where}: `batch` holds no rollouts.")
        batch.check_finite(where)
        lo, hi = int(batch.round.min()), int(batch.round.max())
        if lo != hi:
            raise InvalidInputError(f"{where}: every rollout of `batch` must have the same `round`; got {lo} to {hi}.")
        if self._last_round is not None and lo <= self._last_round:
            raise InvalidInputError(
                f"{where}: rounds must increase; got round {lo} after round {self._last_round} was scheduled."
            )
        return lo

    def _schedule(self, batch: RolloutBatch, round_: int, where: str, probe: RolloutBatch | None) -> Schedule:
        raise NotImplementedError

    def _observe(self, batch: RolloutBatch, round_: int, where: str, probe: RolloutBatch | None) -> float | None:
        return None

    # ------------------------------------------------------------------------------------------ state

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Everything that determines later decisions, as named tensors (copies)."""
        return {
            "last_round": torch.tensor(0 if self._last_round is None else self._last_round, dtype=torch.long),
            "has_round": torch.tensor(self._last_round is not None),
            "pending": torch.tensor(self._pending),
        }

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        """Load a state from [`state_dict`][banditlib.adapters.rlvr.Scheduler.state_dict] (of a scheduler built with the
        same arguments); on error nothing changes.

        Raises:
            InvalidInputError: missing or malformed entries.
        """
        where = f"{type(self).__name__}.load_state_dict()"
        try:
            has, last, pending = bool(state["has_round"]), int(state["last_round"]), bool(state["pending"])
        except (KeyError, RuntimeError, TypeError, ValueError) as exc:
            raise InvalidInputError(f"{where}: missing or malformed round bookkeeping: {exc}") from None
        self._load_extra(state, where)
        self._last_round = last if has else None
        self._pending = pending and has

    def _load_extra(self, state: Mapping[str, torch.Tensor], where: str) -> None:
        """Subclasses: validate and load their part of ``state`` (all-or-nothing)."""

    _file_format, _file_kind, _file_version = FORMAT, "rollout-scheduler", FORMAT_VERSION
    _file_readable, _file_unchecked, _file_classes = READABLE_VERSIONS, ("1",), _REGISTRY

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the scheduler (class, arguments, state: buffer and policy included) to ``path``, pickle-free."""
        self._save_file(path)

    @classmethod
    def load(cls: type[S], path: str | os.PathLike[str], **kwargs: Any) -> S:
        """Rebuild a scheduler written by [`save`][banditlib.adapters.rlvr.Scheduler.save]; it makes the same decisions
        as the saved one.

        Args:
            path: the file.
            **kwargs: constructor arguments that cannot be saved (a ``featurizer`` with custom features).

        Raises:
            InvalidInputError: a corrupted or foreign file, or one holding another scheduler class.
        """
        where = f"{cls.__name__}.load()"
        saved = cls._read_file(path, where)
        target = saved.target
        config, tensors = target._upgrade(saved.version, saved.config, dict(saved.tensors), where)
        obj = target._from_saved(config, tensors, saved.metadata, kwargs, where)
        obj.load_state_dict(tensors)
        return obj

    def restore(self, path: str | os.PathLike[str]) -> None:
        """Load, in place, the state [`save`][banditlib.adapters.rlvr.Scheduler.save] wrote to ``path`` into this
        scheduler, built with the saved class and constructor arguments: for a scheduler holding what a file
        cannot rebuild (a custom featurizer), or one a trainer already holds. All or nothing.

        Args:
            path: the file.

        Raises:
            InvalidInputError: a corrupted or foreign file, or one holding another scheduler class, other
                constructor arguments (of those the file records) or a state that does not fit; the scheduler is
                unchanged.

        Examples:
            >>> import os, tempfile
            >>> from banditlib.adapters.rlvr import DynamicSamplingFilter
            >>> b = RolloutBatch.from_groups([{"reward": [1.0, 0.0], "entropy": [0.1, 0.2], "length": [3, 4]}])
            >>> saved = DynamicSamplingFilter(); _ = saved.schedule(b)
            >>> path = os.path.join(tempfile.mkdtemp(), "s.safetensors"); saved.save(path)
            >>> again = DynamicSamplingFilter(); again.restore(path); again.state_dict()["has_round"].item()
            True
        """
        where = f"{type(self).__name__}.restore()"
        saved = type(self)._read_file(path, where)
        if saved.target is not type(self):
            raise InvalidInputError(
                f"{where}: {os.fspath(path)!r} holds a {saved.target.__name__}, not a {type(self).__name__}."
            )
        config, tensors = type(self)._upgrade(saved.version, saved.config, dict(saved.tensors), where)
        mine = json.loads(json.dumps(self.config))
        if not _recorded_in(config, mine):  # arguments added since the file was written are not in it
            raise InvalidInputError(
                f"{where}: {os.fspath(path)!r} holds a {type(self).__name__} built with {config}, this one was built "
                f"with {mine}."
            )
        self.load_state_dict(tensors)

    @classmethod
    def _upgrade(
        cls, version: str, config: dict[str, Any], tensors: dict[str, torch.Tensor], where: str
    ) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        """Convert the configuration and state of an older file format (identity unless a subclass changed)."""
        return config, tensors

    @classmethod
    def _from_saved(
        cls, config: dict[str, Any], tensors: Mapping[str, torch.Tensor], meta: Mapping[str, str],
        kwargs: dict[str, Any], where: str,
    ) -> Scheduler:  # fmt: skip
        try:
            return cls(**{**config, **kwargs})
        except TypeError as exc:
            raise InvalidInputError(f"{where}: the file's arguments do not fit {cls.__name__}: {exc}") from None


class _BufferedScheduler(Scheduler):
    """A scheduler holding a rollout buffer in ``self.buffer``: its entries are saved and loaded under
    ``buffer.`` with the rest of the state."""

    buffer: Any

    def state_dict(self) -> dict[str, torch.Tensor]:
        state = super().state_dict()
        state.update({f"buffer.{k}": v for k, v in self.buffer.state_dict().items()})
        return state

    def _load_extra(self, state: Mapping[str, torch.Tensor], where: str) -> None:
        part = {k.removeprefix("buffer."): v for k, v in state.items() if k.startswith("buffer.")}
        if not part:
            raise InvalidInputError(f"{where}: the state holds no buffer entries.")
        self.buffer.load_state_dict(part)


# ---------------------------------------------------------------------------------------------- helpers


def tie_keys(seed: int, counter: int, n: int, device: torch.device) -> torch.Tensor:
    """``(n,)`` int64 random keys in ``[0, 2**31)`` for decision ``counter``: a pure function of the inputs."""
    mixed = extend.mix64(torch.tensor([seed, counter], dtype=torch.long))
    gen = torch.Generator().manual_seed(int(mixed[0] ^ extend.mix64(mixed[1:])[0]) & ((1 << 63) - 1))
    return torch.randint(0, 1 << 31, (n,), generator=gen).to(device)


def rank_keys(scores: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """int64 keys ordering like ``scores`` (float32, ``-inf`` allowed, no NaN), exact ties by ``keys``.

    The float32 bits are mapped to an order-preserving int32, shifted left by 32 and combined with a 31-bit
    random key, so one integer ``topk`` ranks lexicographically by (score, random key).
    """
    bits = (scores.to(torch.float32) + 0.0).view(torch.int32).to(torch.long)  # + 0.0 turns -0.0 into +0.0
    ordered = torch.where(bits < 0, bits ^ 0x7FFFFFFF, bits)
    return (ordered << 32) | keys


def _recorded_in(saved: Any, current: Any) -> bool:
    """Whether every argument ``saved`` records (recursively, for nested configurations) has its value in
    ``current``; keys ``current`` has beyond them are arguments added since."""
    if isinstance(saved, dict):
        return isinstance(current, dict) and all(k in current and _recorded_in(v, current[k]) for k, v in saved.items())
    return bool(saved == current)


def nan_scores(n: int, device: torch.device) -> torch.Tensor:
    """``(n,)`` float32 NaN: the scores of a scheduler that does not score."""
    return torch.full((n,), math.nan, dtype=torch.float32, device=device)
