"""``BanditGRPOTrainer(gather="statistics")``: every rank schedules the global round from gathered per-row
statistics and trains on its own selected rows; token ids, masks and log-probs never leave their rank.

The default (``gather="rows"``, `banditlib.adapters._trl_batch`) all-gathers every row's prompt, completion,
masks and per-token log-probs and redistributes the selected rows. A scheduler that only selects (its
``replays`` flag is false) needs none of that: it decides from a handful of numbers per row. Here each rank
all-gathers only those (advantage, entropy, length, truncation, token count, the sum of its behaviour log-probs,
a 63-bit code of its answer and the gradient sketch when there is one), every rank runs the identical scheduler
on the same global statistics batch (so the decisions are those of the ``"rows"`` path: bit for bit, except that
a ``seq_logprob`` feature is summed on the rank, to float rounding), and keeps the selected rows it already
holds.
Ranks then hold different numbers of rows: each pads to the largest rank's count (rounded up to
``steps_per_generation``), known to every rank from the global decision without another collective, and the
loss normalisation uses the global counts, so the objective is the ``"rows"`` path's (only the order of the
float additions across ranks differs).

Bytes a rank sends per round: ``"rows"`` about ``n (16 P + 20 C)`` (prompt and completion ids and masks in
int64, behaviour log-probs in float32, for ``n`` rows of ``P`` prompt and ``C`` completion tokens; more with
reference or vLLM log-probs), ``"statistics"`` ``n (33 + 4 k)`` with a ``k``-wide gradient sketch
(``benchmarks/bench_trl_gather.py`` counts both at the ``torch.distributed`` calls).
"""

from __future__ import annotations

import hashlib
import numbers
from collections.abc import Callable, Hashable, Mapping, Sequence

import torch

from banditlib.errors import InvalidInputError

from ._trl_batch import (
    ROW_NORMALISED_LOSSES,
    check_gathered,
    check_weights,
    extract_answers,
    gather_rows,
    pad_rows,
    round_up,
)
from .rlvr.batch import RolloutBatch

__all__ = ["answer_codes", "build_statistics_batch", "dense_ids", "local_training_rows"]

_STATS = ("advantage", "entropy", "length", "truncated", "tokens", "seq_logprob", "answer", "grad")


def _canonical(answer: object) -> str:
    """A text equal for answers a dict treats as one key: numbers by value (``1``, ``1.0`` and ``True`` alike),
    tuples element by element, anything else by its ``repr``."""
    if isinstance(answer, numbers.Integral):
        return repr(int(answer))
    if isinstance(answer, float) and answer.is_integer():
        return repr(int(answer))
    if isinstance(answer, tuple):
        return "(" + ",".join(_canonical(a) for a in answer) + ")"
    return repr(answer)


def answer_codes(texts: Sequence[str], answer_fn: Callable[[str], Hashable | None]) -> torch.Tensor:
    """``(n,)`` int64 codes of this rank's answers, equal for equal answers on every rank: the first 63 bits
    of the BLAKE2b digest of a canonical text of the answer (its ``repr``; numbers by value, so ``1`` and ``1.0``
    agree as they do as dict keys), ``-1`` for None, so ranks agree without exchanging text.

    Args:
        texts: this rank's decoded completions.
        answer_fn: ``completion_text -> hashable or None``.

    Returns:
        ``(n,)`` int64, ``-1`` where there is no answer.

    Raises:
        InvalidInputError: ``answer_fn`` raised, naming the function and the row (see `answer_ids`).
    """
    out = []
    for answer in extract_answers(texts, answer_fn):
        if answer is None:
            out.append(-1)
        else:
            digest = hashlib.blake2b(_canonical(answer).encode(), digest_size=8).digest()
            out.append(int.from_bytes(digest, "little") >> 1)
    return torch.tensor(out, dtype=torch.long)


def dense_ids(codes: torch.Tensor) -> torch.Tensor:
    """Answer codes as ids ``0, 1, ...`` in order of first appearance (``-1`` stays ``-1``): the ids
    `answer_ids` gives the same answers in the same order.

    Args:
        codes: ``(N,)`` int64 answer codes of the round, in global row order.

    Returns:
        ``(N,)`` int64 ids.
    """
    ids: dict[int, int] = {}
    return torch.tensor([-1 if c < 0 else ids.setdefault(c, len(ids)) for c in codes.tolist()], dtype=torch.long)


