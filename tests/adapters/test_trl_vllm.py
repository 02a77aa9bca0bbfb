"""BanditGRPOTrainer with ``use_vllm=True`` (through a CPU stand-in for vLLM) and without a second forward pass.

vLLM needs a GPU, so ``trl_fake_vllm.FakeVLLMGeneration`` replaces TRL's vLLM backend: it samples from the
training model with slightly scaled logits and reports the sampled tokens' log-probs as vLLM does. Everything
downstream is TRL's own code (``old_per_token_logps``, ``sampling_per_token_logps``,
``importance_sampling_ratio``, their use in the loss), so these tests check what the adapter does with the
fields vLLM generation produces: that they survive selection, padding and replay with the meaning of the round
that generated each row, and which pass of the model the scheduler's statistics come from.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch

pytest.importorskip("trl")

from test_trl import SCHEDULERS, Spy, config, dataset, loss_keys, make_model, make_tokenizer, reward_ones, row_key
from trl import GRPOTrainer
from trl_fake_vllm import fake_vllm

from banditlib.adapters import _trl_batch as tb
from banditlib.adapters.rlvr import RecencyReplay, RolloutBatch, UniformScheduler
from banditlib.adapters.trl import BanditGRPOTrainer
from banditlib.errors import InvalidInputError

VLLM_FIELDS = ("old_per_token_logps", "sampling_per_token_logps", "importance_sampling_ratio")


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


def make(tmp: Path, scheduler: Any, *, engine: dict[str, Any] | None = None, plain: bool = False,
         adapter: dict[str, Any] | None = None, **kw: Any) -> Any:  # fmt: skip
    """A BanditGRPOTrainer (or with ``plain`` a GRPOTrainer) on the tiny model; ``engine``: vLLM stand-in options."""
    args = config(tmp, **kw)
    common = dict(model=make_model(), reward_funcs=reward_ones, args=args, train_dataset=dataset(),
                  processing_class=make_tokenizer())  # fmt: skip
    with fake_vllm(**(engine or {})):
        if plain:
            return GRPOTrainer(**common)
        return BanditGRPOTrainer(scheduler=scheduler, **(adapter or {}), **common)


def record_generations(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """TRL's own generation output of every round (before the adapter touches it), cloned."""
    raw: list[dict[str, Any]] = []
    original = GRPOTrainer._generate_and_score_completions

    def spy(self: Any, inputs: Any) -> Any:
        out = original(self, inputs)
        raw.append({k: v.detach().clone() if torch.is_tensor(v) else v for k, v in out.items()})
        return out

    monkeypatch.setattr(GRPOTrainer, "_generate_and_score_completions", spy)
    return raw


def rows_of(out: dict[str, Any]) -> dict[tuple, dict[str, torch.Tensor]]:
    """Row key -> that row's vLLM fields, over one round's generation output (duplicated keys dropped)."""
    rows: dict[tuple, dict[str, torch.Tensor]] = {}
    seen: set[tuple] = set()
    for i in range(out["prompt_ids"].shape[0]):
        key = row_key(out["prompt_ids"][i], out["prompt_mask"][i], out["completion_ids"][i], out["completion_mask"][i])
        if key in seen:
            rows.pop(key, None)
            continue
        seen.add(key)
        rows[key] = {k: out[k][i] for k in VLLM_FIELDS if k in out}
    return rows


def extra_forwards(tr: Any) -> list[float]:
    """``scheduler/extra_forward`` of every logged generation round."""
    return [h["scheduler/extra_forward"] for h in tr.state.log_history if "scheduler/extra_forward" in h]


# ------------------------------------------------------------------------------------------------ use_vllm


