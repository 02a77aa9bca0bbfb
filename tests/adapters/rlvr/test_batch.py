"""RolloutBatch: constructors, validation, row operations and the group layout."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from banditlib.adapters.rlvr import RolloutBatch
from banditlib.adapters.rlvr.groups import GroupLayout, grpo_advantage
from banditlib.errors import InvalidInputError


def make(n: int = 6, **kw: object) -> RolloutBatch:
    args: dict[str, object] = dict(
        group=torch.arange(n) // 2,
        reward=torch.arange(n, dtype=torch.float32) % 2,
        advantage=torch.zeros(n),
        entropy=torch.full((n,), 0.5),
        length=torch.arange(n) + 10,
        round=3,
    )
    args.update(kw)
    return RolloutBatch.from_tensors(**args)  # type: ignore[arg-type]


def test_from_tensors_defaults_and_dtypes() -> None:
    b = make(payload={"ids": torch.arange(12).view(6, 2)})
    assert len(b) == 6
    assert b.group.dtype == torch.long and b.round.tolist() == [3] * 6
    assert b.reward.dtype == torch.float32 and b.length.dtype == torch.float32
    assert b.clip_ratio.tolist() == [0.0] * 6 and b.truncated.tolist() == [False] * 6
    assert b.logprobs is None and b.payload["ids"].shape == (6, 2)
    assert b.group_ids().tolist() == [0, 1, 2]


def test_advantage_none_is_grpo() -> None:
    b = make(advantage=None, reward=[1.0, 0.0, 1.0, 1.0, 0.5, 0.5])
    # group 0: mean .5, unbiased std .7071; group 1: std 0; group 2: std 0
    assert b.advantage.tolist()[:2] == pytest.approx([0.5 / (math.sqrt(0.5) + 1e-4), -0.5 / (math.sqrt(0.5) + 1e-4)])
    assert b.advantage.tolist()[2:] == [0.0] * 4
    single = grpo_advantage(torch.tensor([0]), torch.tensor([1.0]))
    assert single.tolist() == [0.0]


@pytest.mark.parametrize("field", ["reward", "entropy", "advantage", "clip_ratio", "length"])
def test_nan_statistics_name_the_field(field: str) -> None:
    bad = torch.ones(6)
    bad[2] = math.nan
    with pytest.raises(InvalidInputError, match=f"`{field}`"):
        make(**{field: bad})


def test_mismatched_lengths_and_bad_flags() -> None:
    with pytest.raises(InvalidInputError, match="`entropy` must have shape"):
        make(entropy=torch.ones(5))
    with pytest.raises(InvalidInputError, match="`group` must have shape"):
        make(group=torch.zeros(7, dtype=torch.long))
    with pytest.raises(InvalidInputError, match="`truncated`"):
        make(truncated=torch.tensor([0, 1, 2, 0, 0, 0]))
    with pytest.raises(InvalidInputError, match="`logprobs`"):
        make(logprobs=torch.zeros(5, 3))
    with pytest.raises(InvalidInputError, match="payload"):
        make(payload={"ids": torch.zeros(5, 2)})
    with pytest.raises(InvalidInputError, match="`group`"):
        make(group=torch.zeros(6))  # float ids
    ok = make(truncated=torch.tensor([0, 1, 1, 0, 0, 0]))
    assert ok.truncated.tolist() == [False, True, True, False, False, False]


def test_direct_constructor_checks_structure() -> None:
    b = make()
    with pytest.raises(InvalidInputError, match=r"`reward` must be a \(6,\) tensor of dtype torch.float32"):
        RolloutBatch(b.group, b.reward.double(), b.advantage, b.entropy, b.clip_ratio, b.length, b.truncated, b.round)


def test_from_groups() -> None:
    b = RolloutBatch.from_groups(
        [
            {
                "reward": [1.0, 0.0, 1.0],
                "entropy": [0.1, 0.2, 0.3],
                "length": [1, 2, 3],
                "payload": {"x": [[1], [2], [3]]},
            },
            {"reward": [0.0], "entropy": [0.4], "length": [4], "payload": {"x": [[4]]}},
        ],
        round=5,
    )
    assert b.group.tolist() == [0, 0, 0, 1] and b.round.tolist() == [5] * 4
    assert b.payload["x"].view(-1).tolist() == [1, 2, 3, 4]
    with pytest.raises(InvalidInputError, match="at least one rollout"):
        RolloutBatch.from_groups([{"reward": [], "entropy": [], "length": []}])
    with pytest.raises(InvalidInputError, match="same keys"):
        RolloutBatch.from_groups(
            [
                {"reward": [1.0], "entropy": [0.1], "length": [1]},
                {"reward": [1.0], "entropy": [0.1], "length": [1], "advantage": [0.0]},
            ]
        )
    with pytest.raises(InvalidInputError, match="non-empty"):
        RolloutBatch.from_groups([])
    with pytest.raises(InvalidInputError, match="`reward` must be finite"):
        RolloutBatch.from_groups([{"reward": [math.nan], "entropy": [0.1], "length": [1]}])


def test_select_cat_to() -> None:
    b = make(payload={"ids": torch.arange(6)[:, None]}, logprobs=torch.arange(18.0).view(6, 3))
    s = b.select(torch.tensor([4, 1]))
    assert s.length.tolist() == [14.0, 11.0] and s.payload["ids"].view(-1).tolist() == [4, 1]
    assert s.logprobs is not None and s.logprobs[:, 0].tolist() == [12.0, 3.0]
    m = b.select(b.reward > 0)
    assert m.length.tolist() == [11.0, 13.0, 15.0]
    c = RolloutBatch.cat([s, m])
    assert len(c) == 5 and c.payload["ids"].view(-1).tolist() == [4, 1, 1, 3, 5]
    assert len(RolloutBatch.empty_like(b)) == 0
    assert b.to("cpu").reward.tolist() == b.reward.tolist()
    with pytest.raises(InvalidInputError, match="row positions"):
        b.select(torch.tensor([6]))
    with pytest.raises(InvalidInputError, match="disagrees"):
        RolloutBatch.cat([b, make()])


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 4), min_size=1, max_size=30))
def test_group_layout_matches_definition(ids: list[int]) -> None:
    group = torch.tensor(ids)
    lay = GroupLayout.of(group)
    uniq = sorted(set(ids))
    assert lay.counts.tolist() == [ids.count(u) for u in uniq]
    for row, gid in enumerate(ids):
        g = uniq.index(gid)
        assert int(lay.inverse[row]) == g
        assert int(lay.padded[g, lay.position[row]]) == row
        # rows keep their order within the group
        assert int(lay.position[row]) == ids[:row].count(gid)
    assert int(lay.mask.sum()) == len(ids)
