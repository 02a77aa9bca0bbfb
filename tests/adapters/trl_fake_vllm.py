"""A CPU stand-in for TRL's vLLM generation backend, so that ``use_vllm=True`` runs without vLLM or a GPU.

vLLM cannot run on this machine (it needs a GPU), so the tests and ``benchmarks/bench_trl.py`` replace
``trl.trainer.grpo_trainer.VLLMGeneration`` (the one object through which ``GRPOTrainer`` talks to vLLM, in
colocate and server mode alike) with :class:`FakeVLLMGeneration`. Everything after it is TRL's own code: the
trainer tokenises, pads, recomputes ``old_per_token_logps`` with the training model, builds
``sampling_per_token_logps`` and ``importance_sampling_ratio`` and applies them in the loss exactly as with a
real vLLM engine. What the stand-in does not reproduce: vLLM's kernels and sampler, weight transfer to a
server (``sync_weights`` only counts calls; the engine reads the training model's current weights), and
tensor-parallel slicing.

The engine samples from ``softmax(s * logits / temperature)`` with ``s = mismatch`` (0.9 by default) and
reports the log-prob of each sampled token under that distribution, as vLLM does with
``--logprobs-mode processed_logprobs``: the training model's log-probs differ from the sampler's, as they do
between vLLM and the trainer, so the importance-sampling ratio is not 1.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch


class FakeVLLMGeneration:
    """``VLLMGeneration`` with the same ``generate`` and ``sync_weights``, sampling from the trainer's model.

    Args:
        model: the training model (TRL passes it).
        accelerator: TRL's accelerator (unused).
        processing_class: the tokenizer (its ``eos_token_id`` ends a completion).
        mismatch: ``s``, the logit scale of the sampler relative to the training model.
        nan_at: ``(row, position)`` pairs whose log-prob is reported as ``None`` (vLLM's NaN), in every call.
        seed: seed of the sampler's generator (advanced by each call).
        **kwargs: the rest of ``VLLMGeneration``'s arguments; ``temperature`` and ``max_completion_length`` are
            used.
    """

    def __init__(
        self, model: Any, accelerator: Any, processing_class: Any, *, mismatch: float = 0.9,
        nan_at: tuple[tuple[int, int], ...] = (), seed: int = 0, **kwargs: Any,
    ) -> None:  # fmt: skip
        self.model, self.mismatch, self.nan_at = model, mismatch, nan_at
        self.temperature = float(kwargs.get("temperature", 1.0))
        self.max_tokens = int(kwargs.get("max_completion_length", 16))
        self.eos = int(processing_class.eos_token_id)
        self.pad = int(processing_class.pad_token_id)
        self.generator = torch.Generator().manual_seed(seed)
        self.syncs = 0
        self.calls = 0

    def sync_weights(self) -> None:
        """Counted only: the engine samples from the training model's current weights."""
        self.syncs += 1

    @torch.no_grad()
    def generate(self, prompts: list[list[int]], images: Any, num_generations: int, profiler: Any = None) -> tuple:
        """``(prompt_ids, completion_ids, logprobs, logprob_token_ids)`` as ``VLLMGeneration.generate`` returns.

        ``prompts`` holds one token-id list per completion (TRL repeats each prompt ``num_generations`` times);
        ``logprobs[i][t]`` is the one-element list ``[log p(token)]`` of ``logprobs=0``.
        """
        self.calls += 1
        n, width = len(prompts), max(len(p) for p in prompts)
        ids = torch.full((n, width), self.pad, dtype=torch.long)
        mask = torch.zeros(n, width, dtype=torch.long)
        for i, p in enumerate(prompts):
            ids[i, width - len(p) :] = torch.tensor(p)
            mask[i, width - len(p) :] = 1
        done = torch.zeros(n, dtype=torch.bool)
        tokens: list[list[int]] = [[] for _ in range(n)]
        logps: list[list[list[float | None]]] = [[] for _ in range(n)]
        for _ in range(self.max_tokens):
            logits = self.model(input_ids=ids, attention_mask=mask).logits[:, -1].float()
            logp = torch.log_softmax(logits * self.mismatch / self.temperature, dim=-1)
            nxt = torch.multinomial(logp.exp(), 1, generator=self.generator)[:, 0]
            for i in range(n):
                if not done[i]:
                    t = len(tokens[i])
                    tokens[i].append(int(nxt[i]))
                    logps[i].append([None if (i, t) in self.nan_at else float(logp[i, nxt[i]])])
            done |= nxt == self.eos
            if bool(done.all()):
                break
            # Finished rows keep being extended (their outputs are no longer read); others see their token.
            ids = torch.cat([ids, nxt[:, None]], dim=1)
            mask = torch.cat([mask, torch.ones(n, 1, dtype=torch.long)], dim=1)
        return prompts, tokens, logps, None


@contextlib.contextmanager
def fake_vllm(**kwargs: Any) -> Iterator[list[FakeVLLMGeneration]]:
    """Within the block, TRL's vLLM backend is :class:`FakeVLLMGeneration` (``kwargs``: its options).

    Yields:
        The list the engines built in the block are appended to (one per trainer).
    """
    from trl.trainer import grpo_trainer

    engines: list[FakeVLLMGeneration] = []

    def build(*args: Any, **kw: Any) -> FakeVLLMGeneration:
        engine = FakeVLLMGeneration(*args, **{**kw, **kwargs})
        engines.append(engine)
        return engine

    original = grpo_trainer.VLLMGeneration
    grpo_trainer.VLLMGeneration = build  # type: ignore[assignment, misc]
    try:
        yield engines
    finally:
        grpo_trainer.VLLMGeneration = original  # type: ignore[misc]