@pytest.mark.parametrize("mode", ["sequence_mask", "token_truncate"])
def test_vllm_replayed_rows_carry_the_fields_of_their_own_round(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    raw = record_generations(monkeypatch)
    tr = make(tmp_path, RecencyReplay(reuse=4, buffer_rounds=2), use_vllm=True, max_steps=3,
              vllm_importance_sampling_mode=mode)  # fmt: skip
    spy = Spy(tr)
    tr.train()
    assert tr.entropy_ == "exact" and len(raw) == 3
    assert extra_forwards(tr) == [0.0, 0.0, 0.0]  # TRL's pass was reused
    assert all(math.isfinite(loss) for _, loss in spy.losses)
    assert raw[0]["importance_sampling_ratio"].shape[1] == (1 if mode.startswith("sequence") else 6)
    assert not torch.equal(raw[0]["old_per_token_logps"], raw[0]["sampling_per_token_logps"])  # a real mismatch
    checked = {"fresh": 0, "replayed": 0}
    for r in range(3):
        fresh, previous = rows_of(raw[r]), rows_of(raw[r - 1]) if r else {}
        for inputs, _ in spy.losses[2 * r : 2 * r + 2]:
            assert set(VLLM_FIELDS) <= set(inputs)
            ratio, ids = inputs["importance_sampling_ratio"], inputs["completion_ids"]
            assert ratio.shape == ((ids.shape[0], 1) if mode.startswith("sequence") else ids.shape)
            for i, key in enumerate(loss_keys(inputs)):
                if (key in fresh) == (key in previous):  # ambiguous or unknown: skipped
                    continue
                want, kind = (fresh[key], "fresh") if key in fresh else (previous[key], "replayed")
                n = len(key[1])
                for k in VLLM_FIELDS:
                    got = inputs[k][i]
                    m = 1 if k == "importance_sampling_ratio" and got.shape[0] == 1 else n
                    torch.testing.assert_close(got[:m], want[k][:m].float(), msg=f"{kind} {k}")
                checked[kind] += 1
    assert checked["fresh"] >= 8 and checked["replayed"] >= 2


def test_vllm_without_is_correction_reads_the_sampler_logprobs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    raw = record_generations(monkeypatch)
    tr = make(tmp_path, RecencyReplay(reuse=4, buffer_rounds=2), use_vllm=True, max_steps=2,
              vllm_importance_sampling_correction=False)  # fmt: skip
    spy = Spy(tr)
    tr.train()
    assert tr.entropy == "auto" and tr.entropy_ == "sampled"
    assert extra_forwards(tr) == [0.0, 0.0]
    for (batch, _), out in zip(spy.rounds, raw, strict=True):
        assert "old_per_token_logps" not in out and "importance_sampling_ratio" not in out
        sampling, mask = out["sampling_per_token_logps"], out["completion_mask"]
        torch.testing.assert_close(batch.logprobs, sampling.float())
        torch.testing.assert_close(batch.entropy, tb.masked_row_mean(-sampling, mask))
    # Round 1 replays, so every row needs pi_old: the fresh rows' is what vLLM sampled them with.
    fresh = rows_of({**raw[1], "old_per_token_logps": raw[1]["sampling_per_token_logps"]})
    found = 0
    for inputs, _ in spy.losses[2:]:
        for i, key in enumerate(loss_keys(inputs)):
            if key in fresh:
                n = len(key[1])
                torch.testing.assert_close(inputs["old_per_token_logps"][i, :n], fresh[key]["old_per_token_logps"][:n])
                found += 1
    assert found >= 4


def reference_statistics(tr: Any, batch: RolloutBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """``(logps, entropy)`` by an independent no-grad pass of the model (nothing captured)."""
    pl = batch.payload
    ids, mask = pl["completion_ids"], pl["completion_mask"]
    prompt, prompt_mask = pl["prompt_ids_rev"].flip(1), pl["prompt_mask_rev"].flip(1)
    with torch.no_grad():
        logps, ent, _ = tr._get_per_token_logps_and_entropies(
            tr.model, torch.cat([prompt, ids], 1), torch.cat([prompt_mask, mask], 1), ids.shape[1],
            batch_size=tr.args.per_device_train_batch_size, compute_entropy=True,
        )  # fmt: skip
    return logps, tb.masked_row_mean(ent, mask)


@pytest.mark.parametrize("case", ["exact", "nan"])
def test_vllm_falls_back_to_the_forward_when_asked_or_needed(tmp_path: Path, case: str) -> None:
    # "exact": the exact entropy needs the training model's pass; "nan": vLLM could not score a token.
    engine = {"nan_at": ((0, 0),)} if case == "nan" else {}
    adapter = {"entropy": "exact"} if case == "exact" else {}
    tr = make(tmp_path, UniformScheduler(), engine=engine, adapter=adapter, use_vllm=True, max_steps=1,
              vllm_importance_sampling_correction=False)  # fmt: skip
    seen: list[tuple[RolloutBatch, torch.Tensor, torch.Tensor]] = []
    schedule = tr.rollout_scheduler.schedule

    def spy(batch: RolloutBatch) -> Any:
        seen.append((batch, *reference_statistics(tr, batch)))
        return schedule(batch)

    tr.rollout_scheduler.schedule = spy
    tr.train()
    assert tr.entropy_ == case if case == "exact" else tr.entropy_ == "sampled"
    assert extra_forwards(tr) == [1.0]
    ((batch, logps, entropy),) = seen
    torch.testing.assert_close(batch.logprobs, logps)  # the training model's, not the sampler's
    if case == "exact":
        torch.testing.assert_close(batch.entropy, entropy)
    else:
        assert bool(torch.isnan(batch.payload["sampling_per_token_logps"][0, 0]))  # carried as TRL has it
        torch.testing.assert_close(batch.entropy, tb.masked_row_mean(-logps, batch.payload["completion_mask"]))


def test_resume_refuses_a_checkpoint_with_other_fields(tmp_path: Path) -> None:
    tr = make(tmp_path / "a", SCHEDULERS["cbs-both"](), use_vllm=True, max_steps=1, save_strategy="steps",
              save_steps=1)  # fmt: skip
    tr.train()
    ckpt = str(tmp_path / "a" / "checkpoint-1")
    with pytest.raises(InvalidInputError, match="payload"):  # the buffer holds rows with vLLM fields
        make(tmp_path / "b", SCHEDULERS["cbs-both"](), max_steps=2).train(resume_from_checkpoint=ckpt)
    with pytest.raises(InvalidInputError, match="entropy"):
        make(tmp_path / "c", SCHEDULERS["cbs-both"](), adapter={"entropy": "sampled"}, use_vllm=True,
             max_steps=2).train(resume_from_checkpoint=ckpt)  # fmt: skip


@pytest.mark.parametrize("bad", ["mean", None, 1])
def test_bad_entropy_fails_at_construction(tmp_path: Path, bad: Any) -> None:
    with pytest.raises(InvalidInputError, match="entropy"):
        make(tmp_path, UniformScheduler(), adapter={"entropy": bad})


# ------------------------------------------------------------------------------------------------ no second forward


def count_scoring_passes(tr: Any) -> list[int]:
    """Counts the model's no-grad fused-head forwards (scoring passes; generation does not use the fused head)."""
    calls = [0]
    forward = tr.model.forward

    def counted(*args: Any, **kwargs: Any) -> Any:
        if kwargs.get("fused_lm_head") and not torch.is_grad_enabled():
            calls[0] += 1
        return forward(*args, **kwargs)

    tr.model.forward = counted
    return calls


def test_trl_pass_is_reused_with_the_same_statistics_and_decisions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # steps_per_generation 2 with gradient_accumulation_steps 1: TRL scores old_per_token_logps itself.
    kw: dict[str, Any] = {"gradient_accumulation_steps": 1, "steps_per_generation": 2, "max_steps": 4}
    plain = make(tmp_path / "p", None, plain=True, **kw)
    plain_calls = count_scoring_passes(plain)
    plain.train()
    runs = {}
    for name in ("reused", "own forward"):
        if name == "own forward":  # as before: TRL's pass not captured, the adapter scores on its own
            monkeypatch.setattr(BanditGRPOTrainer, "_trl_scores_behaviour", lambda self: False)
        tr = make(tmp_path / name, SCHEDULERS["cbs-both"](), adapter={"grad_sketch": 16}, **kw)
        calls, spy = count_scoring_passes(tr), Spy(tr)
        tr.train()
        runs[name] = (tr, calls[0], spy)
    (reused, n_reused, a), (own, n_own, b) = runs["reused"], runs["own forward"]
    # Two micro-batches of 4 rows per pass: plain GRPO and the adapter run one pass per round, the old way two.
    assert n_reused == plain_calls[0] == 4 and n_own == 8
    assert extra_forwards(reused) == [0.0, 0.0] and extra_forwards(own) == [1.0, 1.0]  # logged per generation
    assert len(a.rounds) == len(b.rounds) == 2
    for (ba, da), (bb, db) in zip(a.rounds, b.rounds, strict=True):
        for field in ("entropy", "logprobs", "grad", "reward", "advantage"):
            assert torch.equal(getattr(ba, field), getattr(bb, field)), field
        assert torch.equal(da.fresh, db.fresh) and torch.equal(da.fresh_weight, db.fresh_weight)
        assert torch.equal(da.replay.round, db.replay.round)
    assert [loss for _, loss in a.losses] == [loss for _, loss in b.losses]


# ------------------------------------------------------------------------------------------------ tensor plumbing


def test_row_columns_survive_replay_and_rank_rows() -> None:
    ones = torch.ones(4, 3, dtype=torch.long)

    def batch(width: int, round_: int) -> RolloutBatch:
        return RolloutBatch.from_tensors(
            group=torch.arange(4) // 2, reward=torch.tensor([1.0, 0.0, 1.0, 0.0]), entropy=torch.zeros(4),
            length=torch.full((4,), float(width)), logprobs=torch.zeros(4, width), round=round_,
            payload={"prompt_ids_rev": ones, "prompt_mask_rev": ones, "completion_ids": ones[:, :1].repeat(1, width),
                     "completion_mask": ones[:, :1].repeat(1, width),
                     "importance_sampling_ratio": torch.arange(4.0)[:, None] + 10 * round_},
        )  # fmt: skip

    old, new = batch(2, 0), batch(3, 1)
    decision = RecencyReplay(reuse=2, buffer_rounds=2)
    decision.schedule(old)
    schedule = decision.schedule(new)
    rows, n_fresh, n_replay = tb.training_rows(schedule, new, multiple=4, loss_type="dapo", pad_token_id=0)
    assert (n_fresh, n_replay) == (4, 2) and rows["importance_sampling_ratio"].shape == (8, 1)
    mine = tb.rank_rows(rows, 0, 2, pad_to_multiple_of=None)
    assert mine["importance_sampling_ratio"].shape == (4, 1) and mine["completion_ids"].shape == (4, 3)
    assert mine["importance_sampling_ratio"][:2, 0].tolist() == [10.0, 12.0]  # fresh rows 0 and 2 of round 1


def test_masked_row_mean_reads_only_the_mask() -> None:
    values = torch.tensor([[1.0, 3.0, float("nan")], [float("inf"), 2.0, 4.0], [5.0, 5.0, 5.0]])
    mask = torch.tensor([[1, 1, 0], [0, 1, 1], [0, 0, 0]])
    assert tb.masked_row_mean(values, mask).tolist() == [2.0, 3.0, 0.0]
    assert tb.finite_on_mask(values, mask) and not tb.finite_on_mask(values, torch.ones_like(mask))
