"""The run loop: regret by hand on a tiny case, determinism across processes, what each run records."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from banditlib.envs.base import Array, BanditEnv
from banditlib.experiments.runner import Task, play, pseudo_regret, run_task, run_tasks
from banditlib.experiments.specs import parse_env, parse_policy


class _Tiny(BanditEnv):
    """Three arms, no noise; round t offers means MEANS[t % 3] and features (K, 1) equal to the means."""

    MEANS = np.array([[0.0, 1.0, 0.5], [0.2, 0.2, 0.9], [0.7, 0.1, 0.3]])

    def __init__(self) -> None:
        super().__init__(num_arms=3, obs_shape=(3, 1))

    def _draw_round(self, rng: np.random.Generator) -> tuple[Array, Array]:
        mu = self.MEANS[self.round % 3].copy()
        return mu[:, None].copy(), mu

    def _noise_std(self, action: int) -> float:
        return 0.0


class _Scripted:
    """Plays a fixed list of arms; records what it was told (duck-types the Policy API)."""

    def __init__(self, arms: list[int]) -> None:
        self.arms, self.seen = list(arms), []

    def select(self, contexts: Any) -> Any:
        class Sel:
            actions = torch.tensor([[self.arms[len(self.seen)]]])

        return Sel()

    def update(self, contexts: Any, actions: Any, rewards: Any) -> None:
        self.seen.append((contexts.shape, int(actions[0, 0]), float(rewards[0, 0])))


def test_pseudo_regret_by_hand() -> None:
    expected = [[1.0, 0.0], [0.2, 0.5], [0.3, 0.3], [0.0, 2.0]]
    np.testing.assert_allclose(pseudo_regret(expected, [1, 1, 0, 0]), [1.0, 1.0, 1.0, 3.0])


def test_play_records_the_hand_computed_regret() -> None:
    # Rounds: means (0, 1, .5), (.2, .2, .9), (.7, .1, .3), (0, 1, .5); arms 2, 2, 1, 1.
    # Per-round regret: 1 - .5 = .5, .9 - .9 = 0, .7 - .1 = .6, 1 - 1 = 0 -> cumulative .5, .5, 1.1, 1.1.
    policy = _Scripted([2, 2, 1, 1])
    traj = play(_Tiny(), policy, 4, seed=0, record_features=True)
    np.testing.assert_allclose(np.cumsum(traj.regret), [0.5, 0.5, 1.1, 1.1])
    np.testing.assert_array_equal(traj.actions, [2, 2, 1, 1])
    np.testing.assert_allclose(traj.rewards, [0.5, 0.9, 0.1, 1.0])
    assert traj.features is not None
    np.testing.assert_allclose(traj.features[:, 0], traj.rewards)  # the played arm's own feature vector
    assert [s[0] for s in policy.seen] == [(1, 3, 1)] * 4  # one row (B = 1) of K arm features per round
    assert [s[2] for s in policy.seen] == pytest.approx([0.5, 0.9, 0.1, 1.0])


def _tasks(horizon: int = 60) -> list[Task]:
    envs = [parse_env("Linear-v0:d=3,K=4"), parse_env("Wheel-v0:delta=0.5")]
    policies = [parse_policy("linucb"), parse_policy("lints:scale=0.5"), parse_policy("epsilongreedy")]
    return [Task(e, p, seed=s, horizon=horizon) for e in envs for p in policies for s in (0, 1)]


def test_runs_are_deterministic_and_independent_of_jobs() -> None:
    tasks = _tasks()
    serial = run_tasks(tasks, jobs=1, progress=False)
    again = run_tasks(tasks[::-1], jobs=1, progress=False)[::-1]
    parallel = run_tasks(tasks, jobs=2, progress=False)
    assert [(r.env, r.policy, r.seed) for r in serial] == [(t.env.label, t.policy.label, t.seed) for t in tasks]
    for a, b, c in zip(serial, again, parallel, strict=True):
        np.testing.assert_array_equal(a.regret, b.regret)
        np.testing.assert_array_equal(a.regret, c.regret)
        assert a.theory == c.theory
    # Different seeds are different runs.
    assert not np.array_equal(serial[0].regret, serial[1].regret)


@pytest.mark.slow
def test_spawned_workers_give_the_same_results() -> None:
    # The start method used off Linux; workers re-import banditlib, so this costs a few seconds.
    tasks = _tasks(horizon=30)[:2]
    serial = run_tasks(tasks, jobs=1, progress=False)
    spawned = run_tasks(tasks, jobs=2, progress=False, method="spawn")
    for a, b in zip(serial, spawned, strict=True):
        np.testing.assert_array_equal(a.regret, b.regret)


def test_theory_is_recorded_only_where_a_linear_model_exists() -> None:
    linear = run_task(Task(parse_env("Linear-v0:d=3,K=4"), parse_policy("linucb"), seed=0, horizon=50))
    assert linear.theory is not None and linear.theory["oful_applies"]
    assert linear.theory["potential_holds"] and 0 <= linear.theory["coverage"] <= 1
    assert linear.regret.shape == (50,) and np.all(np.diff(linear.regret) >= -1e-12)
    forget = run_task(Task(parse_env("Linear-v0:d=3,K=4"), parse_policy("linucb:forget=0.9"), seed=0, horizon=20))
    assert forget.theory is not None and not forget.theory["oful_applies"]
    for env in ("Drifting-v0", "Quadratic-v0:d=3", "Wheel-v0", "Classification-v0:dataset=iris,encoding=shared"):
        assert run_task(Task(parse_env(env), parse_policy("random"), seed=0, horizon=10)).theory is None


def test_disjoint_envs_get_disjoint_policies() -> None:
    result = run_task(
        Task(parse_env("Classification-v0:dataset=iris,encoding=shared"), parse_policy("linucb"), seed=0, horizon=300)
    )
    blocks = run_task(Task(parse_env("Classification-v0:dataset=iris"), parse_policy("linucb"), seed=0, horizon=300))
    # Same rounds; a disjoint linear model and the block-encoded shared one are the same model.
    assert result.regret[-1] < 100  # Random makes about 300 * 2/3 = 200 mistakes
    assert abs(result.regret[-1] - blocks.regret[-1]) <= 10  # equal up to float32 rounding (equal here)


def test_linucb_beats_random_on_linear() -> None:
    env = parse_env("Linear-v0")
    final = {
        name: np.mean([run_task(Task(env, parse_policy(name), seed=s, horizon=600)).regret[-1] for s in (0, 1)])
        for name in ("linucb", "random")
    }
    assert final["linucb"] < 0.3 * final["random"]
