"""The single-row numpy path against the batched torch path on random sequences, with and without forgetting."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

import banditlib
from banditlib.errors import InvalidInputError

CLASSES = [banditlib.LinUCB, banditlib.LinTS, banditlib.Greedy, banditlib.EpsilonGreedy]
KWARGS: dict[type, dict[str, Any]] = {
    banditlib.LinUCB: {"alpha": 0.7},
    banditlib.LinTS: {"scale": 0.3},
    banditlib.Greedy: {},
    banditlib.EpsilonGreedy: {"epsilon": 0.3},
}
D, K = 5, 4


def _pair(cls: type, arms: int | None, forget: float, dtype: torch.dtype) -> tuple[banditlib.Policy, banditlib.Policy]:
    make = lambda: cls(D, arms, reg=1.5, forget=forget, refresh_every=9, seed=3, dtype=dtype, **KWARGS[cls])  # noqa: E731
    fast, slow = make(), make()
    slow._fast_path = False
    return fast, slow


def _count_rows(policy: banditlib.Policy) -> list[int]:
    """Counts the single-row updates that were committed (``_learn_row`` returning True)."""
    taken = [0]
    learn_row = policy._learn_row

    def counted(*args: Any) -> bool:
        ok = learn_row(*args)
        taken[0] += bool(ok)
        return ok

    policy._learn_row = counted  # type: ignore[method-assign]
    return taken


def _play(fast: banditlib.Policy, slow: banditlib.Policy, arms: int | None, rounds: int, seed: int) -> int:
    """Random single-row rounds on both policies; returns how many updates the row path can take (all but the
    shared model's two-action updates, which always go to the batched path)."""
    rng = np.random.default_rng(seed)
    eligible = 0
    for t in range(rounds):
        x = rng.normal(size=(1, D) if arms is not None else (1, K, D))
        k = 1 + (t % 3 == 2)
        s1, s2 = fast.select(x, k=k), slow.select(x, k=k)
        assert torch.equal(s1.actions, s2.actions), f"round {t}: {s1.actions} vs {s2.actions}"
        r = rng.normal(size=(1, k))
        eligible += arms is not None or k == 1 or t % 5 == 4
        if arms is None and t % 5 == 4:  # the shared model also learns from feature vectors
            fast.update_features(x[0, :1], r[0, :1])
            slow.update_features(x[0, :1], r[0, :1])
        elif t % 7 == 6:  # a torch action tensor, a float32 reward
            fast.update(x, s1.actions, r.astype(np.float32))
            slow.update(x, s2.actions, r.astype(np.float32))
        else:
            fast.update(x, s1.actions.numpy(), r)
            slow.update(x, s2.actions.numpy(), r)
    return eligible


@pytest.mark.parametrize("forget", [1.0, 0.9], ids=["no-forgetting", "forget-0.9"])
@pytest.mark.parametrize("arms", [None, K], ids=["shared", "disjoint"])
@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_row_path_equals_batched_path_float64(cls: type, arms: int | None, forget: float) -> None:
    fast, slow = _pair(cls, arms, forget, torch.float64)
    taken = _count_rows(fast)
    eligible = _play(fast, slow, arms, 60, seed=len(cls.__name__) + (arms or 0) + int(100 * forget))
    assert taken[0] == eligible  # every eligible update took the row path
    for name, value in slow.learned_state().items():
        other = fast.learned_state()[name]
        assert torch.allclose(other.double(), value.double(), rtol=1e-9, atol=1e-10), name
    assert torch.equal(fast.rng_counter, slow.rng_counter)


@pytest.mark.parametrize("forget", [1.0, 0.95], ids=["no-forgetting", "forget-0.95"])
@pytest.mark.parametrize("arms", [None, K], ids=["shared", "disjoint"])
@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_row_path_equals_batched_path_float32(cls: type, arms: int | None, forget: float) -> None:
    fast, slow = _pair(cls, arms, forget, torch.float32)
    _play(fast, slow, arms, 60, seed=7)
    for name, value in slow.learned_state().items():
        other = fast.learned_state()[name]
        assert torch.allclose(other.double(), value.double(), rtol=1e-4, atol=1e-5), name


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("arms", [None, K], ids=["shared", "disjoint"])
def test_forgetting_row_path_is_bit_identical_in_the_statistics(arms: int | None, dtype: torch.dtype) -> None:
    """With forgetting the row path does the batched path's elementwise discount and sums, and its float64
    Cholesky refresh on the same A: A_, b_ and A_inv_ agree bit for bit over a random sequence."""
    fast, slow = _pair(banditlib.LinUCB, arms, 0.97, dtype)
    taken = _count_rows(fast)
    eligible = _play(fast, slow, arms, 80, seed=11)
    assert taken[0] == eligible
    for name in ("A_", "b_", "A_inv_", "n_updates_"):
        assert torch.equal(getattr(fast, name), getattr(slow, name)), name
    torch.testing.assert_close(fast.theta_, slow.theta_, rtol=1e-12 if dtype == torch.float64 else 1e-6, atol=0.0)


def test_forgetting_discounts_the_untouched_models() -> None:
    p = banditlib.LinUCB(3, arms=3, forget=0.5, reg=2.0, dtype=torch.float64, seed=0)
    taken = _count_rows(p)
    p.update(np.ones((1, 3)), np.array([[0]]), np.array([[1.0]]))
    p.update(np.ones((1, 3)), np.array([[1]]), np.array([[1.0]]))
    assert taken[0] == 2
    # arm 0: 0.5 (2 I + 1 1^T) + 0.5 * 2 I = 2 I + 0.5 1^T; arm 2 never played stays at the prior exactly
    expected0 = 2.0 * torch.eye(3, dtype=torch.float64) + 0.5
    assert torch.equal(p.A_[0], expected0)
    assert torch.equal(p.b_[0], torch.full((3,), 0.5, dtype=torch.float64))
    assert torch.equal(p.A_[2], 2.0 * torch.eye(3, dtype=torch.float64))
    torch.testing.assert_close(p.A_inv_[0].double(), torch.linalg.inv(expected0))
    assert p.n_updates_.tolist() == [1, 1, 0] and p.refresh_counter.tolist() == [0, 0, 0]


@pytest.mark.parametrize("forget", [1.0, 0.9])
def test_non_finite_rows_leave_the_state_and_raise_the_batched_error(forget: float) -> None:
    p = banditlib.LinUCB(3, arms=2, forget=forget, seed=0)
    p.update(np.ones((1, 3)), np.array([[0]]), np.array([[1.0]]))
    before = {k: v.clone() for k, v in p.state_dict().items()}
    with pytest.raises(InvalidInputError, match="`rewards` must be finite"):
        p.update(np.ones((1, 3)), np.array([[1]]), np.array([[np.inf]]))
    with pytest.raises(InvalidInputError, match="`rewards` must be finite"):
        p.update(np.ones((1, 3)), torch.tensor([[1]]), np.array([[1e300]]))  # inf in float32
    with pytest.raises(InvalidInputError, match="`contexts` must be finite"):
        p.update(np.array([[1.0, np.nan, 0.0]]), np.array([[1]]), np.array([[1.0]]))
    assert all(torch.equal(v, p.state_dict()[k]) for k, v in before.items())


def test_single_action_and_reward_inputs_of_every_kind() -> None:
    """Integer rewards, int32/uint8 actions, lists and out-of-range actions: the row path reads what the batched
    path reads (or hands the call over)."""
    fast, slow = _pair(banditlib.LinUCB, K, 1.0, torch.float32)
    x = np.random.default_rng(0).normal(size=(1, D))
    for actions, rewards in [
        ([[1]], [[2]]),
        (np.array([[2]], dtype=np.int32), np.array([[3]], dtype=np.int64)),
        (np.array([[3]], dtype=np.uint8), np.array([[0.25]], dtype=np.float16)),
        (torch.tensor([[0]], dtype=torch.int16), torch.tensor([[1.5]], dtype=torch.float64)),
        (np.array([[1, 3]]), np.array([[0.5, -0.5]])),
    ]:
        fast.update(x, actions, rewards)
        slow.update(x, actions, rewards)
    for bad in ([[K]], [[-1]], np.array([[1.0]])):
        with pytest.raises(InvalidInputError):
            fast.update(x, bad, [[1.0]])
    for name, value in slow.learned_state().items():
        assert torch.allclose(fast.learned_state()[name].double(), value.double(), rtol=1e-5, atol=1e-6), name
