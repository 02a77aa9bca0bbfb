"""The 2026 peers (consistency, overlong, priority replay, influence) and the output-layer gradients."""

from __future__ import annotations

import math

import pytest
import torch

from banditlib.adapters.rlvr import (
    AnswerStats,
    ConsistencyFilter,
    InfluenceFilter,
    OverlongFilter,
    PriorityReplay,
    RolloutBatch,
)
from banditlib.adapters.rlvr.influence import head_gradients, head_sketch, sketch_matrices
from banditlib.errors import InvalidInputError


def batch(t: int = 0, n: int = 12, seed: int = 0, **kw: object) -> RolloutBatch:
    g = torch.Generator().manual_seed(seed * 100 + t)
    args: dict[str, object] = dict(
        group=torch.arange(n) // 4, reward=torch.rand(n, generator=g).round(), entropy=torch.rand(n, generator=g),
        length=torch.randint(2, 9, (n,), generator=g), truncated=torch.rand(n, generator=g) < 0.3,
        answer=torch.randint(0, 3, (n,), generator=g), round=t, logprobs=-torch.rand(n, 4, generator=g),
    )  # fmt: skip
    args.update(kw)
    return RolloutBatch.from_tensors(**args)  # type: ignore[arg-type]


def test_consistency_and_overlong_filters() -> None:
    b = batch()
    keep = ConsistencyFilter().schedule(b).fresh
    assert keep.tolist() == torch.nonzero(~AnswerStats.of(b).conflict).squeeze(1).tolist()
    assert OverlongFilter().schedule(b).fresh.tolist() == torch.nonzero(~b.truncated).squeeze(1).tolist()
    no_answers = RolloutBatch.from_tensors(group=[0, 0], reward=[1.0, 0.0], entropy=[0.1] * 2, length=[2, 2])
    assert ConsistencyFilter().schedule(no_answers).fresh.tolist() == [0, 1]


def test_priority_replay_keeps_fresh_rows_and_draws_by_advantage() -> None:
    sch = PriorityReplay(replay_ratio=0.5, alpha=1.0, max_age=3, seed=1)
    seen = []
    for t in range(6):
        b = batch(t)
        if t:
            sch.observe(b)
        s = sch.schedule(b)
        assert s.fresh.tolist() == list(range(12)) and len(s.replay) == (6 if t else 0)
        if t:
            assert bool((t - s.replay.round <= 3).all()) and bool((s.replay.round < t).all())
            seen.append(s.replay)
    again = PriorityReplay(replay_ratio=0.5, alpha=1.0, max_age=3, seed=1)
    for t in range(6):
        b = batch(t)
        if t:
            again.observe(b)
        s2 = again.schedule(b)
    assert torch.equal(s2.replay.reward, seen[-1].reward)  # a pure function of (seed, round)
    # zero-advantage rows are (almost) never drawn when others exist
    assert float((torch.cat([r.advantage for r in seen]) == 0).float().mean()) < 0.05
    for kw, match in (({"replay_ratio": -1.0}, "`replay_ratio`"), ({"max_age": 0}, "`max_age`")):
        with pytest.raises(InvalidInputError, match=match):
            PriorityReplay(**kw)  # type: ignore[arg-type]


def test_priority_sampling_follows_the_priorities() -> None:
    """One buffered round with |A| = 4 on half the rows and 1 on the other half: with alpha = 1 and one draw a
    round, the large ones are drawn 4/5 of the time (binomial, 400 rounds: sd 0.02)."""
    adv = torch.tensor([4.0, 1.0] * 4)
    hits = 0
    for t in range(400):
        sch = PriorityReplay(replay_ratio=1 / 8, alpha=1.0, max_age=1, seed=t)
        sch.schedule(batch(0, n=8, advantage=adv))
        sch.observe(b := batch(1, n=8, advantage=adv))
        hits += int(sch.schedule(b).replay.advantage.abs()[0] == 4.0)
    assert abs(hits / 400 - 0.8) < 0.08


