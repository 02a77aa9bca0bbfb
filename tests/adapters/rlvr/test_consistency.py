"""AnswerStats against an obvious per-row loop, and its degradation without answers."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from banditlib.adapters.rlvr import AnswerStats, RolloutBatch
from banditlib.adapters.rlvr.groups import GroupLayout


def reference(batch: RolloutBatch, thr: float = 0.5) -> dict[str, list[float]]:
    """Every statistic by explicit loops over rows (slow, obvious)."""
    g, r, a, tr = batch.group.tolist(), batch.reward.tolist(), batch.answer.tolist(), batch.truncated.tolist()
    n = len(g)
    out: dict[str, list[float]] = {k: [] for k in ("pass", "share", "agree", "distinct", "dev", "of", "oa", "conflict")}
    for i in range(n):
        same_g = [j for j in range(n) if g[j] == g[i]]
        acc_g = [j for j in same_g if r[j] > thr]
        out["pass"].append(len(acc_g) / len(same_g))
        out["distinct"].append(float(len({a[j] for j in acc_g if a[j] >= 0})))
        if a[i] < 0:
            for k in ("share", "agree", "dev", "of", "oa", "conflict"):
                out[k].append(0.0)
            continue
        same = [j for j in same_g if a[j] == a[i]]
        out["share"].append(len(same) / len(same_g))
        out["agree"].append(sum(1 for j in acc_g if a[j] == a[i]) / len(acc_g) if acc_g else 0.0)
        out["dev"].append(r[i] - sum(r[j] for j in same) / len(same))
        others = [j for j in same if j != i and not tr[j]]
        out["of"].append(float(len(others)))
        out["oa"].append(float(sum(1 for j in others if r[j] > thr)))
        out["conflict"].append(float(r[i] > thr and any(r[j] <= thr for j in others)))
    return out


@st.composite
def batches(draw: st.DrawFn) -> RolloutBatch:
    n = draw(st.integers(1, 24))
    groups = sorted(draw(st.lists(st.integers(0, 4), min_size=n, max_size=n)))
    shuffle = draw(st.booleans())  # non-contiguous groups take the other layout path
    if shuffle:
        groups = groups[::-1]
    reward = draw(st.lists(st.sampled_from([0.0, 1.0, 0.3, 0.7]), min_size=n, max_size=n))
    answer = draw(st.lists(st.integers(-1, 3), min_size=n, max_size=n))
    trunc = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    return RolloutBatch.from_tensors(group=groups, reward=reward, entropy=[0.1] * n, length=[3] * n,
                                     truncated=trunc, answer=answer)  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(batches())
def test_matches_the_loop_reference(b: RolloutBatch) -> None:
    s = AnswerStats.of(b)
    want = reference(b)
    got = {
        "pass": s.pass_rate,
        "share": s.answer_share,
        "agree": s.agreement,
        "distinct": s.accepted_answers,
        "dev": s.reward_deviation,
        "of": s.others_finished,
        "oa": s.others_accepted,
        "conflict": s.conflict.float(),
    }
    for k, v in got.items():
        assert torch.allclose(v, torch.tensor(want[k]), atol=1e-6), k
    assert torch.equal(s.accepted, b.reward > 0.5) and torch.equal(s.has_answer, b.answer >= 0)


def test_large_answer_ids_and_threshold() -> None:
    big = [2**62, 2**62, 5, 2**62 + 1]
    b = RolloutBatch.from_tensors(group=[0, 0, 0, 0], reward=[0.9, 0.2, 0.9, 0.9], entropy=[0.1] * 4, length=[3] * 4,
                                  answer=big)  # fmt: skip
    s = AnswerStats.of(b)
    assert s.conflict.tolist() == [True, False, False, False] and s.accepted_answers.tolist() == [3.0] * 4
    assert AnswerStats.of(b, accept_threshold=0.95).accepted.sum() == 0


def test_without_answers_only_the_pass_rate_remains() -> None:
    b = RolloutBatch.from_tensors(group=[0, 0, 1], reward=[1.0, 0.0, 1.0], entropy=[0.1] * 3, length=[3] * 3)
    s = AnswerStats.of(b)
    assert s.pass_rate.tolist() == [0.5, 0.5, 1.0]
    assert not s.has_answer.any() and not s.conflict.any() and s.answer_share.abs().sum() == 0


def test_cached_on_the_layout() -> None:
    b = RolloutBatch.from_tensors(group=[0, 0], reward=[1.0, 0.0], entropy=[0.1] * 2, length=[3] * 2, answer=[1, 1])
    layout = GroupLayout.of(b.group)
    first = AnswerStats.of(b, layout)
    assert AnswerStats.of(b, layout) is first
    other = RolloutBatch.from_tensors(group=[0, 0], reward=[1.0, 1.0], entropy=[0.1] * 2, length=[3] * 2,
                                      answer=[1, 1])  # fmt: skip
    assert not AnswerStats.of(other, layout).conflict.any()  # another batch is not served from the cache
