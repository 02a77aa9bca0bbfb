"""RolloutFeaturizer: the ten features, custom features and the online normalisation."""

from __future__ import annotations

import pytest
import torch
from banditlib.adapters.rlvr import DEFAULT_FEATURES, RolloutBatch, RolloutFeaturizer

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


def test_default_names_and_raw_values() -> None:
    f = RolloutFeaturizer()
    assert f.feature_names == DEFAULT_FEATURES and f.names[-1] == "intercept" and f.dim == 11
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
    f = RolloutFeaturizer(drop=["age", "uses", "length"], add={"short": lambda b: (b.length < 50).float()})
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
    f = RolloutFeaturizer()
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
