"""Several seeds of one (environment, policy) pair played in lockstep as one batched computation.

`play_seeds` is `banditlib.experiments.runner.play` for ``S`` seeds at once: seed ``s`` resets its own
environment with ``reset(seed=s)`` and builds its own policy, exactly as its separate run would; each round
every seed's policy decides through one `banditlib.policies._seeds.SeedBatch` (the policies'
state with a leading seed dimension), each environment steps, and every policy learns. The trajectories,
and the policies' final states, are those of the separate runs bit for bit (tests hold them to it); what
changes is the cost, since one tensor operation now serves every seed.

Policies without a batched form, and a batch that stops (`SeedBatchFallback`: some seed's own run would
raise), are left to the caller, which runs the seeds separately.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from banditlib.experiments.runner import Trajectory
from banditlib.policies._seeds import SeedBatchFallback, seed_batch

__all__ = ["SeedBatchFallback", "play_seeds"]


def play_seeds(
    envs: Sequence[Any],
    policies: Sequence[Any],
    horizon: int,
    seeds: Sequence[int],
    *,
    record_features: bool = False,
) -> list[Trajectory]:
    """Play ``horizon`` rounds of ``policies[s]`` on ``envs[s]`` after ``envs[s].reset(seed=seeds[s])``, for
    every ``s`` at once.

    Args:
        envs: ``S`` bandit environments of one kind (the `banditlib.envs` contract).
        policies: ``S`` policies that can form a `SeedBatch` (see `banditlib.policies._seeds.unsupported`);
            they are left in the state their separate runs would end in.
        horizon: rounds ``T``.
        seeds: the ``S`` reset seeds.
        record_features: keep the played feature vector of every round (``(K, d)`` observations).

    Returns:
        One `Trajectory` per seed, equal to ``play(envs[s], policies[s], horizon, seeds[s])``; each one's
        ``seconds`` is the batch's wall time divided by ``S``.

    Raises:
        SeedBatchFallback: the policies cannot batch, or a seed's own run would raise; nothing is written back
            to the policies then, and the environments must be reset before reuse.
    """
    S = len(envs)
    if not (S == len(policies) == len(seeds)) or S == 0:
        raise ValueError(f"play_seeds(): need as many environments, policies and seeds (>= 1); got {S}, "
                         f"{len(policies)}, {len(seeds)}.")  # fmt: skip
    batch = seed_batch(policies)
    dtype = batch.dtype
    obs = np.stack([env.reset(seed=int(seed))[0] for env, seed in zip(envs, seeds, strict=True)])
    actions = np.empty((S, horizon), dtype=np.int64)
    rewards = np.empty((S, horizon))
    regret = np.empty((S, horizon))
    features = np.empty((S, horizon, obs.shape[-1])) if record_features and obs.ndim == 3 else None
    rows = np.arange(S)
    step_rewards = np.empty(S)
    start = time.perf_counter()
    for t in range(horizon):
        if not np.isfinite(obs).all():
            raise SeedBatchFallback("an observation is not finite")
        x = torch.from_numpy(obs).to(dtype)
        a = batch.select(x)
        nexts = []
        for s, env in enumerate(envs):
            next_obs, reward, _, _, info = env.step(int(a[s]))
            step_rewards[s] = float(reward)
            regret[s, t] = info["regret"]
            nexts.append(next_obs)
        if not np.isfinite(step_rewards).all():
            raise SeedBatchFallback("a reward is not finite")
        batch.update(x, a, torch.from_numpy(step_rewards).to(dtype))
        actions[:, t], rewards[:, t] = a, step_rewards
        if features is not None:
            features[:, t] = obs[rows, a]
        obs = np.stack(nexts)
    seconds = (time.perf_counter() - start) / S
    batch.write_back()
    return [
        Trajectory(actions[s], rewards[s], regret[s], None if features is None else features[s], seconds)
        for s in range(S)
    ]
