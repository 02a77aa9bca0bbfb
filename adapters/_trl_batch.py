"""Tensor plumbing behind [`banditlib.adapters.trl.BanditGRPOTrainer`][banditlib.adapters.trl.BanditGRPOTrainer], free
of TRL and transformers.

One generation round of a data-parallel GRPO run goes through three steps here:

1. `build_global_batch` gathers every rank's rows into one
   [`RolloutBatch`][banditlib.adapters.rlvr.RolloutBatch], identical on every rank, with the answer ids of
   `answer_ids` built from the gathered completions (and the gradient sketches of
   `banditlib.adapters._trl_sketch.lm_head_sketch`);
2. `schedule_round` lets the scheduler observe and schedule that batch; every rank holds an identical
   scheduler (same seed, same inputs), so the decisions and the statistics agree without further
   communication and equal those of one process that saw all the rows (docs/rlvr.md, "Several processes");
3. `training_rows` turns the selected and replayed rows into the tensors TRL's loss reads, padded to a
   multiple of ``steps_per_generation * world_size`` rows, and `rank_rows` hands each rank its share,
   trimmed to the widths its rows need.

That is ``gather="rows"``; ``gather="statistics"`` replaces steps 1 and 3 by `banditlib.adapters._trl_stats`.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any, Protocol

import torch
import torch.distributed as dist

from banditlib.errors import InvalidInputError

from .rlvr._base import SchedulerLike
from .rlvr.batch import RolloutBatch

__all__ = [
    "PAYLOAD_KEYS",
    "TrainerScheduler",
    "answer_ids",
    "build_global_batch",
    "default_answer_fn",
    "extract_answers",
    "finite_on_mask",
    "fit_width",
    "gather_rows",
    "masked_row_mean",
    "rank_rows",
    "round_up",
    "schedule_round",
    "training_rows",
]

# Per-row tensors carried in a RolloutBatch payload, stored with the row and handed back unchanged when it is
# replayed: ref log-probs when the KL term is on; with vLLM, the sampler's log-probs and TRL's importance-sampling
# ratio pi_old / pi_sampler (both fixed by the round that generated the row). Prompts are stored reversed, so
# their left padding becomes right padding: the buffer right-pads rows of different rounds to a common width,
# and a reversed prompt survives that unchanged.
PAYLOAD_KEYS = ("prompt_ids_rev", "prompt_mask_rev", "completion_ids", "completion_mask", "ref_per_token_logps",
                "sampling_per_token_logps", "importance_sampling_ratio")  # fmt: skip
# Payload keys that may hold one column per row instead of one per token (TRL's sequence-level ratio, (n, 1)).
ROW_COLUMNS = ("importance_sampling_ratio",)
# Loss types that divide by a count of rows rather than of tokens: padding rows would shrink every row's weight.
ROW_NORMALISED_LOSSES = ("grpo", "dr_grpo")
# default_answer_fn: the longest text returned as the answer when it holds neither \boxed{} nor a number.
SHORT_ANSWER_CHARS = 32
_NUMBER = re.compile(r"[-+]?(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?")
_BOXED = "\\boxed{"


class TrainerScheduler(SchedulerLike, Protocol):
    """What the TRL adapter needs from a scheduler: [`SchedulerLike`][banditlib.adapters.rlvr.SchedulerLike] and
    its state (every [`Scheduler`][banditlib.adapters.rlvr.Scheduler] has it)."""

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> Any: ...

    def save(self, path: str) -> Any: ...

    def restore(self, path: str) -> Any: ...  # read on resume only


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


def masked_row_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``(n,)`` float32 mean of each row of ``values`` ``(n, C)`` over its ``mask`` (0 for a row without any).

    Masked-out entries are never read, so they may hold anything (NaN included). The mean token entropy is
    ``masked_row_mean(entropies, mask)``; its sampled-token estimate is ``masked_row_mean(-logps, mask)``, as
    ``E_{y ~ pi}[-log pi(y)] = H(pi)`` at every position.
    """
    keep = mask.bool()
    total = torch.where(keep, values.float(), 0.0).sum(1)
    return total / keep.sum(1).clamp(min=1).float()


def finite_on_mask(values: torch.Tensor, mask: torch.Tensor) -> bool:
    """Whether every entry of ``values`` ``(n, C)`` under ``mask`` is finite on every rank (vLLM reports NaN for
    a token it cannot score). All ranks get the same answer, so they take the same path (a forward pass of a
    sharded model is collective)."""
    ok = torch.isfinite(values[mask.bool()]).all().to(torch.int32).reshape(1)
    if _world()[1] > 1:
        dist.all_reduce(ok, op=dist.ReduceOp.MIN)
    return bool(ok)


