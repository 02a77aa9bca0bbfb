"""Seeds as one computation: a SeedBatch gives every seed the decisions and the final state of its own policy, bit
for bit, and hands back to separate runs whatever it cannot do exactly."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

import banditlib
from banditlib.envs.base import Array, BanditEnv
from banditlib.errors import NumericalError
from banditlib.experiments.lockstep import play_seeds
from banditlib.experiments.runner import SeedGroup, Task, _units, play, run_group, run_task, run_tasks
from banditlib.experiments.specs import arm_model, parse_env, parse_policy
from banditlib.experiments.suite import batching_note
from banditlib.policies._exact import Exact
from banditlib.policies._seeds import SeedBatchFallback, seed_batch, unsupported

CASES = [
    # shared-parameter model, several training rounds per run
    ("Quadratic-v0:d=5,K=4", "neuralucb:hidden=(16,),train_every=5,train_steps=5", 80),
    # disjoint arms (block encoding), two hidden layers, Thompson sampling's per-seed draws
    ("Wheel-v0", "neuralts:hidden=(8,8),train_every=3,train_steps=4,batch_size=5", 70),
    # float64, weight decay, a history ring that wraps, epsilon-greedy's exploration draws
    ("Linear-v0:d=3,K=5", "neuralepsilongreedy:hidden=(6,),epsilon=0.3,loss='weight_decay',history=20,dtype='float64'",
     90),
    # the defaults of the NeuralUCB-paper setting (width 100, 50 Adam steps every 10 rounds)
    ("Quadratic-v0", "neuralucb", 40),
    # the neural-linear estimator: ridge statistics over the learned features, refit after every training round
    ("Quadratic-v0:d=5,K=4", "neurallinucb:hidden=(16,),train_every=5,train_steps=5", 80),
    ("Wheel-v0", "neurallints:hidden=(8,8),train_every=3,train_steps=4,batch_size=5", 70),
    ("Linear-v0:d=3,K=5", "neurallints:hidden=(6,),history=20,dtype='float64',loss='weight_decay'", 90),
    ("Quadratic-v0", "neurallinucb", 40),
]  # fmt: skip


def _separate(env_text: str, policy_text: str, horizon: int, seeds: list[int]) -> list[tuple[Any, Any]]:
    env_spec, policy_spec = parse_env(env_text), parse_policy(policy_text)
    out = []
    for s in seeds:
        env = env_spec.make()
        dim, arms = arm_model(env)
        policy = policy_spec.build(dim, arms, s)
        out.append((play(env, policy, horizon, s, record_features=True), policy))
    return out


def _assert_same_state(a: Any, b: Any) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert sa[k].dtype == sb[k].dtype and torch.equal(sa[k], sb[k]), k


@pytest.mark.parametrize(("env_text", "policy_text", "horizon"), CASES)
def test_batched_seeds_are_the_separate_runs_bit_for_bit(env_text: str, policy_text: str, horizon: int) -> None:
    seeds = [3, 0, 7]
    separate = _separate(env_text, policy_text, horizon, seeds)
    env_spec, policy_spec = parse_env(env_text), parse_policy(policy_text)
    envs = [env_spec.make() for _ in seeds]
    dim, arms = arm_model(envs[0])
    policies = [policy_spec.build(dim, arms, s) for s in seeds]
    batched = play_seeds(envs, policies, horizon, seeds, record_features=True)
    for (traj, policy), got, got_policy in zip(separate, batched, policies, strict=True):
        np.testing.assert_array_equal(got.actions, traj.actions)
        np.testing.assert_array_equal(got.rewards, traj.rewards)
        np.testing.assert_array_equal(got.regret, traj.regret)
        if traj.features is not None:
            np.testing.assert_array_equal(got.features, traj.features)
        assert int(policy.train_rounds) > 0
        _assert_same_state(got_policy, policy)
    # after the batch each policy goes on as its separate twin does
    x = torch.from_numpy(envs[0].reset(seed=99)[0][None])
    for (_, policy), got_policy in zip(separate, policies, strict=True):
        assert torch.equal(got_policy.select(x).scores, policy.select(x).scores)


@pytest.mark.parametrize("tolerance", [0.0, 1e-6])
def test_neural_linear_seeds_whose_drift_check_fails_are_refreshed_as_alone(
    tolerance: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A drift tolerance of 0 fails every seed's check on every update, 1e-6 some of them: the batch refreshes exactly
    # those seeds, one by one, as each policy's own grown_inverse does.
    from banditlib import linalg

    monkeypatch.setattr(linalg, "drift_tolerance", lambda dtype: tolerance)
    test_batched_seeds_are_the_separate_runs_bit_for_bit(
        "Quadratic-v0:d=5,K=4", "neurallinucb:hidden=(16,),train_every=7,train_steps=3", 40
    )


def test_exact_ties_are_broken_by_each_seeds_generator() -> None:
    # Every arm carries the same features, so every round is an exact three-way tie that the tie keys decide.
    seeds = list(range(6))
    policies = [banditlib.NeuralUCB(dim=3, hidden=(8,), train_every=2, train_steps=2, seed=s) for s in seeds]
    twins = [banditlib.NeuralUCB(dim=3, hidden=(8,), train_every=2, train_steps=2, seed=s) for s in seeds]
    batch = seed_batch(policies)
    gen = torch.Generator().manual_seed(1)
    chosen = set()
    for _ in range(12):
        x = torch.rand(len(seeds), 3, 3, generator=gen)
        x[:, 1:] = x[:, :1]
        actions = batch.select(x)
        rewards = torch.rand(len(seeds), generator=gen)
        for s, twin in enumerate(twins):
            sel = twin.select(x[s : s + 1])
            assert int(sel.actions) == int(actions[s])
            twin.update(x[s : s + 1], sel.actions, rewards[s : s + 1, None])
        chosen.update(actions.tolist())
        batch.update(x, actions, rewards)
    assert chosen == {0, 1, 2}  # the keys decided, not the first index
    batch.write_back()
    for got, twin in zip(policies, twins, strict=True):
        _assert_same_state(got, twin)


class _Subclass(banditlib.NeuralUCB):
    pass


@pytest.mark.parametrize(
    ("policies", "reason"),
    [
        ([_Subclass(dim=2, seed=0)], "no seed-batched form"),
        ([banditlib.LinUCB(dim=2, seed=0)], "no seed-batched form"),
        ([banditlib.NeuralUCB(dim=2, z="last_layer", seed=0)], "z='diag'"),
        ([banditlib.NeuralUCB(dim=2, activation="tanh", seed=0)], "relu"),
        ([banditlib.NeuralUCB(dim=2, hidden=(4, 1), seed=0)], "widths of 1"),
        ([banditlib.NeuralUCB(dim=2, seed=0), banditlib.NeuralUCB(dim=2, lr=0.1, seed=1)], "configuration"),
        ([banditlib.NeuralUCB(dim=2, seed=0), banditlib.NeuralTS(dim=2, seed=1)], "class"),
        ([banditlib.NeuralUCB(dim=2, seed=0), banditlib.NeuralUCB(dim=2, dtype=torch.float64, seed=1)], "dtype"),
        ([banditlib.NeuralUCB(dim=2, backend="torch", seed=0), banditlib.NeuralUCB(dim=2, backend="triton", seed=1)],
         "configuration"),
        ([], "no policies"),
    ],
)  # fmt: skip
def test_what_cannot_batch_is_refused_with_its_reason(policies: list[Any], reason: str) -> None:
    assert reason in (unsupported(policies) or "")
    with pytest.raises(SeedBatchFallback, match=reason.replace("(", r"\(").replace(")", r"\)")):
        seed_batch(policies)


def test_policies_at_different_points_do_not_batch() -> None:
    a, b = banditlib.NeuralUCB(dim=2, seed=0), banditlib.NeuralUCB(dim=2, seed=1)
    a.select(torch.zeros(1, 3, 2))
    assert "rng_counter" in (unsupported([a, b]) or "")


def test_exact_loops_over_the_seeds_when_the_batched_form_rounds_differently() -> None:
    exact = Exact(3)
    a = torch.randn(3, 4, 5)
    b = torch.randn(3, 5, 6)
    single = torch.mm
    off = lambda x, y: torch.bmm(x, y) + 1e-3  # noqa: E731  a candidate that is not the single operation
    got = exact("mm", single, off, a, b)
    assert exact.verdict[next(iter(exact.verdict))] is False
    for s in range(3):
        assert torch.equal(got[s], torch.mm(a[s], b[s]))
    assert torch.equal(exact("mm", single, torch.bmm, a, b), torch.bmm(a, b))  # a new name: a new verdict


class _Huge(BanditEnv):
    """Rewards of 1e30: training overflows Adam's second moment in float32, so a separate run raises."""

    def __init__(self) -> None:
        super().__init__(num_arms=2, obs_shape=(2, 2))

    def _draw_round(self, rng: np.random.Generator) -> tuple[Array, Array]:
        return rng.uniform(-1, 1, size=(2, 2)), np.array([1e30, -1e30])

    def _noise_std(self, action: int) -> float:
        return 0.0


