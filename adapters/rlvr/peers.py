"""The 2025-2026 peers of the learned scheduler, behind the same [`Scheduler`][banditlib.adapters.rlvr.Scheduler]
interface.

None of them learns: ``observe`` only checks the round protocol. Each implements one published rule (or the
rule a measurement singled out) as a fixed filter or replay policy:

* [`ConsistencyFilter`][banditlib.adapters.rlvr.ConsistencyFilter]: drop accepted rollouts whose answer an identical
finished rollout of the same
  group was rejected for (answer/reward consistency);
* [`OverlongFilter`][banditlib.adapters.rlvr.OverlongFilter]: DAPO's overlong filtering, drop truncated rollouts;
* [`PriorityReplay`][banditlib.adapters.rlvr.PriorityReplay]: rollout-level replay prioritised by ``|advantage|`` with
an age cap, every fresh
  rollout kept (arXiv 2606.04560);
* [`InfluenceFilter`][banditlib.adapters.rlvr.InfluenceFilter]: drop rollouts whose gradient is anti-aligned with a
probe gradient (I-PPO, arXiv
  2604.01597; the trusted probe of GradAlign, arXiv 2602.21492).
"""

from __future__ import annotations

from typing import Any

import torch

from banditlib import extend as V
from banditlib.errors import InvalidInputError

from ._base import Schedule, Scheduler, _BufferedScheduler, tie_keys
from .batch import RolloutBatch
from .buffer import RolloutBuffer
from .consistency import AnswerStats

__all__ = ["ConsistencyFilter", "InfluenceFilter", "OverlongFilter", "PriorityReplay"]


class ConsistencyFilter(Scheduler):
    """Drop every accepted rollout whose answer another *finished* rollout of its group was rejected for.

    A verifier that accepts a wrong answer by chance (an LLM judge at temperature, sampled unit tests) leaves
    the same answer rejected elsewhere in the group; a correct answer is never rejected when finished, so the
    accepted copy is the suspect. Truncated rollouts do not count as rejections (they are rejected for being
    cut off). Needs ``RolloutBatch.answer``; without it nothing is dropped.

    Args:
        accept_threshold: a rollout counts as accepted when ``reward > accept_threshold``.

    Examples:
        >>> b = RolloutBatch.from_tensors(group=[0, 0, 0], reward=[1.0, 0.0, 1.0], entropy=[0.1] * 3,
        ...                               length=[3] * 3, answer=[4, 4, 2])
        >>> ConsistencyFilter().schedule(b).fresh.tolist()  # answer 4 passed once and failed once
        [1, 2]

    References:
        Wang et al. Self-consistency improves chain of thought reasoning in language models, ICLR 2023 (answer
        agreement as evidence); the consistency rule measured in banditlib's fault worlds (docs/rlvr.md).
    """

    name = "consistency"

    def __init__(self, accept_threshold: float = 0.5) -> None:
        super().__init__()
        self.accept_threshold = V.check_float(accept_threshold, "ConsistencyFilter()", "accept_threshold")

    @property
    def config(self) -> dict[str, Any]:
        return {"accept_threshold": self.accept_threshold}

    def _schedule(self, batch: RolloutBatch, round_: int, where: str, probe: RolloutBatch | None) -> Schedule:
        return Schedule.keep(batch, ~AnswerStats.of(batch, accept_threshold=self.accept_threshold).conflict)


class OverlongFilter(Scheduler):
    """DAPO's overlong filtering: drop every truncated rollout, whose zero reward may only say it was cut off.

    Examples:
        >>> b = RolloutBatch.from_tensors(group=[0, 0], reward=[1.0, 0.0], entropy=[0.1] * 2, length=[3, 9],
        ...                               truncated=[False, True])
        >>> OverlongFilter().schedule(b).fresh.tolist()
        [0]

    References:
        Yu et al. DAPO: an open-source LLM reinforcement learning system at scale, arXiv 2503.14476, 2025
        (overlong filtering).
    """

    name = "overlong"

    def _schedule(self, batch: RolloutBatch, round_: int, where: str, probe: RolloutBatch | None) -> Schedule:
        return Schedule.keep(batch, ~batch.truncated)


