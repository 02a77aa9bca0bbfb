"""GainReward: the performance-gain formula by hand."""

from __future__ import annotations

import math

import pytest

from banditlib.adapters.rlvr import GainReward, RolloutBatch
from banditlib.errors import InvalidInputError


def rnd(rewards: list[float], entropies: list[float]) -> RolloutBatch:
    n = len(rewards)
    return RolloutBatch.from_tensors(group=[0] * n, reward=rewards, entropy=entropies, length=[1] * n)


def test_gain_by_hand() -> None:
    g = GainReward(entropy_weight=0.5, entropy_threshold=0.3)
    # V: .25 -> .75 (+.5); E: .5 -> .7 (+.2), E_t = .5 > .3 so the penalty is on: .5 - .5 * .2 = .4
    r = g(rnd([0, 0, 1, 0], [0.4, 0.6, 0.5, 0.5]), rnd([1, 1, 1, 0], [0.7, 0.7, 0.7, 0.7]))
    assert r == pytest.approx(0.4)
    # entropy fell: credited
    assert g.gain(0.5, 0.8, 0.5, 0.6) == pytest.approx(0.1)
    # below (or at) the threshold: no entropy term at all
    assert g.gain(0.5, 0.3, 0.6, 0.9) == pytest.approx(0.1)
    assert g.gain(0.5, 0.2, 0.4, 0.1) == pytest.approx(-0.1)


def test_defaults_and_round_stats() -> None:
    g = GainReward()
    assert g.config == {"entropy_weight": 0.1, "entropy_threshold": 0.3}
    assert GainReward.round_stats(rnd([1, 0, 0, 1], [0.1, 0.2, 0.3, 0.4])) == pytest.approx((0.5, 0.25))
    assert g.gain(0.4, 0.5, 0.45, 0.6) == pytest.approx(0.05 - 0.1 * 0.1)


def test_bad_input() -> None:
    with pytest.raises(InvalidInputError, match="`entropy_weight`"):
        GainReward(entropy_weight=-1.0)
    with pytest.raises(InvalidInputError, match="`entropy_threshold`"):
        GainReward(entropy_threshold=math.nan)
    with pytest.raises(InvalidInputError, match="must be finite"):
        GainReward().gain(0.1, math.nan, 0.2, 0.3)
    b = rnd([1.0], [0.1])
    with pytest.raises(InvalidInputError, match="no rollouts"):
        GainReward.round_stats(RolloutBatch.empty_like(b))
