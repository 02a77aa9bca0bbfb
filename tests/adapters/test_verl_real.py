"""The verl integration against verl itself (0.9.1, in its own venv: ``make verl``), on CPU.

* verl's ``compute_advantage`` (GRPO) on a real ``DataProto``, read by ``rollout_batch_from_dataproto`` and cut
  by ``apply_schedule_to_dataproto``;
* the V1 trainer's replay-buffer hook end to end: verl's Hydra config with ``custom_sampler`` and
  ``checkpoint_callback_class`` set, a real ``PPOTrainerSync`` built from it (verl instantiates
  ``BanditReplayBuffer`` and ``BanditCheckpointCallback``), a local Ray instance and TransferQueue holding
  rollouts written as verl's agent loop writes them (``AgentLoopOutput.as_dict``, the same keys and tags), the
  trainer's ``replay_buffer.sample`` and its own ``_compute_advantage`` on the kept rows, the scheduler
  learning across steps, and a checkpoint saved by verl's callback and restored on resume.

Not here: generation (vLLM/SGLang servers), the actor/critic worker groups (FSDP/Megatron on GPUs), and so
``old_log_prob`` and the actor update; the test writes ``old_log_probs`` into TransferQueue as the actor would.

Without verl these tests skip; with ``BANDITLIB_REQUIRE_VERL=1`` (``make verl`` sets it) a missing verl fails.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch

from banditlib.adapters.rlvr import DynamicSamplingFilter, RecencyReplay, RolloutScheduler
from banditlib.adapters.verl import (
    STATE_FILE,
    BanditCheckpointCallback,
    BanditReplayBuffer,
    apply_schedule_to_dataproto,
    rollout_batch_from_dataproto,
)
from banditlib.errors import InvalidInputError

REQUIRED = os.environ.get("BANDITLIB_REQUIRE_VERL") == "1"
try:
    import verl
    from tensordict import TensorDict
    from verl.protocol import DataProto
except ImportError as exc:  # pragma: no cover - depends on the environment
    if REQUIRED:
        raise ImportError(f"BANDITLIB_REQUIRE_VERL=1 but verl does not import: {exc}") from exc
    pytest.skip("needs verl (`make verl` builds .venv-verl with it)", allow_module_level=True)

# verl reports its optional engines (Megatron, torchtitan, ...) missing and its own deprecations on import.
pytestmark = [pytest.mark.filterwarnings(r"ignore::UserWarning:verl(\..*)?"),
              pytest.mark.filterwarnings(r"ignore::FutureWarning:verl(\..*)?"),
              pytest.mark.filterwarnings(r"ignore::DeprecationWarning:ray(\..*)?")]  # fmt: skip
N = 4  # rollouts per prompt (actor_rollout_ref.rollout.n)


def test_pinned_version() -> None:
    assert verl.__version__ == "0.9.1"


# ------------------------------------------------------------------------------ DataProto functions


def test_dataproto_functions_read_verls_own_grpo_advantages() -> None:
    from verl.trainer.ppo.core_algos import AdvantageEstimator
    from verl.trainer.ppo.ray_trainer import compute_advantage

    g = torch.Generator().manual_seed(0)
    B, T = 2 * N, 5
    mask = torch.ones(B, T)
    mask[1, 2:] = 0
    scores = torch.zeros(B, T)
    scores[torch.arange(B), mask.sum(1).long() - 1] = torch.tensor([1.0, 0.0, 1.0, 0.0, 1.0, 1.0, 1.0, 1.0])
    data = DataProto.from_dict(
        tensors={"responses": torch.randint(0, 9, (B, T), generator=g), "response_mask": mask,
                 "attention_mask": torch.cat([torch.ones(B, 3), mask], 1), "token_level_scores": scores,
                 "token_level_rewards": scores, "old_log_probs": -torch.rand(B, T, generator=g) * mask},
        non_tensors={"uid": np.array(["a"] * N + ["b"] * N, dtype=object)},
    )  # fmt: skip
    data = compute_advantage(data, adv_estimator=AdvantageEstimator.GRPO, num_repeat=N)
    batch = rollout_batch_from_dataproto(data, round=0)
    want = (data.batch["advantages"] * mask).sum(1) / mask.sum(1)
    torch.testing.assert_close(batch.advantage, want)
    assert batch.group.tolist() == [0] * N + [1] * N and batch.reward.tolist() == scores.sum(1).tolist()
    out = apply_schedule_to_dataproto(data, DynamicSamplingFilter().schedule(batch))  # group b has no spread
    assert isinstance(out, DataProto) and len(out) == N
    torch.testing.assert_close(out.batch["advantages"], data.batch["advantages"][:N])
    sch = RecencyReplay(reuse=2, buffer_rounds=2)
    apply_schedule_to_dataproto(data, sch.schedule(batch))
    later = rollout_batch_from_dataproto(data, round=1)
    sch.observe(later)
    out = apply_schedule_to_dataproto(data, sch.schedule(later))  # replay: DataProto.from_dict + concat
    assert isinstance(out, DataProto) and len(out) == B + 2
    assert list(out.non_tensor_batch["uid"][B:]) == ["replay-0-0"] * 2


# ------------------------------------------------------------------------------ the V1 trainer hook


@pytest.fixture(scope="module")
def tq() -> Any:
    """A local Ray instance and TransferQueue's in-memory store (its controller and one storage unit, one
    Ray actor and logical CPU each), for the whole module."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray
    import transfer_queue
    from omegaconf import OmegaConf

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, namespace="banditlib-verl-test")
    transfer_queue.init(OmegaConf.create({"backend": {"SimpleStorage": {"num_data_storage_units": 1}}}))
    yield transfer_queue
    transfer_queue.close()
    ray.shutdown()


