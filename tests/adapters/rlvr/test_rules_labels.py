"""Selection rules and labels: decisions, values against direct computations, bad input, configs."""

from __future__ import annotations

import math

import pytest
import torch

from banditlib.adapters.rlvr import (
    BaselinedGain,
    ConsistencyLabel,
    GainReward,
    InfluenceLabel,
    RolloutBatch,
    RoundGain,
    SoftWeights,
    Threshold,
    TopFraction,
)
from banditlib.adapters.rlvr._base import rank_keys, tie_keys
from banditlib.adapters.rlvr.groups import GroupLayout
from banditlib.adapters.rlvr.labels import label_from_config
from banditlib.adapters.rlvr.rules import rule_from_config
from banditlib.errors import InvalidInputError


def layout(groups: list[int]) -> GroupLayout:
    return GroupLayout.of(torch.tensor(groups))


def keys(scores: torch.Tensor) -> torch.Tensor:
    return rank_keys(scores, tie_keys(0, 0, scores.shape[0], scores.device))


# ---------------------------------------------------------------------------------------------- rules


def test_top_fraction_keeps_the_best_of_each_group() -> None:
    s = torch.tensor([0.1, 0.9, 0.5, 0.2, 0.3, 0.0, 4.0])
    rows, w = TopFraction(0.5).decide(s, keys(s), layout([0, 0, 0, 0, 1, 1, 2]))
    assert rows.tolist() == [1, 2, 4, 6] and w.tolist() == [1.0] * 4
    assert TopFraction(1.0).decide(s, keys(s), layout([0] * 7))[0].tolist() == list(range(7))
    assert not TopFraction().budget_free and TopFraction().passes(s).all()


def test_threshold_and_soft_weights() -> None:
    s = torch.tensor([0.3, -0.2, 0.0, -1.5])
    lay = layout([0, 0, 1, 1])
    assert Threshold().decide(s, keys(s), lay)[0].tolist() == [0, 2]
    assert Threshold(-0.5).decide(s, keys(s), lay)[0].tolist() == [0, 1, 2]
    rows, w = SoftWeights(0.0, 1.0).decide(s, keys(s), lay)
    assert rows.tolist() == [0, 1, 2] and w.tolist() == pytest.approx([1.0, 0.8, 1.0])
    assert SoftWeights(0.0, 1.0).passes(s).tolist() == [True, True, True, False]
    assert Threshold().budget_free and SoftWeights().budget_free


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: TopFraction(0.0), "`keep_fraction`"),
        (lambda: TopFraction(1.5), "`keep_fraction`"),
        (lambda: Threshold(math.nan), "`threshold`"),
        (lambda: SoftWeights(width=0.0), "`width`"),
    ],
)
def test_bad_rule_arguments(make: object, match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        make()  # type: ignore[operator]


def test_rules_rebuild_from_their_config() -> None:
    for rule in (TopFraction(0.25), Threshold(-0.1), SoftWeights(0.2, 0.5)):
        back = rule_from_config({"class": type(rule).__name__, "config": rule.config}, "test")
        assert type(back) is type(rule) and back.config == rule.config and repr(back) == repr(rule)
    with pytest.raises(InvalidInputError, match="unknown or malformed selection rule"):
        rule_from_config({"class": "Nope", "config": {}}, "test")


# ---------------------------------------------------------------------------------------------- labels


def mk(reward: list[float], t: int, **kw: object) -> RolloutBatch:
    n = len(reward)
    args: dict[str, object] = dict(group=[0] * n, reward=reward, entropy=[0.5] * n, length=[3] * n, round=t)
    args.update(kw)
    return RolloutBatch.from_tensors(**args)  # type: ignore[arg-type]


def test_round_gain_is_the_standardised_gain_reward() -> None:
    lab = RoundGain(GainReward(entropy_weight=0.5, entropy_threshold=0.0), decay=0.9)
    rewards = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0], [0.0, 0.0]]
    gains, zs = [], []
    for t in range(4):
        b0, b1 = mk(rewards[t], t), mk(rewards[t + 1], t + 1)
        saved = lab.begin(b0, layout([0, 0]), torch.tensor([0, 1]))
        mask, y = lab.finish(saved, b1, None, "test")
        assert mask.tolist() == [True] and y.shape == (1,) and lab.shared and lab.rows == "selected"
        gains.append(lab.last_gain)
        zs.append(float(y[0]))
    assert gains == pytest.approx([0.5, 0.5, -0.5, -0.5])
    # The standardiser by hand: z_t = clip((g - m_t) / s_t) with exact averages first, then decay 0.9.
    m = v = 0.0
    for i, g in enumerate(gains, start=1):
        beta = min(0.9, 1 - 1 / i)
        d = g - m
        m += (1 - beta) * d
        v = beta * (v + (1 - beta) * d * d)
        want = 0.0 if v <= 0 else max(-5.0, min(5.0, (g - m) / math.sqrt(v)))
        assert zs[i - 1] == pytest.approx(want)
    state = lab.state_dict()
    back = label_from_config({"class": "RoundGain", "config": lab.config}, "test")
    back.load_state_dict(state, "test")
    assert torch.equal(back.state_dict()["standardiser"], state["standardiser"])
    with pytest.raises(InvalidInputError, match="finite"):
        back.load_state_dict({"standardiser": torch.tensor([1.0, math.nan, 0.0])}, "test")


