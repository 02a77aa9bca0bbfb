"""Random select/update/save/load sequences against the from-scratch reference."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

import banditlib
from banditlib.errors import InvalidInputError
from banditlib.testing.references import LinearReference

D, K = 3, 4


class PolicyMachine(RuleBasedStateMachine):
    """LinUCB (float64) driven by random calls; the reference sees the same data."""

    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp())
        self.rng = np.random.default_rng(0)

    @initialize(arms=st.sampled_from([None, K]), forget=st.sampled_from([1.0, 0.9]), fast=st.booleans())
    def build(self, arms: int | None, forget: float, fast: bool) -> None:
        self.arms = arms
        self.policy = banditlib.LinUCB(D, arms, alpha=0.5, forget=forget, refresh_every=5, dtype=torch.float64, seed=1)
        self.policy._fast_path = fast
        self.ref = LinearReference(D, arms, forget=forget)

    def _contexts(self, batch: int) -> np.ndarray:
        return self.rng.normal(size=(batch, D) if self.arms is not None else (batch, K, D))

    @rule(batch=st.integers(1, 4), k=st.integers(1, 2))
    def select(self, batch: int, k: int) -> None:
        x = self._contexts(batch)
        before = self.policy.learned_state()
        sel = self.policy.select(x, k=k)
        mean, bonus = self.ref.ucb(x, 0.5)
        np.testing.assert_allclose(sel.mean.numpy(), mean, rtol=1e-7, atol=1e-9)
        np.testing.assert_allclose(sel.bonus.numpy(), bonus, rtol=1e-7, atol=1e-9)
        assert all(torch.equal(v, self.policy.learned_state()[n]) for n, v in before.items())

    @rule(batch=st.integers(1, 6), k=st.integers(1, 3))
    def update(self, batch: int, k: int) -> None:
        x = self._contexts(batch)
        actions = np.stack([self.rng.permutation(K)[:k] for _ in range(batch)])
        r = self.rng.normal(size=(batch, k))
        self.policy.update(x, actions, r)
        self.ref.update(x, actions, r)

    @precondition(lambda self: self.arms is None)
    @rule(n=st.integers(1, 5))
    def update_features(self, n: int) -> None:
        x, r = self.rng.normal(size=(n, D)), self.rng.normal(size=n)
        self.policy.update_features(x, r)
        self.ref.update_features(x, r)

    @rule()
    def bad_update(self) -> None:
        state = {n: v.clone() for n, v in self.policy.state_dict().items()}
        with pytest.raises(InvalidInputError):
            self.policy.update(self._contexts(2), np.array([[0], [K]]), np.ones((2, 1)))
        assert all(torch.equal(v, self.policy.state_dict()[n]) for n, v in state.items())

    @rule()
    def save_and_load(self) -> None:
        path = self.tmp / "p.safetensors"
        self.policy.save(path)
        fast = self.policy._fast_path
        self.policy = banditlib.LinUCB.load(path)
        self.policy._fast_path = fast

    @invariant()
    def statistics_match_reference(self) -> None:
        if not hasattr(self, "ref"):
            return
        _, _, A_inv, theta = self.ref.stats()
        np.testing.assert_allclose(self.policy.theta_.numpy(), theta, rtol=1e-7, atol=1e-9)
        np.testing.assert_allclose(self.policy.A_inv_.numpy(), A_inv, rtol=1e-7, atol=1e-9)


PolicyMachine.TestCase.settings = settings(max_examples=30, stateful_step_count=20, deadline=None)
TestPolicyMachine = PolicyMachine.TestCase
