"""Answer and reward consistency within a group: [`AnswerStats`][banditlib.adapters.rlvr.AnswerStats].

A verifier that misleads usually leaves a trace in the group: the same final answer scored differently by a
noisy judge, several different answers accepted for a question with one right answer, a lone accepted answer
in a group the policy almost never solves, a correct answer rejected because it was cut off while an
identical finished one passed. [`AnswerStats`][banditlib.adapters.rlvr.AnswerStats] computes these per rollout in one
vectorised pass (no Python loop over rows or groups) from the batch's ``answer`` ids; the consistency features of
[`RolloutFeaturizer`][banditlib.adapters.rlvr.RolloutFeaturizer],
[`ConsistencyLabel`][banditlib.adapters.rlvr.ConsistencyLabel] and
[`ConsistencyFilter`][banditlib.adapters.rlvr.ConsistencyFilter] are built on it. Without ``answer`` every answer-based
statistic is zero, so the features degrade to constants.

Conventions: a rollout is *accepted* when ``reward > accept_threshold`` (0.5 suits 0/1 verifiers); only
*finished* rollouts (not truncated) count as evidence about an answer, because a truncated rollout is
rejected for being cut off, whatever its answer.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .batch import RolloutBatch
from .groups import GroupLayout

__all__ = ["AnswerStats"]


@dataclass(frozen=True)
class AnswerStats:
    """Per-rollout answer and reward consistency within its group (every tensor ``(N,)``).

    Attributes:
        accepted: bool ``reward > accept_threshold``.
        has_answer: bool an answer was extracted (``answer >= 0``; all ``False`` without ``answer``).
        pass_rate: float32 share of the group's rollouts that were accepted.
        answer_share: float32 share of the group's rollouts with the same answer (0 without an answer).
        agreement: float32 share of the group's accepted rollouts that gave the same answer (0 without an
            answer or when nothing in the group was accepted).
        accepted_answers: float32 number of distinct answers among the group's accepted rollouts.
        reward_deviation: float32 ``reward`` minus the mean reward of the group's rollouts with the same
            answer (0 without an answer): positive for an answer accepted once and rejected elsewhere.
        others_finished: float32 finished rollouts of the group, other than this one, with the same answer.
        others_accepted: float32 how many of those were accepted.
        conflict: bool accepted, with an answer that some *other finished* rollout of the group got rejected
            for (a false positive of a noisy verifier, if the rejection was right).

    Examples:
        >>> b = RolloutBatch.from_tensors(group=[0, 0, 0, 0], reward=[1.0, 0.0, 1.0, 0.0], entropy=[0.1] * 4,
        ...                               length=[3] * 4, answer=[7, 7, 5, -1])
        >>> s = AnswerStats.of(b)
        >>> s.conflict.tolist(), s.accepted_answers.tolist()
        ([True, False, False, False], [2.0, 2.0, 2.0, 2.0])
        >>> s.agreement.tolist(), s.reward_deviation.tolist()
        ([0.5, 0.5, 0.5, 0.0], [0.5, -0.5, 0.0, 0.0])
    """

    accepted: torch.Tensor
    has_answer: torch.Tensor
    pass_rate: torch.Tensor
    answer_share: torch.Tensor
    agreement: torch.Tensor
    accepted_answers: torch.Tensor
    reward_deviation: torch.Tensor
    others_finished: torch.Tensor
    others_accepted: torch.Tensor
    conflict: torch.Tensor

    @classmethod
    def of(cls, batch: RolloutBatch, layout: GroupLayout | None = None, accept_threshold: float = 0.5) -> AnswerStats:
        """The statistics of ``batch`` (``layout``: its group layout, if already computed; the result is cached
        on it, so a second call with the same batch and layout costs nothing)."""
        layout = layout if layout is not None else GroupLayout.of(batch.group)
        key = ("answer-stats", id(batch), float(accept_threshold))
        hit = layout.cache.get(key)
        if hit is not None and hit[0] is batch:
            return hit[1]
        stats = cls._compute(batch, layout, accept_threshold)
        layout.cache[key] = (batch, stats)  # the batch is kept, so its id cannot be reused while cached
        return stats

    @classmethod
    def _compute(cls, batch: RolloutBatch, layout: GroupLayout, accept_threshold: float) -> AnswerStats:
        n, device = len(batch), batch.group.device
        f32 = torch.float32
        ginv = layout.inverse
        G = int(layout.counts.shape[0])
        size = layout.counts.to(f32)[ginv]
        accepted = batch.reward > accept_threshold
        acc = accepted.to(f32)
        n_acc = torch.zeros(G, dtype=f32, device=device).index_add_(0, ginv, acc)
        pass_rate = n_acc[ginv] / size
        zeros = torch.zeros(n, dtype=f32, device=device)
        if batch.answer is None:
            no = torch.zeros(n, dtype=torch.bool, device=device)
            return cls(accepted, no, pass_rate, zeros, zeros, zeros, zeros, zeros, zeros, no)
        has = batch.answer >= 0
        # One class per (group, answer), from one 1-D integer key (a 2-D unique sorts far more slowly): answers
        # made dense first, so group * U + answer fits in int64; a row without an answer is a class of its own.
        _, dense = torch.unique(batch.answer, return_inverse=True)
        U = int(dense.max()) + 1
        rows = torch.arange(n, device=device)
        key = torch.where(has, ginv * U + dense, G * U + rows)
        _, cls_inv = torch.unique(key, return_inverse=True)
        C = int(cls_inv.max()) + 1

        def per_class(values: torch.Tensor) -> torch.Tensor:
            return torch.zeros(C, dtype=f32, device=device).index_add_(0, cls_inv, values)[cls_inv]

        one = torch.ones(n, dtype=f32, device=device)
        copies = per_class(one)
        finished = (~batch.truncated).to(f32)
        fin_copies = per_class(finished)
        fin_acc = per_class(finished * acc)
        hasf = has.to(f32)
        answer_share = torch.where(has, copies / size, 0.0)
        acc_same = per_class(acc)
        agreement = torch.where(has & (n_acc[ginv] > 0), acc_same / n_acc[ginv].clamp_min(1.0), 0.0)
        # Distinct accepted answers: count classes (with an answer) holding at least one accepted row, per group.
        cls_acc = torch.zeros(C, dtype=f32, device=device).index_add_(0, cls_inv, acc * hasf) > 0
        cls_group = torch.zeros(C, dtype=torch.long, device=device).index_copy_(0, cls_inv, ginv)
        distinct = torch.zeros(G, dtype=f32, device=device).index_add_(0, cls_group, cls_acc.to(f32))[ginv]
        mean_r = per_class(batch.reward.to(f32)) / copies
        deviation = torch.where(has, batch.reward.to(f32) - mean_r, 0.0)
        others_finished = torch.where(has, fin_copies - finished, 0.0)
        others_accepted = torch.where(has, fin_acc - finished * acc, 0.0)
        conflict = accepted & has & (others_finished - others_accepted > 0)
        return cls(accepted, has, pass_rate, answer_share, agreement, distinct, deviation, others_finished,
                   others_accepted, conflict)  # fmt: skip
