"""What the ranks of a data-parallel ``BanditGRPOTrainer`` exchange per generation round, and what it costs:
``gather="rows"`` (every row all-gathered, decided on, redistributed) against ``gather="statistics"`` (only per-row
statistics and answer codes all-gathered; each rank keeps its own selected rows).

``--world`` gloo processes on this machine run the adapter's round plumbing (`banditlib.adapters._trl_batch`,
`banditlib.adapters._trl_stats`: gather, ``observe`` + ``schedule``, the rank's training rows) on synthetic rounds
of ``--rows`` rows per rank with prompts of up to ``--prompt`` and completions of up to ``--completion`` tokens
(random lengths, int64 ids and masks, float32 log-probs, as TRL hands them over), the same rounds in both modes,
the modes taking turns round by round. The scheduler is ``RolloutScheduler(mode="group")`` (it only selects), with
answer ids. Per mode: the bytes each rank sends into and receives from ``all_gather`` / ``all_reduce`` per round
(counted at the ``torch.distributed`` calls), and the median and best milliseconds per round on rank 0. Both
modes make the same decisions (``tests/adapters/test_trl.py`` checks it); the model's forward and backward, the
same in both, are not part of it. Over gloo on one machine the transfer is a memory copy: across machines
(nccl, a network) the bytes are what matters.

torch runs on one thread per process (``torch.set_num_threads(1)``).

Usage: ``python benchmarks/bench_trl_gather.py [--quick] [--out DIR] [--world 2] [--rows 64] [--prompt 256]
[--completion 1024] [--rounds 12]``; writes ``DIR/bench_trl_gather.json`` and prints the table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from _common import machine_info, table

from banditlib.adapters import _trl_batch as tb
from banditlib.adapters import _trl_stats as ts
from banditlib.adapters.rlvr import RolloutScheduler

G = 8
MODES = ("rows", "statistics")


class Counter:
    """Bytes this process sends into and receives from the collectives, by wrapping ``torch.distributed``'s."""

    def __init__(self) -> None:
        self.sent = self.received = 0
        gather, reduce = dist.all_gather, dist.all_reduce

        def all_gather(parts: list[torch.Tensor], tensor: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
            self.sent += tensor.nbytes
            self.received += sum(p.nbytes for p in parts) - tensor.nbytes
            return gather(parts, tensor, *args, **kwargs)

        def all_reduce(tensor: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
            self.sent += tensor.nbytes
            self.received += tensor.nbytes
            return reduce(tensor, *args, **kwargs)

        dist.all_gather, dist.all_reduce = all_gather, all_reduce  # type: ignore[assignment]

    def take(self) -> tuple[int, int]:
        out = (self.sent, self.received)
        self.sent = self.received = 0
        return out


def synthetic(t: int, rank: int, n: int, prompt: int, completion: int) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Rank ``rank``'s ``n`` rows of round ``t`` as TRL hands them over, and the rewards of all ranks' rows."""
    g = torch.Generator().manual_seed(1000 * t + rank)
    p_len = torch.randint(prompt // 2, prompt + 1, (n // G,), generator=g).repeat_interleave(G)
    c_len = torch.randint(1, completion + 1, (n,), generator=g)
    cols = torch.arange(prompt)
    pm = (cols[None, :] >= prompt - p_len[:, None]).long()  # left padded
    cm = (torch.arange(completion)[None, :] < c_len[:, None]).long()  # right padded
    local = {
        "prompt_ids": torch.randint(4, 1000, (n, prompt), generator=g) * pm, "prompt_mask": pm,
        "completion_ids": torch.randint(4, 1000, (n, completion), generator=g) * cm, "completion_mask": cm,
        "logprobs": -torch.rand(n, completion, generator=g) * cm, "advantage": torch.randn(n, generator=g),
        "entropy": torch.rand(n, generator=g), "length": c_len.float(), "truncated": c_len == completion,
    }  # fmt: skip
    return local, torch.Generator().manual_seed(t)


def one_round(mode: str, scheduler: Any, t: int, rank: int, world: int, args: argparse.Namespace) -> None:
    local, gen = synthetic(t, rank, args.rows, args.prompt, args.completion)
    reward = (torch.rand(args.rows * world, generator=gen) < 0.5).float()  # every rank draws all the rewards
    first = [int(x) for x in local["completion_ids"][:, 0]]
    if mode == "statistics":
        codes = torch.tensor([x % 5 for x in first])
        batch = ts.build_statistics_batch(local, reward, num_generations=G, round=t, codes=codes)
        schedule, _ = tb.schedule_round(scheduler, batch, observe=t > 0)
        rows, *_ = ts.local_training_rows(schedule, batch, local, rank=rank, world=world, multiple=1,
                                          loss_type="dapo", pad_token_id=0)  # fmt: skip
        tb.rank_rows(rows, 0, 1, pad_to_multiple_of=None)
    else:

        def answers(ids: list[list[int]]) -> torch.Tensor:
            return ts.dense_ids(torch.tensor([x[0] % 5 for x in ids]))

        batch = tb.build_global_batch(local, reward, num_generations=G, round=t, answer_of=answers)
        schedule, _ = tb.schedule_round(scheduler, batch, observe=t > 0)
        rows, *_ = tb.training_rows(schedule, batch, multiple=world, loss_type="dapo", pad_token_id=0)
        tb.rank_rows(rows, rank, world, pad_to_multiple_of=None)


def worker(rank: int, world: int, store: str, args: argparse.Namespace, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    counter = Counter()
    schedulers = {m: RolloutScheduler(mode="group", seed=0) for m in MODES}
    seconds: dict[str, list[float]] = {m: [] for m in MODES}
    traffic: dict[str, list[tuple[int, int]]] = {m: [] for m in MODES}
    for t in range(args.rounds):
        for mode in MODES if t % 2 == 0 else MODES[::-1]:  # take turns: drifts hit both alike
            dist.barrier()
            counter.take()
            start = time.perf_counter()
            one_round(mode, schedulers[mode], t, rank, world, args)
            seconds[mode].append(time.perf_counter() - start)
            traffic[mode].append(counter.take())
    if rank == 0:
        with open(out, "w") as fh:
            json.dump({"seconds": seconds, "traffic": traffic}, fh)
    dist.barrier()
    dist.destroy_process_group()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small rounds, few of them (a smoke test)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    ap.add_argument("--world", type=int, default=2)
    ap.add_argument("--rows", type=int, default=64, help="rows per rank and round (a multiple of 8)")
    ap.add_argument("--prompt", type=int, default=256)
    ap.add_argument("--completion", type=int, default=1024)
    ap.add_argument("--rounds", type=int, default=12)
    args = ap.parse_args()
    if args.quick:
        args.rows, args.prompt, args.completion, args.rounds = 16, 16, 32, 3
    if args.rows % G or args.world < 2:
        sys.exit(f"--rows must be a multiple of {G} and --world at least 2")
    with tempfile.TemporaryDirectory() as tmp:
        raw = os.path.join(tmp, "rank0.json")
        mp.spawn(worker, args=(args.world, os.path.join(tmp, "store"), args, raw), nprocs=args.world, join=True)
        got = json.loads(Path(raw).read_text())
    result: dict[str, Any] = {
        "machine": machine_info(1, ("torch",)),
        "config": {k: getattr(args, k) for k in ("world", "rows", "prompt", "completion", "rounds")},
        "modes": {},
    }
    for mode in MODES:
        sec, traffic = got["seconds"][mode][1:], got["traffic"][mode][1:]  # round 0 warms up
        result["modes"][mode] = {
            "ms_median": statistics.median(sec) * 1e3, "ms_best": min(sec) * 1e3,
            "sent_bytes_per_round": statistics.mean(s for s, _ in traffic),
            "received_bytes_per_round": statistics.mean(r for _, r in traffic),
        }  # fmt: skip
    rows_m, stats_m = result["modes"]["rows"], result["modes"]["statistics"]
    result["bytes_ratio"] = rows_m["received_bytes_per_round"] / stats_m["received_bytes_per_round"]
    os.makedirs(args.out, exist_ok=True)
    (Path(args.out) / "bench_trl_gather.json").write_text(json.dumps(result, indent=2))
    cfg = result["config"]
    print(table(
        f"Per generation round and rank: {cfg['world']} gloo processes, {cfg['rows']} rows per rank, prompts <= "
        f"{cfg['prompt']}, completions <= {cfg['completion']} tokens",
        ["gather", "sent (bytes)", "received (bytes)", "ms median", "ms best"],
        [[m, f"{r['sent_bytes_per_round']:,.0f}", f"{r['received_bytes_per_round']:,.0f}", f"{r['ms_median']:.1f}",
          f"{r['ms_best']:.1f}"] for m, r in result["modes"].items()],
        [f"Received bytes, rows / statistics: {result['bytes_ratio']:.0f}x. Round plumbing only (gather, "
         "observe + schedule, the rank's training rows), rank 0, median of "
         f"{cfg['rounds'] - 1} rounds after one warm-up; one torch thread per process; over gloo on one machine."],
    ))  # fmt: skip


if __name__ == "__main__":
    main()