def test_baselined_gain_removes_the_prompt_draw() -> None:
    """Rewards depend only on which prompts are drawn (easy prompt 0, hard prompt 1): the round gain swings,
    the baselined gain is zero once both rounds' prompts have been seen before (a prompt seen for the first time
    falls back to the running mean of all prompts)."""
    base, plain = BaselinedGain(prompt_decay=0.5), RoundGain()
    draws = [0, 1, 0, 1, 1, 0, 0, 1]
    raw, vr = [], []
    for t in range(len(draws) - 1):

        def batch(p: int, t: int) -> RolloutBatch:
            return mk([1.0, 1.0] if p == 0 else [0.0, 0.0], t, payload={"prompt": [p, p]})

        b0, b1 = batch(draws[t], t), batch(draws[t + 1], t + 1)
        for lab, out in ((plain, raw), (base, vr)):
            saved = lab.begin(b0, layout([0, 0]), torch.tensor([0, 1]))
            lab.finish(saved, b1, None, "test")
            out.append(lab.last_gain)
    assert max(abs(g) for g in raw) == 1.0
    assert abs(vr[1]) == 1.0 and all(abs(g) < 1e-12 for g in vr[2:])  # from round 2 on, both prompts are known
    with pytest.raises(InvalidInputError, match=r"payload\['prompt'\]"):
        base.check(mk([1.0], 0), "test")
    state = base.state_dict()
    again = BaselinedGain()
    again.load_state_dict(state, "test")
    assert torch.equal(again.state_dict()["prompt_ids"], state["prompt_ids"])
    with pytest.raises(InvalidInputError, match="sorted"):
        again.load_state_dict(dict(state, prompt_ids=state["prompt_ids"].flip(0)), "test")


def test_influence_label_is_the_normalised_dot_product() -> None:
    g = torch.Generator().manual_seed(0)
    grad0, grad1 = torch.randn(4, 6, generator=g), torch.randn(5, 6, generator=g)
    adv0, adv1 = torch.tensor([1.0, -1.0, 0.5, 0.0]), torch.randn(5, generator=g)
    b0 = mk([1.0, 0.0, 1.0, 0.0], 0, grad=grad0, advantage=adv0)
    b1 = mk([0.0] * 5, 1, grad=grad1, advantage=adv1)
    lab = InfluenceLabel()
    saved = lab.begin(b0, layout([0] * 4), torch.arange(4))
    mask, y = lab.finish(saved, b1, None, "test")
    d = (adv1[:, None] * grad1).double().mean(0)
    infl = (adv0[:, None] * grad0).double() @ d
    assert mask.all() and torch.allclose(y, (infl / infl.abs().mean()).clamp(-5, 5))
    probe = mk([1.0] * 2, 1, grad=torch.ones(2, 6), advantage=[1.0, 1.0])
    _, y_probe = lab.finish(saved, b1, probe, "test")
    want = (adv0[:, None] * grad0).double().sum(1)
    assert torch.allclose(y_probe, (want / want.abs().mean()).clamp(-5, 5))
    _, y_next = InfluenceLabel("next").finish(saved, b1, probe, "test")  # ignores the probe
    assert torch.allclose(y_next, y)
    with pytest.raises(InvalidInputError, match="gradient sketches"):
        lab.check(mk([1.0], 0), "test")
    with pytest.raises(InvalidInputError, match="needs a `probe`"):
        InfluenceLabel("trusted").finish(saved, b1, None, "test")
    with pytest.raises(InvalidInputError, match="changed width"):
        lab.finish(saved, mk([0.0], 1, grad=torch.ones(1, 3)), None, "test")
    with pytest.raises(InvalidInputError, match="`probe`"):
        InfluenceLabel("everything")


def test_consistency_label_votes_with_the_other_finished_copies() -> None:
    b = mk([1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0], 0, group=[0, 0, 0, 0, 1, 1, 1],
           answer=[7, 7, 7, 5, 3, 3, -1], truncated=[False, False, False, False, False, True, False])  # fmt: skip
    lab = ConsistencyLabel()
    mask, y = lab.finish(lab.begin(b, GroupLayout.of(b.group), torch.arange(7)), b, None, "test")
    # group 0: answer 7 passed once, failed twice -> the pass disagrees (-1), the failures agree (+1);
    # answer 5 is alone. Group 1: answer 3's finished pass is the only evidence for its truncated copy,
    # which was rejected: -1; the pass itself has no other *finished* copy: unlabelled. No answer: unlabelled.
    assert mask.tolist() == [True, True, True, False, False, True, False]
    assert y[mask].tolist() == [-1.0, 1.0, 1.0, -1.0]
    assert not lab.finish(lab.begin(mk([1.0, 0.0], 0), layout([0, 0]), torch.arange(2)), b, None, "t")[0].any()


def test_labels_rebuild_from_their_config() -> None:
    for lab in (RoundGain(decay=0.5), BaselinedGain(prompt_key="pid"), InfluenceLabel("next"), ConsistencyLabel(0.3)):
        back = label_from_config({"class": type(lab).__name__, "config": lab.config}, "test")
        assert type(back) is type(lab) and back.config == lab.config
    with pytest.raises(InvalidInputError, match="unknown or malformed label"):
        label_from_config({"class": "RoundGain", "config": {"nope": 1}}, "test")