def test_influence_filter_drops_anti_aligned_rows() -> None:
    grad = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [2.0, 2.0]])
    b = batch(n=4, grad=grad, advantage=[1.0, 1.0, -1.0, -0.5])
    probe = batch(n=2, grad=torch.tensor([[1.0, 1.0], [1.0, 1.0]]), advantage=[1.0, 1.0])
    s = InfluenceFilter().schedule(b, probe)
    infl = torch.tensor([1.0, -1.0, -1.0, -2.0])  # A_i <g_i, (1, 1)>
    assert s.fresh.tolist() == [0] and torch.allclose(s.scores, infl / infl.abs().mean())
    assert InfluenceFilter(threshold=-0.8).schedule(b, probe).fresh.tolist() == [0, 1, 2]
    selfish = InfluenceFilter(probe="self").schedule(batch(n=4, grad=grad, advantage=[1.0, 1.0, -1.0, -0.5]))
    assert selfish.fresh.numel() >= 1
    w = InfluenceFilter(threshold=-0.8, reweight=True).schedule(b, probe).fresh_weight
    assert w.shape == (3,) and bool((w >= 0).all())
    with pytest.raises(InvalidInputError, match="needs a `probe`"):
        InfluenceFilter().schedule(b)
    with pytest.raises(InvalidInputError, match="gradient sketches"):
        InfluenceFilter().schedule(batch(), probe)
    with pytest.raises(InvalidInputError, match="same round"):
        InfluenceFilter().schedule(b, batch(t=3, n=2, grad=torch.ones(2, 2)))


# ---------------------------------------------------------------------------------------------- gradients


@pytest.mark.parametrize(("T", "temperature"), [(1, 1.0), (5, 0.7)])
def test_head_gradients_match_autograd(T: int, temperature: float) -> None:
    g = torch.Generator().manual_seed(T)
    N, H, V = 3, 4, 6
    h = torch.randn(N, T, H, generator=g, dtype=torch.float64)
    W = torch.randn(V, H, generator=g, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(V, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.randint(0, V, (N, T), generator=g)
    mask = torch.ones(N, T, dtype=torch.bool)
    mask[0, T // 2 + 1 :] = False
    logp = torch.log_softmax((h @ W.T + bias) / temperature, -1).gather(2, y[..., None])[..., 0]
    per_row = (logp * mask).sum(1) / mask.sum(1)
    want = torch.stack([torch.cat([g.flatten() for g in torch.autograd.grad(per_row[i], (W, bias), retain_graph=True)])
                        for i in range(N)])  # fmt: skip
    probs = torch.softmax((h @ W.T + bias) / temperature, -1).detach()
    got = head_gradients(h.float(), probs.float(), y, mask, temperature)
    assert got.shape == (N, V * H + V) and torch.allclose(got.double(), want, atol=1e-5)


def test_sketch_inner_products_are_unbiased() -> None:
    g = torch.Generator().manual_seed(0)
    h, p = torch.randn(4, 3, 8, generator=g), torch.randn(4, 3, 6, generator=g).softmax(-1)
    y, m = torch.randint(0, 6, (4, 3), generator=g), torch.ones(4, 3, dtype=torch.bool)
    G = head_gradients(h, p, y, m, bias=False)
    exact = G @ G.T
    est = torch.zeros_like(exact)
    for seed in range(300):
        L, R = sketch_matrices(6, 8, 8, 8, seed=seed)
        s = head_sketch(h, p, y, m, L, R)
        est += s @ s.T
    assert (est / 300 - exact).abs().max() < 0.1 * exact.abs().max()
    L, R = sketch_matrices(6, 8, 6, 8, seed=1)
    assert torch.allclose(head_sketch(h, p, y, m, L, R), (L.T @ G.view(4, 6, 8) @ R).flatten(1), atol=1e-5)
    assert torch.equal(sketch_matrices(6, 8, seed=3)[0], sketch_matrices(6, 8, seed=3)[0])
    with pytest.raises(InvalidInputError, match="`left`"):
        head_sketch(h, p, y, m, R, L)
    with pytest.raises(InvalidInputError, match="`tokens`"):
        head_gradients(h, p, y[:, :2], m)
    assert math.isfinite(float(est.sum()))