class PriorityReplay(_BufferedScheduler):
    """Rollout-level replay prioritised by ``|advantage|``: every fresh rollout, plus replayed ones.

    Each round trains on all fresh rollouts ("fresh-anchored") and ``round(replay_ratio * N)`` buffered
    rollouts drawn without replacement with probability proportional to ``(|A_i| + 1e-6) ** alpha`` among
    those at most ``max_age`` rounds old (older rounds are evicted). Advantages and behaviour log-probs are
    the ones stored at generation, so replayed rows train off-policy through the PPO ratio. Draws come from a
    seeded generator, a pure function of ``(seed, round)``.

    Args:
        replay_ratio: replayed rows per fresh row, ``>= 0``.
        alpha: priority exponent, ``>= 0`` (0: uniform over the buffer).
        max_age: oldest replayable age in rounds, ``>= 1``.
        seed: seed of the draws.
        max_buffer_rollouts: optional cap on buffered rollouts.

    Examples:
        >>> sch = PriorityReplay(replay_ratio=0.5, max_age=2, seed=0)
        >>> mk = lambda t: RolloutBatch.from_groups([{"reward": [1.0, 0.0, 0.0, 0.0], "entropy": [0.1] * 4,
        ...                                           "length": [3] * 4}], round=t)
        >>> len(sch.schedule(mk(0)).replay); sch.observe(mk(1))
        0
        >>> s = sch.schedule(mk(1)); s.fresh.tolist(), len(s.replay), s.replay.round.tolist()
        ([0, 1, 2, 3], 2, [0, 0])

    References:
        Rollout-level advantage-prioritised replay for LLM RL, arXiv 2606.04560, 2026 (defaults
        ``alpha = 0.5``, replay ratio 0.5, ``max_age = 10`` as reported by a public re-implementation; the
        authors' code was not available to us).
    """

    name = "priority-replay"
    replays = True

    def __init__(
        self, replay_ratio: float = 0.5, alpha: float = 0.5, max_age: int = 10, seed: int = 0, *,
        max_buffer_rollouts: int | None = None,
    ) -> None:  # fmt: skip
        super().__init__()
        where = "PriorityReplay()"
        self.replay_ratio = V.check_float(replay_ratio, where, "replay_ratio", low=0.0)
        self.alpha = V.check_float(alpha, where, "alpha", low=0.0)
        self.max_age: int = V.check_int(max_age, where, "max_age")  # type: ignore[assignment]
        self.seed: int = V.check_seed(seed, where) or 0
        self.buffer = RolloutBuffer(self.max_age + 1, V.check_int(max_buffer_rollouts, where, "max_buffer_rollouts",
                                                                  allow_none=True))  # fmt: skip

    @property
    def config(self) -> dict[str, Any]:
        return {
            "replay_ratio": self.replay_ratio, "alpha": self.alpha, "max_age": self.max_age, "seed": self.seed,
            "max_buffer_rollouts": self.buffer.max_rollouts,
        }  # fmt: skip

    def _schedule(self, batch: RolloutBatch, round_: int, where: str, probe: RolloutBatch | None) -> Schedule:
        buf, n, device = self.buffer, len(batch), batch.group.device
        buf.check_compatible(batch, where)
        e = buf.evictions(n)
        old = buf.live_slots(skip_rounds=e)
        want = min(round(self.replay_ratio * n), old.numel())
        chosen = old[:0]
        if want:
            age = round_ - buf.column("round", old)
            adv = buf.column("advantage", old).abs().double()
            prio = torch.where(age <= self.max_age, (adv + 1e-6) ** self.alpha, 0.0)
            live = int((prio > 0).sum())
            if live:
                keys = tie_keys(self.seed, round_, 1, torch.device("cpu"))
                gen = torch.Generator().manual_seed(int(keys[0]))
                pick = torch.multinomial(prio.cpu(), min(want, live), replacement=False, generator=gen)
                chosen = old[pick.to(old.device)].sort().values
        replay = buf.rows(chosen) if chosen.numel() else RolloutBatch.empty_like(batch)
        buf.add_uses(chosen)
        buf.add_uses(buf.push(batch))
        return Schedule.keep(batch, torch.arange(n, device=device), replay=replay)


