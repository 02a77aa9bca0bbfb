"""The peers CBS is compared with, behind the same [`Scheduler`][banditlib.adapters.rlvr.Scheduler] interface.

None of them learns: ``observe`` only checks the round protocol and returns ``None``. All are vectorised over
groups (no Python loop over rollouts or groups).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from banditlib import extend as V

from ._base import Schedule, Scheduler, _BufferedScheduler
from .batch import RolloutBatch
from .buffer import RolloutBuffer
from .groups import GroupLayout, group_range, keep_counts

__all__ = [
    "DynamicSamplingFilter",
    "MaxVarianceScheduler",
    "RecencyReplay",
    "ThresholdScheduler",
    "UniformScheduler",
    "max_variance_subset",
]


class UniformScheduler(Scheduler):
    """Plain GRPO: train on every fresh rollout, replay nothing.

    Examples:
        >>> b = RolloutBatch.from_groups([{"reward": [1.0, 0.0], "entropy": [0.1, 0.2], "length": [3, 4]}])
        >>> UniformScheduler().schedule(b).fresh.tolist()
        [0, 1]

    References:
        Shao et al. DeepSeekMath: pushing the limits of mathematical reasoning in open language models
        (GRPO), arXiv 2402.03300, 2024.
    """

    name = "uniform"

    def _schedule(self, batch: RolloutBatch, round_: int, where: str, probe: RolloutBatch | None) -> Schedule:
        return Schedule.keep(batch, torch.arange(len(batch), device=batch.group.device))


def max_variance_subset(reward: torch.Tensor, layout: GroupLayout, keep: torch.Tensor) -> torch.Tensor:
    """Per group, the ``keep[g]`` rollouts whose rewards have the largest variance: ascending row indices.

    A maximum-variance subset of size ``m`` always consists of the ``i`` smallest and the ``m - i`` largest
    values for some ``i`` (PODS, Lemma 1), so after sorting each group (``O(n log n)``) the ``m + 1``
    candidates are compared with prefix sums: all groups at once. Ties go to the smallest ``i``.

    Args:
        reward: ``(N,)`` rewards (any real dtype; compared in float64).
        layout: the group layout of the batch's ``(N,)`` group ids (``GroupLayout.of(group)`` from
            ``banditlib.adapters.rlvr.batch``), ``G`` groups in ascending id order.
        keep: ``(G,)`` int64 rows to keep per group, ``0 <= keep[g] <=`` the group's size.

    Returns:
        ``(keep.sum(),)`` int64 ascending row indices.

    Examples:
        >>> layout = GroupLayout.of(torch.tensor([0, 0, 0, 0, 1, 1, 1]))
        >>> reward = torch.tensor([0.5, 0.0, 0.4, 1.0, 1.0, 1.0, 0.0])
        >>> max_variance_subset(reward, layout, torch.tensor([2, 2]))  # per group: its lowest and highest reward
        tensor([1, 3, 5, 6])
    """
    padded, mask, n = layout.padded, layout.mask, layout.counts
    G, G_max = padded.shape
    r = torch.where(mask, reward.to(torch.float64)[padded.clamp_min(0)], math.inf)
    vals, order = r.sort(dim=1, stable=True)
    vals = torch.where(mask, vals, 0.0)  # real values sort first; the padding sits at the end
    zero = torch.zeros(G, 1, dtype=torch.float64, device=r.device)
    p1 = torch.cat([zero, vals.cumsum(1)], 1)
    p2 = torch.cat([zero, (vals * vals).cumsum(1)], 1)
    m = keep[:, None]
    i = torch.arange(int(keep.max()) + 1, device=r.device)[None, :]
    valid = i <= m
    start = (n[:, None] - m + i).clamp(0, G_max)  # first of the m - i largest
    i_c = i.clamp(max=G_max).expand(G, -1)
    s1 = p1.gather(1, i_c) + p1.gather(1, n[:, None]) - p1.gather(1, start)
    s2 = p2.gather(1, i_c) + p2.gather(1, n[:, None]) - p2.gather(1, start)
    mf = m.to(torch.float64)
    var = torch.where(valid, s2 / mf - (s1 / mf) ** 2, -math.inf)
    best = var.argmax(dim=1, keepdim=True)
    pos = torch.arange(G_max, device=r.device)[None, :]
    take = (pos < best) | ((pos >= n[:, None] - m + best) & (pos < n[:, None]))
    return padded.gather(1, order)[take].sort().values


class MaxVarianceScheduler(Scheduler):
    """PODS max-variance down-sampling: keep ``m = ceil(keep_fraction * n)`` rollouts of each group of ``n``,
    the ``m`` whose rewards have the largest variance (a group of one is kept), by the ``O(n log n)`` scan of
    [`max_variance_subset`][banditlib.adapters.rlvr.baselines.max_variance_subset].

    Args:
        keep_fraction: in ``(0, 1]``.

    Examples:
        >>> b = RolloutBatch.from_groups([{"reward": [0.5, 0.0, 0.4, 1.0], "entropy": [0.1] * 4, "length": [3] * 4}])
        >>> MaxVarianceScheduler(keep_fraction=0.5).schedule(b).fresh.tolist()
        [1, 3]

    References:
        Xu et al. Not all rollouts are useful: down-sampling rollouts in LLM reinforcement learning (PODS),
        arXiv 2504.13818, 2025.
    """

    name = "pods"

    def __init__(self, keep_fraction: float = 0.5) -> None:
        super().__init__()
        self.keep_fraction = V.check_float(
            keep_fraction, "MaxVarianceScheduler()", "keep_fraction", low=0.0, high=1.0, low_open=True
        )

    @property
    def config(self) -> dict[str, Any]:
        return {"keep_fraction": self.keep_fraction}

    def _schedule(self, batch: RolloutBatch, round_: int, where: str, probe: RolloutBatch | None) -> Schedule:
        layout = GroupLayout.of(batch.group)
        keep = keep_counts(layout.counts, self.keep_fraction)
        return Schedule.keep(batch, max_variance_subset(batch.reward, layout, keep))


class DynamicSamplingFilter(Scheduler):
    """DAPO dynamic sampling as a filter: drop every group whose rewards are all equal (``max - min <= tol``;
    the tolerance covers continuous rewards), since such a group has zero advantage and adds no gradient.
    A group of one is therefore dropped. If every group is dropped, ``fresh`` is empty; DAPO then generates
    more prompts, which is the caller's business.

    Args:
        tol: ``>= 0``.

    Examples:
        >>> b = RolloutBatch.from_groups([{"reward": [1.0, 1.0], "entropy": [0.1, 0.2], "length": [3, 4]},
        ...                               {"reward": [1.0, 0.0], "entropy": [0.1, 0.2], "length": [3, 4]}])
        >>> DynamicSamplingFilter().schedule(b).fresh.tolist()
        [2, 3]

    References:
        Yu et al. DAPO: an open-source LLM reinforcement learning system at scale, arXiv 2503.14476, 2025.
    """

    name = "dapo"

    def __init__(self, tol: float = 1e-6) -> None:
        super().__init__()
        self.tol = V.check_float(tol, "DynamicSamplingFilter()", "tol", low=0.0)

    @property
    def config(self) -> dict[str, Any]:
        return {"tol": self.tol}

    def _schedule(self, batch: RolloutBatch, round_: int, where: str, probe: RolloutBatch | None) -> Schedule:
        _, inv, counts = torch.unique(batch.group, return_inverse=True, return_counts=True)
        lo, hi = group_range(batch.reward.to(torch.float64), inv, counts.shape[0])
        keep = (hi - lo) > self.tol
        return Schedule.keep(batch, torch.nonzero(keep[inv]).squeeze(1))


class ThresholdScheduler(Scheduler):
    """Filter by thresholds: keep rollouts with ``|advantage| >= min_abs_advantage`` and, when ``min_reward``
    is given, ``reward >= min_reward``. The default drops exactly the rows that add no GRPO gradient.

    Args:
        min_abs_advantage: ``>= 0``.
        min_reward: optional reward floor.

    Examples:
        >>> b = RolloutBatch.from_tensors(group=[0, 0, 0], reward=[1.0, 0.0, 0.5], advantage=[1.0, -1.0, 0.0],
        ...                               entropy=[0.1] * 3, length=[3] * 3)
        >>> ThresholdScheduler().schedule(b).fresh.tolist()
        [0, 1]

    References:
        Filtering by advantage magnitude as in GRESO (Li et al., arXiv 2506.02177, 2025) and by reward as in
        rejection-sampling fine-tuning (RAFT: Dong et al., TMLR 2023).
    """

    name = "threshold"

    def __init__(self, min_abs_advantage: float = 1e-6, min_reward: float | None = None) -> None:
        super().__init__()
        where = "ThresholdScheduler()"
        self.min_abs_advantage = V.check_float(min_abs_advantage, where, "min_abs_advantage", low=0.0)
        self.min_reward = None if min_reward is None else V.check_float(min_reward, where, "min_reward")

    @property
    def config(self) -> dict[str, Any]:
        return {"min_abs_advantage": self.min_abs_advantage, "min_reward": self.min_reward}

    def _schedule(self, batch: RolloutBatch, round_: int, where: str, probe: RolloutBatch | None) -> Schedule:
        keep = batch.advantage.abs() >= self.min_abs_advantage
        if self.min_reward is not None:
            keep &= batch.reward >= self.min_reward
        return Schedule.keep(batch, torch.nonzero(keep).squeeze(1))


class RecencyReplay(_BufferedScheduler):
    """Experience replay by recency: train on every fresh rollout plus the ``reuse`` newest rollouts of the
    previous rounds in a FIFO buffer (newest round first, row order within a round).

    Args:
        reuse: rollouts replayed per round (``>= 0``), or ``None`` for as many as the fresh batch holds.
        buffer_rounds: rounds the buffer holds (``>= 1``; the current round counts, so 1 replays nothing).
        max_buffer_rollouts: optional cap on buffered rollouts.

    Examples:
        >>> sch = RecencyReplay(reuse=1, buffer_rounds=2)
        >>> mk = lambda t: RolloutBatch.from_groups([{"reward": [1.0, 0.0], "entropy": [0.1, 0.2],
        ...                                           "length": [3, 4]}], round=t)
        >>> len(sch.schedule(mk(0)).replay); sch.observe(mk(1))
        0
        >>> sch.schedule(mk(1)).replay.round.tolist()
        [0]

    References:
        Lin. Self-improving reactive agents based on reinforcement learning, planning and teaching (experience
        replay), Machine Learning 8, 1992; applied to LLM RL in ReMix/RePO-style off-policy reuse.
    """

    name = "recency"
    replays = True

    def __init__(self, reuse: int | None = None, buffer_rounds: int = 4, *, max_buffer_rollouts: int | None = None):
        super().__init__()
        where = "RecencyReplay()"
        self.reuse = V.check_int(reuse, where, "reuse", low=0, allow_none=True)
        self.buffer = RolloutBuffer(
            V.check_int(buffer_rounds, where, "buffer_rounds"),  # type: ignore[arg-type]
            V.check_int(max_buffer_rollouts, where, "max_buffer_rollouts", allow_none=True),
        )

    @property
    def config(self) -> dict[str, Any]:
        return {
            "reuse": self.reuse,
            "buffer_rounds": self.buffer.rounds,
            "max_buffer_rollouts": self.buffer.max_rollouts,
        }

    def _schedule(self, batch: RolloutBatch, round_: int, where: str, probe: RolloutBatch | None) -> Schedule:
        buf, n, device = self.buffer, len(batch), batch.group.device
        buf.check_compatible(batch, where)
        reuse = n if self.reuse is None else self.reuse
        e = buf.evictions(n)
        old = buf.live_slots(skip_rounds=e)
        blocks = list(torch.split(old, buf.round_counts()[e:])) if old.numel() else []
        newest_first = torch.cat(blocks[::-1]) if blocks else old
        chosen = newest_first[: min(reuse, newest_first.shape[0])].to(device)
        replay = buf.rows(chosen) if chosen.numel() else RolloutBatch.empty_like(batch)
        buf.add_uses(chosen)
        slots = buf.push(batch)
        buf.add_uses(slots)
        return Schedule.keep(batch, torch.arange(n, device=device), replay=replay)
