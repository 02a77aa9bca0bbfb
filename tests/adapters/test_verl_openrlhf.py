"""The verl and OpenRLHF functions: against verl's real ``DataProto`` when verl is installed (``make verl``'s
.venv-verl: it pins transformers below 5.11, so not next to TRL), else against a stand-in with the same
methods; the verl sampler's own rules against stand-ins for verl's ``ReplayBuffer`` and TransferQueue (verl
itself in ``test_verl_real.py``); against an OpenRLHF-style ``Experience`` stand-in with the real field names."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest
import torch

from banditlib.adapters.openrlhf import apply_schedule_to_experiences, rollout_batch_from_experiences
from banditlib.adapters.rlvr import DynamicSamplingFilter, MaxVarianceScheduler, RecencyReplay, RolloutScheduler
from banditlib.adapters.verl import apply_schedule_to_dataproto, rollout_batch_from_dataproto
from banditlib.errors import InvalidInputError

B, T, G = 8, 5, 4


class _DataProto:
    """Stand-in for ``verl.protocol.DataProto``: ``batch`` (dict for TensorDict), ``non_tensor_batch``,
    ``meta_info``, ``select_idxs``, ``from_dict``, ``concat``."""

    def __init__(self, batch: dict[str, torch.Tensor], non_tensor_batch: dict[str, np.ndarray], meta_info: dict):
        self.batch, self.non_tensor_batch, self.meta_info = batch, non_tensor_batch, meta_info

    def select_idxs(self, idxs: Any) -> _DataProto:
        idx = torch.as_tensor(idxs, dtype=torch.long)
        non_tensor = {k: v[idx.numpy()] for k, v in self.non_tensor_batch.items()}
        return _DataProto({k: v[idx] for k, v in self.batch.items()}, non_tensor, dict(self.meta_info))

    @classmethod
    def from_dict(cls, tensors: dict, non_tensors: dict | None = None, meta_info: dict | None = None) -> _DataProto:
        return cls(dict(tensors), dict(non_tensors or {}), dict(meta_info or {}))

    @classmethod
    def concat(cls, data: list[_DataProto]) -> _DataProto:
        return cls({k: torch.cat([d.batch[k] for d in data]) for k in data[0].batch},
                   {k: np.concatenate([d.non_tensor_batch[k] for d in data]) for k in data[0].non_tensor_batch},
                   dict(data[0].meta_info))  # fmt: skip


try:
    from verl.protocol import DataProto
except ImportError:
    DataProto = _DataProto


def make_dataproto(step: int) -> Any:
    g = torch.Generator().manual_seed(step)
    mask = torch.ones(B, T)
    mask[0, 3:] = 0
    scores = torch.zeros(B, T)
    scores[:, 0] = torch.tensor([1.0, 0.0, 1.0, 0.0, 1.0, 1.0, 1.0, 1.0])  # group 1 has no spread
    adv = torch.randn(B, 1, generator=g).expand(B, T) * mask
    batch = {"responses": torch.randint(0, 9, (B, T), generator=g), "response_mask": mask,
             "old_log_probs": -torch.rand(B, T, generator=g) * mask, "advantages": adv.contiguous(),
             "token_level_scores": scores, "input_ids": torch.randint(0, 9, (B, 3 + T), generator=g)}  # fmt: skip
    uid = np.array([f"p{step}-{i // G}" for i in range(B)], dtype=object)
    non_tensors = {"uid": uid, "data_source": np.array(["x"] * B, dtype=object)}
    return DataProto.from_dict(tensors=batch, non_tensors=non_tensors, meta_info={"step": step})


def test_verl_selection_removes_rows_and_scales_nothing_else() -> None:
    data = make_dataproto(0)
    batch = rollout_batch_from_dataproto(data, round=0)
    assert batch.group.tolist() == [0] * 4 + [1] * 4
    assert batch.reward.tolist() == [1.0, 0.0, 1.0, 0.0, 1.0, 1.0, 1.0, 1.0]
    assert batch.length[0] == 3 and not batch.truncated[0] and batch.truncated[1]
    decision = DynamicSamplingFilter().schedule(batch)  # drops group 1 (zero reward variance)
    out = apply_schedule_to_dataproto(data, decision)
    assert out.batch["responses"].shape[0] == 4
    torch.testing.assert_close(out.batch["old_log_probs"], data.batch["old_log_probs"][:4])
    assert list(out.non_tensor_batch["uid"]) == list(data.non_tensor_batch["uid"][:4])


def test_verl_weights_mode_keeps_shape() -> None:
    data = make_dataproto(0)
    decision = MaxVarianceScheduler(keep_fraction=0.5).schedule(rollout_batch_from_dataproto(data, round=0))
    out = apply_schedule_to_dataproto(data, decision, use_weights=True)
    w = out.batch["rollout_is_weights"]
    assert w.shape == (B, T)
    kept = torch.zeros(B, dtype=torch.bool)
    kept[decision.fresh] = True
    assert bool((w[~kept] == 0).all()) and bool((w[kept].sum(1) > 0).all())


def test_verl_replay_rebuilds_rows_with_stored_logprobs() -> None:
    sch = RecencyReplay(reuse=3, buffer_rounds=2)
    d0 = make_dataproto(0)
    apply_schedule_to_dataproto(d0, sch.schedule(rollout_batch_from_dataproto(d0, round=0)))
    d1 = make_dataproto(1)
    b1 = rollout_batch_from_dataproto(d1, round=1)
    sch.observe(b1)
    out = apply_schedule_to_dataproto(d1, sch.schedule(b1))
    assert out.batch["responses"].shape[0] == B + 3
    torch.testing.assert_close(out.batch["old_log_probs"][B:], d0.batch["old_log_probs"][:3])
    assert list(out.non_tensor_batch["uid"][B:]) == ["replay-0-0"] * 3
    with pytest.raises(InvalidInputError, match="use_weights"):
        apply_schedule_to_dataproto(d1, sch.schedule(rollout_batch_from_dataproto(make_dataproto(2), round=2)),
                                    use_weights=True)  # fmt: skip


@dataclasses.dataclass
class Experience:
    """Stand-in for ``openrlhf.trainer.ppo_utils.experience_maker.Experience`` (same field names)."""

    sequences: torch.Tensor
    action_log_probs: torch.Tensor
    base_action_log_probs: torch.Tensor
    values: torch.Tensor | None
    returns: torch.Tensor | None
    advantages: torch.Tensor | None
    attention_mask: torch.Tensor | None
    action_mask: torch.Tensor
    info: dict[str, Any]
    kl: torch.Tensor | None = None


def make_experiences() -> list[Experience]:
    g = torch.Generator().manual_seed(0)
    out = []
    for width in (4, 6):  # two micro-batches of 4 rows with their own widths
        mask = torch.ones(4, width, dtype=torch.bool)
        reward = torch.tensor([1.0, 0.0, 1.0, 0.0]) if width == 4 else torch.ones(4)
        out.append(Experience(
            sequences=torch.randint(0, 9, (4, width + 2), generator=g),
            action_log_probs=-torch.rand(4, width, generator=g),
            base_action_log_probs=torch.zeros(4, width), values=None, returns=None,
            advantages=torch.randn(4, 1, generator=g).expand(4, width).contiguous(),
            attention_mask=torch.ones(4, width + 2), action_mask=mask,
            info={"reward": reward, "response_length": mask.sum(1).float()},
        ))  # fmt: skip
    return out


def test_openrlhf_selection_keeps_rows_in_their_micro_batch() -> None:
    exps = make_experiences()
    batch = rollout_batch_from_experiences(exps, n_samples_per_prompt=G, round=0)
    assert len(batch) == 8 and batch.group.tolist() == [0] * 4 + [1] * 4
    out = apply_schedule_to_experiences(exps, DynamicSamplingFilter().schedule(batch))
    assert len(out) == 1  # group 1 (all rewards 1) is dropped with its micro-batch
    torch.testing.assert_close(out[0].action_log_probs, exps[0].action_log_probs)
    half = MaxVarianceScheduler(keep_fraction=0.5).schedule(batch)
    out = apply_schedule_to_experiences(exps, half)
    assert [x.sequences.shape[0] for x in out] == [2, 2]
    assert out[1].info["response_length"].shape == (2,)


def test_openrlhf_rejects_replay() -> None:
    exps = make_experiences()
    sch = RecencyReplay(reuse=2, buffer_rounds=2)
    sch.schedule(rollout_batch_from_experiences(exps, n_samples_per_prompt=G, round=0))
    b1 = rollout_batch_from_experiences(exps, n_samples_per_prompt=G, round=1)
    sch.observe(b1)
    with pytest.raises(InvalidInputError, match="replay"):
        apply_schedule_to_experiences(exps, sch.schedule(b1))


def test_thin_adapters_import_no_framework() -> None:
    import subprocess
    import sys

    code = (
        "import sys, banditlib.adapters.verl, banditlib.adapters.openrlhf, banditlib.adapters._trl_batch; "
        "print(','.join(m for m in ('verl', 'openrlhf', 'trl', 'transformers', 'ray') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout.strip()
    assert out == ""


def test_answer_ids_pass_through_to_the_default_scheduler() -> None:
    ids = torch.tensor([0, 0, 1, -1, 2, 2, 2, 2])
    batch = rollout_batch_from_dataproto(make_dataproto(0), round=0, answer=ids)
    assert torch.equal(batch.answer, ids)
    exps = make_experiences()
    b = rollout_batch_from_experiences(exps, n_samples_per_prompt=G, round=0, answer=ids)
    assert torch.equal(b.answer, ids)
    sch = RolloutScheduler(mode="group", seed=0)  # OpenRLHF: selection only
    out = apply_schedule_to_experiences(exps, sch.schedule(b))
    assert sum(x.sequences.shape[0] for x in out) == 8  # nothing learned yet: every row is kept
    with pytest.raises(InvalidInputError, match="`answer` must have shape"):
        rollout_batch_from_experiences(exps, n_samples_per_prompt=G, round=1, answer=ids[:3])


@dataclasses.dataclass
class _KVBatchMeta:
    """Stand-in for ``transfer_queue.KVBatchMeta`` (the fields the sampler uses)."""

    keys: list[str]
    tags: list[dict[str, Any]]
    partition_id: str = "train"


def _sampler(scheduler: Any, cleared: list[str]) -> Any:
    from types import SimpleNamespace

    from banditlib.adapters.verl import BanditReplayBuffer

    keys = [f"p{g}_{s}_0" for g in range(2) for s in range(G)]
    scores = torch.zeros(B, T)
    scores[:, -1] = (torch.arange(B) % 2).float()  # every group half solved
    fields = {"response_mask": torch.ones(B, T, dtype=torch.long), "rm_scores": scores}
    store = SimpleNamespace(
        kv_batch_get=lambda keys, partition_id, select_fields: fields,
        kv_clear=lambda keys, partition_id: cleared.extend(keys),
    )
    base = SimpleNamespace(
        sample=lambda global_steps, partition_id, batch_size: (_KVBatchMeta(keys, [{}] * B), {}), poll_interval=2.0
    )
    return BanditReplayBuffer(scheduler=scheduler, base=base, store=store, sampler_kwargs={"answer_key": None})


def test_sampler_keeps_everything_when_the_schedule_is_empty_and_says_so() -> None:
    from banditlib.adapters.rlvr import ThresholdScheduler

    cleared: list[str] = []
    buf = _sampler(ThresholdScheduler(min_reward=2.0), cleared)  # no reward reaches 2: nothing kept
    meta, metrics = buf.sample(global_steps=1, partition_id="train", batch_size=2)
    assert len(meta.keys) == B and not cleared and metrics["training/bandit/empty_schedule"] == 1
    assert buf.poll_interval == 2.0 and buf.rounds_ == 1


@pytest.mark.filterwarnings("ignore:RolloutScheduler. the batch has no .answer. ids")
def test_sampler_rejects_what_it_cannot_pass_to_verl() -> None:
    from banditlib.adapters.rlvr import SoftWeights
    from banditlib.adapters.verl import BanditReplayBuffer

    buf = _sampler(RolloutScheduler(mode="group", rule=SoftWeights(threshold=10.0, width=20.0), seed=0), [])
    with pytest.raises(InvalidInputError, match="weights rollouts"):
        buf.sample(global_steps=1, partition_id="train", batch_size=2)
    for bad, match in [({"mode": "async"}, "trainer_mode=sync"), ({"sampler_kwargs": {"seed": 0}}, "unknown keys"),
                       ({"sampler_kwargs": {"scheduler": "RolloutBatch"}}, "scheduler class"),
                       ({"sampler_kwargs": {"max_response_length": 0}}, "positive integer"),
                       ({"scheduler": RecencyReplay()}, "replays rollouts"),
                       ({"scheduler": RolloutScheduler(seed=0)}, "replays rollouts")]:  # fmt: skip
        kwargs = {"base": object(), "store": object(), **bad}
        mode = kwargs.pop("mode", "sync")
        with pytest.raises(InvalidInputError, match=match):
            BanditReplayBuffer(mode, **kwargs)
