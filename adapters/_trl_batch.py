"""Tensor plumbing behind :class:`banditlib.adapters.trl.BanditGRPOTrainer`, free of TRL and transformers.

One generation round of a data-parallel GRPO run goes through three steps here:

1. :func:`build_global_batch` gathers every rank's rows into one
   :class:`~banditlib.adapters.rlvr.batch.RolloutBatch`, identical on every rank;
2. :func:`schedule_round` lets the scheduler observe and schedule that batch; every rank holds an identical
   scheduler (same seed, same inputs), so the decisions and the statistics agree without further
   communication and equal those of one process that saw all the rows (DESIGN section 8);
3. :func:`training_rows` turns the selected and replayed rows into the tensors TRL's loss reads, padded to a
   multiple of ``steps_per_generation * world_size`` rows, and :func:`rank_rows` hands each rank its share,
   trimmed to the widths its rows need.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any, Protocol

import torch
import torch.distributed as dist

from banditlib.errors import InvalidInputError

from .rlvr.batch import RolloutBatch

__all__ = [
    "PAYLOAD_KEYS",
    "SchedulerLike",
    "build_global_batch",
    "fit_width",
    "gather_rows",
    "rank_rows",
    "round_up",
    "schedule_round",
    "training_rows",
]

# Per-row tensors carried in a RolloutBatch payload (ref log-probs only when the KL term is on). Prompts are
# stored reversed, so their left padding becomes right padding: the buffer right-pads rows of different rounds
# to a common width, and a reversed prompt survives that unchanged.
PAYLOAD_KEYS = ("prompt_ids_rev", "prompt_mask_rev", "completion_ids", "completion_mask", "ref_per_token_logps")
# Loss types that divide by a count of rows rather than of tokens: padding rows would shrink every row's weight.
ROW_NORMALISED_LOSSES = ("grpo", "dr_grpo")


class SchedulerLike(Protocol):
    """What the adapter needs from a scheduler (the interface of ``banditlib.adapters.rlvr``)."""

    def schedule(self, batch: RolloutBatch) -> Any: ...

    def observe(self, batch: RolloutBatch) -> float | None: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> Any: ...

    def save(self, path: str) -> Any: ...


def round_up(n: int, multiple: int | None) -> int:
    """``n`` rounded up to a multiple of ``multiple`` (unchanged when ``multiple`` is None or 1)."""
    if not multiple or multiple <= 1:
        return n
    return -(-n // multiple) * multiple


def fit_width(t: torch.Tensor, width: int, value: float, *, left: bool) -> torch.Tensor:
    """Pad or cut ``t`` ``(n, w)`` to ``(n, width)`` on the left (prompts) or on the right (completions).

    Cutting drops columns from the padded side only, so callers cut only columns they know to be padding.
    """
    w = t.shape[1]
    if w == width:
        return t
    if w > width:
        return t[:, w - width :] if left else t[:, :width]
    pad = t.new_full((t.shape[0], width - w), value)
    return torch.cat([pad, t] if left else [t, pad], dim=1)


def _world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def gather_rows(t: torch.Tensor) -> torch.Tensor:
    """Concatenate every rank's ``t`` along dim 0, in rank order (identity in a single process).

    Every rank passes the same number of rows; a 2-d ``t`` is first right-padded with zeros to the widest
    rank's width. Bools travel as uint8 (gloo has no bool).
    """
    _, world = _world()
    if world == 1:
        return t
    if t.dim() == 2:
        width = torch.tensor([t.shape[1]], device=t.device)
        dist.all_reduce(width, op=dist.ReduceOp.MAX)
        t = fit_width(t, int(width), 0, left=False)
    is_bool = t.dtype == torch.bool
    src = t.to(torch.uint8) if is_bool else t.contiguous()
    parts = [torch.empty_like(src) for _ in range(world)]
    dist.all_gather(parts, src)
    out = torch.cat(parts, dim=0)
    return out.to(torch.bool) if is_bool else out


def build_global_batch(
    local: Mapping[str, torch.Tensor], reward: torch.Tensor, *, num_generations: int, round: int
) -> RolloutBatch:
    """Gather every rank's rows into one round's :class:`RolloutBatch`, on CPU.

    Args:
        local: this rank's ``n`` rows: ``prompt_ids``/``prompt_mask`` ``(n, P)`` int64 (left
            padded), ``completion_ids``/``completion_mask`` ``(n, C)`` int64 (right padded), ``logprobs``
            ``(n, C)`` float32 behaviour log-probs, optionally ``ref_per_token_logps`` ``(n, C)``, and
            ``advantage``, ``entropy``, ``length`` ``(n,)`` float32 and ``truncated`` ``(n,)`` bool.
        reward: ``(N,)`` float32 rewards of all ``N = n * world_size`` rows in rank order (TRL gathers them).
        num_generations: ``G``; consecutive runs of ``G`` global rows share a prompt (TRL's sampler order).
        round: the round number of every row.

    Returns:
        The ``N`` rows with group ids ``row // G``, identical on every rank.

    Raises:
        InvalidInputError: ``reward`` does not cover the gathered rows, or ``N`` is not a multiple of ``G``.
    """
    local = dict(local)
    for k in ("prompt_ids", "prompt_mask"):
        local[f"{k}_rev"] = local.pop(k).flip(1)
    g = {k: gather_rows(v).cpu() for k, v in local.items()}
    n = g["advantage"].shape[0]
    if reward.shape != (n,):
        raise InvalidInputError(
            f"build_global_batch(): `reward` must have shape (N,) = ({n},) to match the gathered rows; got "
            f"{tuple(reward.shape)}."
        )
    if n % num_generations:
        raise InvalidInputError(
            f"build_global_batch(): the {n} gathered rows are not whole groups of `num_generations` = "
            f"{num_generations}."
        )
    return RolloutBatch.from_tensors(
        group=torch.arange(n) // num_generations,
        reward=reward.detach().float().cpu(),
        advantage=g["advantage"].float(),
        entropy=g["entropy"].float(),
        length=g["length"].float(),
        truncated=g["truncated"],
        round=round,
        logprobs=g["logprobs"].float(),
        payload={k: g[k] for k in PAYLOAD_KEYS if k in g},
    )


def schedule_round(scheduler: SchedulerLike, batch: RolloutBatch, *, observe: bool) -> tuple[Any, float | None]:
    """Feed round ``t``'s batch to the scheduler: ``observe`` it (the gain of round ``t - 1``), then schedule it.

    Returns:
        ``(schedule, observed_gain)``; the gain is None on the first round or for schedulers that learn nothing.
    """
    observed = scheduler.observe(batch) if observe else None
    return scheduler.schedule(batch), observed


def training_rows(
    schedule: Any, batch: RolloutBatch, *, multiple: int, loss_type: str, pad_token_id: int
) -> tuple[dict[str, torch.Tensor], int, int]:
    """The global training rows of one round: the selected fresh rows, then the replayed ones, then padding.

    Rows with weight 0 are removed. A row's weight scales its advantage, hence its policy-gradient term.
    The row count is padded up to a multiple of ``multiple`` (``steps_per_generation * world_size``; at least
    ``multiple`` rows) with rows whose completion mask is all zero, so TRL's ``split_tensor_dict`` drops
    nothing and every rank runs the same number of micro-batches. Padding rows add nothing to any loss
    numerator or token count; for ``grpo`` and ``dr_grpo``, which divide by the number of rows, the
    advantages are multiplied by ``R_pad / R`` so each real row keeps the weight ``1 / R`` of a batch of ``R``
    rows (exact for the policy term; a KL term with ``beta != 0`` is then scaled by ``R / R_pad``).

    Args:
        schedule: the scheduler's decision (``fresh``, ``fresh_weight``, ``replay``, ``replay_weight``).
        batch: the round's global batch the decision refers to.
        multiple: the row count must be a multiple of this.
        loss_type: TRL's ``loss_type``.
        pad_token_id: token id of the padding rows.

    Returns:
        ``(rows, n_fresh, n_replay)``: name -> ``(R_pad, ...)`` tensor on CPU (``prompt_ids``, ``prompt_mask``,
        ``completion_ids``, ``completion_mask``, ``old_per_token_logps``, ``advantages``, ``length`` and
        ``ref_per_token_logps`` when present; fresh rows first, then replayed, then padding) and the numbers
        of fresh and replayed rows kept (``R = n_fresh + n_replay``).

    Raises:
        InvalidInputError: a negative or non-finite weight, or rows without ``logprobs``.
    """
    fresh = batch.select(schedule.fresh.long().cpu())
    replay: RolloutBatch = schedule.replay
    weight = torch.cat([schedule.fresh_weight.float().cpu(), schedule.replay_weight.float().cpu()])
    if not bool(torch.isfinite(weight).all()) or bool((weight < 0).any()):
        raise InvalidInputError("BanditGRPOTrainer: the scheduler returned negative or non-finite loss weights.")
    rows = _cat_ragged(fresh, replay.to("cpu")) if len(replay) else fresh
    keep = weight > 0
    rows, weight = rows.select(keep), weight[keep]
    n_real, n_fresh = len(rows), int(keep[: len(fresh)].sum())
    n_pad = max(multiple, round_up(n_real, multiple)) - n_real
    scale = (n_real + n_pad) / n_real if loss_type in ROW_NORMALISED_LOSSES and n_real else 1.0
    if rows.logprobs is None:
        raise InvalidInputError("BanditGRPOTrainer: the scheduler returned rows without behaviour `logprobs`.")
    out = {k.removesuffix("_rev"): v.flip(1) if k.endswith("_rev") else v for k, v in rows.payload.items()}
    out["old_per_token_logps"] = rows.logprobs
    out["advantages"] = rows.advantage * weight * scale
    out["length"] = rows.length
    if n_pad:
        fill = {"prompt_ids": pad_token_id, "completion_ids": pad_token_id}
        for k, v in out.items():
            pad = v.new_full((n_pad, *v.shape[1:]), fill.get(k, 0))
            if k == "prompt_mask":  # one attended token, so attention over a padding row stays finite
                pad[:, -1] = 1
            out[k] = torch.cat([v, pad])
    return out, n_fresh, n_real - n_fresh


def _cat_ragged(a: RolloutBatch, b: RolloutBatch) -> RolloutBatch:
    """``RolloutBatch.cat([a, b])`` after right-padding ``logprobs`` and payload to common widths."""

    def widen(x: RolloutBatch, widths: dict[str, int]) -> RolloutBatch:
        lp = None if x.logprobs is None else fit_width(x.logprobs, widths["logprobs"], 0.0, left=False)
        pl = {k: fit_width(v, widths[k], 0, left=False) if v.dim() == 2 else v for k, v in x.payload.items()}
        return dataclasses.replace(x, logprobs=lp, payload=pl)

    widths = {k: max(v.shape[1], b.payload[k].shape[1]) for k, v in a.payload.items() if v.dim() == 2}
    if a.logprobs is not None and b.logprobs is not None:
        widths["logprobs"] = max(a.logprobs.shape[1], b.logprobs.shape[1])
    return RolloutBatch.cat([widen(a, widths), widen(b, widths)])


def rank_rows(
    rows: Mapping[str, torch.Tensor], rank: int, world: int, *, pad_to_multiple_of: int | None
) -> dict[str, torch.Tensor]:
    """Rank ``rank``'s share of the global rows (every ``world``-th row), cut to the widths its rows use.

    The prompt keeps the columns any row attends to (left padding), the completion the longest row's tokens
    (right padding), each rounded up to ``pad_to_multiple_of`` as TRL does.
    """
    mine = {k: v[rank::world] for k, v in rows.items()}
    p = round_up(max(int(mine["prompt_mask"].sum(1).max()), 1), pad_to_multiple_of)
    lens = torch.maximum(mine["length"], mine["completion_mask"].sum(1).float())
    c = round_up(max(int(lens.max()), 1), pad_to_multiple_of)
    c = min(c, mine["completion_ids"].shape[1])
    out: dict[str, torch.Tensor] = {}
    for k, v in mine.items():
        if k.startswith("prompt_"):
            out[k] = fit_width(v, min(p, v.shape[1]), 0, left=True)
        elif v.dim() == 2:
            out[k] = fit_width(v, c, 0, left=False)
        else:
            out[k] = v
    del out["length"]
    return out


def nan_if_none(x: float | None) -> float:
    """``x`` as a float, NaN for None (TRL's logger drops NaN values)."""
    return math.nan if x is None else float(x)
