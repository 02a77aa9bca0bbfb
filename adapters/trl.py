"""Rollout scheduling inside TRL's GRPO trainer: :class:`BanditGRPOTrainer`.

Swap ``trl.GRPOTrainer`` for ``BanditGRPOTrainer(scheduler=...)`` and every scheduler of
:mod:`banditlib.adapters.rlvr` (CBS, uniform, PODS, DAPO dynamic sampling, thresholds, replay by recency)
decides which completions enter the loss and which buffered completions are trained on again.

The trainer post-processes the output of ``GRPOTrainer._generate_and_score_completions`` and copies no TRL
code: TRL deleted its own replay-buffer trainer after a copied override drifted from the base class and a
``(groups, G)`` versus ``(B,)`` shape mismatch silently buffered only group 0 (TRL issue #6804, PR #7132).

Per generation round:

1. rewards are captured by wrapping ``_calculate_rewards`` (global ``(N, n_funcs)``, weighted and summed as
   TRL logs them); truncation and lengths come from the same call's completion ids;
2. one extra forward pass under ``no_grad`` gives every completion's per-token entropy (reduced to its masked
   mean) and, when TRL did not compute them, its behaviour log-probs;
3. the rows of all ranks are gathered into one :class:`~banditlib.adapters.rlvr.batch.RolloutBatch`
   (payload: prompt and completion ids and masks, reference log-probs when ``beta != 0``), the scheduler
   ``observe`` s it (the gain of the previous round's choice) and ``schedule`` s it;
4. unselected rows are removed, replayed rows appended with their stored behaviour log-probs as
   ``old_per_token_logps`` (so TRL's clipped ratio corrects for their staleness), the row count is padded to
   a multiple of ``steps_per_generation * world_size`` with zero-mask rows, and ``num_items_in_batch`` is
   recounted (see :func:`banditlib.adapters._trl_batch.training_rows` for each loss type's normalisation).

Multi-process runs decide on the global view: every rank gathers all rows and holds an identical scheduler,
so ranks agree without communication and match one process that saw all the data; each rank then trains
on every ``world_size``-th row. The scheduler and the adapter's counters are saved in each checkpoint
(``scheduler.safetensors``, ``bandit_trainer_state.json``) and restored by ``resume_from_checkpoint``.

References:
    Lu et al. Contextual Rollout Bandits for Reinforcement Learning with Verifiable Rewards, arXiv 2602.08499,
    2026; Yu et al. DAPO, arXiv 2503.14476, 2025; Xu et al. Not All Rollouts are Useful (PODS), arXiv
    2504.13818, 2025.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from typing import Any, cast

import torch
import torch.distributed as dist
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR
from trl.models.utils import disable_gradient_checkpointing
from trl.trainer.grpo_config import GRPOConfig
from trl.trainer.grpo_trainer import GRPOTrainer

from banditlib._io import read_tensors
from banditlib.errors import InvalidInputError

from . import _trl_batch as tb

__all__ = ["BanditGRPOTrainer"]

SUPPORTED_LOSS_TYPES = ("dapo", "grpo", "bnpo", "dr_grpo")
SCHEDULER_FILE = "scheduler.safetensors"
STATE_FILE = "bandit_trainer_state.json"
# Keys of TRL's generation output this adapter knows how to select, pad and replay.
_KNOWN_KEYS = frozenset(
    {"prompt_ids", "prompt_mask", "completion_ids", "completion_mask", "advantages", "num_items_in_batch",
     "old_per_token_logps", "ref_per_token_logps"}
)  # fmt: skip


class BanditGRPOTrainer(GRPOTrainer):
    """``trl.GRPOTrainer`` whose completions are chosen, and replayed, by a rollout scheduler.

    The loss sees, per generation round, the fresh completions the scheduler keeps (weight ``w`` scales a
    row's advantage; weight 0 removes it) plus the buffered completions it replays, with behaviour log-probs
    ``pi_old`` from their own round, so TRL's clipped objective ``min(rho A, clip(rho) A)`` with
    ``rho = pi_theta / pi_old`` applies unchanged.

    Args:
        scheduler: a scheduler of :mod:`banditlib.adapters.rlvr` (``schedule``, ``observe``, ``state_dict``,
            ``load_state_dict``, ``save``). Keyword only. With several processes it must be built identically
            on every rank (same arguments and ``seed``); this is checked at construction.
        *args: passed to ``trl.GRPOTrainer``.
        **kwargs: passed to ``trl.GRPOTrainer`` (``model``, ``reward_funcs``, ``args``, ``train_dataset``...).

    Raises:
        InvalidInputError: at construction, for what the adapter does not support: ``loss_type`` outside
            ``dapo``, ``grpo``, ``bnpo``, ``dr_grpo``; ``use_vllm=True`` (vLLM importance-sampling fields
            are not carried through selection and replay); tools or environments (``tool_mask``); vision
            language models; a custom ``rollout_func``; a scheduler lacking the interface.

    Example:
        >>> from banditlib.adapters.rlvr import DynamicSamplingFilter  # doctest: +SKIP
        >>> trainer = BanditGRPOTrainer(scheduler=DynamicSamplingFilter(), model=model,  # doctest: +SKIP
        ...                             reward_funcs=reward, args=GRPOConfig(...), train_dataset=ds)
        >>> trainer.train()  # doctest: +SKIP

    References:
        Lu et al. Contextual Rollout Bandits for Reinforcement Learning with Verifiable Rewards, arXiv
        2602.08499, 2026.
    """

    def __init__(self, *args: Any, scheduler: tb.SchedulerLike, **kwargs: Any) -> None:
        missing = [m for m in ("schedule", "observe", "state_dict", "load_state_dict", "save")
                   if not callable(getattr(scheduler, m, None))]  # fmt: skip
        if missing:
            raise InvalidInputError(
                f"BanditGRPOTrainer(): `scheduler` must implement the banditlib.adapters.rlvr scheduler interface; "
                f"{type(scheduler).__name__} lacks {missing}."
            )
        config = kwargs.get("args")
        _check_supported(
            loss_type=getattr(config, "loss_type", "dapo"),
            use_vllm=bool(getattr(config, "use_vllm", False)),
            tools=bool(kwargs.get("tools")) or kwargs.get("environment_factory") is not None,
            vlm=False,
            rollout_func=kwargs.get("rollout_func") is not None,
        )  # before the (slow) base constructor; repeated on the resolved attributes below
        super().__init__(*args, **kwargs)
        _check_supported(
            loss_type=self.loss_type,
            use_vllm=bool(self.use_vllm),
            tools=bool(self.tools) or self.environment_factories is not None,
            vlm=bool(self._is_vlm),
            rollout_func=self.rollout_func is not None,
        )
        self.rollout_scheduler = scheduler
        _check_same_on_all_ranks(scheduler)
        self._round = 0  # next round's number; rounds scheduled so far
        self._captured: tuple[torch.Tensor, list[list[int]]] | None = None

    # ---------------------------------------------------------------------------------------- the round

    def _calculate_rewards(self, inputs: Any, prompts: Any, completions: Any, completion_ids_list: Any) -> Any:
        rewards_per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        weighted = (rewards_per_func * self.reward_weights.to(rewards_per_func.device).unsqueeze(0)).nansum(dim=1)
        weighted[torch.isnan(rewards_per_func).all(dim=1)] = torch.nan  # unscorable: rejected when scheduling
        self._captured = (weighted, [list(map(int, ids)) for ids in completion_ids_list])
        return rewards_per_func

    def _generate_and_score_completions(self, inputs: Any) -> dict[str, Any]:
        self._captured = None
        out: dict[str, Any] = super()._generate_and_score_completions(inputs)
        if not getattr(self.model, "training", False):  # evaluation: score only, no scheduling
            return out
        if self._captured is None:  # pragma: no cover - TRL stopped calling _calculate_rewards
            raise RuntimeError("BanditGRPOTrainer: `_calculate_rewards` was not called during generation.")
        unknown = sorted(set(out) - _KNOWN_KEYS)
        if unknown:
            raise InvalidInputError(
                f"BanditGRPOTrainer: TRL's generation output has fields {unknown} that the adapter cannot carry "
                "through selection and replay."
            )
        return self._schedule(out)

    def _local_rows(self, out: dict[str, Any]) -> dict[str, torch.Tensor]:
        """This rank's rows with their entropies and behaviour log-probs."""
        prompt_ids, prompt_mask = out["prompt_ids"], out["prompt_mask"]
        completion_ids, completion_mask = out["completion_ids"], out["completion_mask"]
        width = completion_ids.shape[1]
        model = cast(Any, self.model)
        with torch.no_grad(), disable_gradient_checkpointing(model, cast(Any, self.args).gradient_checkpointing_kwargs):
            logps, entropies, _ = self._get_per_token_logps_and_entropies(
                model,
                torch.cat([prompt_ids, completion_ids], dim=1),
                torch.cat([prompt_mask, completion_mask], dim=1),
                width,
                batch_size=self.args.per_device_train_batch_size,
                compute_entropy=True,
            )
        mask = completion_mask.float()
        entropy = (entropies.float() * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        behaviour = out.get("old_per_token_logps")
        behaviour = logps if behaviour is None else behaviour
        _, ids = self._captured  # type: ignore[misc]
        stop = {*self.eos_token_ids, self._tokenizer.pad_token_id}
        length = torch.tensor([float(len(x)) for x in ids], device=prompt_ids.device)
        truncated = torch.tensor([bool(x) and x[-1] not in stop for x in ids], device=prompt_ids.device)
        local = {
            "prompt_ids": prompt_ids,
            "prompt_mask": prompt_mask,
            "completion_ids": completion_ids,
            "completion_mask": completion_mask,
            "logprobs": behaviour.float(),
            "advantage": out["advantages"].float(),
            "entropy": entropy,
            "length": length,
            "truncated": truncated,
        }
        if out.get("ref_per_token_logps") is not None:
            local["ref_per_token_logps"] = out["ref_per_token_logps"].float()
        return local

    def _schedule(self, out: dict[str, Any]) -> dict[str, Any]:
        device = out["prompt_ids"].device
        rewards, _ = self._captured  # type: ignore[misc]
        if bool(torch.isnan(rewards).any()):
            raise InvalidInputError(
                f"BanditGRPOTrainer: every reward function returned None for {int(torch.isnan(rewards).sum())} "
                "completion(s); the scheduler needs a reward for each completion."
            )
        batch = tb.build_global_batch(
            self._local_rows(out), rewards, num_generations=int(cast(int, self.num_generations)), round=self._round
        )
        schedule, observed = tb.schedule_round(self.rollout_scheduler, batch, observe=self._round > 0)
        self._round += 1
        rank, world = self.accelerator.process_index, self.accelerator.num_processes
        rows, n_fresh, n_replay = tb.training_rows(
            schedule,
            batch,
            multiple=int(cast(GRPOConfig, self.args).steps_per_generation or 1) * world,
            loss_type=self.loss_type,
            pad_token_id=self._tokenizer.pad_token_id,
        )
        num_items = rows["completion_mask"].sum()  # global: every rank holds all rows
        multiple_of = self.pad_to_multiple_of if isinstance(self.pad_to_multiple_of, int) else None
        mine = tb.rank_rows(rows, rank, world, pad_to_multiple_of=multiple_of)
        result: dict[str, Any] = {k: v.to(device) for k, v in mine.items()}
        result["num_items_in_batch"] = num_items.to(device)
        if len(schedule.replay) == 0 and "old_per_token_logps" not in out:
            # On-policy rows only and TRL found no need for pi_old: let the loss use pi_theta.detach() as TRL does.
            del result["old_per_token_logps"]
        if self.beta == 0.0:
            result.pop("ref_per_token_logps", None)
        metrics = self._metrics["train"]
        metrics["scheduler/kept_fraction"].append(n_fresh / len(batch))
        metrics["scheduler/replayed"].append(float(n_replay))
        metrics["scheduler/predicted_gain"].append(tb.nan_if_none(schedule.predicted_gain))
        metrics["scheduler/observed_gain"].append(tb.nan_if_none(observed))
        metrics["scheduler/padding_rows"].append(float(rows["completion_mask"].shape[0] - n_fresh - n_replay))
        metrics["scheduler/policy_updates"].append(self._policy_updates())
        return result

    def _policy_updates(self) -> float:
        """Total updates of the scheduler's bandit policy (NaN when it has none)."""
        policy = getattr(self.rollout_scheduler, "policy", None)
        n = getattr(policy, "n_updates_", None)
        if isinstance(n, torch.Tensor):
            return float(n.sum())
        return math.nan

    # ---------------------------------------------------------------------------------------- checkpoints

    def _save_checkpoint(self, model: Any, trial: Any) -> None:
        super()._save_checkpoint(model, trial)  # type: ignore[no-untyped-call]
        if not self.args.should_save:
            return
        folder = os.path.join(self._get_output_dir(trial=trial), f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}")
        self.rollout_scheduler.save(os.path.join(folder, SCHEDULER_FILE))
        with open(os.path.join(folder, STATE_FILE), "w") as fh:
            json.dump({"round": self._round}, fh)

    def _load_optimizer_and_scheduler(self, checkpoint: str | None) -> None:
        super()._load_optimizer_and_scheduler(checkpoint)  # type: ignore[no-untyped-call]
        if checkpoint is None:
            return
        path, state_path = os.path.join(checkpoint, SCHEDULER_FILE), os.path.join(checkpoint, STATE_FILE)
        if not (os.path.exists(path) and os.path.exists(state_path)):
            raise InvalidInputError(
                f"BanditGRPOTrainer: checkpoint {checkpoint!r} has no {SCHEDULER_FILE} / {STATE_FILE}; it was not "
                "written by BanditGRPOTrainer, so the scheduler cannot resume."
            )
        # Load into the user's scheduler (it may hold objects a file cannot rebuild, e.g. a custom featurizer).
        tensors, meta = read_tensors(path, "BanditGRPOTrainer")
        if meta.get("class", type(self.rollout_scheduler).__name__) != type(self.rollout_scheduler).__name__:
            raise InvalidInputError(
                f"BanditGRPOTrainer: {path!r} holds a {meta.get('class')}, but the trainer's scheduler is a "
                f"{type(self.rollout_scheduler).__name__}."
            )
        self.rollout_scheduler.load_state_dict(tensors)
        with open(state_path) as fh:
            state = json.load(fh)
        self._round = int(state["round"])


def _check_same_on_all_ranks(scheduler: tb.SchedulerLike) -> None:
    """Every rank decides on the same global batch, so every rank's scheduler must start identical."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return
    digest = hashlib.sha256(json.dumps(getattr(scheduler, "config", {}), sort_keys=True, default=str).encode())
    for key, value in sorted(scheduler.state_dict().items()):
        digest.update(key.encode())
        digest.update(value.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    digests: list[str | None] = [None] * dist.get_world_size()
    dist.all_gather_object(digests, digest.hexdigest())
    if len(set(digests)) > 1:
        raise InvalidInputError(
            "BanditGRPOTrainer(): the `scheduler` differs between processes (pass the same `seed` on every rank; "
            "`seed=None` draws a different one in each process); ranks must decide identically on the global view."
        )


def _check_supported(*, loss_type: str, use_vllm: bool, tools: bool, vlm: bool, rollout_func: bool) -> None:
    """Raise :class:`~banditlib.errors.InvalidInputError` for a configuration the adapter cannot honour."""
    where = "BanditGRPOTrainer()"
    if loss_type not in SUPPORTED_LOSS_TYPES:
        raise InvalidInputError(
            f"{where}: `loss_type` must be one of {SUPPORTED_LOSS_TYPES} (their normalisations are handled when "
            f"rows are removed or replayed); got {loss_type!r}."
        )
    if use_vllm:
        raise InvalidInputError(
            f"{where}: `use_vllm=True` is not supported: vLLM's `sampling_per_token_logps` and "
            "`importance_sampling_ratio` are not carried through selection and replay. Generate with "
            "transformers (`use_vllm=False`)."
        )
    if tools:
        raise InvalidInputError(
            f"{where}: `tools` / `environment_factory` are not supported: the `tool_mask` of multi-turn "
            "completions is not carried through selection and replay."
        )
    if vlm:
        raise InvalidInputError(f"{where}: vision-language models (a processor with images) are not supported.")
    if rollout_func:
        raise InvalidInputError(f"{where}: a custom `rollout_func` is not supported.")
