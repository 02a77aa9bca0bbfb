"""Run by ``test_trl.py`` under ``torchrun --nproc_per_node 2`` (accelerate picks the ranks up, gloo on CPU).

A short BanditGRPOTrainer run with one prompt per rank and step, so every group of 4 completions straddles
the two processes, with answers (the default ``answer_fn``) and gradient sketches. Each rank writes its
scheduler, its logged metrics and the answer ids and sketches its scheduler saw to the directory given as
argument. A second argument sets ``gather`` (default ``"rows"``; ``"statistics"`` runs the paper's CBS
in ``mode="group"``, which only selects).
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import pytest
import torch

pytest.importorskip("trl")  # pytest's doctest collection imports this file too

from test_trl import SCHEDULERS, config, dataset, make_model, make_tokenizer, reward_ones

from banditlib.adapters.rlvr import RolloutBatch
from banditlib.adapters.trl import BanditGRPOTrainer


def main(out: str, gather: str = "rows") -> None:
    torch.set_num_threads(1)
    tr = BanditGRPOTrainer(
        scheduler=SCHEDULERS["cbs-both" if gather == "rows" else "cbs-group"](),
        gather=gather,
        grad_sketch=16,
        model=make_model(),
        reward_funcs=reward_ones,
        args=config(out, per_device_train_batch_size=1, max_steps=2),
        train_dataset=dataset(),
        processing_class=make_tokenizer(),
    )
    seen: list[dict[str, list]] = []
    schedule = tr.rollout_scheduler.schedule

    def record(batch: RolloutBatch) -> Any:
        rows = batch.payload.get("completion_ids", batch.payload.get("tokens"))  # statistics: token counts only
        seen.append({"answer": batch.answer.tolist(), "grad": batch.grad.tolist(), "completions": rows.tolist()})
        return schedule(batch)

    tr.rollout_scheduler.schedule = record
    tr.train()
    rank = tr.accelerator.process_index
    tr.rollout_scheduler.save(os.path.join(out, f"scheduler-rank{rank}.safetensors"))
    with open(os.path.join(out, f"log-rank{rank}.json"), "w") as fh:
        json.dump([h for h in tr.state.log_history if "loss" in h], fh)
    with open(os.path.join(out, f"batches-rank{rank}.json"), "w") as fh:
        json.dump(seen, fh)
    if torch.distributed.is_initialized():
        torch.distributed.barrier()  # both ranks have written their files
    # Leave without the interpreter's teardown: a rank once hung for good in it (gloo's threads waiting on a
    # futex after the other rank had gone), after all its work was written.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main(*sys.argv[1:3])
