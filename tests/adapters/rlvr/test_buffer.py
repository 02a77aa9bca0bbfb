"""RolloutBuffer: FIFO eviction of whole rounds, ring storage, usage counts, padding and persistence."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from banditlib.adapters.rlvr import RolloutBatch, RolloutBuffer
from banditlib.errors import InvalidInputError


def rnd(t: int, n: int, width: int = 2, logprobs: bool = False) -> RolloutBatch:
    ids = torch.arange(n) + 1000 * t
    return RolloutBatch.from_tensors(
        group=torch.arange(n) // 2,
        reward=ids.float(),
        entropy=torch.full((n,), 0.5),
        length=torch.full((n,), float(width)),
        round=t,
        logprobs=torch.ones(n, width) * t if logprobs else None,
        payload={"tok": (ids[:, None] + torch.arange(width)).long(), "mask": torch.ones(n, width, dtype=torch.bool)},
    )


def same_state(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_fifo_eviction_age_and_uses() -> None:
    buf = RolloutBuffer(rounds=2)
    for t in range(3):
        slots = buf.push(rnd(t, 4), torch.full((4, 1), float(t)))
        buf.add_uses(slots[:1])
    assert buf.rounds_held().tolist() == [1, 2] and len(buf) == 8
    stored = buf.batch()
    assert stored.round.tolist() == [1] * 4 + [2] * 4
    assert stored.reward.tolist() == [1000.0, 1001, 1002, 1003, 2000, 2001, 2002, 2003]
    live = buf.live_slots()
    assert buf.uses_at(live).tolist() == [1, 0, 0, 0, 1, 0, 0, 0]
    assert buf.features_at(live)[:, 0].tolist() == [1.0] * 4 + [2.0] * 4
    buf.add_uses(torch.cat([live[:1], live[:1]]))  # listed twice, counted twice
    assert int(buf.uses_at(live[:1])) == 3
    assert buf.evictions(4) == 1 and buf.live_slots(skip_rounds=1).shape == (4,)
    assert torch.equal(buf.live_column("reward", 1), stored.reward[4:])


def test_max_rollouts_evicts_oldest_rounds() -> None:
    buf = RolloutBuffer(rounds=10, max_rollouts=7)
    for t, n in enumerate([3, 2, 4]):
        buf.push(rnd(t, n))
    assert buf.rounds_held().tolist() == [1, 2] and len(buf) == 6
    before = buf.state_dict()
    with pytest.raises(InvalidInputError, match="more than the buffer's `max_rollouts` = 7"):
        buf.push(rnd(3, 8))
    assert same_state(before, buf.state_dict())


def test_bad_constructor_arguments() -> None:
    with pytest.raises(InvalidInputError, match="`rounds` must be an integer >= 1"):
        RolloutBuffer(rounds=0)
    with pytest.raises(InvalidInputError, match="`max_rollouts`"):
        RolloutBuffer(max_rollouts=0)


def test_ragged_trailing_shapes_are_right_padded() -> None:
    buf = RolloutBuffer(rounds=3)
    buf.push(rnd(0, 2, width=2, logprobs=True))
    buf.push(rnd(1, 2, width=4, logprobs=True))  # wider: storage grows
    buf.push(rnd(2, 2, width=1, logprobs=True))  # narrower: zero-padded
    b = buf.batch()
    assert b.payload["tok"].shape == (6, 4) and b.logprobs is not None and b.logprobs.shape == (6, 4)
    assert b.payload["tok"][0].tolist() == [0, 1, 0, 0]
    assert b.payload["tok"][2].tolist() == [1000, 1001, 1002, 1003]
    assert b.payload["tok"][4].tolist() == [2000, 0, 0, 0]
    assert b.payload["mask"][4].tolist() == [True, False, False, False]
    assert b.logprobs[4].tolist() == [2.0, 0.0, 0.0, 0.0]


def test_incompatible_rounds_raise_and_change_nothing() -> None:
    buf = RolloutBuffer(rounds=3)
    buf.push(rnd(0, 4, logprobs=True))
    before = buf.state_dict()
    with pytest.raises(InvalidInputError, match="`logprobs` must be given"):
        buf.push(rnd(1, 4))
    b = rnd(1, 4, logprobs=True)
    with pytest.raises(InvalidInputError, match="payload keys"):
        buf.push(RolloutBatch(b.group, b.reward, b.advantage, b.entropy, b.clip_ratio, b.length, b.truncated, b.round,
                              b.logprobs, {"tok": b.payload["tok"]}))  # fmt: skip
    with pytest.raises(InvalidInputError, match="dtype"):
        buf.push(RolloutBatch(b.group, b.reward, b.advantage, b.entropy, b.clip_ratio, b.length, b.truncated, b.round,
                              b.logprobs, {**b.payload, "tok": b.payload["tok"].float()}))  # fmt: skip
    with pytest.raises(InvalidInputError, match="no rollouts"):
        buf.push(RolloutBatch.empty_like(b))
    assert same_state(before, buf.state_dict())


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 4), st.lists(st.integers(1, 9), min_size=1, max_size=12), st.none() | st.integers(9, 20))
def test_ring_matches_a_list_of_rounds(rounds: int, sizes: list[int], cap: int | None) -> None:
    buf = RolloutBuffer(rounds=rounds, max_rollouts=cap)
    kept: list[RolloutBatch] = []
    for t, n in enumerate(sizes):
        b = rnd(t, n)
        buf.push(b)
        kept.append(b)
        while len(kept) > rounds or (cap is not None and sum(len(k) for k in kept) > cap):
            kept.pop(0)
        want = RolloutBatch.cat(kept)
        got = buf.batch()
        assert got.reward.tolist() == want.reward.tolist()
        assert torch.equal(got.payload["tok"], want.payload["tok"])
        assert buf.rounds_held().tolist() == [int(k.round[0]) for k in kept]
    assert buf.capacity >= len(buf)


def test_save_load_round_trip(tmp_path: object) -> None:
    import pathlib

    path = pathlib.Path(str(tmp_path)) / "buf.safetensors"
    buf = RolloutBuffer(rounds=2, max_rollouts=100)
    for t in range(3):
        slots = buf.push(rnd(t, 5, logprobs=True), torch.randn(5, 3))
        buf.add_uses(slots[::2])
    buf.save(path)
    back = RolloutBuffer.load(path)
    assert back.config == buf.config and same_state(back.state_dict(), buf.state_dict())
    # and it keeps behaving the same
    for b in (buf, back):
        b.push(rnd(3, 5, logprobs=True), torch.zeros(5, 3))
    assert same_state(back.state_dict(), buf.state_dict())
    empty = RolloutBuffer()
    empty.save(path)
    assert len(RolloutBuffer.load(path)) == 0
    with pytest.raises(InvalidInputError):
        RolloutBuffer().load_state_dict({"round_ids": torch.tensor([1]), "round_counts": torch.tensor([3])})
