"""The scheduler's reward: the performance gain of a round, [`GainReward`][banditlib.adapters.rlvr.GainReward]."""

from __future__ import annotations

import math

from banditlib import extend as V
from banditlib.errors import InvalidInputError

from .batch import RolloutBatch

__all__ = ["GainReward"]


class GainReward:
    """Performance gain of round ``t``, the label of every rollout selected at ``t``:

        ``r_t = (V_{t+1} - V_t) - w_e * 1[E_t > e_min] * (E_{t+1} - E_t)``

    with ``V_t`` the mean verifier reward and ``E_t`` the mean token entropy of the rollouts *generated* at
    round ``t`` (all of them, selected or not: they measure the model, not the selection). The label is known
    only once round ``t + 1`` has been generated, so it arrives one round late.

    The entropy term penalises a rise in entropy (and credits a fall) while entropy is above ``e_min``: a
    scheduler rewarded by accuracy alone learns to favour high-entropy rollouts, whose large updates move the
    model's output distribution quickly and destabilise training; below ``e_min`` the term is off, so the
    reward never pushes an already-collapsed entropy further down.

    Defaults, with the reasoning (the paper gives no values we could find):

    * ``entropy_weight = 0.1``: per step, pass rates move by about ``1e-2`` and mean token entropies by
      about ``1e-2`` nats; a weight of 0.1 makes a 0.1-nat jump in entropy (a large one for a single step)
      cost as much as one point of pass rate, so accuracy dominates unless entropy drifts fast.
    * ``entropy_threshold = 0.3`` nats: roughly where RLVR runs of instruction-tuned models settle after
      the initial entropy drop; above it rising entropy signals drift, below it the concern is collapse,
      which this term must not make worse. Tune it to your model's entropy scale.

    Args:
        entropy_weight: ``w_e >= 0``.
        entropy_threshold: ``e_min`` (nats; any finite number).

    Examples:
        >>> g = GainReward(entropy_weight=0.5, entropy_threshold=0.2)
        >>> round(g.gain(0.40, 0.50, 0.45, 0.60), 6)  # 0.05 - 0.5 * 1 * 0.10
        0.0
        >>> round(g.gain(0.40, 0.10, 0.45, 0.60), 6)  # entropy was below e_min: no penalty
        0.05

    References:
        Lu et al. Contextual Rollout Bandits for Reinforcement Learning with Verifiable Rewards, arXiv
        2602.08499, 2026.
    """

    def __init__(self, entropy_weight: float = 0.1, entropy_threshold: float = 0.3) -> None:
        where = "GainReward()"
        self.entropy_weight = V.check_float(entropy_weight, where, "entropy_weight", low=0.0)
        self.entropy_threshold = V.check_float(entropy_threshold, where, "entropy_threshold")

    @property
    def config(self) -> dict[str, float]:
        """Constructor arguments."""
        return {"entropy_weight": self.entropy_weight, "entropy_threshold": self.entropy_threshold}

    @staticmethod
    def round_stats(batch: RolloutBatch) -> tuple[float, float]:
        """``(V, E)``: mean verifier reward and mean entropy of a round's rollouts.

        Raises:
            InvalidInputError: an empty batch.
        """
        if len(batch) == 0:
            raise InvalidInputError("GainReward.round_stats(): the batch holds no rollouts.")
        return float(batch.reward.double().mean()), float(batch.entropy.double().mean())

    def gain(self, v_t: float, e_t: float, v_next: float, e_next: float) -> float:
        """``r_t`` from the statistics of round ``t`` and round ``t + 1``.

        Raises:
            InvalidInputError: a non-finite statistic.
        """
        if not all(math.isfinite(v) for v in (v_t, e_t, v_next, e_next)):
            raise InvalidInputError(
                f"GainReward.gain(): the round statistics must be finite; got V_t={v_t}, E_t={e_t}, "
                f"V_next={v_next}, E_next={e_next}."
            )
        on = 1.0 if e_t > self.entropy_threshold else 0.0
        return (v_next - v_t) - self.entropy_weight * on * (e_next - e_t)

    def __call__(self, batch_t: RolloutBatch, batch_next: RolloutBatch) -> float:
        """``r_t`` from the rollouts generated at round ``t`` and at round ``t + 1``."""
        return self.gain(*self.round_stats(batch_t), *self.round_stats(batch_next))
