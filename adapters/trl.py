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
2. each completion's per-token log-probs and entropy statistic (and with ``grad_sketch=k`` a ``k``-wide
   sketch of its LM-head gradient) come from TRL's own no-grad pass of the training model when TRL runs one
   (its ``old_per_token_logps``: the pass is captured, with its entropies and hidden states), else from vLLM's
   sampling log-probs (``entropy="sampled"``), else from one extra no-grad forward (see ``entropy``);
3. the rows of all ranks are gathered into one [`RolloutBatch`][banditlib.adapters.rlvr.RolloutBatch]
   (payload: prompt and completion ids and masks, reference log-probs when ``beta != 0``, vLLM's sampling
   log-probs and importance-sampling ratio with ``use_vllm``), each completion's answer id is extracted from
   its decoded text by ``answer_fn`` (the same on every rank: it runs on the gathered completions), and the
   scheduler ``observe`` s the batch (the label of the previous round's choice) and ``schedule`` s it;
4. unselected rows are removed, replayed rows appended with their stored behaviour log-probs as
   ``old_per_token_logps`` (so TRL's clipped ratio corrects for their staleness) and their stored vLLM fields,
   the row count is padded to a multiple of ``steps_per_generation * world_size`` with zero-mask rows, and
   ``num_items_in_batch`` is recounted (see `banditlib.adapters._trl_batch.training_rows` for each loss
   type's normalisation).

Multi-process runs decide on the global view: every rank gathers all rows and holds an identical scheduler,
so ranks agree without communication and match one process that saw all the data; each rank then trains
on every ``world_size``-th row. With a scheduler that only selects, ``gather="statistics"`` gathers the
per-row statistics alone (see `banditlib.adapters._trl_stats`): the same decisions, and each rank trains on its
own selected rows. The scheduler and the adapter's counters are saved in each checkpoint
(``scheduler.safetensors``, ``bandit_trainer_state.json``) and restored by ``resume_from_checkpoint``.

References:
    Lu et al. Contextual Rollout Bandits for Reinforcement Learning with Verifiable Rewards, arXiv 2602.08499,
    2026; Yu et al. DAPO, arXiv 2503.14476, 2025; Xu et al. Not All Rollouts are Useful (PODS), arXiv
    2504.13818, 2025.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable, Hashable
from typing import Any, NamedTuple, cast

import torch
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR
from trl.models.utils import disable_gradient_checkpointing
from trl.trainer.grpo_config import GRPOConfig
from trl.trainer.grpo_trainer import GRPOTrainer

from banditlib.errors import InvalidInputError, StateError

from . import _trl_batch as tb
from . import _trl_checks as ck
from . import _trl_stats as ts
from ._trl_batch import default_answer_fn
from ._trl_sketch import head_and_backbone, sketching
from .rlvr.influence import sketch_matrices

__all__ = ["BanditGRPOTrainer", "default_answer_fn"]

AnswerFn = Callable[[str], Hashable | None]

# Keys of TRL's generation output this adapter knows how to select, pad and replay.
_KNOWN_KEYS = frozenset(
    {"prompt_ids", "prompt_mask", "completion_ids", "completion_mask", "advantages", "num_items_in_batch",
     "old_per_token_logps", "ref_per_token_logps", "sampling_per_token_logps", "importance_sampling_ratio"}
)  # fmt: skip


class BanditGRPOTrainer(GRPOTrainer):
    """``trl.GRPOTrainer`` whose completions are chosen, and replayed, by a rollout scheduler.

    The loss sees, per generation round, the fresh completions the scheduler keeps (weight ``w`` scales a
    row's advantage; weight 0 removes it) plus the buffered completions it replays, with behaviour log-probs
    ``pi_old`` from their own round, so TRL's clipped objective ``min(rho A, clip(rho) A)`` with
    ``rho = pi_theta / pi_old`` applies unchanged.

    **vLLM** (``use_vllm=True``). A replayed row carries what TRL computed for it in the round that generated
    it: ``old_per_token_logps`` ``pi_old`` (the training model then), ``sampling_per_token_logps``
    ``pi_sampler`` (vLLM then) and ``importance_sampling_ratio`` ``pi_old / pi_sampler`` (clipped or masked
    by ``vllm_importance_sampling_mode``; ``(N, C)`` or ``(N, 1)``), stored with the row, not recomputed: its
    loss weight ``clip(pi_theta / pi_old) * pi_old / pi_sampler`` is then the importance weight of the
    current policy against the sampler that actually drew it, staleness and engine mismatch corrected each
    once (recomputing the ratio against today's model would count the staleness twice).

    **Statistics, and when an extra forward runs** (``entropy``). The scheduler's features need each
    completion's entropy and behaviour log-probs. Where TRL computes ``old_per_token_logps`` itself (with
    ``use_vllm`` and ``vllm_importance_sampling_correction=True``, TRL's default, or when a generation is
    trained on across optimizer steps: ``gradient_accumulation_steps`` not a multiple of
    ``steps_per_generation * num_iterations``), the adapter captures that pass (with its per-token
    entropies, which TRL's fused head computes anyway, and the hidden states for ``grad_sketch``) and runs
    no forward of its own: the features are the same numbers the extra forward gave. Otherwise the
    adapter runs one no-grad forward per generation (about a third of a training step), except with
    ``use_vllm`` under ``entropy="sampled"`` (the ``"auto"`` choice there, unless ``grad_sketch``), where the
    entropy is estimated from vLLM's log-probs of the sampled tokens, ``-(1/T) sum_t log pi_sampler(y_t)``
    (unbiased: ``E_y[-log pi(y)] = H(pi)``), and ``pi_sampler`` is also the stored ``pi_old`` (a round in
    which a scored token has no finite vLLM log-prob falls back to the forward). The log key
    ``scheduler/extra_forward`` says per round whether the forward ran.

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
    learns from. It is computed from the hidden states of the no-grad pass above, with no backward pass: the final
    hidden states are captured (a forward hook on the backbone) one micro-batch of ``per_device_train_batch_size``
    rows at a time and used at once, so the extra memory is one micro-batch's ``(b, C, H)`` hidden states plus a tile
    of at most ``2^22`` logits and probabilities (about 48 MiB in float32); TRL's fused head does not expose
    probabilities, so the head projection of the real completion tokens is recomputed (``n C V H`` multiply-adds for
    ``n`` completions of ``C`` tokens: per token about 2% of a 7B model's forward with ``V = 32k``, 8% with
    ``V = 152k``), plus the thin matmuls ``delta L`` and ``h R`` and the outer products; the sketches take ``4 N k``
    bytes per round, kept in the replay buffer as long as the round is (``benchmarks/bench_trl.py``: on CPU, at
    ``V = 32768``, ``H = 1024``, a token's sketch costs 1.03x to 1.14x its head projection and log-softmax).

    Args:
        scheduler: a scheduler of `banditlib.adapters.rlvr` (``schedule``, ``observe``, ``state_dict``,
            ``load_state_dict``, ``save``; ``restore`` to resume from a checkpoint). Keyword only. With several
            processes it must be built identically on every rank (same arguments and ``seed``); this is checked at
            construction.
        answer_fn: ``completion_text -> hashable or None``, the final answer of a decoded completion (default
            [`default_answer_fn`][banditlib.adapters.trl.default_answer_fn]); ``None`` leaves ``RolloutBatch.answer``
            unset. Keyword only.
        grad_sketch: ``None`` (no sketches) or the sketch width ``k``, a perfect square ``>= 4`` (16, 64,
            256 ...). Keyword only.
        entropy: the entropy statistic ``RolloutBatch.entropy``: ``"exact"``, the mean over the completion's
            tokens of the training model's per-token entropy; ``"sampled"``, the mean of ``-log p`` of the
            sampled tokens (from TRL's or vLLM's log-probs, else the forward's); ``"auto"`` (default):
            ``"sampled"`` with ``use_vllm`` where TRL computes no ``old_per_token_logps`` and ``grad_sketch`` is
            None (it saves the extra forward there), else ``"exact"``. The choice is ``trainer.entropy_``.
            Keyword only.
        gather: what the ranks exchange each round. ``"rows"`` (default): every row (ids, masks, log-probs) is
            all-gathered, decided on and redistributed, which replay needs. ``"statistics"``, for a scheduler whose
            ``replays`` flag is false: only per-row statistics and answer codes are all-gathered, the decisions
            are the same, and each rank trains on the selected rows it holds (see
            `banditlib.adapters._trl_stats`; docs/rlvr.md, "Several processes", has the bytes and times).
            Keyword only.
        *args: passed to ``trl.GRPOTrainer``.
        **kwargs: passed to ``trl.GRPOTrainer`` (``model``, ``reward_funcs``, ``args``, ``train_dataset``...).

    Raises:
        InvalidInputError: at construction, for what the adapter does not support: ``loss_type`` outside
            ``dapo``, ``grpo``, ``bnpo``, ``dr_grpo``; tools or environments (``tool_mask``); vision language
            models; a custom ``rollout_func``; a scheduler lacking the interface; an ``answer_fn`` that is not
            callable; an ``entropy`` outside ``auto``, ``exact``, ``sampled``; a ``grad_sketch`` that is not None
            or a perfect square ``>= 4``, or a model without an output embedding layer behind a backbone (with
            ``grad_sketch``); a ``gather`` other than ``"rows"`` or ``"statistics"``, or ``"statistics"`` with a
            scheduler that replays. During training, when ``answer_fn`` raises (naming it and the row; the scheduler is
            then unchanged). On resume, for a checkpoint written with other settings.

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
        scheduler: tb.TrainerScheduler,
        answer_fn: AnswerFn | None = default_answer_fn,
        grad_sketch: int | None = None,
        entropy: str = "auto",
        gather: str = "rows",
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
        sketch_side = ck.check_grad_sketch(grad_sketch)
        ck.check_gather(gather, scheduler)
        ck.check_entropy(entropy)
        config = kwargs.get("args")
        ck.check_supported(
            loss_type=getattr(config, "loss_type", "dapo"),
            tools=bool(kwargs.get("tools")) or kwargs.get("environment_factory") is not None,
            vlm=False,
            rollout_func=kwargs.get("rollout_func") is not None,
        )  # before the (slow) base constructor; repeated on the resolved attributes below
        self._arm_pass = False  # the next no-grad pass of the training model is captured (see _statistics)
        self._pass: _Pass | None = None
        super().__init__(*args, **kwargs)
        ck.check_supported(
            loss_type=self.loss_type,
            tools=bool(self.tools) or self.environment_factories is not None,
            vlm=bool(self._is_vlm),
            rollout_func=self.rollout_func is not None,
        )
        self.rollout_scheduler = scheduler
        self.answer_fn = answer_fn
        self.grad_sketch = grad_sketch
        self.entropy = entropy
        self.gather = gather
        self.sketch_left: torch.Tensor | None = None  # (V, k1) and (H, k2), fixed for the whole run
        self.sketch_right: torch.Tensor | None = None
        if sketch_side is not None:
            vocab, hidden = head_and_backbone(self.model)[0].weight.shape
            self.sketch_left, self.sketch_right = sketch_matrices(vocab, hidden, sketch_side, sketch_side, seed=0)
        # "auto": the sampled-token estimate only where it saves the extra forward (vLLM log-probs, no TRL pass).
        sampled = bool(self.use_vllm) and not self._trl_scores_behaviour() and grad_sketch is None
        self.entropy_ = entropy if entropy != "auto" else ("sampled" if sampled else "exact")
        ck.check_same_on_all_ranks(scheduler)
        self._round = 0  # next round's number; rounds scheduled so far
        self._captured: tuple[torch.Tensor, list[list[int]]] | None = None

    def _trl_scores_behaviour(self) -> bool:
        """Whether TRL itself computes ``old_per_token_logps`` with the training model (its rule, verbatim)."""
        generate_every = int(cast(GRPOConfig, self.args).steps_per_generation or 1) * self.num_iterations
        stale = self.args.gradient_accumulation_steps % generate_every != 0
        return stale or bool(self.use_vllm and self.vllm_importance_sampling_correction)

    def _payload_fields(self) -> list[str]:
        """The per-row fields TRL hands the loss besides ids, masks and advantages (checked on resume)."""
        fields = ["ref_per_token_logps"] if self.beta != 0.0 else []
        if self.use_vllm:
            fields.append("sampling_per_token_logps")
            if self.vllm_importance_sampling_correction:
                level = "sequence" if self.vllm_importance_sampling_mode.startswith("sequence") else "token"
                fields.append(f"importance_sampling_ratio:{level}")
        return fields

    # ---------------------------------------------------------------------------------------- the round

    def _calculate_rewards(self, inputs: Any, prompts: Any, completions: Any, completion_ids_list: Any) -> Any:
        rewards_per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        weighted = (rewards_per_func * self.reward_weights.to(rewards_per_func.device).unsqueeze(0)).nansum(dim=1)
        weighted[torch.isnan(rewards_per_func).all(dim=1)] = torch.nan  # unscorable: rejected when scheduling
        self._captured = (weighted, [list(map(int, ids)) for ids in completion_ids_list])
        return rewards_per_func

    def _get_per_token_logps_and_entropies(
        self, model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor, logits_to_keep: int, *args: Any,
        **kwargs: Any,
    ) -> Any:  # fmt: skip
        # Armed, the first no-grad pass of the training model (TRL's old_per_token_logps, or the adapter's own
        # forward) also keeps its per-token entropies and, with grad_sketch, sketches its hidden states. TRL
        # passes everything after logits_to_keep by keyword; a positional call is left alone.
        if not self._arm_pass or model is not self.model or torch.is_grad_enabled() or args:
            return super()._get_per_token_logps_and_entropies(
                model, input_ids, attention_mask, logits_to_keep, *args, **kwargs
            )
        self._arm_pass = False
        wanted = bool(kwargs.get("compute_entropy", False))
        with contextlib.ExitStack() as stack:
            sketches: list[torch.Tensor] = []
            if self.sketch_left is not None and self.sketch_right is not None:
                sketches = stack.enter_context(sketching(
                    model, self.sketch_left, self.sketch_right, input_ids[:, -logits_to_keep:],
                    attention_mask[:, -logits_to_keep:], temperature=float(self.temperature),
                ))  # fmt: skip
            logps, entropies, aux = super()._get_per_token_logps_and_entropies(
                model, input_ids, attention_mask, logits_to_keep, **{**kwargs, "compute_entropy": True}
            )
        grad = None
        if self.sketch_left is not None:
            grad = torch.cat(sketches).to(logps.device)
            if grad.shape[0] != logps.shape[0]:  # pragma: no cover - TRL changed how it runs the forward
                raise RuntimeError(
                    f"BanditGRPOTrainer: the backbone hook saw {grad.shape[0]} rows, expected {logps.shape[0]}."
                )
        self._pass = _Pass(logps, entropies, grad)
        return logps, entropies if wanted else None, aux

    def _generate_and_score_completions(self, inputs: Any) -> dict[str, Any]:
        self._captured, self._pass = None, None
        training = bool(getattr(self.model, "training", False))
        self._arm_pass = training and self._trl_scores_behaviour()
        try:
            out: dict[str, Any] = super()._generate_and_score_completions(inputs)
        finally:
            self._arm_pass = False
        if not training:  # evaluation: score only, no scheduling
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

    def _statistics(self, out: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, bool]:
        """``(logps, entropy, grad, extra_forward)``: per-token log-probs ``(n, C)`` of the completions, their
        entropy statistic ``(n,)``, sketches ``(n, k)`` or None, and whether the adapter ran its own forward.

        The log-probs come from TRL's own pass of the training model when it ran one (``old_per_token_logps``;
        its entropies and hidden states were captured on the way), else from vLLM's sampling log-probs when
        the entropy statistic is the sampled-token estimate (no sketches asked for, every scored token finite),
        else from one extra no-grad forward.
        """
        mask = out["completion_mask"]
        old, sampling = out.get("old_per_token_logps"), out.get("sampling_per_token_logps")
        got, extra = self._pass, False
        if got is not None and old is not None and got.logps is old:
            logps, entropies, grad = got
        elif (self.entropy_ == "sampled" and self.sketch_left is None and sampling is not None
              and tb.finite_on_mask(sampling, mask)):  # fmt: skip
            logps, entropies, grad = sampling, None, None
        else:
            completion_ids, model = out["completion_ids"], cast(Any, self.model)
            self._arm_pass, self._pass, extra = True, None, True
            try:
                checkpointing = cast(Any, self.args).gradient_checkpointing_kwargs
                with torch.no_grad(), disable_gradient_checkpointing(model, checkpointing):
                    self._get_per_token_logps_and_entropies(
                        model,
                        torch.cat([out["prompt_ids"], completion_ids], dim=1),
                        torch.cat([out["prompt_mask"], mask], dim=1),
                        completion_ids.shape[1],
                        batch_size=self.args.per_device_train_batch_size,
                        compute_entropy=True,
                    )
            finally:
                self._arm_pass = False
            logps, entropies, grad = cast(_Pass, self._pass)
        exact = self.entropy_ == "exact"  # entropies is None only on the sampled path
        entropy = tb.masked_row_mean(cast(torch.Tensor, entropies) if exact else -logps, mask)
        return logps, entropy, grad, extra

    def _local_rows(self, out: dict[str, Any]) -> tuple[dict[str, torch.Tensor], bool]:
        """This rank's rows with their statistics and behaviour log-probs, and whether an extra forward ran."""
        prompt_ids = out["prompt_ids"]
        logps, entropy, grad, extra = self._statistics(out)
        behaviour = out.get("old_per_token_logps")
        behaviour = logps if behaviour is None else behaviour
        _, ids = self._captured  # type: ignore[misc]
        stop = {*self.eos_token_ids, self._tokenizer.pad_token_id}
        length = torch.tensor([float(len(x)) for x in ids], device=prompt_ids.device)
        truncated = torch.tensor([bool(x) and x[-1] not in stop for x in ids], device=prompt_ids.device)
        local = {
            "prompt_ids": prompt_ids,
            "prompt_mask": out["prompt_mask"],
            "completion_ids": out["completion_ids"],
            "completion_mask": out["completion_mask"],
            "logprobs": behaviour.float(),
            "advantage": out["advantages"].float(),
            "entropy": entropy.to(prompt_ids.device),
            "length": length,
            "truncated": truncated,
        }
        # Stored with the row, replayed unchanged: they describe the policy and sampler that generated it.
        for key in ("ref_per_token_logps", "sampling_per_token_logps", "importance_sampling_ratio"):
            if out.get(key) is not None:
                local[key] = out[key].float()
        if grad is not None:
            local["grad"] = grad.to(prompt_ids.device)
        return local, extra

    def _answers(self, ids: list[list[int]]) -> torch.Tensor:
        """``(N,)`` int64 answer ids of the round's gathered completions (token ids in global row order)."""
        if self.answer_fn is None:
            raise StateError("BanditGRPOTrainer._answers(): called without an answer_fn.")
        return tb.answer_ids(self._texts(ids), self.answer_fn)

    def _texts(self, ids: list[list[int]]) -> list[str]:
        return cast(list[str], cast(Any, self.processing_class).batch_decode(ids, skip_special_tokens=True))

    def _schedule(self, out: dict[str, Any]) -> dict[str, Any]:
        device = out["prompt_ids"].device
        rewards, _ = self._captured  # type: ignore[misc]
        if bool(torch.isnan(rewards).any()):
            raise InvalidInputError(
                f"BanditGRPOTrainer: every reward function returned None for {int(torch.isnan(rewards).sum())} "
                "completion(s); the scheduler needs a reward for each completion."
            )
        local, extra = self._local_rows(out)
        rank, world = self.accelerator.process_index, self.accelerator.num_processes
        groups, steps = int(cast(int, self.num_generations)), int(cast(GRPOConfig, self.args).steps_per_generation or 1)
        if self.gather == "statistics":
            codes = None
            if self.answer_fn is not None:  # this rank's completions, coded alike on every rank
                codes = ts.answer_codes(self._texts(self._captured[1]), self.answer_fn)  # type: ignore[index]
            batch = ts.build_statistics_batch(local, rewards, num_generations=groups, round=self._round, codes=codes)
        else:
            batch = tb.build_global_batch(local, rewards, num_generations=groups, round=self._round,
                                          answer_of=None if self.answer_fn is None else self._answers)  # fmt: skip
        schedule, observed = tb.schedule_round(self.rollout_scheduler, batch, observe=self._round > 0)
        self._round += 1
        multiple_of = self.pad_to_multiple_of if isinstance(self.pad_to_multiple_of, int) else None
        pad_id = self._tokenizer.pad_token_id
        if self.gather == "statistics":  # this rank's selected rows, padded to the largest rank's count
            rows, n_fresh, n_pad, num_items = ts.local_training_rows(
                schedule, batch, local, rank=rank, world=world, multiple=steps, loss_type=self.loss_type,
                pad_token_id=pad_id,
            )  # fmt: skip
            n_replay, mine = 0, tb.rank_rows(rows, 0, 1, pad_to_multiple_of=multiple_of)
        else:  # every rank holds all rows: its share is every world-th one
            rows, n_fresh, n_replay = tb.training_rows(schedule, batch, multiple=steps * world,
                                                       loss_type=self.loss_type, pad_token_id=pad_id)  # fmt: skip
            num_items = int(rows["completion_mask"].sum())
            n_pad = rows["completion_mask"].shape[0] - n_fresh - n_replay
            mine = tb.rank_rows(rows, rank, world, pad_to_multiple_of=multiple_of)
        result: dict[str, Any] = {k: v.to(device) for k, v in mine.items()}
        result["num_items_in_batch"] = torch.tensor(num_items, device=device)
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
        metrics["scheduler/padding_rows"].append(float(n_pad))
        metrics["scheduler/policy_updates"].append(self._policy_updates())
        metrics["scheduler/extra_forward"].append(float(extra))
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
        self.rollout_scheduler.save(os.path.join(folder, ck.SCHEDULER_FILE))
        ck.write_trainer_state(folder, {
            "round": self._round, "scheduler_class": type(self.rollout_scheduler).__name__,
            "scheduler_config": ck.config_of(self.rollout_scheduler), **self._resume_settings(),
            "answers": self.answer_fn is not None,
        })  # fmt: skip

    def _resume_settings(self) -> dict[str, Any]:
        """What a checkpoint records and a resumed trainer must match."""
        return {"grad_sketch": self.grad_sketch, "entropy": self.entropy_, "payload": self._payload_fields(),
                "gather": self.gather}  # fmt: skip

    def _load_optimizer_and_scheduler(self, checkpoint: str | None) -> None:
        super()._load_optimizer_and_scheduler(checkpoint)  # type: ignore[no-untyped-call]
        if checkpoint is not None:
            self._round = ck.load_scheduler(self.rollout_scheduler, checkpoint, self._resume_settings())


class _Pass(NamedTuple):
    """What one no-grad pass of the training model gave: ``(n, C)`` log-probs and entropies, ``(n, k)`` sketches."""

    logps: torch.Tensor
    entropies: torch.Tensor | None
    grad: torch.Tensor | None
