"""Rollout selection over OpenRLHF-style ``Experience`` lists: two thin functions around
`banditlib.adapters.rlvr`.

OpenRLHF hands the PPO/GRPO update a list of ``Experience`` dataclasses (micro-batches of rows:
``sequences``, ``action_log_probs``, ``advantages``, ``action_mask``, ... and an ``info`` dict with
``reward``), the ``n_samples_per_prompt`` samples of a prompt consecutive. Call, after
``compute_advantages_and_returns``::

    batch = rollout_batch_from_experiences(experiences, n_samples_per_prompt=n, round=step)
    if step > 0:
        scheduler.observe(batch)
    experiences = apply_schedule_to_experiences(experiences, scheduler.schedule(batch))

Rows stay in their own micro-batch (each ``Experience`` is indexed with its selected rows; empty ones are
dropped), so no re-padding is needed. Replay is not supported here (an ``Experience`` pads its rows to its
own widths): a schedule with replayed rows raises. Nothing here imports OpenRLHF.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import torch

from banditlib.errors import InvalidInputError

from .rlvr.batch import RolloutBatch

__all__ = ["apply_schedule_to_experiences", "rollout_batch_from_experiences"]


def _rows(exp: Any) -> int:
    return int(exp.action_mask.shape[0])


def _index(value: Any, idx: torch.Tensor, n: int) -> Any:
    """``value`` restricted to rows ``idx`` when it has ``n`` rows (tensors, lists, dicts of those)."""
    if isinstance(value, torch.Tensor) and value.dim() >= 1 and value.shape[0] == n:
        return value[idx.to(value.device)]
    if isinstance(value, list) and len(value) == n:
        return [value[i] for i in idx.tolist()]
    if isinstance(value, dict):
        return {k: _index(v, idx, n) for k, v in value.items()}
    return value


def rollout_batch_from_experiences(
    experiences: Sequence[Any], *, n_samples_per_prompt: int, round: int, answer: Any = None
) -> RolloutBatch:
    """The rows of all ``experiences`` (in order) as a [`RolloutBatch`][banditlib.adapters.rlvr.RolloutBatch] on CPU.

    group ``row // n_samples_per_prompt``; reward ``info["reward"]``; advantage the masked mean of
    ``advantages`` over ``action_mask``; entropy ``-mean(action_log_probs)`` over the action tokens (the
    sampled-token estimate); length the action tokens; truncated: the response fills the last column. The
    payload holds each row's ``(experience, row)`` position. Every statistic is float32. Only the attributes
    ``action_mask``, ``action_log_probs``, ``advantages`` and ``info`` are read.

    Args:
        experiences: the step's ``Experience`` objects (micro-batches), in row order.
        n_samples_per_prompt: rollouts per prompt ``G``: rows ``G g .. G g + G - 1`` form group ``g``.
        round: the training step.
        answer: optional ``(N,)`` integer answer ids in row order (``RolloutBatch.answer``: equal ids within a
            group for identical final answers, ``-1`` for none), which the default scheduler's consistency label
            needs.

    Returns:
        The batch (no ``logprobs``: the rows cannot be replayed), ``payload["position"]`` ``(N, 2)`` int64.

    Raises:
        InvalidInputError: an empty list, missing fields, a row count that is not whole groups, or an
            ``answer`` that is not ``(N,)`` integer ids ``>= -1``.

    Examples:
        Any objects with these attributes will do; here a stand-in for OpenRLHF's ``Experience`` (one
        micro-batch, two prompts of two samples):

        >>> from types import SimpleNamespace
        >>> exp = SimpleNamespace(action_mask=torch.tensor([[1, 1, 1], [1, 1, 0], [1, 1, 1], [1, 0, 0]]),
        ...                       action_log_probs=torch.full((4, 3), -0.5), info={"reward": [1.0, 0.0, 1.0, 1.0]},
        ...                       advantages=torch.tensor([[1.0], [-1.0], [0.0], [0.0]]).expand(4, 3))
        >>> batch = rollout_batch_from_experiences([exp], n_samples_per_prompt=2, round=0)
        >>> batch.group.tolist(), batch.advantage.tolist(), batch.length.tolist(), batch.truncated.tolist()
        ([0, 0, 1, 1], [1.0, -1.0, 0.0, 0.0], [3.0, 2.0, 3.0, 1.0], [True, False, True, False])
        >>> batch.payload["position"][-1].tolist()  # experience 0, row 3
        [0, 3]
    """
    where = "rollout_batch_from_experiences()"
    if not experiences:
        raise InvalidInputError(f"{where}: `experiences` is empty.")
    parts: dict[str, list[torch.Tensor]] = {k: [] for k in ("reward", "advantage", "entropy", "length", "trunc", "pos")}
    for e, exp in enumerate(experiences):
        info = getattr(exp, "info", None) or {}
        if "reward" not in info or getattr(exp, "advantages", None) is None:
            raise InvalidInputError(f"{where}: experience {e} lacks `info['reward']` or `advantages`.")
        mask = exp.action_mask.float().cpu()
        count = mask.sum(1).clamp(min=1.0)
        parts["reward"].append(torch.as_tensor(info["reward"]).float().cpu().reshape(-1))
        parts["advantage"].append((exp.advantages.float().cpu() * mask).sum(1) / count)
        parts["entropy"].append(-(exp.action_log_probs.float().cpu() * mask).sum(1) / count)
        parts["length"].append(mask.sum(1))
        parts["trunc"].append(mask[:, -1] > 0)
        n = _rows(exp)
        parts["pos"].append(torch.stack([torch.full((n,), e), torch.arange(n)], dim=1))
    total = sum(p.shape[0] for p in parts["pos"])
    if total % n_samples_per_prompt:
        raise InvalidInputError(f"{where}: {total} rows are not whole groups of {n_samples_per_prompt}.")
    return RolloutBatch.from_tensors(
        group=torch.arange(total) // n_samples_per_prompt,
        reward=torch.cat(parts["reward"]),
        advantage=torch.cat(parts["advantage"]),
        entropy=torch.cat(parts["entropy"]),
        length=torch.cat(parts["length"]),
        truncated=torch.cat(parts["trunc"]),
        round=round,
        payload={"position": torch.cat(parts["pos"])},
        answer=answer,
    )


def apply_schedule_to_experiences(experiences: Sequence[Any], schedule: Any) -> list[Any]:
    """Each experience restricted to its selected rows (advantages scaled by the rows' weights).

    Every dataclass field with one entry per row (tensors, lists, and dicts of those, as ``info``) is
    indexed; the other fields are kept as they are.

    Args:
        experiences: the list
            [`rollout_batch_from_experiences`][banditlib.adapters.openrlhf.rollout_batch_from_experiences] read.
        schedule: the scheduler's decision for that batch (no replay).

    Returns:
        The non-empty experiences, rebuilt with ``dataclasses.replace``.

    Raises:
        InvalidInputError: a schedule with replayed rows, or negative weights.

    Examples:
        With a dataclass standing in for OpenRLHF's ``Experience`` (real field names, fewer fields):

        >>> from banditlib.adapters.rlvr import DynamicSamplingFilter
        >>> @dataclasses.dataclass
        ... class Experience:
        ...     sequences: torch.Tensor
        ...     action_log_probs: torch.Tensor
        ...     advantages: torch.Tensor
        ...     action_mask: torch.Tensor
        ...     info: dict
        >>> exp = Experience(sequences=torch.arange(8).view(4, 2), action_log_probs=torch.full((4, 2), -0.5),
        ...                  advantages=torch.tensor([[1.0], [-1.0], [0.0], [0.0]]).expand(4, 2),
        ...                  action_mask=torch.ones(4, 2, dtype=torch.bool), info={"reward": [1.0, 0.0, 1.0, 1.0]})
        >>> batch = rollout_batch_from_experiences([exp], n_samples_per_prompt=2, round=0)
        >>> out = apply_schedule_to_experiences([exp], DynamicSamplingFilter().schedule(batch))
        >>> len(out), out[0].sequences.tolist(), out[0].info["reward"]  # prompt 2 has no reward spread
        (1, [[0, 1], [2, 3]], [1.0, 0.0])
    """
    if len(schedule.replay):
        raise InvalidInputError(
            "apply_schedule_to_experiences(): replay is not supported over Experience lists; use a selection "
            "scheduler (DynamicSamplingFilter, MaxVarianceScheduler, RolloutScheduler(mode='group'), ...)."
        )
    weight = schedule.fresh_weight.float().cpu()
    if bool((weight < 0).any()):
        raise InvalidInputError("apply_schedule_to_experiences(): the schedule has negative weights.")
    offsets = torch.tensor([0] + [_rows(x) for x in experiences]).cumsum(0)
    fresh = schedule.fresh.long().cpu()
    out = []
    for e, exp in enumerate(experiences):
        lo, hi = int(offsets[e]), int(offsets[e + 1])
        sel = (fresh >= lo) & (fresh < hi)
        if not bool(sel.any()):
            continue
        idx, n = fresh[sel] - lo, _rows(exp)
        changes = {f.name: _index(getattr(exp, f.name), idx, n) for f in dataclasses.fields(exp)}
        adv = changes.get("advantages")
        if isinstance(adv, torch.Tensor):
            changes["advantages"] = adv * weight[sel].to(adv.device).reshape(-1, *([1] * (adv.dim() - 1)))
        out.append(dataclasses.replace(exp, **changes))
    return out
