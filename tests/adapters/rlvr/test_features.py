"""RolloutFeaturizer: the paper's ten features, the consistency features, custom features and the online
normalisation."""

from __future__ import annotations

import pytest
import torch

from banditlib.adapters.rlvr import DEFAULT_FEATURES, PAPER_FEATURES, RolloutBatch, RolloutFeaturizer
from banditlib.errors import InvalidInputError


def batch(seed: int = 0, n_groups: int = 3, size: int = 4) -> RolloutBatch:
    g = torch.Generator().manual_seed(seed)
    n = n_groups * size
    return RolloutBatch.from_tensors(
        group=torch.arange(n_groups).repeat_interleave(size),
        reward=torch.rand(n, generator=g).round(),
        entropy=torch.rand(n, generator=g),
        clip_ratio=torch.rand(n, generator=g) * 0.2,
        length=torch.randint(5, 100, (n,), generator=g),
        truncated=torch.rand(n, generator=g) < 0.3,
    )


def test_default_features_are_unnormalised_indicators() -> None:
    f = RolloutFeaturizer()
    assert f.feature_names == DEFAULT_FEATURES and f.names[-1] == "intercept" and f.dim == 6 and not f.normalize
    b = RolloutBatch.from_tensors(
        group=[0, 0, 0, 1, 1], reward=[1.0, 0.0, 0.0, 1.0, 0.0], entropy=[0.1] * 5, length=[3] * 5,
        truncated=[False, False, True, False, False], answer=[5, 5, 5, 2, 3],
    )  # fmt: skip
    raw = f.raw(b)
    col = {n: raw[:, i].tolist() for i, n in enumerate(f.feature_names)}
    assert col["answer_conflict"] == [1.0, 0.0, 0.0, 0.0, 0.0]  # answer 5 passed once, failed once when finished
    assert col["truncated_negative"] == [0.0, 0.0, 1.0, 0.0, 0.0]
    assert col["low_pass_accepted"] == [0.0, 0.0, 0.0, 0.0, 0.0]  # pass rates 1/3 and 1/2 > 0.25
    assert col["accepted"] == [1.0, 0.0, 0.0, 1.0, 0.0] and col["truncated"] == [0.0, 0.0, 1.0, 0.0, 0.0]
    f.update(raw)
    assert torch.equal(f.transform(raw)[:, :5], raw)  # never normalised
    assert RolloutFeaturizer(low_pass=0.4).raw(b)[:, 2].tolist() == [1.0, 0.0, 0.0, 0.0, 0.0]


def test_consistency_features_and_their_absence() -> None:
    f = RolloutFeaturizer(["answer_share", "answer_agreement", "accepted_answers", "reward_deviation",
                           "seq_logprob", "reward_x_pass"], intercept=False)  # fmt: skip
    assert f.normalize
    kw = dict(group=[0, 0, 0, 0], reward=[1.0, 1.0, 0.0, 1.0], entropy=[0.1] * 4, length=[3] * 4,
              logprobs=[[-1.0, -0.5], [-2.0, float("-inf")], [0.0, 0.0], [-0.25, -0.25]])  # fmt: skip
    raw = f.raw(RolloutBatch.from_tensors(**kw, answer=[4, 4, 4, 9]))
    col = {n: raw[:, i].tolist() for i, n in enumerate(f.feature_names)}
    assert col["answer_share"] == [0.75, 0.75, 0.75, 0.25]
    assert col["answer_agreement"] == pytest.approx([2 / 3, 2 / 3, 2 / 3, 1 / 3])
    assert col["accepted_answers"] == [2.0] * 4
    assert col["reward_deviation"] == pytest.approx([1 / 3, 1 / 3, -2 / 3, 0.0])
    assert col["seq_logprob"] == [-1.5, -2.0, 0.0, -0.5]  # -inf padding counts as 0
    assert col["reward_x_pass"] == [0.75, 0.75, 0.0, 0.75]
    none = f.raw(RolloutBatch.from_tensors(**kw))  # no answers: the answer-based columns are 0
    assert none[:, :4].abs().sum() == 0 and none[:, 4].tolist() == col["seq_logprob"]
    with pytest.raises(InvalidInputError, match="sequence of names"):
        RolloutFeaturizer("entropy")  # type: ignore[arg-type]


