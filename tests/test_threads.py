"""Policies shared between threads: calls are serialised by a per-policy lock, nothing is lost or torn."""

from __future__ import annotations

import threading

import numpy as np
import torch

import banditlib


def _hammer(policy: banditlib.Policy, contexts: np.ndarray, log: list[tuple[np.ndarray, int, float]]) -> None:
    for x in contexts:
        sel = policy.select(x[None])
        a = int(sel.actions[0, 0])
        policy.update(x[None], sel.actions, np.array([[0.5 * a]]))
        log.append((x[a], a, 0.5 * a))


def test_two_threads_on_one_linucb_keep_exact_statistics() -> None:
    """The reported failure: A_ several percent off the observations while n_updates_ looked right."""
    policy = banditlib.LinUCB(dim=5, alpha=0.5, dtype=torch.float64, seed=0)
    g = np.random.default_rng(0)
    data = [g.normal(size=(400, 3, 5)) for _ in range(2)]
    logs: list[list[tuple[np.ndarray, int, float]]] = [[], []]
    threads = [threading.Thread(target=_hammer, args=(policy, data[i], logs[i])) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    obs = logs[0] + logs[1]
    A = np.eye(5) + sum(np.outer(x, x) for x, _, _ in obs)
    b = sum(r * x for x, _, r in obs)
    assert int(policy.n_updates_[0]) == 800
    assert np.allclose(policy.A_[0].numpy(), A, rtol=1e-10, atol=1e-8)
    assert np.allclose(policy.b_[0].numpy(), b, rtol=1e-10, atol=1e-8)
    assert np.allclose(policy.A_inv_[0].numpy(), np.linalg.inv(A), rtol=1e-6, atol=1e-9)


def test_two_threads_on_one_neural_policy() -> None:
    """The reported failure: NeuralUCB died with a raw autograd error."""
    policy = banditlib.NeuralUCB(dim=4, hidden=(8,), seed=0)
    g = np.random.default_rng(1)
    errors: list[BaseException] = []

    def run(data: np.ndarray) -> None:
        try:
            _hammer(policy, data, [])
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(g.normal(size=(60, 3, 4)),)) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and int(policy.n_seen_) == 120
