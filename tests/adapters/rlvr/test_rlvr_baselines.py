"""The baseline schedulers: PODS against brute force, DAPO's tolerance, thresholds, recency replay, and the
protocol every scheduler shares. (Named test_rlvr_baselines.py: tests/policies/test_baselines.py exists and
the test tree has no __init__ files.)"""

from __future__ import annotations

import itertools
import math
import pathlib
import re
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from banditlib.adapters.rlvr import (
    ConsistencyFilter,
    DynamicSamplingFilter,
    MaxVarianceScheduler,
    OverlongFilter,
    PriorityReplay,
    RecencyReplay,
    RolloutBatch,
    RolloutScheduler,
    Scheduler,
    StateError,
    ThresholdScheduler,
    UniformScheduler,
)
from banditlib.adapters.rlvr.baselines import max_variance_subset
from banditlib.adapters.rlvr.groups import GroupLayout, keep_counts
from banditlib.errors import InvalidInputError

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


def grouped(rewards: list[list[float]], t: int = 0, **kw: object) -> RolloutBatch:
    return RolloutBatch.from_groups(
        [{"reward": r, "entropy": [0.5] * len(r), "length": [10] * len(r), **kw} for r in rewards], round=t
    )


def pop_var(values: list[float]) -> float:
    m = sum(values) / len(values)
    return sum((v - m) ** 2 for v in values) / len(values)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.lists(st.sampled_from([0.0, 0.25, 0.5, 1.0]) | st.floats(-2, 2, allow_nan=False), min_size=1, max_size=8),
        min_size=1,
        max_size=4,
    ),
    st.floats(0.05, 1.0),
)
def test_pods_matches_brute_force(groups: list[list[float]], fraction: float) -> None:
    b = grouped(groups)
    layout = GroupLayout.of(b.group)
    keep = keep_counts(layout.counts, fraction)
    chosen = max_variance_subset(b.reward, layout, keep).tolist()
    start = 0
    for g, values in enumerate(groups):
        n, m = len(values), int(keep[g])
        assert m == max(1, math.ceil(fraction * n - 1e-9))
        rows = [r - start for r in chosen if start <= r < start + n]
        assert len(rows) == m
        r32 = b.reward[start : start + n].double().tolist()
        best = max(pop_var([r32[i] for i in c]) for c in itertools.combinations(range(n), m))
        assert pop_var([r32[i] for i in rows]) == pytest.approx(best, abs=1e-9)
        start += n


def test_pods_by_hand() -> None:
    b = grouped([[0.5, 0.0, 0.4, 1.0], [1.0, 1.0, 0.0, 1.0, 0.0, 1.0], [0.3]])
    s = MaxVarianceScheduler(keep_fraction=0.5).schedule(b)
    assert s.fresh.tolist()[:2] == [1, 3]  # the extremes of group 0
    g1 = [b.reward[i].item() for i in s.fresh.tolist() if 4 <= i < 10]
    assert sorted(g1) == [0.0, 1.0, 1.0] or sorted(g1) == [0.0, 0.0, 1.0]
    assert s.fresh.tolist()[-1] == 10  # a group of one is kept
    assert MaxVarianceScheduler().name == "pods" and bool(torch.isnan(s.scores).all())


def test_dapo_drops_constant_groups_with_tolerance() -> None:
    b = grouped([[1.0, 1.0], [0.3, 0.3000005], [0.0, 1.0], [0.7]])
    assert DynamicSamplingFilter().schedule(b).fresh.tolist() == [4, 5]
    assert DynamicSamplingFilter(tol=0.0).schedule(b).fresh.tolist() == [2, 3, 4, 5]
    assert DynamicSamplingFilter(tol=2.0).schedule(b).fresh.tolist() == []
    with pytest.raises(InvalidInputError, match="`tol`"):
        DynamicSamplingFilter(tol=-1.0)


def test_threshold_filters() -> None:
    b = RolloutBatch.from_tensors(group=[0, 0, 1, 1], reward=[1.0, 0.0, 0.5, 0.2], advantage=[0.5, -0.5, 0.0, -0.05],
                                  entropy=[0.1] * 4, length=[5] * 4)  # fmt: skip
    assert ThresholdScheduler().schedule(b).fresh.tolist() == [0, 1, 3]
    assert ThresholdScheduler(min_abs_advantage=0.1).schedule(b).fresh.tolist() == [0, 1]
    assert ThresholdScheduler(min_abs_advantage=0.0, min_reward=0.4).schedule(b).fresh.tolist() == [0, 2]
    with pytest.raises(InvalidInputError, match="`min_abs_advantage`"):
        ThresholdScheduler(min_abs_advantage=-0.1)


def test_uniform_keeps_everything() -> None:
    s = UniformScheduler().schedule(grouped([[1.0, 0.0], [1.0]]))
    assert s.fresh.tolist() == [0, 1, 2] and len(s.replay) == 0 and math.isnan(s.predicted_gain)


