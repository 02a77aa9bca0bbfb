"""Worker of the two-process gloo test in ``test_trl.py``: the adapter's round plumbing on synthetic rounds.

Each rank holds its slice of every round (left-padded prompts and right-padded completions at that rank's own
widths, as TRL produces them); :func:`simulate` runs the adapter's gather / schedule / split steps and writes
the scheduler and the real training rows of its rank. With ``world == 1`` it runs in-process, as the
single-process reference that sees all the data.
"""

from __future__ import annotations

import json
import os
from typing import Any

import torch
import torch.distributed as dist

from banditlib.adapters import _trl_batch as tb
from banditlib.adapters import _trl_stats as ts
from banditlib.adapters.rlvr import DynamicSamplingFilter, RecencyReplay, RolloutScheduler

N, G, ROUNDS = 16, 4, 4


def make_scheduler(name: str) -> Any:
    if name == "cbs-both":
        return RolloutScheduler(mode="both", keep_fraction=0.5, reuse=3, seed=0)
    if name == "cbs-group":
        return RolloutScheduler(mode="group", seed=0)
    if name == "dapo":
        return DynamicSamplingFilter()
    return RecencyReplay(reuse=5, buffer_rounds=3)


def synthetic_round(t: int) -> dict[str, Any]:
    """All ``N`` rows of round ``t`` as ragged lists plus per-row statistics (the same on every rank)."""
    g = torch.Generator().manual_seed(100 + t)
    p_len = torch.randint(2, 7, (N // G,), generator=g).repeat_interleave(G)
    c_len = torch.randint(1, 9, (N,), generator=g)
    return {
        "prompts": [torch.randint(4, 16, (int(n),), generator=g) for n in p_len],
        "completions": [torch.randint(4, 16, (int(n),), generator=g) for n in c_len],
        "reward": torch.randint(0, 2, (N,), generator=g).float(),
        "advantage": torch.randn(N, generator=g),
        "entropy": torch.rand(N, generator=g),
    }


def local_rows(data: dict[str, Any], rank: int, world: int) -> dict[str, torch.Tensor]:
    n = N // world
    rows = range(rank * n, (rank + 1) * n)
    prompts = [data["prompts"][i] for i in rows]
    comps = [data["completions"][i] for i in rows]
    p, c = max(len(x) for x in prompts), max(len(x) for x in comps)
    pid = torch.stack([torch.cat([torch.zeros(p - len(x), dtype=torch.long), x]) for x in prompts])
    pm = torch.stack([torch.cat([torch.zeros(p - len(x)), torch.ones(len(x))]).long() for x in prompts])
    cid = torch.stack([torch.cat([x, torch.zeros(c - len(x), dtype=torch.long)]) for x in comps])
    cm = torch.stack([torch.cat([torch.ones(len(x)), torch.zeros(c - len(x))]).long() for x in comps])
    sl = slice(rank * n, (rank + 1) * n)
    return {
        "prompt_ids": pid, "prompt_mask": pm, "completion_ids": cid, "completion_mask": cm,
        "logprobs": -cid.float() / 10 * cm, "advantage": data["advantage"][sl], "entropy": data["entropy"][sl],
        "length": cm.sum(1).float(), "truncated": torch.zeros(n, dtype=torch.bool),
    }  # fmt: skip


def answers(completions: list[list[int]]) -> torch.Tensor:
    """The answer ids of the gathered completions, as `answer_ids` numbers them: the first token mod 3."""
    return ts.dense_ids(torch.tensor([ids[0] % 3 for ids in completions]))


def simulate(rank: int, world: int, tmp: str, name: str, gather: str = "rows", loss_type: str = "dapo") -> None:
    """The adapter's round plumbing on rank ``rank`` of ``world`` (``gather`` as the trainer's argument); writes
    the scheduler, and per round the real rows this rank trains on (the advantage of each divided by the rows of
    all ranks, padding included: its weight in TRL's row-normalised losses), the token count and the rows per
    rank."""
    if world > 1:
        dist.init_process_group("gloo", init_method=f"file://{tmp}/store", rank=rank, world_size=world)
    sch = make_scheduler(name)
    trained = []
    for t in range(ROUNDS):
        data = synthetic_round(t)
        local = local_rows(data, rank, world)
        if gather == "statistics":
            codes = torch.tensor([int(c) % 3 for c in local["completion_ids"][:, 0]])  # answer: first token mod 3
            batch = ts.build_statistics_batch(local, data["reward"], num_generations=G, round=t, codes=codes)
            schedule, _ = tb.schedule_round(sch, batch, observe=t > 0)
            mine, _, _, num_items = ts.local_training_rows(schedule, batch, local, rank=rank, world=world, multiple=2,
                                                           loss_type=loss_type, pad_token_id=0)  # fmt: skip
            total = mine["completion_mask"].shape[0] * world
        else:
            batch = tb.build_global_batch(local, data["reward"], num_generations=G, round=t, answer_of=answers)
            schedule, _ = tb.schedule_round(sch, batch, observe=t > 0)
            rows, _, _ = tb.training_rows(schedule, batch, multiple=2 * world, loss_type=loss_type, pad_token_id=0)
            mine = tb.rank_rows(rows, rank, world, pad_to_multiple_of=None)
            num_items, total = int(rows["completion_mask"].sum()), rows["completion_mask"].shape[0]
        keys = []
        for i in range(mine["prompt_ids"].shape[0]):
            m = mine["completion_mask"][i].bool()
            if m.any():
                prompt = mine["prompt_ids"][i][mine["prompt_mask"][i].bool()].tolist()
                old = [round(x, 4) for x in mine["old_per_token_logps"][i][m].tolist()]
                weight = float(mine["advantages"][i]) / (total if loss_type in tb.ROW_NORMALISED_LOSSES else 1)
                keys.append([t, prompt, mine["completion_ids"][i][m].tolist(), old, round(weight, 4)])
        trained.append({"rows": keys, "num_items": num_items, "per_rank": mine["completion_mask"].shape[0]})
    sch.save(os.path.join(tmp, f"scheduler-{gather}-{world}-{rank}.safetensors"))
    with open(os.path.join(tmp, f"rows-{gather}-{world}-{rank}.json"), "w") as fh:
        json.dump(trained, fh)
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()