def verl_config(**sampler_kwargs: Any) -> Any:
    """verl's own ``ppo_trainer`` config (Hydra), GRPO with ``n = 4``, the hook and the callback set."""
    from hydra import compose, initialize_config_dir

    kwargs = {"scheduler": "RolloutScheduler", "scheduler_kwargs": {"mode": "group", "seed": 0}, **sampler_kwargs}
    overrides = [
        "algorithm.adv_estimator=grpo", f"actor_rollout_ref.rollout.n={N}", "data.train_batch_size=4",
        "actor_rollout_ref.rollout.response_length=6",
        "trainer.v1.sampler.custom_sampler.path=pkg://banditlib.adapters.verl",
        "trainer.v1.sampler.custom_sampler.name=BanditReplayBuffer",
        "+trainer.v1.sampler.sampler_kwargs.max_response_length=${actor_rollout_ref.rollout.response_length}",
        "trainer.checkpoint_callback_class=banditlib.adapters.verl.BanditCheckpointCallback",
    ]  # fmt: skip
    for key, value in kwargs.items():
        text = "{" + ", ".join(f"{k}: {v}" for k, v in value.items()) + "}" if isinstance(value, dict) else value
        overrides.append(f"+trainer.v1.sampler.sampler_kwargs.{key}={'null' if text is None else text}")
    with initialize_config_dir(config_dir=str(Path(verl.__file__).parent / "trainer" / "config"), version_base=None):
        return compose("ppo_trainer", overrides=overrides)


def trainer(**sampler_kwargs: Any) -> Any:
    from verl.trainer.ppo.v1 import PPOTrainerSync

    return PPOTrainerSync(config=verl_config(**sampler_kwargs))


def generate(tq: Any, step: int, prompts: dict[str, list[tuple[float, str | None, int]]], reward: bool = True) -> None:
    """Write finished rollouts as verl does: the trainer registers each prompt (``_submit_batch_to_rollout``),
    the agent loop writes each session's ``AgentLoopOutput.as_dict()`` with its keys and tags
    (``_agent_loop_postprocess``) and marks the prompt finished (``_run_prompt``).

    ``prompts``: uid -> one ``(reward, extracted answer, response length)`` per session; ``reward=False``
    leaves the reward to a colocated reward model (no ``rm_scores`` yet).
    """
    from verl.experimental.agent_loop.agent_loop import AgentLoopMetrics, AgentLoopOutput
    from verl.utils.tensordict_utils import list_of_dict_to_tensordict

    tq.kv_batch_put(keys=list(prompts), partition_id="train",
                    tags=[{"is_prompt": True, "status": "pending", "global_steps": step} for _ in prompts])  # fmt: skip
    for uid, sessions in prompts.items():
        tq.kv_put(key=uid, partition_id="train", tag={"status": "running"})
        keys, fields, tags = [], [], []
        for session, (score, pred, length) in enumerate(sessions):
            out = AgentLoopOutput(
                prompt_ids=[1, 2, 3], response_ids=list(range(4, 4 + length)), response_mask=[1] * length,
                response_logprobs=[-0.5] * length, reward_score=score if reward else None,
                metrics=AgentLoopMetrics(), extra_fields={"reward_extra_info": {"score": score, "pred": pred}},
            )  # fmt: skip
            field = out.as_dict()
            field.update({"uid": uid, "session_id": session, "global_steps": step})
            field["loss_mask"] = field["response_mask"]
            field["input_ids"] = torch.cat([field["prompts"], field["responses"]])
            keys.append(f"{uid}_{session}_0")
            fields.append(field)
            tags.append({"status": "success", "prompt_len": 3, "response_len": length, "seq_len": 3 + length,
                         "global_steps": step, "min_global_steps": step, "max_global_steps": step})  # fmt: skip
        tq.kv_batch_put(keys=keys, fields=list_of_dict_to_tensordict(fields), tags=tags, partition_id="train")
        tq.kv_put(key=uid, partition_id="train", tag={"status": "finished"})