def build_statistics_batch(
    local: Mapping[str, torch.Tensor],
    reward: torch.Tensor,
    *,
    num_generations: int,
    round: int,
    codes: torch.Tensor | None = None,
) -> RolloutBatch:
    """The round's global batch of statistics only (no payload, no log-probs), identical on every rank.

    Args:
        local: this rank's ``n`` rows as for `build_global_batch` (only ``advantage``, ``entropy``, ``length``,
            ``truncated``, ``completion_mask``, ``logprobs`` and ``grad`` are read).
        reward: ``(N,)`` float32 rewards of all ``N = n * world_size`` rows in rank order.
        num_generations: ``G``; consecutive runs of ``G`` global rows share a prompt.
        round: the round number of every row.
        codes: ``(n,)`` int64 answer codes of this rank's rows (`answer_codes`), or None for no answers.

    Returns:
        ``N`` rows, group ids ``row // G``; ``logprobs`` ``(N, 1)`` holds the sum of each row's finite behaviour
        log-probs (all the ``seq_logprob`` feature reads), ``payload["tokens"]`` ``(N,)`` int64 its completion
        tokens (for the loss normalisation).

    Raises:
        InvalidInputError: ``reward`` does not cover the gathered rows or ``N`` is not a multiple of ``G``.
    """
    mine = {
        "advantage": local["advantage"].float(), "entropy": local["entropy"].float(),
        "length": local["length"].float(), "truncated": local["truncated"],
        "tokens": local["completion_mask"].sum(1).long(),
        "seq_logprob": torch.where(torch.isfinite(local["logprobs"]), local["logprobs"].float(), 0.0).sum(1),
    }  # fmt: skip
    if codes is not None:
        mine["answer"] = codes.to(local["advantage"].device)
    if "grad" in local:
        mine["grad"] = local["grad"].float()
    g = {k: gather_rows(mine[k]).cpu() for k in _STATS if k in mine}
    n = g["advantage"].shape[0]
    check_gathered(reward, n, num_generations, "build_statistics_batch()")
    return RolloutBatch.from_tensors(
        group=torch.arange(n) // num_generations, reward=reward.detach().float().cpu(), advantage=g["advantage"],
        entropy=g["entropy"], length=g["length"], truncated=g["truncated"], round=round,
        logprobs=g["seq_logprob"][:, None], payload={"tokens": g["tokens"]},
        answer=dense_ids(g["answer"]) if "answer" in g else None, grad=g.get("grad"),
    )  # fmt: skip


def local_training_rows(
    schedule: object,
    batch: RolloutBatch,
    local: Mapping[str, torch.Tensor],
    *,
    rank: int,
    world: int,
    multiple: int,
    loss_type: str,
    pad_token_id: int,
) -> tuple[dict[str, torch.Tensor], int, int, int]:
    """This rank's training rows of a selection-only decision over the statistics batch.

    Rank ``r`` holds global rows ``r n .. (r + 1) n - 1``; it keeps the selected ones among them (weight 0
    removes a row), in row order, and pads with zero-mask rows to ``L = max(multiple, round_up(max_r c_r,
    multiple))`` rows, ``c_r`` the rows rank ``r`` keeps: every rank runs the same number of micro-batches. For
    ``grpo`` and ``dr_grpo`` the advantages are multiplied by ``world L / R`` (``R`` rows kept in all), so each
    kept row keeps the weight ``1 / R`` it has on the ``"rows"`` path.

    Args:
        schedule: the scheduler's decision on ``batch`` (``fresh``, ``fresh_weight``; no replay).
        batch: the global statistics batch (`build_statistics_batch`).
        local: this rank's rows (``prompt_ids``, ``prompt_mask`` left padded, ``completion_ids``,
            ``completion_mask``, ``logprobs``, ``advantage``, ``length`` and the optional log-prob fields).
        rank: this rank. world: the number of ranks.
        multiple: rows per rank must be a multiple of this (``steps_per_generation``).
        loss_type: TRL's ``loss_type``.
        pad_token_id: token id of the padding rows.

    Returns:
        ``(rows, n_fresh, n_padding, num_items)``: name -> ``(L, ...)`` tensor on CPU (the keys of
        `training_rows`), the rows kept over all ranks, the padding rows over all ranks, and the completion
        tokens of every kept row (TRL's ``num_items_in_batch``).

    Raises:
        InvalidInputError: a decision that replays rows or has negative or non-finite weights.
    """
    fresh, weight = schedule.fresh.long().cpu(), schedule.fresh_weight.float().cpu()  # type: ignore[attr-defined]
    if len(schedule.replay):  # type: ignore[attr-defined]
        raise InvalidInputError("BanditGRPOTrainer(gather='statistics'): the scheduler replayed rows; only "
                                "selection is supported without gathering the rows (use gather='rows').")  # fmt: skip
    check_weights(weight)
    keep = weight > 0
    fresh, weight = fresh[keep], weight[keep]
    n = len(batch) // world
    owner = fresh // n
    counts = torch.bincount(owner, minlength=world)
    per_rank = max(multiple, round_up(int(counts.max()) if len(fresh) else 0, multiple))
    total = int(fresh.shape[0])
    scale = world * per_rank / total if loss_type in ROW_NORMALISED_LOSSES and total else 1.0
    mine = fresh[owner == rank] - rank * n
    out = {k: local[k].cpu()[mine] for k in ("prompt_ids", "prompt_mask", "completion_ids", "completion_mask")}
    for k in ("ref_per_token_logps", "sampling_per_token_logps", "importance_sampling_ratio"):
        if k in local:
            out[k] = local[k].cpu()[mine]
    out["old_per_token_logps"] = local["logprobs"].cpu()[mine]
    out["advantages"] = local["advantage"].cpu()[mine] * weight[owner == rank] * scale
    out["length"] = local["length"].cpu()[mine]
    out = pad_rows(out, per_rank - int(mine.shape[0]), pad_token_id)
    num_items = int(batch.payload["tokens"][fresh].sum())
    return out, total, world * per_rank - total, num_items
