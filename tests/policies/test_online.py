"""Which calls take the single-row numpy path, and that anything unusual leaves it for the batched path."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

import banditlib
from banditlib.errors import InvalidInputError
from banditlib.policies import _online


class Spy:
    """Counts calls of the single-row path without changing what it does."""

    def __init__(self, policy: banditlib.Policy) -> None:
        self.select = self.learn = 0
        # the row path's numpy scoring runs only on that path (banditlib.policies._online.select)
        score_row, learn_row = policy._score_row, policy._learn_row

        def counted_select(*args: Any) -> Any:
            self.select += 1
            return score_row(*args)

        def counted_learn(*args: Any) -> Any:
            self.learn += 1
            return learn_row(*args)

        policy._score_row = counted_select  # type: ignore[method-assign]
        policy._learn_row = counted_learn  # type: ignore[method-assign]


@pytest.mark.parametrize(
    "row",
    [np.ones((1, 4)), np.ones((1, 4), np.float32), torch.ones(1, 4), [[1.0, 2.0, 3.0, 4.0]]],
    ids=["f64", "f32", "tensor", "list"],
)
def test_single_rows_take_the_fast_path(row: Any) -> None:
    policy = banditlib.LinUCB(4, arms=3, seed=0)
    spy = Spy(policy)
    sel = policy.select(row)
    policy.update(row, sel.actions, [[1.0]])
    assert (spy.select, spy.learn) == (1, 1)
    assert policy.n_updates_.sum() == 1


def test_large_rows_and_masks_take_the_batched_path() -> None:
    policy = banditlib.LinUCB(32, seed=0)
    spy = Spy(policy)
    K = _online.MAX_ROW_WORK // 32**2 + 1
    policy.select(torch.randn(1, K, 32))
    policy.select(torch.randn(1, 3, 32), mask=torch.ones(1, 3, dtype=torch.bool))
    policy.select(torch.randn(2, 3, 32))
    assert spy.select == 0
    policy.select(torch.randn(1, K - 1, 32))
    assert spy.select == 1


def test_non_finite_rows_fall_back_and_raise_the_batched_error() -> None:
    for policy in (banditlib.LinUCB(3, arms=2, seed=0), banditlib.Random(3, arms=2, seed=0)):
        spy = Spy(policy)
        before = {k: v.clone() for k, v in policy.state_dict().items()}
        with pytest.raises(InvalidInputError, match="`contexts` must be finite"):
            policy.select(np.array([[1.0, np.inf, 0.0]]))
        with pytest.raises(InvalidInputError, match="`rewards` must be finite"):
            policy.update(np.ones((1, 3)), np.array([[0]]), np.array([[np.nan]]))
        with pytest.raises(InvalidInputError, match="`contexts` must be finite"):
            policy.update(np.array([[np.nan, 0.0, 0.0]]), np.array([[0]]), np.array([[1.0]]))
        # tried, declined, handed over (Random, whose scores ignore the contexts, declines before scoring)
        assert spy.select == (1 if policy._scores_use_contexts else 0) and spy.learn == 2
        assert all(torch.equal(v, policy.state_dict()[k]) for k, v in before.items())


def test_ties_on_the_fast_path_match_the_batched_path() -> None:
    """An untrained policy ties every arm: both paths draw the same tie-breaking keys."""
    fast, slow = banditlib.Greedy(2, 6, seed=4), banditlib.Greedy(2, 6, seed=4)
    slow._fast_path = False
    for k in (1, 3, 6):
        for _ in range(5):
            assert torch.equal(fast.select(np.ones((1, 2)), k=k).actions, slow.select(np.ones((1, 2)), k=k).actions)