def test_recency_replays_the_newest_previous_rows() -> None:
    sch = RecencyReplay(reuse=3, buffer_rounds=3)

    def rnd(t: int) -> RolloutBatch:
        groups = [{"reward": [1.0, 0.0], "entropy": [0.5] * 2, "length": [3] * 2,
                   "payload": {"id": [[100 * t + 10 * j], [100 * t + 10 * j + 1]]}} for j in range(2)]  # fmt: skip
        return RolloutBatch.from_groups(groups, round=t)

    assert len(sch.schedule(rnd(0)).replay) == 0
    for t in range(1, 4):
        assert sch.observe(rnd(t)) is None
        s = sch.schedule(rnd(t))
        assert s.fresh.tolist() == [0, 1, 2, 3]
    # at round 3 the buffer holds rounds 1 and 2 besides the fresh one: newest round first, row order within
    assert s.replay.payload["id"].view(-1).tolist() == [200, 201, 210]
    assert s.replay.round.tolist() == [2, 2, 2] and s.replay_weight.tolist() == [1.0] * 3
    everything = RecencyReplay(reuse=None, buffer_rounds=2)  # reuse=None: as many as the fresh batch
    everything.schedule(rnd(0))
    everything.observe(rnd(1))
    assert everything.schedule(rnd(1)).replay.payload["id"].view(-1).tolist() == [0, 1, 10, 11]
    nothing = RecencyReplay(reuse=5, buffer_rounds=1)
    nothing.schedule(rnd(0))
    nothing.observe(rnd(1))
    assert len(nothing.schedule(rnd(1)).replay) == 0
    with pytest.raises(InvalidInputError, match="`buffer_rounds`"):
        RecencyReplay(reuse=1, buffer_rounds=0)


def documented_scheduler() -> type[Scheduler]:
    """The example of docs/concepts.md "Writing your own scheduler", as the page defines it."""
    page = (pathlib.Path(__file__).resolve().parents[3] / "docs" / "concepts.md").read_text()
    block = next(b for b in re.findall(r"```python\n(.*?)```", page, flags=re.S) if "class AboveGroupMean" in b)
    scope: dict[str, Any] = {"__name__": "__docs__"}
    exec(compile(block, "docs/concepts.md", "exec"), scope)
    return scope["AboveGroupMean"]  # type: ignore[no-any-return]


SCHEDULERS = [
    lambda: UniformScheduler(),
    lambda: MaxVarianceScheduler(keep_fraction=0.5),
    lambda: DynamicSamplingFilter(),
    lambda: ThresholdScheduler(min_abs_advantage=0.01),
    lambda: RecencyReplay(reuse=2, buffer_rounds=2),
    lambda: RolloutScheduler(preset="paper", mode="both", reuse=2, seed=0),
    lambda: RolloutScheduler(mode="both", reuse=2, seed=0),
    lambda: RolloutScheduler(seed=0),
    lambda: ConsistencyFilter(),
    lambda: OverlongFilter(),
    lambda: PriorityReplay(replay_ratio=0.5, max_age=2, seed=0),
    lambda: documented_scheduler()(margin=0.1),
]


def rounds(t: int) -> RolloutBatch:
    g = torch.Generator().manual_seed(t)
    return grouped([torch.rand(4, generator=g).round().tolist() for _ in range(3)], t=t)


@pytest.mark.parametrize("make", SCHEDULERS)
def test_common_protocol(make: object, tmp_path: pathlib.Path) -> None:
    sch: Scheduler = make()  # type: ignore[operator]
    assert sch.name in {"uniform", "pods", "dapo", "threshold", "recency", "cbs-both", "scheduler", "consistency",
                        "overlong", "priority-replay", "above-mean"}  # fmt: skip
    with pytest.raises(StateError):
        sch.observe(rounds(0))
    s = sch.schedule(rounds(0))
    assert s.fresh.dtype == torch.long and s.fresh_weight.shape == s.fresh.shape
    assert s.scores.shape == (12,) and s.replay_weight.shape == (len(s.replay),)
    sch.observe(rounds(1))
    before = sch.state_dict()
    b = rounds(1)
    bad = RolloutBatch(b.group, b.reward * math.nan, b.advantage, b.entropy, b.clip_ratio, b.length, b.truncated,
                       b.round, b.logprobs, b.payload)  # fmt: skip
    with pytest.raises(InvalidInputError, match="`reward` must be finite"):
        sch.schedule(bad)
    with pytest.raises(InvalidInputError, match="rounds must increase"):
        sch.schedule(rounds(0))
    assert before.keys() == sch.state_dict().keys()
    assert all(torch.equal(before[k], v) for k, v in sch.state_dict().items())
    replayed = len(sch.schedule(b).replay) > 0
    path = tmp_path / "s.safetensors"
    sch.save(path)
    back = type(sch).load(path)
    assert back.config == sch.config
    for t in (2, 3):
        sch.observe(rounds(t))
        back.observe(rounds(t))
        a, c = sch.schedule(rounds(t)), back.schedule(rounds(t))
        assert torch.equal(a.fresh, c.fresh) and torch.equal(a.replay.reward, c.replay.reward)
        replayed = replayed or len(a.replay) > 0
    assert sch.replays == replayed  # the capability flag selection-only hooks (verl's sampler) rely on
    assert isinstance(Scheduler.load(path), type(sch))