def round_of(step: int) -> dict[str, list[tuple[float, str | None, int]]]:
    """Four prompts: ``s<step>-0`` solved by 2 of 4, with a 'lucky' accepted answer identical to a rejected
    one; ``-1`` solved by all; ``-2`` by none, one answer truncated (6 tokens); ``-3`` by 1 of 4."""
    return {
        f"s{step}-0": [(1.0, "7", 3), (1.0, "8", 4), (0.0, "8", 4), (0.0, "9", 2)],
        f"s{step}-1": [(1.0, "4", 3)] * N,
        f"s{step}-2": [(0.0, "1", 3), (0.0, "2", 6), (0.0, "3", 2), (0.0, None, 5)],
        f"s{step}-3": [(1.0, "5", 2), (0.0, "6", 3), (0.0, "6", 4), (0.0, "2", 3)],
    }


def write_old_log_probs(tq: Any, meta: Any) -> None:
    """What the actor's ``compute_log_prob`` would add before the advantage (here: the rollout's own)."""
    data = tq.kv_batch_get(keys=meta.keys, partition_id=meta.partition_id, select_fields=["rollout_log_probs"])
    old = torch.nested.as_nested_tensor([r.clone() for r in data["rollout_log_probs"].unbind()], layout=torch.jagged)
    tq.kv_batch_put(keys=meta.keys, partition_id=meta.partition_id,
                    fields=TensorDict({"old_log_probs": old}, batch_size=len(meta.keys)))  # fmt: skip


def listed(tq: Any) -> set[str]:
    return set((tq.kv_list("train") or {}).get("train", {}))


def test_verl_builds_the_hook_and_the_callback_from_its_config() -> None:
    t = trainer()
    assert isinstance(t.replay_buffer, BanditReplayBuffer)
    assert isinstance(t.checkpoint_callback, BanditCheckpointCallback)
    assert isinstance(t.replay_buffer.scheduler, RolloutScheduler) and t.replay_buffer.max_response_length == 6
    assert t.replay_buffer.poll_interval == 2.0  # verl's ReplayBuffer underneath answers its attributes


def test_sample_keeps_the_scheduled_rows_and_verl_computes_their_advantages(tq: Any) -> None:
    t = trainer(scheduler="DynamicSamplingFilter", scheduler_kwargs={})
    generate(tq, 1, round_of(1))
    meta, metrics = t.replay_buffer.sample(global_steps=1, partition_id="train", batch_size=4)
    kept = {k.split("_")[0] for k in meta.keys}
    assert kept == {"s1-0", "s1-3"}  # groups 1 and 2 have no reward spread
    assert len(meta.keys) == 2 * N and metrics["training/bandit/dropped_rollouts"] == 2 * N
    present = listed(tq)
    assert set(meta.keys) <= present and not {k for k in present if k.startswith(("s1-1", "s1-2"))}
    write_old_log_probs(tq, meta)
    metrics = {}
    meta = t._compute_advantage(meta, metrics=metrics)  # verl's own: GRPO on the kept rows
    adv = tq.kv_batch_get(keys=meta.keys, partition_id="train", select_fields=["advantages"])["advantages"]
    per_row = torch.stack([a[0] for a in adv.unbind()])
    reward = torch.tensor([1.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0]).view(2, N)
    want = ((reward - reward.mean(1, keepdim=True)) / (reward.std(1, keepdim=True) + 1e-6)).reshape(-1)
    torch.testing.assert_close(per_row, want)  # whole groups kept: the advantages of a full batch
    tq.kv_clear(keys=meta.keys, partition_id="train")  # as fit() does at the end of a step


def test_rollout_batch_reads_what_verls_agent_loop_wrote(tq: Any) -> None:
    t = trainer()
    generate(tq, 1, round_of(1))
    meta, _ = t.replay_buffer.base.sample(global_steps=1, partition_id="train", batch_size=4)  # verl's own pick
    order = sorted(range(len(meta.keys)), key=lambda i: meta.keys[i])
    batch = t.replay_buffer.rollout_batch(meta)
    rows = {meta.keys[i]: i for i in order}
    i, j = rows["s1-0_1_0"], rows["s1-0_2_0"]  # accepted "8" and rejected "8" of prompt 0
    assert batch.reward[i] == 1.0 and batch.reward[j] == 0.0 and batch.answer[i] == batch.answer[j] >= 0
    assert batch.group[i] == batch.group[j] and batch.length[i] == 4
    assert batch.answer[rows["s1-2_3_0"]] == -1  # no extracted answer
    assert bool(batch.truncated[rows["s1-2_1_0"]]) and int(batch.truncated.sum()) == 1  # 6 = response_length
    torch.testing.assert_close(batch.entropy, torch.full((len(meta.keys),), 0.5))  # -mean(rollout_log_probs)
    tq.kv_clear(keys=meta.keys, partition_id="train")