def test_paper_names_and_raw_values() -> None:
    f = RolloutFeaturizer(PAPER_FEATURES)
    assert f.feature_names == PAPER_FEATURES and f.names[-1] == "intercept" and f.dim == 11 and f.normalize
    b = RolloutBatch.from_tensors(
        group=[0, 0, 1],
        reward=[1.0, 0.0, 1.0],
        advantage=[0.5, -0.5, 0.0],
        entropy=[0.2, 0.4, 0.6],
        clip_ratio=[0.1, 0.0, 0.3],
        length=[10, 20, 30],
        truncated=[False, True, False],
    )
    raw = f.raw(b, age=torch.tensor([2.0, 0.0, 1.0]), uses=torch.tensor([1.0, 0.0, 3.0]))
    col = {n: raw[:, i].tolist() for i, n in enumerate(f.feature_names)}
    assert col["age"] == [2.0, 0.0, 1.0] and col["uses"] == [1.0, 0.0, 3.0]
    assert col["entropy"] == pytest.approx([0.2, 0.4, 0.6]) and col["truncated"] == [0.0, 1.0, 0.0]
    assert col["length"] == [10.0, 20.0, 30.0] and col["advantage"] == [0.5, -0.5, 0.0]
    assert col["group_mean_reward"] == [0.5, 0.5, 1.0]
    assert col["group_reward_std"] == [0.5, 0.5, 0.0]  # population std; a group of one has 0


def test_add_and_drop_by_name() -> None:
    f = RolloutFeaturizer(
        PAPER_FEATURES, drop=["age", "uses", "length"], add={"short": lambda b: (b.length < 50).float()}
    )
    assert f.feature_names[-1] == "short" and "length" not in f.names and f.dim == 9
    b = batch()
    assert f.raw(b)[:, f.feature_names.index("short")].tolist() == (b.length < 50).float().tolist()
    f2 = RolloutFeaturizer(["entropy", "reward"], intercept=False)
    assert f2.names == ("entropy", "reward")
    with pytest.raises(InvalidInputError, match="unknown feature 'nope'"):
        RolloutFeaturizer(drop=["nope"])
    with pytest.raises(InvalidInputError, match="must not repeat"):
        RolloutFeaturizer(["entropy", "entropy"])
    with pytest.raises(InvalidInputError, match="new names"):
        RolloutFeaturizer(add={"entropy": lambda b: b.entropy})
    with pytest.raises(InvalidInputError, match="at least one feature"):
        RolloutFeaturizer(["entropy"], drop=["entropy"])
    bad = RolloutFeaturizer(add={"bad": lambda b: torch.ones(len(b) + 1)})
    with pytest.raises(InvalidInputError, match="custom feature 'bad'"):
        bad.raw(batch())


def test_running_statistics_pool_exactly() -> None:
    f = RolloutFeaturizer(PAPER_FEATURES)
    raws = [f.raw(batch(s), age=torch.full((12,), float(s)), uses=torch.arange(12.0)) for s in range(4)]
    for r in raws:
        f.update(r)
    allx = torch.cat(raws).double()
    assert f.count_.tolist() == [48.0] * 10
    assert torch.allclose(f.mean_, allx.mean(0), atol=1e-9)
    assert torch.allclose(f.m2_ / 48, allx.var(0, unbiased=False), atol=1e-6)
    z = f.transform(raws[0])
    want = ((raws[0].double() - allx.mean(0)) / (allx.var(0, unbiased=False) + 1e-8).sqrt()).clamp(-5, 5)
    assert torch.allclose(z[:, :10].double(), want, atol=1e-4) and bool((z[:, 10] == 1).all())


def test_contexts_equal_transform_of_assembled_parts() -> None:
    f = RolloutFeaturizer(["reward", "age", "entropy", "uses", "length"])  # dynamic columns in the middle
    b1, b2 = batch(1), batch(2, n_groups=2)
    parts = [
        (f.static(b1), torch.arange(12.0), torch.ones(12)),
        (f.static(b2), torch.zeros(8), torch.zeros(8)),
    ]
    stats = f.merged_parts(f.static(b2), torch.cat([p[1] for p in parts]), torch.cat([p[2] for p in parts]))
    x = f.contexts(parts, stats)
    want = f.transform(torch.cat([f.assemble(*p) for p in parts]), stats)
    assert torch.allclose(x, want, atol=1e-5)
    # the static columns counted only the fresh rows, the dynamic ones every candidate
    assert stats[0].tolist() == [8.0, 20.0, 8.0, 20.0, 8.0]


def test_clip_and_constant_columns() -> None:
    f = RolloutFeaturizer(["entropy", "truncated"], clip=2.0)
    raw = torch.tensor([[0.0, 0.0]] * 99 + [[100.0, 0.0]])
    f.update(raw)
    z = f.transform(raw)
    assert float(z[:, 0].max()) == 2.0 and bool((z[:, 1] == 0).all())


def test_state_round_trip_and_bad_state_unchanged() -> None:
    f = RolloutFeaturizer()
    f.update(f.raw(batch()))
    state = f.state_dict()
    g = RolloutFeaturizer()
    g.load_state_dict(state)
    assert all(torch.equal(state[k], g.state_dict()[k]) for k in state)
    before = g.state_dict()
    bad = dict(state, m2=-state["m2"] - 1)
    with pytest.raises(InvalidInputError, match="non-negative"):
        g.load_state_dict(bad)
    with pytest.raises(InvalidInputError, match="shape"):
        g.load_state_dict(dict(state, mean=torch.zeros(3)))
    assert all(torch.equal(before[k], g.state_dict()[k]) for k in before)
