"""Rollout scheduling inside TRL's GRPO trainer: [`BanditGRPOTrainer`][banditlib.adapters.trl.BanditGRPOTrainer].

Swap ``trl.GRPOTrainer`` for ``BanditGRPOTrainer(scheduler=...)`` and every scheduler of
`banditlib.adapters.rlvr` (CBS, uniform, PODS, DAPO dynamic sampling, thresholds, replay by recency)
decides which completions enter the loss and which buffered completions are trained on again.

The trainer post-processes the output of ``GRPOTrainer._generate_and_score_completions`` and copies no TRL
code: TRL deleted its own replay-buffer trainer after a copied override drifted from the base class and a
``(groups, G)`` versus ``(B,)`` shape mismatch silently buffered only group 0 (TRL issue #6804, PR #7132).

Per generation round:

1. rewards are captured by wrapping ``_calculate_rewards`` (global ``(N, n_funcs)``, weighted and summed as
   TRL logs them); truncation and lengths come from the same call's completion ids;
2. one extra forward pass under ``no_grad`` gives every completion's per-token entropy (reduced to its masked
   mean), when TRL did not compute them its behaviour log-probs, and with ``grad_sketch=k`` a ``k``-wide
   sketch of its LM-head gradient (from the same pass's hidden states);
3. the rows of all ranks are gathered into one [`RolloutBatch`][banditlib.adapters.rlvr.RolloutBatch]
   (payload: prompt and completion ids and masks, reference log-probs when ``beta != 0``), each completion's
   answer id is extracted from its decoded text by ``answer_fn`` (the same on every rank: it runs on the
   gathered completions), and the scheduler ``observe`` s the batch (the label of the previous round's
   choice) and ``schedule`` s it;
4. unselected rows are removed, replayed rows appended with their stored behaviour log-probs as
   ``old_per_token_logps`` (so TRL's clipped ratio corrects for their staleness), the row count is padded to
   a multiple of ``steps_per_generation * world_size`` with zero-mask rows, and ``num_items_in_batch`` is
   recounted (see `banditlib.adapters._trl_batch.training_rows` for each loss type's normalisation).

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
import numbers
import os
from collections.abc import Callable, Hashable
from typing import Any, cast

import torch
import torch.distributed as dist
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR
from trl.models.utils import disable_gradient_checkpointing
from trl.trainer.grpo_config import GRPOConfig
from trl.trainer.grpo_trainer import GRPOTrainer

from banditlib._io import read_tensors
from banditlib.errors import InvalidInputError, StateError

from . import _trl_batch as tb
from ._trl_batch import default_answer_fn
from .rlvr.influence import sketch_matrices

__all__ = ["BanditGRPOTrainer", "default_answer_fn"]

AnswerFn = Callable[[str], Hashable | None]

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

    **Answers.** Every completion is decoded with the processing class (``skip_special_tokens=True``) and
    ``answer_fn(text)`` gives its final answer, any hashable (``None``: no answer). Per round, equal answers get
    equal ids in ``RolloutBatch.answer`` (``(N,)`` int64, ``-1`` for None); they are built after gathering,
    from every rank's completions, so all ranks hold the same ids. The default scheduler's consistency label
    and [`ConsistencyFilter`][banditlib.adapters.rlvr.ConsistencyFilter] need them. The default,
    [`default_answer_fn`][banditlib.adapters.trl.default_answer_fn], takes the last ``\\boxed{...}``, else the last
    number, else a short text; pass the extraction your verifier uses (what it compares), so that identical answers mean
    identical verdicts. Every rank calls ``answer_fn`` on all ``N`` texts of the round, so it must be deterministic.

    **Gradient sketches.** With ``grad_sketch=k`` every completion's ``RolloutBatch.grad`` ``(N, k)`` float32
    holds ``L^T G_i R``: ``G_i`` ``(V, H)`` is the gradient of the completion's mean token log-prob (over its
    completion mask, at the generation temperature) with respect to the LM head's weight
    (``model.get_output_embeddings()``), ``L`` ``(V, k1)`` and ``R`` ``(H, k2)`` are the fixed Gaussian
    matrices of ``sketch_matrices(V, H, k1, k2, seed=0)`` (``k1 = k2 = sqrt(k)``, kept as
    ``trainer.sketch_left`` / ``trainer.sketch_right``, the same on every rank and across resumes), so
    ``<grad_i, grad_j>`` estimates ``<G_i, G_j>`` without bias (see
    [`banditlib.adapters.rlvr.influence`][banditlib.adapters.rlvr.influence]). This is what
    [`InfluenceLabel`][banditlib.adapters.rlvr.InfluenceLabel] (``probe="next"``; the adapter passes no trusted probe)
    learns from. It is computed from the adapter's no-grad forward, with no backward pass. Cost per round, for ``n``
    completions of ``C`` tokens per rank, vocabulary ``V`` and hidden size ``H``: the final hidden states of that
    forward are captured (a forward hook on the backbone) one micro-batch of ``per_device_train_batch_size`` rows at a
    time and used at once, so the extra memory is one micro-batch's ``(b, C, H)`` hidden states plus a tile of at most
    ``2^22`` logits and probabilities (about 48 MiB in float32); TRL's fused head does not expose probabilities, so the
    head projection of the real completion tokens is recomputed (``n C V H`` multiply-adds: one more LM-head forward
    over the completions, per token about 2% of a 7B model's forward with ``V = 32k`` and 8% with ``V = 152k``), plus
    the two thin matmuls ``delta L`` and ``h R`` (``n C (V k1 + H k2)``) and the outer products
    (``n C k``); the sketches take ``4 N k`` bytes per round, kept in the replay buffer as long as the round
    is. ``benchmarks/bench_trl.py`` measures it: on CPU, at ``V = 32768``, ``H = 1024``, the sketch of a
    token costs 1.10x to 1.14x the head projection and log-softmax of that token (``k`` = 16 to 256).

    Args:
        scheduler: a scheduler of `banditlib.adapters.rlvr` (``schedule``, ``observe``, ``state_dict``,
            ``load_state_dict``, ``save``). Keyword only. With several processes it must be built identically
            on every rank (same arguments and ``seed``); this is checked at construction.
        answer_fn: ``completion_text -> hashable or None``, the final answer of a decoded completion (default
            [`default_answer_fn`][banditlib.adapters.trl.default_answer_fn]); ``None`` leaves ``RolloutBatch.answer``
            unset. Keyword only.
        grad_sketch: ``None`` (no sketches) or the sketch width ``k``, a perfect square ``>= 4`` (16, 64,
            256 ...). Keyword only.
        *args: passed to ``trl.GRPOTrainer``.
        **kwargs: passed to ``trl.GRPOTrainer`` (``model``, ``reward_funcs``, ``args``, ``train_dataset``...).

    Raises:
        InvalidInputError: at construction, for what the adapter does not support: ``loss_type`` outside
            ``dapo``, ``grpo``, ``bnpo``, ``dr_grpo``; ``use_vllm=True`` (vLLM importance-sampling fields
            are not carried through selection and replay); tools or environments (``tool_mask``); vision
            language models; a custom ``rollout_func``; a scheduler lacking the interface; an ``answer_fn``
            that is not callable; a ``grad_sketch`` that is not None or a perfect square ``>= 4``, or a model
            without an output embedding layer behind a backbone (with ``grad_sketch``). During training,
            when ``answer_fn`` raises (naming it and the row; the scheduler is then unchanged).

    Examples:
        >>> from banditlib.adapters.rlvr import DynamicSamplingFilter  # doctest: +SKIP
        >>> trainer = BanditGRPOTrainer(scheduler=DynamicSamplingFilter(), model=model,  # doctest: +SKIP
        ...                             reward_funcs=reward, args=GRPOConfig(...), train_dataset=ds)
        >>> trainer.train()  # doctest: +SKIP
        >>> from banditlib.adapters.rlvr import InfluenceLabel, RolloutScheduler  # doctest: +SKIP
        >>> trainer = BanditGRPOTrainer(scheduler=RolloutScheduler(label=InfluenceLabel("next")),  # doctest: +SKIP
        ...                             grad_sketch=64, model=model, reward_funcs=reward, args=GRPOConfig(...),
        ...                             train_dataset=ds)

    References:
        Lu et al. Contextual Rollout Bandits for Reinforcement Learning with Verifiable Rewards, arXiv
        2602.08499, 2026.
    """

    def __init__(
        self,
        *args: Any,
        scheduler: tb.SchedulerLike,
        answer_fn: AnswerFn | None = default_answer_fn,
        grad_sketch: int | None = None,
        **kwargs: Any,
    ) -> None:
        missing = [m for m in ("schedule", "observe", "state_dict", "load_state_dict", "save")
                   if not callable(getattr(scheduler, m, None))]  # fmt: skip
        if missing:
            raise InvalidInputError(
                f"BanditGRPOTrainer(): `scheduler` must implement the banditlib.adapters.rlvr scheduler interface; "
                f"{type(scheduler).__name__} lacks {missing}."
            )
        if answer_fn is not None and not callable(answer_fn):
            raise InvalidInputError(
                "BanditGRPOTrainer(): `answer_fn` must be None or a callable completion_text -> hashable answer "
                f"(or None); got {type(answer_fn).__name__}."
            )
        sketch_side = _check_grad_sketch(grad_sketch)
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
        self.answer_fn = answer_fn
        self.grad_sketch = grad_sketch
        self.sketch_left: torch.Tensor | None = None  # (V, k1) and (H, k2), fixed for the whole run
        self.sketch_right: torch.Tensor | None = None
        if sketch_side is not None:
            vocab, hidden = _head_and_backbone(self.model)[0].weight.shape
            self.sketch_left, self.sketch_right = sketch_matrices(vocab, hidden, sketch_side, sketch_side, seed=0)
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
        sketches: list[torch.Tensor] = []
        hook = None
        if self.sketch_left is not None:
            head, backbone = _head_and_backbone(model)
            done = [0]  # rows of this rank sketched so far (the forward runs in micro-batches, in order)

            def sketch(module: Any, inputs: Any, output: Any) -> None:
                states = output.last_hidden_state if hasattr(output, "last_hidden_state") else output[0]
                rows = slice(done[0], done[0] + states.shape[0])
                done[0] += states.shape[0]
                # Position j - 1 predicts completion token j: the C positions before the last one.
                sketches.append(self._sketch(head, states[:, -width - 1 : -1], completion_ids[rows],
                                             completion_mask[rows]))  # fmt: skip

            hook = backbone.register_forward_hook(sketch)
        checkpointing_kwargs = cast(Any, self.args).gradient_checkpointing_kwargs
        try:
            with torch.no_grad(), disable_gradient_checkpointing(model, checkpointing_kwargs):
                logps, entropies, _ = self._get_per_token_logps_and_entropies(
                    model,
                    torch.cat([prompt_ids, completion_ids], dim=1),
                    torch.cat([prompt_mask, completion_mask], dim=1),
                    width,
                    batch_size=self.args.per_device_train_batch_size,
                    compute_entropy=True,
                )
        finally:
            if hook is not None:
                hook.remove()
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
        if self.sketch_left is not None:
            grad = torch.cat(sketches) if sketches else torch.empty(0)
            if grad.shape[0] != prompt_ids.shape[0]:  # pragma: no cover - TRL changed how it runs the forward
                raise RuntimeError(
                    f"BanditGRPOTrainer: the backbone hook saw {grad.shape[0]} rows, expected {prompt_ids.shape[0]}."
                )
            local["grad"] = grad.to(prompt_ids.device)
        return local

    def _sketch(self, head: Any, hidden: torch.Tensor, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``(b, k)`` sketches of one micro-batch's LM-head gradients (see the class docstring)."""
        if self.sketch_left is None or self.sketch_right is None:
            raise StateError("BanditGRPOTrainer._sketch(): called without grad_sketch= (no sketch matrices).")
        scale, softcap = _logit_transform(cast(Any, self.model))
        weight = head.weight.detach()
        bias = None if head.bias is None else head.bias.detach()
        return tb.lm_head_sketch(
            hidden.detach().to(weight.device), tokens.to(weight.device), mask.to(weight.device), weight, bias,
            self.sketch_left, self.sketch_right, temperature=float(self.temperature), logit_scale=scale,
            softcap=softcap,
        )  # fmt: skip

    def _answers(self, ids: list[list[int]]) -> torch.Tensor:
        """``(N,)`` int64 answer ids of the round's gathered completions (token ids in global row order)."""
        if self.answer_fn is None:
            raise StateError("BanditGRPOTrainer._answers(): called without an answer_fn.")
        texts = cast(Any, self.processing_class).batch_decode(ids, skip_special_tokens=True)
        return tb.answer_ids(texts, self.answer_fn)

    def _schedule(self, out: dict[str, Any]) -> dict[str, Any]:
        device = out["prompt_ids"].device
        rewards, _ = self._captured  # type: ignore[misc]
        if bool(torch.isnan(rewards).any()):
            raise InvalidInputError(
                f"BanditGRPOTrainer: every reward function returned None for {int(torch.isnan(rewards).sum())} "
                "completion(s); the scheduler needs a reward for each completion."
            )
        batch = tb.build_global_batch(
            self._local_rows(out),
            rewards,
            num_generations=int(cast(int, self.num_generations)),
            round=self._round,
            answer_of=None if self.answer_fn is None else self._answers,
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
        state = {"format": STATE_FORMAT, "round": self._round, "scheduler_class": type(self.rollout_scheduler).__name__,
                 "scheduler_config": _config_of(self.rollout_scheduler), "grad_sketch": self.grad_sketch,
                 "answers": self.answer_fn is not None}  # fmt: skip
        target = os.path.join(folder, STATE_FILE)
        with open(target + ".tmp", "w") as fh:  # atomic, like the scheduler file
            json.dump(state, fh)
        os.replace(target + ".tmp", target)

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
        # Both files are read and checked completely before anything changes.
        where = "BanditGRPOTrainer (resume)"
        state = _read_trainer_state(state_path, where)
        sch = self.rollout_scheduler
        if state.get("scheduler_class", type(sch).__name__) != type(sch).__name__:
            raise InvalidInputError(
                f"{where}: {state_path!r} was written for a {state['scheduler_class']}, but the trainer's scheduler "
                f"is a {type(sch).__name__}."
            )
        if "scheduler_config" in state and state["scheduler_config"] != _config_of(sch):
            raise InvalidInputError(
                f"{where}: the checkpoint's scheduler was configured {state['scheduler_config']}, the trainer's is "
                f"{_config_of(sch)}; resume with the same scheduler arguments."
            )
        if "grad_sketch" in state and state["grad_sketch"] != self.grad_sketch:
            raise InvalidInputError(
                f"{where}: the checkpoint was written with grad_sketch={state['grad_sketch']!r}, the trainer has "
                f"grad_sketch={self.grad_sketch!r}."
            )
        # Load into the user's scheduler (it may hold objects a file cannot rebuild, e.g. a custom featurizer).
        tensors, meta = read_tensors(path, where, require_checksum=lambda m: m.get("format_version") not in (None, "1"))
        if meta.get("class", type(sch).__name__) != type(sch).__name__:
            raise InvalidInputError(
                f"{where}: {path!r} holds a {meta.get('class')}, but the trainer's scheduler is a {type(sch).__name__}."
            )
        if "config" in meta and "scheduler_config" in state:
            try:
                file_config = json.loads(meta["config"])
            except (ValueError, RecursionError):
                raise InvalidInputError(f"{where}: {path!r} has unreadable constructor arguments.") from None
            if file_config != state["scheduler_config"]:
                raise InvalidInputError(f"{where}: {path!r} and {state_path!r} come from different checkpoints.")
        upgrade = getattr(type(sch), "_upgrade", None)
        if meta.get("format_version") == "1" and callable(upgrade):  # a checkpoint from before the redesign
            _, tensors = upgrade("1", json.loads(meta.get("config", "{}")), dict(tensors), where)
        sch.load_state_dict(tensors)  # all-or-nothing: a state that does not fit raises and changes nothing
        self._round = int(state["round"])


STATE_FORMAT = "banditlib.trl.trainer-state"


def _config_of(scheduler: Any) -> Any:
    """The scheduler's constructor arguments as JSON values (``{}`` for a scheduler without ``config``)."""
    return json.loads(json.dumps(getattr(scheduler, "config", {}), default=str))


def _read_trainer_state(path: str, where: str) -> dict[str, Any]:
    """``bandit_trainer_state.json``, checked: a JSON object with a non-negative integer ``round``."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read(1 << 20)
        state = json.loads(text)
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise InvalidInputError(f"{where}: {path!r} is not a readable trainer-state file: {exc}") from None
    if not isinstance(state, dict) or state.get("format", STATE_FORMAT) != STATE_FORMAT:
        raise InvalidInputError(f"{where}: {path!r} is not a BanditGRPOTrainer trainer-state file.")
    rnd = state.get("round")
    if not isinstance(rnd, int) or isinstance(rnd, bool) or rnd < 0:
        raise InvalidInputError(f"{where}: {path!r} must hold a non-negative integer `round`; got {rnd!r}.")
    return state


def _check_grad_sketch(grad_sketch: Any) -> int | None:
    """``sqrt(grad_sketch)`` (the side ``k1 = k2`` of the sketch), or None; raise for anything else."""
    if grad_sketch is None:
        return None
    ok = isinstance(grad_sketch, numbers.Integral) and not isinstance(grad_sketch, bool) and int(grad_sketch) >= 4
    if not ok or math.isqrt(int(grad_sketch)) ** 2 != int(grad_sketch):
        raise InvalidInputError(
            "BanditGRPOTrainer(): `grad_sketch` must be None or the sketch width k = k1 * k2 with k1 = k2, a perfect "
            f"square >= 4 (16, 64, 256 ...); got {grad_sketch!r}."
        )
    return math.isqrt(int(grad_sketch))


def _unwrap_peft(model: Any) -> Any:
    """The transformers model inside a PEFT wrapper (TRL patches that one's forward), else ``model``."""
    return model.get_base_model() if callable(getattr(model, "get_base_model", None)) else model


def _head_and_backbone(model: Any) -> tuple[Any, Any]:
    """The LM head (``get_output_embeddings()``) and the backbone whose output TRL's fused head projects."""
    core = _unwrap_peft(model)
    head = core.get_output_embeddings() if callable(getattr(core, "get_output_embeddings", None)) else None
    backbone = getattr(core, "base_model", None)
    if head is None or not isinstance(getattr(head, "weight", None), torch.Tensor) or head.weight.dim() != 2:
        raise InvalidInputError(
            "BanditGRPOTrainer(): `grad_sketch` needs a causal LM whose `get_output_embeddings()` is a linear head; "
            f"{type(core).__name__} has none."
        )
    if not isinstance(backbone, torch.nn.Module) or backbone is core:
        raise InvalidInputError(
            f"BanditGRPOTrainer(): `grad_sketch` needs the backbone of {type(core).__name__} (`base_model`) to "
            "capture its hidden states; the model has none."
        )
    return head, backbone


def _logit_transform(model: Any) -> tuple[float, float | None]:
    """``(logit_scale, final_logit_softcapping)`` of the head, read from the config as TRL's fused head reads it."""
    cfg = _unwrap_peft(model).config.get_text_config()
    scale = None
    for key in ("logit_scale", "output_multiplier", "lm_head_multiplier"):
        scale = getattr(cfg, key, None) if scale is None else scale
    if scale is None and getattr(cfg, "logits_scaling", None) is not None:
        scale = cfg.logits_scaling if cfg.model_type == "hyperclovax" else 1 / cfg.logits_scaling
    softcap = getattr(cfg, "final_logit_softcapping", None)
    return (1.0 if scale is None else float(scale)), (None if softcap is None else float(softcap))


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
    """Raise [`InvalidInputError`][banditlib.InvalidInputError] for a configuration the adapter cannot honour."""
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
