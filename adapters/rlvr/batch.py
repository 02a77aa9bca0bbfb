"""One round's rollouts as tensors: [`RolloutBatch`][banditlib.adapters.rlvr.RolloutBatch].

A rollout is one completion generated for one prompt; the rollouts generated for the same prompt in the same
round form a *group* (GRPO's group of ``G`` samples). The batch keeps one tensor per statistic, all with
leading dimension ``N`` (rollouts), plus an opaque ``payload`` (token ids, masks, prompt ids ...) that is
indexed along with the rows and otherwise never looked at.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from banditlib import extend as V
from banditlib.errors import InvalidInputError

from .groups import grpo_advantage

__all__ = ["RolloutBatch"]

_FLOATS = ("reward", "advantage", "entropy", "clip_ratio", "length")
# The per-row fields, in constructor order.
FIELDS = ("group", "reward", "advantage", "entropy", "clip_ratio", "length", "truncated", "round")
# Optional per-row tensors, in constructor order after ``payload`` (``logprobs`` comes before it).
OPTIONAL = ("logprobs", "answer", "grad")
# Statistics that must be finite (the scheduler's features and the gain are computed from them).
FINITE_FIELDS = _FLOATS


def _describe(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"a tensor of dtype {value.dtype} and shape {V.fmt_shape(value.shape)}"
    return f"{type(value).__name__}"


def _as_tensor(value: Any, where: str, name: str) -> torch.Tensor:
    """A tensor as is, or a numpy array / sequence / number converted (``torch.as_tensor`` semantics)."""
    if isinstance(value, torch.Tensor):
        return value
    try:
        return torch.as_tensor(value)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise InvalidInputError(f"{where}: `{name}` could not be read as a tensor: {exc}") from None


@dataclass(frozen=True)
class RolloutBatch:
    """The rollouts of one round (or any set of rollouts), one row per rollout.

    Build one with [`from_tensors`][banditlib.adapters.rlvr.batch.RolloutBatch.from_tensors] or
    [`from_groups`][banditlib.adapters.rlvr.batch.RolloutBatch.from_groups], which convert and validate; the dataclass
    constructor itself checks shapes and dtypes only (it is also how
    [`select`][banditlib.adapters.rlvr.batch.RolloutBatch.select] and `cat` build results, cheaply).

    Attributes:
        group: ``(N,)`` int64 prompt/group id; rows with equal id (within one round) form a group.
        reward: ``(N,)`` float32 verifier reward.
        advantage: ``(N,)`` float32 advantage (GRPO: group-normalised reward).
        entropy: ``(N,)`` float32 mean token entropy of the completion.
        clip_ratio: ``(N,)`` float32 fraction of tokens whose PPO ratio was clipped at the last optimisation
            of the rollout (0 for fresh rollouts).
        length: ``(N,)`` float32 completion length in tokens.
        truncated: ``(N,)`` bool, cut off at the maximum length.
        round: ``(N,)`` int64 the round that generated the rollout.
        logprobs: ``(N, L)`` float32 behaviour per-token log-probs (padded with 0 or ``-inf``; the payload
            carries the mask), or ``None``.
        payload: name -> tensor with leading dimension ``N``, carried untouched.
        answer: ``(N,)`` int64 id of each rollout's extracted final answer, or ``None``: within a group, equal
            ids mean identical answers; ``-1`` means no answer could be extracted. Ids need not be comparable
            across groups or rounds. The consistency features and labels are built on it.
        grad: ``(N, k)`` float32 per-rollout gradient sketch, or ``None``: a fixed linear projection of the
            gradient of the rollout's mean token log-prob with respect to (part of) the model's parameters, the
            same projection in every round (see [`influence`][banditlib.adapters.rlvr.influence]). The influence label
            and filter are built on it.

    Examples:
        >>> import torch
        >>> b = RolloutBatch.from_groups([{"reward": [1.0, 0.0], "entropy": [0.5, 0.7], "length": [10, 12]},
        ...                               {"reward": [0.0], "entropy": [0.4], "length": [9]}], round=3)
        >>> len(b), b.group.tolist(), b.round.tolist()
        (3, [0, 0, 1], [3, 3, 3])
        >>> [round(a, 3) for a in b.advantage.tolist()]  # GRPO advantage: group of one gets 0
        [0.707, -0.707, 0.0]
        >>> b.select(torch.tensor([2])).reward.tolist()
        [0.0]

    References:
        Shao et al. DeepSeekMath (GRPO), arXiv 2402.03300, 2024; Lu et al. Contextual Rollout Bandits for
        Reinforcement Learning with Verifiable Rewards, arXiv 2602.08499, 2026.
    """

    group: torch.Tensor
    reward: torch.Tensor
    advantage: torch.Tensor
    entropy: torch.Tensor
    clip_ratio: torch.Tensor
    length: torch.Tensor
    truncated: torch.Tensor
    round: torch.Tensor
    logprobs: torch.Tensor | None = None
    payload: Mapping[str, torch.Tensor] = field(default_factory=dict)
    answer: torch.Tensor | None = None
    grad: torch.Tensor | None = None

    def __post_init__(self) -> None:
        self._check_structure("RolloutBatch()")

    # ------------------------------------------------------------------------------------------ checks

    def _check_structure(self, where: str) -> None:
        """Shapes, dtypes and devices (cheap: no pass over the data)."""
        n = self.group.shape[0] if self.group.dim() == 1 else -1
        device = self.group.device
        wanted: dict[str, torch.dtype] = {"group": torch.long, "truncated": torch.bool, "round": torch.long}
        wanted.update(dict.fromkeys(_FLOATS, torch.float32))
        for name, dtype in wanted.items():
            t = getattr(self, name)
            if not isinstance(t, torch.Tensor) or t.dim() != 1 or t.shape[0] != n or t.dtype != dtype:
                raise InvalidInputError(
                    f"{where}: `{name}` must be a ({n},) tensor of dtype {dtype} (matching `group`); got "
                    f"{_describe(t)}."
                )
            if t.device != device:
                raise InvalidInputError(f"{where}: `{name}` is on {t.device} but `group` is on {device}.")
        if self.logprobs is not None:
            t = self.logprobs
            if not isinstance(t, torch.Tensor) or t.dim() != 2 or t.shape[0] != n or t.dtype != torch.float32:
                raise InvalidInputError(
                    f"{where}: `logprobs` must be None or an (N, L) = ({n}, L) float32 tensor; got {_describe(t)}."
                )
            if t.device != device:
                raise InvalidInputError(f"{where}: `logprobs` is on {t.device} but `group` is on {device}.")
        if self.answer is not None:
            t = self.answer
            if not isinstance(t, torch.Tensor) or t.dim() != 1 or t.shape[0] != n or t.dtype != torch.long:
                raise InvalidInputError(
                    f"{where}: `answer` must be None or an (N,) = ({n},) int64 tensor of answer ids; got "
                    f"{_describe(t)}."
                )
            if t.device != device:
                raise InvalidInputError(f"{where}: `answer` is on {t.device} but `group` is on {device}.")
        if self.grad is not None:
            t = self.grad
            if not isinstance(t, torch.Tensor) or t.dim() != 2 or t.shape[0] != n or t.dtype != torch.float32:
                raise InvalidInputError(
                    f"{where}: `grad` must be None or an (N, k) = ({n}, k) float32 tensor of gradient sketches; got "
                    f"{_describe(t)}."
                )
            if t.device != device:
                raise InvalidInputError(f"{where}: `grad` is on {t.device} but `group` is on {device}.")
        if not isinstance(self.payload, Mapping):
            raise InvalidInputError(
                f"{where}: `payload` must be a mapping of names to tensors; got {_describe(self.payload)}."
            )
        for key, t in self.payload.items():
            if not isinstance(key, str) or not isinstance(t, torch.Tensor) or t.dim() == 0 or t.shape[0] != n:
                raise InvalidInputError(
                    f"{where}: `payload[{key!r}]` must be a tensor with leading dimension N = {n}; got {_describe(t)}."
                )
            if t.device != device:
                raise InvalidInputError(f"{where}: `payload[{key!r}]` is on {t.device} but `group` is on {device}.")

    def check_finite(self, where: str) -> None:
        """Raise [`InvalidInputError`][banditlib.InvalidInputError] naming the first non-finite statistic.

        Args:
            where: the public method on whose behalf the check runs, for the message.
        """
        for name in (*FINITE_FIELDS, "grad"):
            t = getattr(self, name)
            if t is not None and not V.all_finite(t):
                bad = int((~torch.isfinite(t)).sum())
                raise InvalidInputError(f"{where}: `{name}` must be finite; got {bad} NaN or infinite value(s).")
        if self.answer is not None and self.answer.numel() and int(self.answer.min()) < -1:
            raise InvalidInputError(
                f"{where}: `answer` ids must be >= 0, or -1 for 'no answer'; got {int(self.answer.min())}."
            )

    # ------------------------------------------------------------------------------------------ constructors

    @classmethod
    def from_tensors(
        cls,
        *,
        group: Any,
        reward: Any,
        advantage: Any = None,
        entropy: Any,
        clip_ratio: Any = None,
        length: Any,
        truncated: Any = None,
        round: Any = 0,
        logprobs: Any = None,
        payload: Mapping[str, Any] | None = None,
        answer: Any = None,
        grad: Any = None,
    ) -> RolloutBatch:
        """Build a batch from plain tensors (or numpy arrays / sequences), validating everything.

        Args:
            group: ``(N,)`` integer group ids.
            reward: ``(N,)`` verifier rewards (finite).
            advantage: ``(N,)`` advantages, or ``None`` for GRPO's ``(r - mean_g) / (std_g + 1e-4)`` per group
                (unbiased std; 0 for a group of one).
            entropy: ``(N,)`` mean token entropies (finite).
            clip_ratio: ``(N,)`` clip ratios, or ``None`` for zeros.
            length: ``(N,)`` completion lengths.
            truncated: ``(N,)`` bool (or 0/1 integers), or ``None`` for all ``False``.
            round: an integer for every row, or ``(N,)`` integers.
            logprobs: ``(N, L)`` behaviour log-probs or ``None`` (not checked for finiteness: padding may be
                ``-inf``).
            payload: name -> tensor with leading dimension ``N``.
            answer: ``(N,)`` integer answer ids (``-1``: no answer) or ``None``; see the class attributes.
            grad: ``(N, k)`` per-rollout gradient sketches (finite) or ``None``.

        Returns:
            The batch, every tensor on the device of ``reward`` (CPU for non-tensors).

        Raises:
            InvalidInputError: a wrong shape, dtype or device, NaN or infinite statistics (naming the field),
                truncation flags other than 0/1, or answer ids below -1.
        """
        where = "RolloutBatch.from_tensors()"
        r0 = _as_tensor(reward, where, "reward")
        device = r0.device
        if r0.dim() != 1:
            raise InvalidInputError(f"{where}: `reward` must have shape (N,); got {V.fmt_shape(r0.shape)}.")
        n = r0.shape[0]

        def real(value: Any, name: str) -> torch.Tensor:
            t = V.as_real_tensor(_as_tensor(value, where, name), where, name, dtype=torch.float32, device=device)
            if t.dim() != 1 or t.shape[0] != n:
                raise InvalidInputError(
                    f"{where}: `{name}` must have shape (N,) = ({n},) to match `reward`; got {V.fmt_shape(t.shape)}."
                )
            return t

        def integer(value: Any, name: str) -> torch.Tensor:
            if isinstance(value, numbers.Integral) and not isinstance(value, bool):
                return torch.full((n,), int(value), dtype=torch.long, device=device)
            if isinstance(value, torch.Tensor) and value.dim() == 0:
                value = value.expand(n)
            t = V.as_index_tensor(_as_tensor(value, where, name), where, name, device=device)
            if t.dim() != 1 or t.shape[0] != n:
                raise InvalidInputError(
                    f"{where}: `{name}` must have shape (N,) = ({n},) to match `reward`; got {V.fmt_shape(t.shape)}."
                )
            return t

        g = integer(group, "group")
        rew = real(r0, "reward")
        ent = real(entropy, "entropy")
        clip = torch.zeros(n, device=device) if clip_ratio is None else real(clip_ratio, "clip_ratio")
        ln = real(length, "length")
        adv = grpo_advantage(g, rew.double()).float() if advantage is None else real(advantage, "advantage")
        if truncated is None:
            tr = torch.zeros(n, dtype=torch.bool, device=device)
        else:
            t = _as_tensor(truncated, where, "truncated").to(device)
            if t.dtype != torch.bool:
                if t.is_floating_point() or t.is_complex() or bool(((t != 0) & (t != 1)).any()):
                    raise InvalidInputError(f"{where}: `truncated` must be booleans (or 0/1); got {_describe(t)}.")
                t = t.to(torch.bool)
            if t.shape != (n,):
                raise InvalidInputError(
                    f"{where}: `truncated` must have shape (N,) = ({n},) to match `reward`; got {V.fmt_shape(t.shape)}."
                )
            tr = t
        rnd = integer(round, "round")
        lp = None
        if logprobs is not None:
            lp = V.as_real_tensor(
                _as_tensor(logprobs, where, "logprobs"), where, "logprobs", dtype=torch.float32, device=device,
                finite=False,
            )  # fmt: skip
            if lp.dim() != 2 or lp.shape[0] != n:
                raise InvalidInputError(
                    f"{where}: `logprobs` must have shape (N, L) with N = {n}; got {V.fmt_shape(lp.shape)}."
                )
        pl: dict[str, torch.Tensor] = {}
        for key, value in (payload or {}).items():
            pl[str(key)] = _as_tensor(value, where, f"payload[{key!r}]").to(device)
        ans = None
        if answer is not None:
            ans = V.as_index_tensor(_as_tensor(answer, where, "answer"), where, "answer", device=device)
            if ans.shape != (n,):
                raise InvalidInputError(
                    f"{where}: `answer` must have shape (N,) = ({n},) to match `reward`; got {V.fmt_shape(ans.shape)}."
                )
        gr = None
        if grad is not None:
            gr = V.as_real_tensor(_as_tensor(grad, where, "grad"), where, "grad", dtype=torch.float32, device=device)
            if gr.dim() != 2 or gr.shape[0] != n:
                raise InvalidInputError(
                    f"{where}: `grad` must have shape (N, k) with N = {n}; got {V.fmt_shape(gr.shape)}."
                )
        batch = cls(g, rew, adv, ent, clip, ln, tr, rnd, lp, pl, ans, gr)
        batch.check_finite(where)
        return batch

    @classmethod
    def from_groups(
        cls,
        groups: Sequence[Mapping[str, Any]],
        round: Any = 0,
    ) -> RolloutBatch:
        """Build a batch from one mapping per group; group ``i`` gets id ``i``.

        Args:
            groups: per group a mapping with the keys of `from_tensors` except ``group`` and ``round``
                (``reward``, ``entropy``, ``length`` required; ``advantage``, ``clip_ratio``, ``truncated``,
                ``logprobs``, ``payload``, ``answer``, ``grad`` optional, and present in every group or in none).
            round: the round of every row.

        Returns:
            The concatenated batch (advantages computed per group when absent).

        Raises:
            InvalidInputError: no groups, an empty group, keys that differ between groups, or anything
                `from_tensors` rejects.
        """
        where = "RolloutBatch.from_groups()"
        if not isinstance(groups, Sequence) or len(groups) == 0:
            raise InvalidInputError(f"{where}: `groups` must be a non-empty sequence of mappings; got {groups!r:.80}.")
        keys = set(groups[0])
        allowed = {"reward", "advantage", "entropy", "clip_ratio", "length", "truncated", "logprobs", "payload",
                   "answer",
                   "grad"}  # fmt: skip
        cols: dict[str, list[torch.Tensor]] = {}
        payload: dict[str, list[torch.Tensor]] = {}
        sizes = []
        for i, grp in enumerate(groups):
            if not isinstance(grp, Mapping) or set(grp) != keys:
                raise InvalidInputError(
                    f"{where}: every group must be a mapping with the same keys as group 0 ({sorted(keys)}); "
                    f"group {i} has {sorted(grp) if isinstance(grp, Mapping) else _describe(grp)}."
                )
            unknown = keys - allowed
            if unknown:
                raise InvalidInputError(f"{where}: unknown keys {sorted(unknown)}; allowed: {sorted(allowed)}.")
            r = _as_tensor(grp.get("reward"), where, f"groups[{i}]['reward']")
            if r.dim() != 1 or r.shape[0] == 0:
                raise InvalidInputError(
                    f"{where}: group {i} must hold at least one rollout (`reward` of shape (n,), n >= 1); got "
                    f"{V.fmt_shape(r.shape)}."
                )
            sizes.append(r.shape[0])
            for key in keys - {"payload"}:
                cols.setdefault(key, []).append(_as_tensor(grp[key], where, f"groups[{i}][{key!r}]"))
            for pk, pv in (grp.get("payload") or {}).items():
                payload.setdefault(pk, []).append(_as_tensor(pv, where, f"groups[{i}]['payload'][{pk!r}]"))

        def joined(parts: list[torch.Tensor], name: str) -> torch.Tensor:
            try:
                return torch.cat([p.reshape(-1) if p.dim() == 0 else p for p in parts])
            except RuntimeError as exc:
                raise InvalidInputError(f"{where}: the groups' `{name}` cannot be concatenated: {exc}") from None

        args = {key: joined(parts, key) for key, parts in cols.items()}
        device = args["reward"].device
        group = torch.repeat_interleave(torch.arange(len(sizes), device=device), torch.tensor(sizes, device=device))
        pl = {key: joined(parts, f"payload[{key!r}]") for key, parts in payload.items()}
        return cls.from_tensors(group=group, round=round, payload=pl, **args)

    # ------------------------------------------------------------------------------------------ ops

    def __len__(self) -> int:
        return int(self.group.shape[0])

    def select(self, index: torch.Tensor) -> RolloutBatch:
        """The rows ``index`` (``(n,)`` int64 positions, or an ``(N,)`` bool mask), payload included."""
        if index.dtype == torch.bool:
            if index.shape != self.group.shape:
                raise InvalidInputError(
                    f"RolloutBatch.select(): a boolean `index` must have shape (N,) = ({len(self)},); got "
                    f"{V.fmt_shape(index.shape)}."
                )
            index = torch.nonzero(index).squeeze(1)
        elif index.dtype != torch.long or index.dim() != 1:
            raise InvalidInputError(
                f"RolloutBatch.select(): `index` must be an (n,) int64 tensor or an (N,) bool mask; got "
                f"{_describe(index)}."
            )
        index = index.to(self.group.device)
        if index.numel() and (int(index.min()) < -len(self) or int(index.max()) >= len(self)):
            raise InvalidInputError(f"RolloutBatch.select(): `index` must be row positions in [0, {len(self)}).")
        return make_batch(
            [getattr(self, f)[index] for f in FIELDS],
            None if self.logprobs is None else self.logprobs[index],
            {k: v[index] for k, v in self.payload.items()},
            *(None if t is None else t[index] for t in (self.answer, self.grad)),
        )

    @classmethod
    def cat(cls, batches: Sequence[RolloutBatch]) -> RolloutBatch:
        """Concatenate batches row-wise. They must agree on ``logprobs``, ``answer`` and ``grad`` presence (and
        widths) and on payload keys and trailing shapes.

        Raises:
            InvalidInputError: no batches, or batches that disagree.
        """
        where = "RolloutBatch.cat()"
        if len(batches) == 0:
            raise InvalidInputError(f"{where}: `batches` must hold at least one batch.")
        first = batches[0]
        keys = set(first.payload)
        for i, b in enumerate(batches):
            for name in OPTIONAL:
                if (getattr(b, name) is None) != (getattr(first, name) is None):
                    raise InvalidInputError(f"{where}: batch {i} disagrees with batch 0 on `{name}` presence.")
            if set(b.payload) != keys:
                raise InvalidInputError(f"{where}: batch {i} disagrees with batch 0 on the payload keys.")

        def joined(name: str) -> torch.Tensor | None:
            return None if getattr(first, name) is None else torch.cat([getattr(b, name) for b in batches])

        try:
            cols = [torch.cat([getattr(b, f) for b in batches]) for f in FIELDS]
            pl = {k: torch.cat([b.payload[k] for b in batches]) for k in keys}
            lp, ans, gr = (joined(name) for name in OPTIONAL)
        except RuntimeError as exc:
            raise InvalidInputError(f"{where}: the batches' shapes or devices do not fit together: {exc}") from None
        return make_batch(cols, lp, pl, ans, gr)

    def group_ids(self) -> torch.Tensor:
        """The distinct group ids, ascending: ``(G,)`` int64."""
        return torch.unique(self.group)

    def to(self, device: torch.device | str) -> RolloutBatch:
        """The same batch on ``device``."""
        return make_batch(
            [getattr(self, f).to(device) for f in FIELDS],
            None if self.logprobs is None else self.logprobs.to(device),
            {k: v.to(device) for k, v in self.payload.items()},
            *(None if t is None else t.to(device) for t in (self.answer, self.grad)),
        )

    @classmethod
    def empty_like(cls, batch: RolloutBatch) -> RolloutBatch:
        """A batch with zero rows and the same logprobs width and payload layout as ``batch``."""
        return batch.select(torch.zeros(0, dtype=torch.long, device=batch.group.device))


def make_batch(
    cols: Sequence[torch.Tensor],
    logprobs: torch.Tensor | None,
    payload: Mapping[str, torch.Tensor],
    answer: torch.Tensor | None = None,
    grad: torch.Tensor | None = None,
) -> RolloutBatch:
    """A batch from the eight per-row columns in `FIELDS` order (structure checked, data not)."""
    g, r, a, e, c, n, t, rd = cols
    return RolloutBatch(g, r, a, e, c, n, t, rd, logprobs, payload, answer, grad)