def _last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` with balanced braces, or None."""
    start = text.rfind(_BOXED)
    while start >= 0:
        depth, i = 1, start + len(_BOXED)
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        if depth == 0:
            return text[start + len(_BOXED) : i - 1].strip()
        start = text.rfind(_BOXED, 0, start)  # unbalanced (cut off): try the previous one
    return None


def default_answer_fn(completion_text: str) -> str | None:
    """The final answer of a completion, as the default ``answer_fn`` of ``BanditGRPOTrainer`` extracts it.

    In order of preference:

    1. the content of the last ``\\boxed{...}`` (braces balanced; stripped), e.g. ``"so \\boxed{\\frac{1}{2}}"``
       -> ``"\\frac{1}{2}"``;
    2. else the last number: an integer or decimal with an optional sign, thousands separators allowed
       (``1,234``), returned with commas and a leading ``+`` removed (``"+1,000.5"`` -> ``"1000.5"``; ``"3.0"``
       and ``"3"`` stay different answers; a ``-`` right after another token counts as a sign, ``"3-5"`` ->
       ``"-5"``);
    3. else the stripped text itself when it is non-empty and at most 32 characters (a short free-form
       answer such as ``"Paris"``);
    4. else None: no answer (the rollout gets answer id ``-1``).

    Args:
        completion_text: the decoded completion (special tokens skipped).

    Returns:
        The answer string, or None.

    Examples:
        >>> default_answer_fn("2 + 2 = \\boxed{4}. Check: 4 = 4")
        '4'
        >>> default_answer_fn("the total is -1,250.5 dollars"), default_answer_fn(" yes "), default_answer_fn("")
        ('-1250.5', 'yes', None)
    """
    boxed = _last_boxed(completion_text)
    if boxed is not None:
        return boxed
    numbers = _NUMBER.findall(completion_text)
    if numbers:
        return numbers[-1].replace(",", "").removeprefix("+")
    text = completion_text.strip()
    return text if 0 < len(text) <= SHORT_ANSWER_CHARS else None


def answer_ids(texts: Sequence[str], answer_fn: Callable[[str], Hashable | None]) -> torch.Tensor:
    """Integer ids of the answers ``answer_fn`` extracts: equal answers get equal ids, None gets ``-1``.

    Ids are numbered ``0, 1, ...`` in order of first appearance, so the same texts always give the same ids
    (every rank computes them on the same gathered texts and agrees).

    Args:
        texts: the ``N`` decoded completions of one round, in global row order.
        answer_fn: ``completion_text -> hashable or None``.

    Returns:
        ``(N,)`` int64 answer ids (``-1``: no answer).

    Raises:
        InvalidInputError: ``answer_fn`` raised or returned an unhashable value, naming the function, the row
            and the start of its text.
    """
    ids: dict[Hashable, int] = {}
    out = [-1 if a is None else ids.setdefault(a, len(ids)) for a in extract_answers(texts, answer_fn)]
    return torch.tensor(out, dtype=torch.long)


def extract_answers(texts: Sequence[str], answer_fn: Callable[[str], Hashable | None]) -> list[Hashable | None]:
    """``answer_fn`` of every text, each checked to be hashable.

    Raises:
        InvalidInputError: ``answer_fn`` raised or returned an unhashable value, naming the function, the row
            and the start of its text.
    """
    name = getattr(answer_fn, "__qualname__", None) or type(answer_fn).__name__
    out: list[Hashable | None] = []
    for row, text in enumerate(texts):
        try:
            answer = answer_fn(text)
            hash(answer)
            out.append(answer)
        except Exception as exc:
            raise InvalidInputError(
                f"BanditGRPOTrainer: `answer_fn` ({name}) failed on completion row {row} of the round "
                f"(text {text[:80]!r}): {type(exc).__name__}: {exc}. It must map a completion's text to a "
                "hashable answer, or None when there is none."
            ) from exc
    return out


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
    local: Mapping[str, torch.Tensor],
    reward: torch.Tensor,
    *,
    num_generations: int,
    round: int,
    answer_of: Callable[[list[list[int]]], torch.Tensor] | None = None,
) -> RolloutBatch:
    """Gather every rank's rows into one round's [`RolloutBatch`][banditlib.adapters.rlvr.RolloutBatch], on CPU.

    Args:
        local: this rank's ``n`` rows: ``prompt_ids``/``prompt_mask`` ``(n, P)`` int64 (left
            padded), ``completion_ids``/``completion_mask`` ``(n, C)`` int64 (right padded), ``logprobs``
            ``(n, C)`` float32 behaviour log-probs, optionally ``ref_per_token_logps`` and
            ``sampling_per_token_logps`` ``(n, C)``, ``importance_sampling_ratio`` ``(n, C)`` or ``(n, 1)`` and
            ``grad`` ``(n, k)`` float32 gradient sketches, and ``advantage``, ``entropy``, ``length`` ``(n,)`` float32
            (``length``: the generated token count) and ``truncated`` ``(n,)`` bool.
        reward: ``(N,)`` float32 rewards of all ``N = n * world_size`` rows in rank order (TRL gathers them).
        num_generations: ``G``; consecutive runs of ``G`` global rows share a prompt (TRL's sampler order).
        round: the round number of every row.
        answer_of: maps the ``N`` gathered completions (token ids, ``length`` tokens each, global row order)
            to ``(N,)`` int64 answer ids (see `answer_ids`); None: the batch has no ``answer``. Called on
            the gathered rows, so every rank computes the same ids.

    Returns:
        The ``N`` rows with group ids ``row // G``, identical on every rank.

    Raises:
        InvalidInputError: ``reward`` does not cover the gathered rows, ``N`` is not a multiple of ``G``, or
            ``answer_of`` fails; nothing has changed then.
    """
    local = dict(local)
    for k in ("prompt_ids", "prompt_mask"):
        local[f"{k}_rev"] = local.pop(k).flip(1)
    g = {k: gather_rows(v).cpu() for k, v in local.items()}
    n = g["advantage"].shape[0]
    check_gathered(reward, n, num_generations, "build_global_batch()")
    answer = None
    if answer_of is not None:
        ids = [row[: int(k)].tolist() for row, k in zip(g["completion_ids"], g["length"], strict=True)]
        answer = answer_of(ids)
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
        answer=answer,
        grad=g["grad"].float() if "grad" in g else None,
    )


def check_gathered(reward: torch.Tensor, n: int, num_generations: int, where: str) -> None:
    """Raise unless ``reward`` ``(N,)`` covers the ``n`` gathered rows and they are whole groups of ``G``."""
    if reward.shape != (n,):
        raise InvalidInputError(
            f"{where}: `reward` must have shape (N,) = ({n},) to match the gathered rows; got {tuple(reward.shape)}."
        )
    if n % num_generations:
        raise InvalidInputError(
            f"{where}: the {n} gathered rows are not whole groups of `num_generations` = {num_generations}."
        )


def check_weights(weight: torch.Tensor) -> None:
    """Raise on negative or non-finite loss weights."""
    if not bool(torch.isfinite(weight).all()) or bool((weight < 0).any()):
        raise InvalidInputError("BanditGRPOTrainer: the scheduler returned negative or non-finite loss weights.")


def pad_rows(out: dict[str, torch.Tensor], n_pad: int, pad_token_id: int) -> dict[str, torch.Tensor]:
    """``out`` with ``n_pad`` padding rows appended: zero completion mask (they add nothing to any loss), pad
    tokens, and one attended prompt token (so attention over a padding row stays finite)."""
    if not n_pad:
        return out
    fill = {"prompt_ids": pad_token_id, "completion_ids": pad_token_id}
    padded = {}
    for k, v in out.items():
        pad = v.new_full((n_pad, *v.shape[1:]), fill.get(k, 0))
        if k == "prompt_mask":
            pad[:, -1] = 1
        padded[k] = torch.cat([v, pad])
    return padded


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
        ``ref_per_token_logps``, ``sampling_per_token_logps``, ``importance_sampling_ratio`` when present;
        fresh rows first, then replayed, then padding) and the numbers of fresh and replayed rows kept
        (``R = n_fresh + n_replay``).

    Raises:
        InvalidInputError: a negative or non-finite weight, or rows without ``logprobs``.
    """
    fresh = batch.select(schedule.fresh.long().cpu())
    replay: RolloutBatch = schedule.replay
    weight = torch.cat([schedule.fresh_weight.float().cpu(), schedule.replay_weight.float().cpu()])
    check_weights(weight)
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
    out = pad_rows(out, n_pad, pad_token_id)
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
    (right padding), each rounded up to ``pad_to_multiple_of`` as TRL does; a per-row column (a
    sequence-level importance-sampling ratio, ``(n, 1)``) is kept as it is.
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
        elif v.dim() == 2 and not (k in ROW_COLUMNS and v.shape[1] == 1):
            out[k] = fit_width(v, c, 0, left=False)
        else:
            out[k] = v
    del out["length"]
    return out


def nan_if_none(x: float | None) -> float:
    """``x`` as a float, NaN for None (TRL's logger drops NaN values)."""
    return math.nan if x is None else float(x)
