"""The default RolloutScheduler (threshold rule, consistency label, indicator features), presets, other rules
and labels inside the scheduler, bad input, and loading files of the previous format."""

from __future__ import annotations

import json
import math
import pathlib
import warnings

import pytest
import torch

import banditlib
from banditlib.adapters.rlvr import (
    BaselinedGain,
    ConsistencyLabel,
    DynamicSamplingFilter,
    InfluenceLabel,
    RolloutBatch,
    RolloutLabel,
    RolloutScheduler,
    RoundGain,
    SoftWeights,
    Threshold,
    TopFraction,
)
from banditlib.adapters.rlvr.groups import GroupLayout
from banditlib.errors import InvalidInputError

DATA = pathlib.Path(__file__).parent / "data"


def noisy(t: int, seed: int = 0, n_groups: int = 16, size: int = 8, **kw: object) -> RolloutBatch:
    """A verifier that lets a wrong answer (ids 1-3) pass with probability 0.4; answer 0 is right and passes."""
    g = torch.Generator().manual_seed(1000 * seed + t)
    n = n_groups * size
    answer = torch.where(torch.rand(n, generator=g) < 0.4, 0, torch.randint(1, 4, (n,), generator=g))
    reward = ((answer == 0) | (torch.rand(n, generator=g) < 0.4)).float()
    args: dict[str, object] = dict(
        group=torch.arange(n_groups).repeat_interleave(size), reward=reward, entropy=torch.rand(n, generator=g),
        length=torch.randint(3, 30, (n,), generator=g), answer=answer, round=t,
        grad=torch.randn(n, 4, generator=g),
    )  # fmt: skip
    args.update(kw)
    return RolloutBatch.from_tensors(**args)  # type: ignore[arg-type]


def drive(sch: RolloutScheduler, rounds: range, **kw: object) -> list[object]:
    out = []
    for t in rounds:
        if t != rounds.start or sch._pending:
            sch.observe(noisy(t, **kw))  # type: ignore[arg-type]
        out.append(sch.schedule(noisy(t, **kw)))  # type: ignore[arg-type]
    return out