@pytest.mark.parametrize(
    "policy_text", ["neuralucb:hidden=(4,),train_every=2", "neurallinucb:hidden=(4,),train_every=2"]
)
def test_a_batch_that_cannot_go_on_leaves_the_error_to_the_separate_runs(policy_text: str) -> None:
    import gymnasium as gym

    gym.register("banditlib-test/Huge-v0", entry_point=_Huge)
    try:
        task = Task(parse_env("banditlib-test/Huge-v0"), parse_policy(policy_text), 0, 20)
        with pytest.raises(NumericalError):
            run_task(task)
        envs = [task.env.make() for _ in range(2)]
        policies = [task.policy.build(2, None, s) for s in range(2)]
        with pytest.raises(SeedBatchFallback):
            play_seeds(envs, policies, 20, [0, 1])
        with pytest.raises(NumericalError):  # run_group falls back to the separate runs, which raise
            run_group(SeedGroup((task, Task(task.env, task.policy, 1, 20))))
    finally:
        gym.registry.pop("banditlib-test/Huge-v0")


def test_run_tasks_gives_the_same_results_with_and_without_batching() -> None:
    env = parse_env("Linear-v0:d=3,K=4")
    tasks = [
        Task(env, parse_policy(p), seed=s, horizon=40)
        for p in ("neuralucb:hidden=(8,),train_every=4,train_steps=3", "linucb")
        for s in range(3)
    ]
    plain = run_tasks(tasks, jobs=1, progress=False, batch_seeds=False)
    batched = run_tasks(tasks, jobs=1, progress=False)
    split = run_tasks(tasks, jobs=2, progress=False)
    for a, b, c in zip(plain, batched, split, strict=True):
        assert (a.env, a.policy, a.seed) == (b.env, b.policy, b.seed) == (c.env, c.policy, c.seed)
        np.testing.assert_array_equal(a.regret, b.regret)
        np.testing.assert_array_equal(a.regret, c.regret)
        assert a.theory == b.theory == c.theory  # the theory checks see the same played features
        assert not a.batched and b.batched == c.batched == (b.policy_class == "NeuralUCB")
    note = batching_note(batched)
    assert "1 of 2" in note and "NeuralUCB" in note and "LinUCB" not in note
    assert "separate" in batching_note(plain, batch_seeds=False)