def test_sampling_without_rewards_in_transfer_queue_fails(tq: Any) -> None:
    t = trainer()
    generate(tq, 1, {"r1-0": [(1.0, "1", 2), (0.0, "2", 2), (1.0, "1", 2), (0.0, "3", 2)]}, reward=False)
    with pytest.raises(InvalidInputError, match="enable_resource_pool"):
        t.replay_buffer.sample(global_steps=1, partition_id="train", batch_size=1)
    tq.kv_clear(keys=[f"r1-0_{s}_0" for s in range(N)], partition_id="train")


def test_the_scheduler_learns_across_steps_and_resumes_from_verls_checkpoint(tq: Any, tmp_path: Path) -> None:
    t = trainer(checkpoint_dir=str(tmp_path))
    for step in (1, 2, 3):
        generate(tq, step, round_of(step))
        meta, metrics = t.replay_buffer.sample(global_steps=step, partition_id="train", batch_size=4)
        assert metrics["training/bandit/round"] == step - 1
        assert ("training/bandit/observed_gain" in metrics) == (step > 1)  # consistency labels from the answers
        tq.kv_clear(keys=meta.keys, partition_id="train")
    learned = t.replay_buffer.scheduler.state_dict()
    assert int(learned["last_round"]) == 2
    folder = tmp_path / "global_step_3"
    folder.mkdir()
    t.checkpoint_callback.on_save(trainer=t, global_step=3, checkpoint_dir=str(folder))
    assert (folder / STATE_FILE).exists()

    restored = trainer().replay_buffer
    restored.load(folder)
    assert restored.rounds_ == 3
    assert all(torch.equal(v, learned[k]) for k, v in restored.scheduler.state_dict().items())

    resumed = trainer(checkpoint_dir=str(tmp_path))  # a run resumed from global_step_3 samples step 4 first
    generate(tq, 4, round_of(4))
    meta, metrics = resumed.replay_buffer.sample(global_steps=4, partition_id="train", batch_size=4)
    assert resumed.replay_buffer.rounds_ == 4 and metrics["training/bandit/round"] == 3
    assert "training/bandit/observed_gain" in metrics  # round 2's pending selection got its label
    tq.kv_clear(keys=meta.keys, partition_id="train")


def test_a_resumed_run_without_the_scheduler_file_fails(tq: Any, tmp_path: Path) -> None:
    t = trainer(checkpoint_dir=str(tmp_path))
    with pytest.raises(InvalidInputError, match="BanditCheckpointCallback"):
        t.replay_buffer.sample(global_steps=5, partition_id="train", batch_size=4)


def test_validation_batches_pass_through(tq: Any) -> None:
    t = trainer(scheduler="DynamicSamplingFilter", scheduler_kwargs={})
    prompts = round_of(9)
    tq.kv_batch_put(keys=list(prompts), partition_id="val",
                    tags=[{"is_prompt": True, "status": "finished", "global_steps": 9} for _ in prompts])  # fmt: skip
    keys = [f"{u}_{s}_0" for u in prompts for s in range(N)]
    fields = TensorDict({"x": torch.zeros(len(keys), 1)}, batch_size=len(keys))
    tq.kv_batch_put(keys=keys, partition_id="val", fields=fields, tags=[{"status": "success"} for _ in keys])
    meta, metrics = t.replay_buffer.sample(global_steps=9, partition_id="val", batch_size=4)
    assert sorted(meta.keys) == sorted(keys) and not any(k.startswith("training/bandit") for k in metrics)
    assert t.replay_buffer.rounds_ == 0
    tq.kv_clear(keys=keys + list(prompts), partition_id="val")


def test_verl_config_errors_surface_at_trainer_construction() -> None:
    with pytest.raises(InvalidInputError, match="replays rollouts"):
        trainer(scheduler_kwargs={"mode": "both"})
    with pytest.raises(InvalidInputError, match="unknown keys"):
        trainer(sheduler="RolloutScheduler")
    with pytest.raises(InvalidInputError, match="scheduler class"):
        trainer(scheduler="NoSuchScheduler")
    from verl.trainer.ppo.v1 import PPOTrainerColocateAsync

    with pytest.raises(InvalidInputError, match="trainer_mode=sync"):
        cfg = verl_config()
        cfg.trainer.v1.trainer_mode = "colocate_async"
        PPOTrainerColocateAsync(config=cfg)


def test_checkpoint_callback_rejects_a_trainer_without_the_hook(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="not BanditReplayBuffer"):
        BanditCheckpointCallback().on_save(SimpleNamespace(replay_buffer=object()), global_step=1,
                                           checkpoint_dir=str(tmp_path))  # fmt: skip