def same_state(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_default_configuration() -> None:
    sch = RolloutScheduler(seed=0)
    assert sch.preset == "default" and sch.mode == "both" and sch.name == "scheduler"
    assert sch.replay == "priority" and sch.replay_ratio == 0.5 and sch.buffer.rounds == 4
    assert isinstance(sch.rule, Threshold) and isinstance(sch.label, ConsistencyLabel)
    assert sch.featurizer.names[-1] == "intercept" and sch.featurizer.dim == 6 and not sch.featurizer.normalize
    assert isinstance(sch.policy, banditlib.LinUCB) and sch.policy.alpha == 1.0 and sch.weighting == "row"
    assert sch.keep_fraction is None and not sch.uses_probe
    paper = RolloutScheduler(preset="paper", seed=0)
    assert paper.name == "cbs-group" and paper.keep_fraction == 0.5 and isinstance(paper.label, RoundGain)
    assert paper.featurizer.dim == 11 and paper.weighting == "round"
    # explicit pieces replace the preset's
    assert isinstance(RolloutScheduler(keep_fraction=0.25, seed=0).rule, TopFraction)
    assert isinstance(RolloutScheduler(label_decay=0.5, seed=0).label, RoundGain)
    assert RolloutScheduler(label=InfluenceLabel(), seed=0).uses_probe


def test_keeps_everything_until_it_has_learned_and_then_drops_lucky_passes() -> None:
    sch = RolloutScheduler(seed=1)
    first = sch.schedule(noisy(0))
    assert first.kept_share == 1.0 and first.fresh.numel() == 128
    out = drive(sch, range(1, 40))
    last = noisy(39)
    s = out[-1]
    dropped = torch.ones(128, dtype=torch.bool)
    dropped[s.fresh] = False  # type: ignore[attr-defined]
    lucky = (last.reward > 0) & (last.answer != 0)  # type: ignore[operator]
    assert dropped.any() and bool(lucky[dropped].float().mean() > 0.9)  # what it drops is mostly lucky
    assert s.kept_share < 1.0  # type: ignore[attr-defined]
    # its model: an accepted answer in conflict predicts a misleading reward
    theta = sch.policy.theta_[0]
    assert float(theta[sch.featurizer.names.index("answer_conflict")]) < 0


def test_without_answers_it_warns_once_and_keeps_everything() -> None:
    sch = RolloutScheduler(seed=2)
    with pytest.warns(UserWarning, match="no `answer` ids"):
        s = sch.schedule(noisy(0, answer=None))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for t in range(1, 5):
            assert sch.observe(noisy(t, answer=None)) is None
            s = sch.schedule(noisy(t, answer=None))
    assert s.kept_share == 1.0


@pytest.mark.parametrize(
    "make",
    [
        lambda: RolloutScheduler(rule=SoftWeights(0.0, 0.5), seed=3),
        lambda: RolloutScheduler(rule=TopFraction(0.5), seed=3),
        lambda: RolloutScheduler(label=InfluenceLabel("next"), seed=3),
        lambda: RolloutScheduler(label=BaselinedGain(prompt_key="pid"), seed=3),
        lambda: RolloutScheduler(mode="both", reuse=5, seed=3),
        lambda: RolloutScheduler(mode="global", reuse=5, seed=3),
        lambda: RolloutScheduler(mode="both", replay="priority", replay_ratio=0.5, buffer_rounds=3, seed=3),
        lambda: RolloutScheduler(mode="global", replay="priority", reuse=7, seed=3),
        lambda: RolloutScheduler(policy=banditlib.LinTS(dim=6, seed=0), seed=3),
        lambda: RolloutScheduler(policy=banditlib.NeuralUCB(dim=6, hidden=(8,), seed=0), seed=3),
    ],
)
def test_other_rules_labels_modes_and_models_run_and_reload(make: object, tmp_path: pathlib.Path) -> None:
    sch: RolloutScheduler = make()  # type: ignore[operator]
    kw = {"payload": {"pid": torch.arange(128) // 8}}
    for s in drive(sch, range(0, 4), **kw):
        w = s.fresh_weight  # type: ignore[attr-defined]
        assert bool((w > 0).all()) and bool((w <= 1).all()) and w.shape == s.fresh.shape  # type: ignore[attr-defined]
    sch.observe(noisy(4, **kw))  # type: ignore[arg-type]
    sch.save(tmp_path / "s.safetensors")
    back = RolloutScheduler.load(tmp_path / "s.safetensors")
    assert back.config == sch.config and same_state(back.state_dict(), sch.state_dict())
    for a, b in zip(drive(sch, range(4, 7), **kw), drive(back, range(4, 7), **kw), strict=True):
        assert torch.equal(a.fresh, b.fresh) and torch.equal(a.fresh_weight, b.fresh_weight)  # type: ignore[attr-defined]


def test_priority_replay_is_fresh_anchored_and_draws_admitted_rows() -> None:
    sch = RolloutScheduler(mode="both", replay="priority", replay_ratio=0.5, buffer_rounds=3, seed=7)
    outs = drive(sch, range(0, 25))
    for t, s in enumerate(outs):
        n_kept = s.fresh.numel()  # type: ignore[attr-defined]
        assert len(s.replay) == (0 if t == 0 else min(round(0.5 * n_kept), 256))  # type: ignore[attr-defined]
        if t:
            assert bool((s.replay.round < t).all()) and bool((s.replay.round >= t - 2).all())  # type: ignore[attr-defined]
    # once it has learned, no kept fresh row is an accepted answer in conflict
    last = outs[-1]
    from banditlib.adapters.rlvr import AnswerStats

    assert not AnswerStats.of(noisy(24)).conflict[last.fresh].any()  # type: ignore[attr-defined]
    with pytest.raises(InvalidInputError, match="`replay`"):
        RolloutScheduler(replay="best")
    with pytest.raises(InvalidInputError, match="replay='priority'"):
        RolloutScheduler(replay="score", replay_ratio=0.5)


def test_soft_weights_down_weight_instead_of_dropping() -> None:
    sch = RolloutScheduler(rule=SoftWeights(0.0, 2.0), seed=4)
    out = drive(sch, range(0, 30))
    w = out[-1].fresh_weight  # type: ignore[attr-defined]
    assert bool((w < 1).any()) and out[-1].kept_share < out[-1].fresh.numel() / 128  # type: ignore[attr-defined]


class NaNLabel(RolloutLabel):
    def finish(self, saved: object, batch: object, probe: object, where: str) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.ones(1, dtype=torch.bool), torch.full((1,), math.nan, dtype=torch.float64)

    shared = True


def test_bad_input_leaves_the_state_unchanged() -> None:
    sch = RolloutScheduler(seed=5)
    drive(sch, range(0, 3))
    before = sch.state_dict()
    with pytest.raises(InvalidInputError, match="`answer` must have shape"):
        noisy(3, answer=torch.zeros(5, dtype=torch.long))
    b = noisy(3)
    with pytest.raises(InvalidInputError, match="`answer` must be None or an"):
        RolloutBatch(b.group, b.reward, b.advantage, b.entropy, b.clip_ratio, b.length, b.truncated, b.round,
                     answer=b.answer.float())  # fmt: skip
    with pytest.raises(InvalidInputError, match="`answer` ids must be >= 0"):
        sch.observe(noisy(3, answer=torch.full((128,), -4)))
    with pytest.raises(InvalidInputError, match="`probe` must come from the same round"):
        sch.observe(noisy(3), probe=noisy(2))
    assert same_state(before, sch.state_dict())
    sch.observe(noisy(3))
    before = sch.state_dict()
    with pytest.raises(InvalidInputError, match="`grad` must keep its width"):
        sch.schedule(noisy(3, grad=torch.zeros(128, 2)))
    with pytest.raises(InvalidInputError, match="`answer` must be given"):
        sch.schedule(noisy(3, answer=None))
    assert same_state(before, sch.state_dict())
    infl = RolloutScheduler(label=InfluenceLabel(), seed=5)
    with pytest.raises(InvalidInputError, match="gradient sketches"):
        infl.schedule(noisy(0, grad=None))
    assert infl.state_dict()["has_round"].item() is False
    nan = RolloutScheduler(label=NaNLabel(), seed=5)
    drive(nan, range(0, 1))
    before = nan.state_dict()
    with pytest.raises(InvalidInputError, match="NaN or infinite label"):
        nan.observe(noisy(1))
    assert same_state(before, nan.state_dict())
    for kwargs, match in (
        ({"preset": "fast"}, "`preset`"),
        ({"rule": TopFraction(), "keep_fraction": 0.5}, "not both"),
        ({"label": ConsistencyLabel(), "label_decay": 0.5}, "configure the round-gain label"),
        ({"weighting": "round"}, "labels each rollout"),
        ({"rule": "top"}, "`rule`"),
        ({"label": "gain"}, "`label`"),
    ):
        with pytest.raises(InvalidInputError, match=match):
            RolloutScheduler(**kwargs)  # type: ignore[arg-type]


def v1_batch(t: int) -> RolloutBatch:
    g = torch.Generator().manual_seed(500 + t)
    n = 24
    return RolloutBatch.from_tensors(
        group=torch.arange(6).repeat_interleave(4), reward=torch.rand(n, generator=g).round(),
        entropy=torch.rand(n, generator=g), clip_ratio=torch.rand(n, generator=g) * 0.1,
        length=torch.randint(5, 100, (n,), generator=g), truncated=torch.rand(n, generator=g) < 0.2,
        round=t, logprobs=torch.randn(n, 3, generator=g), payload={"ids": torch.arange(n)[:, None] + 100 * t},
    )  # fmt: skip


def test_a_file_of_the_previous_format_loads_as_the_paper_preset() -> None:
    """``data/scheduler_v1.safetensors`` was written by banditlib before the rule/label redesign (commit
    8e3b532, CBS in mode "both"); the decision it made next is in ``scheduler_v1_next.json``."""
    sch = RolloutScheduler.load(DATA / "scheduler_v1.safetensors")
    assert sch.preset == "paper" and sch.mode == "both" and sch.keep_fraction == 0.5
    assert isinstance(sch.label, RoundGain) and sch.featurizer.dim == 11
    want = json.loads((DATA / "scheduler_v1_next.json").read_text())[0]
    s = sch.schedule(v1_batch(4))
    assert s.fresh.tolist() == want["fresh"] and s.replay.payload["ids"].view(-1).tolist() == want["replay"]
    assert torch.allclose(s.scores, torch.tensor(want["scores"]), atol=1e-6)
    assert math.isfinite(sch.observe(v1_batch(5)))  # and it goes on learning
    sch.schedule(v1_batch(5))


def test_restore_loads_in_place_and_refuses_another_class_or_configuration(tmp_path: pathlib.Path) -> None:
    """What a trainer resuming a scheduler it already holds relies on, old files included."""
    old = DATA / "scheduler_v1.safetensors"
    sch = RolloutScheduler.load(old)
    held = RolloutScheduler(**{k: v for k, v in sch.config.items() if k not in ("rule", "label", "featurizer")},
                            rule=sch.rule, label=sch.label, featurizer=sch.featurizer)  # fmt: skip
    held.restore(old)
    want = json.loads((DATA / "scheduler_v1_next.json").read_text())[0]
    assert held.schedule(v1_batch(4)).fresh.tolist() == want["fresh"]
    path = tmp_path / "s.safetensors"
    RolloutScheduler(seed=0).save(path)
    others = [(RolloutScheduler(seed=1), "built with"), (DynamicSamplingFilter(), "holds a 'RolloutScheduler'")]
    for other, match in others:
        before = other.state_dict()
        with pytest.raises(InvalidInputError, match=match):
            other.restore(path)
        assert all(torch.equal(before[k], v) for k, v in other.state_dict().items())


def test_a_file_of_an_unknown_format_version_says_why(tmp_path: pathlib.Path) -> None:
    from banditlib._io import read_tensors, write_tensors

    tensors, meta = read_tensors(DATA / "scheduler_v1.safetensors", "test")
    write_tensors(tmp_path / "v9.safetensors", tensors, {**meta, "format_version": "9"})
    with pytest.raises(InvalidInputError, match="format version '9'"):
        RolloutScheduler.load(tmp_path / "v9.safetensors")
    broken = {k: v for k, v in tensors.items() if k != "label"}
    write_tensors(tmp_path / "v1-broken.safetensors", broken, meta)
    with pytest.raises(InvalidInputError, match="cannot be upgraded"):
        RolloutScheduler.load(tmp_path / "v1-broken.safetensors")


def test_layout_cache_serves_features_and_label_once() -> None:
    b = noisy(0)
    layout = GroupLayout.of(b.group)
    sch = RolloutScheduler(seed=6)
    sch.featurizer.static(b, layout)
    assert len(layout.cache) == 1
    sch.label.begin(b, layout, torch.arange(len(b)))
    assert len(layout.cache) == 1