class InfluenceFilter(Scheduler):
    """Drop every rollout whose training direction is anti-aligned with a probe gradient.

    Rollout ``i``'s influence is ``A_i <g_i, d>`` (``g_i``: its gradient sketch ``RolloutBatch.grad``), with
    ``d = mean_j A_j g_j`` over the ``probe`` batch given to ``schedule``: rollouts of a small trusted prompt
    set scored by a strict verifier, or their reference answers with advantage 1 (an SFT direction, as
    I-PPO's validation gradient). Rows with influence below ``threshold`` times the round's mean absolute
    influence are dropped (I-PPO drops those ``<= 0``). ``probe="self"`` uses the batch's own mean direction
    instead (LearnAlign-style, no trusted data: it cannot see a fault the whole batch shares).

    With a trusted probe this is the one rule that can expose a reward hack the training verifier rewards;
    per-rollout influence is noisy, though (in our fault worlds about half of all helpful rollouts score
    below 0 on a probe of 30 prompts), so where the verifier's faults are random it drops much that helps.

    Args:
        probe: ``"trusted"`` (a probe batch is required in every ``schedule``) or ``"self"``.
        threshold: relative cut, any finite number (0: drop anti-aligned rollouts).
        reweight: I-PPO's reweighting of the kept rows by ``influence / mean(influence)`` (clipped to
            ``[0, 5]``).

    Raises:
        InvalidInputError: (at ``schedule``) a batch or probe without gradient sketches, or of different widths;
            ``probe="trusted"`` without a probe batch.

    Examples:
        >>> mk = lambda g, a, t: RolloutBatch.from_tensors(group=[0, 0], reward=[1.0, 0.0], advantage=a,
        ...                                               entropy=[0.1] * 2, length=[3] * 2, grad=g, round=t)
        >>> probe = mk([[1.0, 0.0], [1.0, 0.0]], [1.0, 1.0], 0)         # the trusted direction: +x
        >>> InfluenceFilter().schedule(mk([[1.0, 0.0], [0.0, 1.0]], [-1.0, 1.0], 0), probe).fresh.tolist()
        [1]

    References:
        Shu et al. I-PPO: influence-guided PPO, arXiv 2604.01597, 2026; Yang et al. GradAlign: gradient-aligned
        data selection for LLM reinforcement learning, arXiv 2602.21492, 2026.
    """

    name = "influence"
    uses_probe = True

    def __init__(self, probe: str = "trusted", threshold: float = 0.0, reweight: bool = False) -> None:
        super().__init__()
        where = "InfluenceFilter()"
        if probe not in ("trusted", "self"):
            raise InvalidInputError(f"{where}: `probe` must be 'trusted' or 'self'; got {probe!r}.")
        self.probe = probe
        self.threshold = V.check_float(threshold, where, "threshold")
        self.reweight = bool(reweight)

    @property
    def config(self) -> dict[str, Any]:
        return {"probe": self.probe, "threshold": self.threshold, "reweight": self.reweight}

    def _schedule(self, batch: RolloutBatch, round_: int, where: str, probe: RolloutBatch | None) -> Schedule:
        if batch.grad is None:
            raise InvalidInputError(f"{where}: InfluenceFilter needs gradient sketches (`RolloutBatch.grad`).")
        if self.probe == "trusted":
            if probe is None:
                raise InvalidInputError(f"{where}: InfluenceFilter(probe='trusted') needs a `probe` batch.")
            if probe.grad is None or probe.grad.shape[1] != batch.grad.shape[1]:
                raise InvalidInputError(
                    f"{where}: the probe needs gradient sketches of the batch's width {batch.grad.shape[1]}."
                )
            src = probe
        else:
            src = batch
        if src.grad is None:  # the batch's was checked above; the probe's too, so this is unreachable
            raise InvalidInputError(f"{where}: InfluenceFilter needs gradient sketches (`RolloutBatch.grad`).")
        d = (src.advantage.double()[:, None] * src.grad.double()).mean(0).to(batch.grad.device)
        infl = batch.advantage.double() * (batch.grad.double() @ d)
        scale = infl.abs().mean()
        rel = infl / scale if bool(scale > 0) else torch.zeros_like(infl)
        keep = ~(rel < self.threshold)
        out = Schedule.keep(batch, keep, scores=rel.float())
        if self.reweight and out.fresh.numel():
            kept = rel[out.fresh]
            w = (kept / kept.mean()).clamp(0.0, 5.0) if bool(kept.mean() > 0) else torch.ones_like(kept)
            out = Schedule(out.fresh, w.float(), out.replay, out.replay_weight, out.scores, out.predicted_gain)
        return out
