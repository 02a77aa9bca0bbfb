"""The RLVR simulator: its real loop with every scheduler, determinism, verifier noise, feature variation, PPO
ratios on- and off-policy, and learning."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from banditlib.adapters import rlvr
from banditlib.adapters.rlvr import RolloutBatch, Schedule
from banditlib.adapters.rlvr.sim import SimConfig, Simulator, World, expected_accuracy, generate, run
from banditlib.adapters.rlvr.sim.loop import training_rows
from banditlib.adapters.rlvr.sim.oracle import RegretHook, buffer_oracle, top_per_group
from banditlib.adapters.rlvr.sim.train import ppo_step
from banditlib.errors import InvalidInputError

SMALL = SimConfig(prompts_per_round=8, group_size=4)


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


class KeepAll:
    """Plain GRPO written out in the test: every fresh rollout, nothing replayed."""

    name = "keep-all"

    def schedule(self, b: RolloutBatch) -> Schedule:
        n = len(b)
        return Schedule(torch.arange(n), torch.ones(n), RolloutBatch.empty_like(b), torch.ones(0),
                        torch.full((n,), float("nan")), float("nan"))  # fmt: skip

    def observe(self, b: RolloutBatch) -> float | None:
        return None


class HalfAndReplayOld:
    """Keeps every other fresh rollout and replays the whole batch of two rounds ago (stale on purpose)."""

    name = "half-replay"

    def __init__(self) -> None:
        self.history: list[RolloutBatch] = []

    def schedule(self, b: RolloutBatch) -> Schedule:
        n = len(b)
        replay = self.history[-2] if len(self.history) >= 2 else RolloutBatch.empty_like(b)
        self.history.append(b)
        fresh = torch.arange(0, n, 2)
        return Schedule(fresh, torch.ones(len(fresh)), replay, torch.ones(len(replay)),
                        torch.full((n,), float("nan")), float("nan"))  # fmt: skip

    def observe(self, b: RolloutBatch) -> float | None:
        return None


def schedulers() -> dict[str, Any]:
    return {
        "keep-all": KeepAll, "half-replay": HalfAndReplayOld,
        "cbs-group": lambda: rlvr.RolloutScheduler(mode="group", seed=0),
        "cbs-global": lambda: rlvr.RolloutScheduler(mode="global", reuse=1, buffer_rounds=2, seed=0),
        "cbs-both": lambda: rlvr.RolloutScheduler(mode="both", reuse=1, buffer_rounds=2, seed=0),
        "uniform": lambda: rlvr.UniformScheduler(), "pods": lambda: rlvr.MaxVarianceScheduler(keep_fraction=0.5),
        "dapo": lambda: rlvr.DynamicSamplingFilter(),
        "threshold": lambda: rlvr.ThresholdScheduler(min_abs_advantage=0.5),
        "recency": lambda: rlvr.RecencyReplay(reuse=1, buffer_rounds=2),
    }  # fmt: skip


@pytest.mark.parametrize("name", list(schedulers()))
def test_real_loop_shape_contracts(name: str) -> None:
    seen: list[dict[str, Any]] = []

    def hook(sim: Simulator, b: RolloutBatch, s: Schedule, rows: RolloutBatch, w: torch.Tensor) -> dict[str, Any]:
        N, L = len(b), sim.config.max_len
        assert SMALL.prompts_per_round * SMALL.group_size == N
        assert b.logprobs is not None and b.logprobs.shape == (N, L)
        assert b.payload["tokens"].shape == (N, L) and b.payload["mask"].shape == (N, L)
        assert b.payload["prompt"].shape == (N,)
        assert (b.round == sim.round).all()
        assert s.fresh.dtype == torch.int64 and (s.fresh >= 0).all() and (s.fresh < N).all()
        assert len(rows) == s.fresh.numel() + len(s.replay) == w.shape[0]
        if len(s.replay):
            assert s.replay.logprobs is not None and s.replay.logprobs.shape == (len(s.replay), L)
            assert s.replay.payload["tokens"].shape == (len(s.replay), L)
            assert (s.replay.round < sim.round).all()
        seen.append({"fresh": s.fresh.numel(), "replay": len(s.replay)})
        return {}

    res = run(schedulers()[name](), seed=0, steps=6, config=SMALL, hook=hook)
    assert len(seen) == 6 and len(res.accuracy) == 7 and len(res.rounds) == 6
    assert res.backward[-1] == sum(x["fresh"] + x["replay"] for x in seen)
    assert res.rollouts == [t * 32 for t in range(7)]
    assert all(0.0 <= a <= 1.0 for a in res.accuracy)


def test_replayed_rows_train_off_policy_in_the_loop() -> None:
    res = run(HalfAndReplayOld(), seed=1, steps=6, config=SMALL)
    devs = [r["replay_ratio_dev"] for r in res.rounds if r["n_replay"]]
    assert len(devs) == 4 and all(d > 1e-4 for d in devs)  # stale rows: rho != 1


def test_same_seed_same_run_and_other_seed_differs() -> None:
    a = run(KeepAll(), seed=3, steps=5, config=SMALL)
    b = run(KeepAll(), seed=3, steps=5, config=SMALL)
    c = run(KeepAll(), seed=4, steps=5, config=SMALL)
    assert a.accuracy == b.accuracy and a.rounds == b.rounds
    assert a.accuracy != c.accuracy


def test_behaviour_logprobs_make_fresh_rows_exactly_on_policy_and_stale_rows_not() -> None:
    sim = Simulator(SMALL, seed=0)
    b0, _ = sim.generate()
    first = ppo_step(sim.params, sim.opt, sim.world, training_rows(b0), torch.ones(len(b0)))
    assert first.ratio_dev.max() < 1e-5 and first.clip_ratio.max() == 0  # rho = 1 on-policy
    for _ in range(5):
        b, _ = sim.generate()
        sim.train(b, torch.ones(len(b)))
    stale = ppo_step(sim.params, sim.opt, sim.world, training_rows(b0), torch.ones(len(b0)))
    assert stale.ratio_dev.mean() > 1e-3


def test_verifier_false_positive_rate_matches_its_setting() -> None:
    cfg = SimConfig(false_positive=0.3, warm_start_steps=0)
    sim = Simulator(cfg, seed=0)
    ids = sim.world.sample_prompts(20_000, sim.generator)
    g = generate(sim.params, sim.world, ids, sim.generator)
    wrong_finished = ~g.correct & ~g.truncated
    rate = float(g.lucky.sum() / wrong_finished.sum())
    assert abs(rate - 0.3) < 0.02  # thousands of wrong finished answers: binomial sd < 0.006
    assert (g.reward[g.truncated] == 0).all() and g.truncated.any()
    assert (g.reward[g.correct] == 1).all()
    exact = Simulator(SimConfig(false_positive=0.0), seed=0)
    g0 = generate(exact.params, exact.world, ids[:4000], exact.generator)
    assert not g0.lucky.any() and torch.equal(g0.reward.bool(), g0.correct)


def test_expected_accuracy_is_the_sampled_accuracy() -> None:
    sim = Simulator(SimConfig(), seed=2)
    ids = sim.world.train_ids[:40].repeat_interleave(500)
    g = generate(sim.params, sim.world, ids, sim.generator)
    mc = g.correct.float().view(40, 500).mean(1)
    exact = expected_accuracy(sim.params, sim.world, sim.world.train_ids[:40])
    assert (mc - exact).abs().max() < 0.08  # 500 samples: sd <= 0.023


def test_features_vary_within_groups() -> None:
    sim = Simulator(SimConfig(), seed=0)
    b, _ = sim.generate()
    sim.train(b, torch.ones(len(b)))
    b, _ = sim.generate()
    G = sim.config.group_size
    tokens = b.payload["tokens"].view(-1, G, sim.config.max_len)
    distinct = (tokens != tokens[:, :1]).any(dim=2).any(dim=1)  # groups whose answers are not all identical
    assert distinct.float().mean() > 0.5
    for name in ("entropy", "length", "reward", "advantage", "clip_ratio"):
        x = getattr(b, name).view(-1, G)
        varies = x.max(1).values > x.min(1).values
        assert varies.float().mean() > 0.15, name
        if name == "entropy":  # different answers, different entropies
            assert varies[distinct].all()
    assert b.clip_ratio.max() > 0  # the last step moved some rollouts past the clip range


def test_learning_happens_with_plain_grpo() -> None:
    res = run(KeepAll(), seed=0, steps=80, config=SimConfig())
    assert res.accuracy[-1] > res.accuracy[0] + 0.08


def test_bad_schedule_raises_naming_the_field() -> None:
    class OutOfRange(KeepAll):
        name = "bad"

        def schedule(self, b: RolloutBatch) -> Schedule:
            s = super().schedule(b)
            return Schedule(s.fresh + 1, s.fresh_weight, s.replay, s.replay_weight, s.scores, s.predicted_gain)

    with pytest.raises(InvalidInputError, match="`fresh`"):
        run(OutOfRange(), seed=0, steps=1, config=SMALL)
    with pytest.raises(InvalidInputError, match="`steps`"):
        run(KeepAll(), seed=0, steps=0, config=SMALL)


@pytest.mark.parametrize("kwargs", [{"max_len": 3}, {"false_positive": 1.0}, {"lr": float("nan")}, {"digits": 1}])
def test_config_validation(kwargs: dict[str, Any]) -> None:
    with pytest.raises(InvalidInputError, match=f"`{next(iter(kwargs))}`"):
        SimConfig(**kwargs)


def test_world_answers_follow_the_rule() -> None:
    w = World(SimConfig(digits=5, max_prompt_len=3, max_len=4))
    for p in range(0, w.prompts.shape[0], 7):
        k = int(w.prompt_len[p])
        assert [int(v) for v in w.answer[p, :k]] == [(int(w.prompts[p, j]) + j) % 5 for j in range(k)]
        assert (w.answer[p, k:] == 5).all()
    assert set(w.train_ids.tolist()).isdisjoint(w.heldout_ids.tolist())


def test_top_per_group_and_oracles_run() -> None:
    idx = top_per_group(torch.tensor([0, 0, 0, 1, 1]), torch.tensor([3.0, 1.0, 2.0, 0.0, 5.0]), torch.tensor([2, 1]))
    assert idx.tolist() == [0, 2, 4]
    res = run(HalfAndReplayOld(), seed=0, steps=3, config=SMALL, hook=RegretHook())
    assert all(r["regret"] >= 0 and r["gain_best"] >= r["gain_own"] for r in res.rounds)
    out = buffer_oracle(Simulator(SMALL, seed=0), steps=3, buffers=(0, 1, 2), every=1)
    assert out["rounds"] == [2] and len(out["best"][0]) == 3
    assert out["nested"][0] == sorted(out["nested"][0]) and out["old_share"][0][0] == 0.0


# ---------------------------------------------------------------------------------------------- fault worlds


def sample(fault: str, n: int = 20_000, seed: int = 0, **kw: Any) -> tuple[Simulator, Any, torch.Tensor]:
    sim = Simulator(SimConfig(fault=fault, **kw), seed=seed)
    ids = sim.world.sample_prompts(n, sim.generator)
    return sim, generate(sim.params, sim.world, ids, sim.generator), ids


def test_perfect_verifier_and_answer_ids() -> None:
    sim, g, _ = sample("none", 4000)
    assert not g.lucky.any() and not g.missed.any() and torch.equal(g.reward.bool(), g.correct)
    # equal ids for equal digit strings, whatever the prompt's length or a cut
    digits = [tuple(int(t) for t, m in zip(row, mk, strict=True) if m and t != sim.config.digits)
              for row, mk in zip(g.tokens.tolist(), g.mask.tolist(), strict=True)]  # fmt: skip
    by_id: dict[int, set[tuple[int, ...]]] = {}
    for d, a in zip(digits, g.answer.tolist(), strict=True):
        by_id.setdefault(a, set()).add(d)
    assert all(len(v) == 1 for v in by_id.values())
    assert all(d == () for d in by_id.get(-1, {()}))
    assert len(by_id) > 50


def test_loophole_passes_prefixes_of_the_right_answer_on_its_prompts_only() -> None:
    sim, g, ids = sample("loophole")
    assert g.lucky.any() and bool(sim.world.loophole[ids][g.lucky].all())
    k = sim.world.prompt_len[ids]
    for i in torch.nonzero(g.lucky).squeeze(1)[:200].tolist():
        m = int(g.length[i]) - 1  # digits before the end token
        assert 1 <= m < int(k[i]) and torch.equal(g.tokens[i, :m], sim.world.answer[ids[i], :m])
    assert sim.world.loophole[sim.world.train_ids].float().mean() > 0.3
    assert not sim.world.loophole[sim.world.prompt_len == 1].any()
    # deterministic: the same answer to the same prompt always gets the same reward
    pairs: dict[tuple[int, int], set[float]] = {}
    for p, a, r in zip(ids.tolist(), g.answer.tolist(), g.reward.tolist(), strict=True):
        pairs.setdefault((p, a), set()).add(r)
    assert all(len(v) == 1 for v in pairs.values())


def test_truncation_cuts_answers_before_their_end_token() -> None:
    sim, g, ids = sample("truncation", truncation_rate=0.5)
    k = sim.world.prompt_len[ids]
    assert g.missed.any() and bool(g.truncated[g.missed].all()) and bool((g.reward[g.missed] == 0).all())
    assert bool((g.length[g.missed] == k[g.missed].float()).all())  # the k digits are kept, the end token is not
    rate = [float(g.missed[k == j].float().mean()) for j in (1, 4)]
    assert rate[0] > 0.05  # k = 1: rate 0.5 / 4 of the (mostly right) answers
    _, g0, _ = sample("iid", 4000)
    assert not g0.missed.any()


def test_judge_accepts_confident_mistakes_more_often() -> None:
    _, g, _ = sample("judge", judge_bias=0.6)
    wrong = ~g.correct & ~g.truncated
    q = ((g.logprobs * g.mask).sum(1) / g.length).exp()
    hi = wrong & (q > q[wrong].median())
    lo = wrong & (q <= q[wrong].median())
    assert float(g.lucky[hi].float().mean()) > 1.5 * float(g.lucky[lo].float().mean())


def test_mixture_has_every_fault_and_configs_are_checked() -> None:
    _, g, _ = sample("mixture", false_positive=0.1, loophole_fraction=0.25, truncation_rate=0.25)
    assert g.lucky.any() and g.missed.any()
    with pytest.raises(InvalidInputError, match="`fault`"):
        SimConfig(fault="flaky")
    with pytest.raises(InvalidInputError, match="`truncation_rate`"):
        SimConfig(truncation_rate=1.0)
    with pytest.raises(InvalidInputError, match="`judge_bias`"):
        SimConfig(judge_bias=0.0)


def test_batches_carry_answers_exact_head_gradients_and_a_probe() -> None:
    sim = Simulator(SMALL, seed=0)
    b, gen = sim.generate()
    assert torch.equal(b.answer, gen.answer) and b.grad is not None
    H, V = sim.config.hidden, sim.config.digits + 1
    assert b.grad.shape == (len(b), V * H + V)
    # against autograd on the simulator's own log-probs, for two rows
    from banditlib.adapters.rlvr.sim.world import token_logprobs

    for i in (0, 5):
        leaves = {k: p.detach().clone().requires_grad_(k in ("W3", "b3")) for k, p in sim.params.items()}
        logp, _ = token_logprobs(leaves, sim.world, b.payload["prompt"][i : i + 1], b.payload["tokens"][i : i + 1])
        m = b.payload["mask"][i : i + 1].float()
        gW, gb = torch.autograd.grad((logp * m).sum() / m.sum(), (leaves["W3"], leaves["b3"]))
        assert torch.allclose(b.grad[i], torch.cat([gW.T.flatten(), gb]), atol=1e-5)
    probe = sim.probe()
    assert len(probe) == sim.world.probe_ids.numel() == 30 and bool((probe.advantage == 1).all())  # 6 + 3 x 8
    assert probe.grad is not None and int(probe.round[0]) == sim.round


@pytest.mark.parametrize("max_norm", [1e-3, 1e3])  # clipping that binds, and one that does not
def test_simulator_step_is_clip_grad_norm_then_torch_adam_bit_for_bit(max_norm: float) -> None:
    """The simulator's optimiser step equals ``clip_grad_norm_`` followed by ``torch.optim.Adam(fused=True)``
    over the same parameters, bit for bit, for many steps with changing gradients."""
    from banditlib.adapters.rlvr.sim.train import _adam_update, adam_init

    g = torch.Generator().manual_seed(3)
    params = {"w": torch.randn(5, 4, generator=g), "b": torch.randn(4, generator=g)}
    ref = {k: p.clone().requires_grad_(True) for k, p in params.items()}
    opt_ref = torch.optim.Adam(list(ref.values()), lr=3e-3, betas=(0.9, 0.999), eps=1e-8, fused=True)
    state = adam_init(params)
    for _ in range(25):
        grads = {k: torch.randn(p.shape, generator=g) for k, p in params.items()}
        for k, p in ref.items():
            p.grad = grads[k].clone()
        torch.nn.utils.clip_grad_norm_(list(ref.values()), max_norm)
        opt_ref.step()
        _adam_update(params, grads, state, 3e-3, max_norm)
    assert state.t == 25
    for k, p in params.items():
        assert torch.equal(p, ref[k].detach()), k
        assert torch.equal(state.m[k], opt_ref.state[ref[k]]["exp_avg"]), k
        assert torch.equal(state.v[k], opt_ref.state[ref[k]]["exp_avg_sq"]), k
