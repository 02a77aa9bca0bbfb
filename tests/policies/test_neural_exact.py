"""The written-out backward passes of the neural policies equal torch.autograd bit for bit.

Training (``MSEGradient`` plus Adam), the gradient pieces behind the bonus and the Z update, and the single-row
noise of the Thompson-sampling policies are computed without autograd (and without its per-op overhead); the
decisions must not change, so every comparison here is exact (``torch.equal``), not approximate.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import banditlib
from banditlib import _random
from banditlib.policies import _neural_base
from banditlib.policies._network import ACTIVATIONS, MLP, MSEGradient, _gradient_pieces_autograd, gradient_pieces

SHAPES = [(), (7,), (5, 4), (1,), (3, 1, 2)]


def _net(dim: int, hidden: tuple[int, ...], activation: str, dtype: torch.dtype) -> MLP:
    return MLP(dim, hidden, activation, torch.Generator().manual_seed(3), dtype, torch.device("cpu"))


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
@pytest.mark.parametrize("hidden", SHAPES, ids=str)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("batch", [1, 7, 32])
def test_mse_gradient_equals_autograd(activation: str, hidden: tuple[int, ...], dtype: torch.dtype, batch: int) -> None:
    net = _net(5, hidden, activation, dtype)
    x, y = torch.randn(batch, 5, dtype=dtype) * 2, torch.randn(batch, dtype=dtype)
    grad = torch.full_like(net.params, float("nan"))
    MSEGradient(net, net.params.detach(), grad, batch)(x, y.unsqueeze(-1))
    (want,) = torch.autograd.grad(0.5 * torch.mean((net(x) - y) ** 2), [net.params])
    assert torch.equal(grad, want)


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
@pytest.mark.parametrize("hidden", SHAPES, ids=str)
@pytest.mark.parametrize("rows", [1, 4])
def test_gradient_pieces_equal_autograd(activation: str, hidden: tuple[int, ...], rows: int) -> None:
    net = _net(3, hidden, activation, torch.float32)
    x = torch.randn(rows, 3)
    f, pieces = gradient_pieces(net, x)
    f_ref, pieces_ref = _gradient_pieces_autograd(net, x)
    assert torch.equal(f, f_ref)
    for (h, d), (h_ref, d_ref) in zip(pieces, pieces_ref, strict=True):
        assert torch.equal(h, h_ref) and torch.equal(d, d_ref)
        assert d.stride() == d_ref.stride()  # the output layer's delta is autograd's expanded one, too


def _run(policy: banditlib.Policy, arms: int | None, seed: int, rounds: int = 30, batch: int = 1) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    K, d = (arms or 4), policy.dim
    out = []
    for _ in range(rounds):
        x = rng.normal(size=(batch, d) if arms else (batch, K, d)) * 1.5
        sel = policy.select(x)
        out += [sel.actions.numpy(), sel.scores.numpy()]
        policy.update(x, sel.actions, rng.normal(size=sel.actions.shape) + 0.3)
    return out


CASES = [
    (banditlib.NeuralUCB, {}),
    (banditlib.NeuralUCB, {"activation": "gelu", "hidden": (6, 3)}),
    (banditlib.NeuralUCB, {"z": "last_layer"}),
    (banditlib.NeuralTS, {"loss": "weight_decay"}),
    (banditlib.NeuralTS, {"dtype": torch.float64, "batch_size": 5}),
    (banditlib.NeuralLinUCB, {"activation": "tanh"}),
    (banditlib.NeuralLinTS, {"loss": "weight_decay", "batch_size": 1}),
    (banditlib.EENet, {}),
    (banditlib.EENet, {"decision": "neural", "decision_warmup": 8, "activation": "elu"}),
]


@pytest.mark.parametrize("gather_at_once", [True, False], ids=["gathered", "per-step"])
@pytest.mark.parametrize("arms", [None, 3], ids=["shared", "disjoint"])
@pytest.mark.parametrize("cls,kw", CASES, ids=lambda v: getattr(v, "__name__", "") or str(v))
def test_policies_decide_exactly_as_with_autograd(
    cls: type[banditlib.Policy], kw: dict[str, object], arms: int | None, gather_at_once: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """Forcing every network onto the autograd path (``_manual_backward = False``) changes nothing: not the
    decisions, not the scores, not one bit of the state. The disjoint inputs (``K d = 15`` columns) make the
    pre-gathered minibatches start at offsets that are not multiples of 64 bytes unless padded."""
    if not gather_at_once:
        monkeypatch.setattr(_neural_base, "_GATHER_AT_ONCE", 0)
    kwargs = {"hidden": (9,), "train_every": 4, "train_steps": 5, "lr": 1e-2, "seed": 11, **kw}
    fast, slow = cls(5, arms, **kwargs), cls(5, arms, **kwargs)  # type: ignore[call-arg]
    for net in slow.modules():
        if isinstance(net, MLP):
            net._manual_backward = False
    got, want = _run(fast, arms, 0, batch=2 if arms else 1), _run(slow, arms, 0, batch=2 if arms else 1)
    assert all(np.array_equal(a, b) for a, b in zip(got, want, strict=True))
    state, ref = fast.state_dict(), slow.state_dict()
    assert state.keys() == ref.keys()
    for key in ref:
        assert torch.equal(state[key], ref[key]), key


def test_a_custom_activation_trains_by_autograd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(ACTIVATIONS, "swish", lambda t: t * torch.sigmoid(t))
    policy = banditlib.NeuralUCB(3, hidden=(6,), activation="swish", train_every=2, train_steps=3, seed=0)
    assert not policy.net._manual_backward
    before = policy.net.params.detach().clone()
    _run(policy, None, 1, rounds=6)
    assert int(policy.train_rounds) == 3 and not torch.equal(policy.net.params, before)
    f, pieces = gradient_pieces(policy.net, torch.randn(2, 3))
    assert f.shape == (2,) and pieces[0][1].shape == (2, 6)


def test_single_row_noise_equals_the_batched_draws() -> None:
    policy = banditlib.NeuralTS(3, hidden=(4,), seed=123)
    for row in [0, 1, 17, 2**40 + 5]:
        for cols in [1, 4, 101]:
            rows = torch.tensor([row])
            assert torch.equal(policy._normal(rows, cols), _random.normal(123, _random.STREAM_NOISE, rows, cols))


def test_updates_leave_no_inference_tensors_and_autograd_still_works() -> None:
    policy = banditlib.NeuralUCB(3, hidden=(5,), train_every=2, train_steps=2, seed=0)
    _run(policy, None, 2, rounds=5)
    sel = policy.select(torch.randn(2, 4, 3))
    assert not any(t.is_inference() for t in (*policy.buffers(), *policy.parameters(), sel.scores, sel.bonus))
    sel.scores.add_(1.0)  # an ordinary tensor
    policy.net(torch.randn(2, 3)).sum().backward()
    assert policy.net.params.grad is not None