def test_groups_are_split_to_keep_the_workers_busy() -> None:
    env, policy = parse_env("Linear-v0:d=3,K=4"), parse_policy("neuralucb")
    tasks = [Task(env, policy, seed=s, horizon=5) for s in range(5)]
    units = _units(tasks, jobs=2)
    assert [idx for idx, _ in units] == [[0, 2, 4], [1, 3]] and all(isinstance(u, SeedGroup) for _, u in units)
    assert [type(u) for _, u in _units(tasks, jobs=3)] == [SeedGroup, SeedGroup, Task]  # a part of one seed: a task
    assert [idx for idx, _ in _units(tasks, jobs=1)] == [[0, 1, 2, 3, 4]]
    tanh = [Task(env, parse_policy("neuralucb:activation='tanh'"), seed=s, horizon=5) for s in range(3)]
    assert [idx for idx, _ in _units(tanh, jobs=2)] == [[0], [1], [2]]  # no batched form: one task each
    with pytest.raises(ValueError, match="seed only"):
        run_group(SeedGroup((tasks[0], Task(env, parse_policy("neuralts"), seed=1, horizon=5))))


def test_pad_puts_every_seeds_block_at_a_64_byte_boundary() -> None:
    from banditlib.policies._exact import pad

    t = torch.arange(3 * 5 * 7, dtype=torch.float32).view(3, 5, 7)  # 140 bytes per seed
    padded = pad(t)
    assert torch.equal(padded, t) and padded.stride(0) == 48  # 35 floats rounded up to 48 (192 bytes)
    assert all(padded[s].data_ptr() % 64 == 0 for s in range(3))
    aligned = torch.zeros(2, 16, dtype=torch.float32)  # 64 bytes per seed already
    assert pad(aligned) is aligned
    # a seed's slice handed to the single operation keeps its offset from its seed's start, in fresh storage
    exact = Exact(3)
    view = padded[:, 1:, 2:]
    for s in range(3):
        alone = exact._seed(view, s)
        assert torch.equal(alone, view[s]) and alone.stride() == view[s].stride()
        assert (alone.data_ptr() - view[0].data_ptr()) % 64 == 0


def test_a_phase_that_raises_records_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    batch = seed_batch([banditlib.NeuralUCB(dim=3, hidden=(4,), seed=s) for s in range(2)])
    twin = seed_batch([banditlib.NeuralUCB(dim=3, hidden=(4,), seed=s) for s in range(2)])
    x = torch.rand(2, 3, 3, generator=torch.Generator().manual_seed(0))
    real_pick, calls = batch.exact.pick, []

    def failing_pick(*args: Any) -> Any:
        calls.append(args[0])
        if len(calls) == 3:
            raise RuntimeError("interrupted")
        return real_pick(*args)

    monkeypatch.setattr(batch.exact, "pick", failing_pick)
    with pytest.raises(RuntimeError, match="interrupted"):
        batch.select(x)
    assert batch._phases == {} and batch._sites is None
    monkeypatch.setattr(batch.exact, "pick", real_pick)
    assert batch.rng_counter == 0  # nothing was committed
    np.testing.assert_array_equal(batch.select(x), twin.select(x))
    assert [k[0] for k in batch._phases] == ["select"]
