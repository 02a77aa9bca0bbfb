"""NeuralUCB / NeuralTS: the vectorised bonus and Z update equal explicit per-sample gradients."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import banditlib
from banditlib.errors import InvalidInputError, NumericalError
from banditlib.policies._network import ACTIVATIONS
from banditlib.testing.references import per_sample_gradients

SETTINGS = settings(max_examples=15, deadline=None)
networks = st.fixed_dictionaries(
    {
        "hidden": st.lists(st.integers(1, 9), min_size=0, max_size=3).map(tuple),
        "activation": st.sampled_from(sorted(ACTIVATIONS)),
        "reg": st.sampled_from([0.1, 1.0, 3.0]),
    }
)


def _policy(cls: type = banditlib.NeuralUCB, dim: int = 3, arms: int | None = None, **kw: Any) -> Any:
    return cls(dim, arms, dtype=torch.float64, seed=0, train_steps=0, **kw)


@SETTINGS
@given(net=networks, dim=st.integers(1, 5), arms=st.one_of(st.none(), st.integers(1, 3)), seed=st.integers(0, 99))
def test_diag_bonus_and_update_equal_per_sample_gradients(
    net: dict[str, Any], dim: int, arms: int | None, seed: int
) -> None:
    policy = _policy(dim=dim, arms=arms, **net)
    rng = np.random.default_rng(seed)
    shape = (3, dim) if arms is not None else (3, 4, dim)
    x = torch.from_numpy(rng.normal(size=shape))
    K = arms or 4
    # Update first, so that Z is not a multiple of the identity.
    actions = torch.from_numpy(np.stack([rng.permutation(K)[: min(2, K)] for _ in range(3)]))
    enc = policy._inputs(x).view(3, K, -1)[torch.arange(3)[:, None], actions].reshape(-1, policy.input_dim)
    G = per_sample_gradients(policy.net, enc)
    Z_before = policy.Z_diag_.clone()
    policy.update(x, actions, torch.from_numpy(rng.normal(size=actions.shape)))
    torch.testing.assert_close(policy.Z_diag_, Z_before + (G**2).sum(0), rtol=1e-10, atol=1e-12)
    sel = policy.select(x)
    G_all = per_sample_gradients(policy.net, policy._inputs(x))
    want = torch.sqrt((G_all**2 / policy.Z_diag_).sum(1)).view(3, K)
    torch.testing.assert_close(sel.bonus, want, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(sel.mean.reshape(-1), policy.net(policy._inputs(x)), rtol=1e-12, atol=1e-12)


@SETTINGS
@given(net=networks, seed=st.integers(0, 99))
def test_last_layer_z_is_the_explicit_inverse(net: dict[str, Any], seed: int) -> None:
    policy = _policy(z="last_layer", **net)
    rng = np.random.default_rng(seed)
    feats = []
    for B in (1, 2, 7):
        x = torch.from_numpy(rng.normal(size=(B, 5, 3)))
        sel = policy.select(x)
        enc = x[torch.arange(B), sel.actions[:, 0]]
        feats.append(torch.cat([policy.net.features(enc), torch.ones(B, 1, dtype=torch.float64)], 1))
        policy.update(x, sel.actions, torch.from_numpy(rng.normal(size=(B, 1))))
    F = torch.cat(feats)
    Z = net["reg"] * torch.eye(F.shape[1], dtype=torch.float64) + F.T @ F
    torch.testing.assert_close(policy.Z_inv_, torch.linalg.inv(Z), rtol=1e-9, atol=1e-11)
    x = torch.from_numpy(rng.normal(size=(2, 5, 3)))
    G = torch.cat([policy.net.features(x.reshape(-1, 3)), torch.ones(10, 1, dtype=torch.float64)], 1)
    want = torch.sqrt(((G @ torch.linalg.inv(Z)) * G).sum(1)).view(2, 5)
    torch.testing.assert_close(policy.select(x).bonus, want, rtol=1e-9, atol=1e-11)


def test_neural_ts_draws_have_the_posterior_distribution() -> None:
    policy = _policy(banditlib.NeuralTS, nu=0.7, hidden=(8,))
    x = torch.randn(1, 3, 3, dtype=torch.float64).expand(20_000, 3, 3)
    sel = policy.select(x)
    mean, var = policy._mean_var(x[:1])
    s = sel.scores.numpy()
    np.testing.assert_allclose(s.mean(0), mean[0].numpy(), atol=4 * 0.7 * float(var.max().sqrt()) / np.sqrt(20_000))
    np.testing.assert_allclose(s.var(0), 0.49 * var[0].numpy(), rtol=0.05)
    assert abs(np.corrcoef(s.T)[0, 1]) < 0.05  # independent across arms


def test_history_is_a_bounded_ring() -> None:
    policy = banditlib.NeuralUCB(2, hidden=(4,), history=5, train_every=3, seed=0)
    for i in range(12):
        policy.update(torch.full((1, 1, 2), float(i)), torch.tensor([[0]]), torch.tensor([[float(i)]]))
    assert policy.hist_x_.shape == (5, 2) and int(policy.n_seen_) == 12
    assert sorted(policy.hist_r_.tolist()) == [7.0, 8.0, 9.0, 10.0, 11.0]
    assert int(policy.train_rounds) == 4
    policy.update(torch.arange(16.0).view(8, 1, 2), torch.zeros(8, 1, dtype=torch.long), torch.arange(8.0).view(8, 1))
    assert sorted(policy.hist_r_.tolist()) == [3.0, 4.0, 5.0, 6.0, 7.0]


def test_divergent_training_is_rolled_back() -> None:
    policy = banditlib.NeuralUCB(2, hidden=(4,), lr=1e300, train_every=1, train_steps=3, seed=0, dtype=torch.float64)
    before = {k: v.clone() for k, v in policy.state_dict().items()}
    with pytest.raises(NumericalError, match="`lr` too large"):
        policy.update(torch.ones(1, 2, 2), torch.tensor([[0]]), torch.tensor([[1.0]]))
    for k, v in before.items():
        assert torch.equal(v, policy.state_dict()[k]), k


@pytest.mark.parametrize(
    "kwargs,arg",
    [
        ({"hidden": 5}, "hidden"),
        ({"hidden": (0,)}, "hidden"),
        ({"activation": "swish"}, "activation"),
        ({"loss": "l1"}, "loss"),
        ({"z": "full"}, "z"),
        ({"lr": 0}, "lr"),
        ({"train_steps": -1}, "train_steps"),
        ({"history": 0}, "history"),
        ({"gamma": -1}, "gamma"),
    ],
)
def test_constructor_arguments_are_validated(kwargs: dict[str, Any], arg: str) -> None:
    with pytest.raises(InvalidInputError, match=f"`{arg}"):
        banditlib.NeuralUCB(3, **kwargs)


@pytest.mark.parametrize("loss", ["anchor", "weight_decay"])
def test_training_reduces_the_loss_and_is_reproducible(loss: str) -> None:
    cls = banditlib.NeuralUCB  # NeuralTS and the others share the training code
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.normal(size=(64, 1, 4)).astype(np.float32))
    r = torch.sin(x[:, 0, :1] * 2).sum(1, keepdim=True)
    p1, p2 = (
        cls(4, hidden=(16,), loss=loss, train_every=64, train_steps=150, lr=2e-2, reg=0.01, seed=1) for _ in range(2)
    )
    before = float(((p1.net(x[:, 0]) - r[:, 0]) ** 2).mean().detach())
    for p in (p1, p2):
        p.update(x, torch.zeros(64, 1, dtype=torch.long), r)
    after = float(((p1.net(x[:, 0]) - r[:, 0]) ** 2).mean().detach())
    assert after < 0.5 * before
    assert torch.equal(p1.net.params, p2.net.params)


def test_neural_ucb_beats_linucb_on_the_cosine_problem() -> None:
    """The NeuralUCB paper's h3(x) = cos(3 x^T a), d=20, K=4, contexts uniform in the unit ball (noise sd
    0.1), T = 3,000, default arguments: NeuralUCB's regret is well below LinUCB's (fixed seed, wide margin)."""
    T, d, K = 3000, 20, 4
    rng = np.random.default_rng(0)
    a = rng.normal(size=d)
    a /= np.linalg.norm(a)
    x = rng.normal(size=(T, K, d))
    x *= (rng.random((T, K, 1)) ** (1 / d)) / np.linalg.norm(x, axis=-1, keepdims=True)
    h = np.cos(3 * x @ a)
    noise = rng.normal(scale=0.1, size=(T, K))
    x = x.astype(np.float32)
    regret = {}
    for name, policy in {"linucb": banditlib.LinUCB(d, seed=0), "neuralucb": banditlib.NeuralUCB(d, seed=0)}.items():
        total = 0.0
        for t in range(T):
            arm = policy.select(x[t : t + 1]).actions.item()
            policy.update(x[t : t + 1], np.array([[arm]]), np.array([[h[t, arm] + noise[t, arm]]]))
            total += h[t].max() - h[t, arm]
        regret[name] = total
    assert regret["neuralucb"] < 0.5 * regret["linucb"], regret


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("weight_decay", [0.0, 0.5])
def test_the_adam_step_is_torch_optim_adams(dtype: torch.dtype, weight_decay: float) -> None:
    """The policies' Adam step equals ``torch.optim.Adam(fused=True)``'s, bit for bit, over many steps (the
    fused kernel is called directly; a torch version that changed it would show here first)."""
    from banditlib.policies._neural_base import _AdamStep

    g = torch.Generator().manual_seed(0)
    P0 = torch.randn(301, generator=g, dtype=dtype)
    grads = [torch.randn(301, generator=g, dtype=dtype) for _ in range(12)]
    ref = P0.clone().requires_grad_(True)
    opt = torch.optim.Adam([ref], lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=weight_decay, fused=True)
    P, m, v = P0.clone(), torch.zeros_like(P0), torch.zeros_like(P0)
    step = _AdamStep(P, m, v, 1e-2, weight_decay)
    for t, grad in enumerate(grads, start=1):
        ref.grad = grad.clone()
        opt.step()
        step(grad, t)
        assert torch.equal(P, ref.detach()), t
    assert torch.equal(m, opt.state[ref]["exp_avg"]) and torch.equal(v, opt.state[ref]["exp_avg_sq"])
