"""The common checks of banditlib.testing.checks, over every registered policy and both arm models."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from banditlib.policies.base import Policy, registered_policies
from banditlib.testing.checks import ALL_CHECKS, NUM_ARMS


def _maker(cls: type[Policy]) -> Any:
    def make(*, dim: int, arms: int | None, seed: int, dtype: torch.dtype) -> Policy:
        return cls(dim, arms, seed=seed, dtype=dtype)

    return make


POLICIES = sorted(registered_policies().items())


def test_every_public_policy_is_registered() -> None:
    import banditlib

    exported = {name for name in banditlib.__all__ if isinstance(getattr(banditlib, name), type)}
    exported = {n for n in exported if issubclass(getattr(banditlib, n), Policy) and n != "Policy"}
    assert exported <= set(registered_policies()), exported - set(registered_policies())
    assert {"LinUCB", "LinTS", "Greedy", "EpsilonGreedy", "Random"} <= set(registered_policies())


@pytest.mark.parametrize("arms", [None, NUM_ARMS], ids=["shared", "disjoint"])
@pytest.mark.parametrize("check", ALL_CHECKS, ids=lambda c: c.__name__.removeprefix("check_"))
@pytest.mark.parametrize("name,cls", POLICIES, ids=[n for n, _ in POLICIES])
def test_common(name: str, cls: type[Policy], check: Any, arms: int | None) -> None:
    check(_maker(cls), arms)
