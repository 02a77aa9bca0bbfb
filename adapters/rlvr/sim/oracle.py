"""Counterfactual one-step oracles: what the best selection of a round would have gained.

The true one-step gain of training on rows ``S`` (weights ``w``) at a round is
``g(S) = Acc(theta') - Acc(theta)``, where ``theta'`` is one PPO step from the current parameters and
optimiser state on ``S`` (a copy: the run itself is not disturbed) and ``Acc`` is the exact expected accuracy
([`expected_accuracy`][banditlib.adapters.rlvr.sim.expected_accuracy]) over a fixed sample of training prompts (at most
64 per length, each length weighted equally: ``World.oracle_ids``): the
noise-free version of the verifier reward a scheduler tries to raise, with no sampling noise.

The oracle of a round is the best ``g`` over a finite family of candidate selections, evaluated from the
same parameters. It is a cheap, stated approximation of "the best selection": the family holds random
selections and the top selections by every single feature (both directions), so a scheduler whose scores
beat every one-feature rule and chance has regret near zero; a myopic oracle (one step ahead) is what the
gain reward ``r_t`` of the scheduler also measures.

References:
    Lu et al., "Contextual Rollout Bandits for Reinforcement Learning with Verifiable Rewards" (2026).
"""

from __future__ import annotations

from typing import Any

import torch

from .. import RolloutBatch, Schedule
from .loop import Simulator, length_balanced, training_rows
from .train import clone_state, ppo_step
from .world import expected_accuracy

__all__ = ["FEATURES", "RegretHook", "buffer_oracle", "feature", "one_step_gain", "top_per_group"]

FEATURES = ("reward", "advantage", "abs_advantage", "entropy", "length", "clip_ratio", "age")
"""The per-row features the oracles' selection families rank by (top and bottom of each, see
[`feature`][banditlib.adapters.rlvr.sim.oracle.feature])."""


def feature(batch: RolloutBatch, name: str, now: int) -> torch.Tensor:
    """``(N,)`` float32 value of feature ``name`` of every row, as the oracles rank rows by it.

    Args:
        batch: the rows.
        name: one of [`FEATURES`][banditlib.adapters.rlvr.sim.oracle.FEATURES]: ``"abs_advantage"`` is
            ``|advantage|``, ``"age"`` is ``now - round``, the others are the batch's field of that name.
        now: the current round (for ``"age"``).

    Returns:
        ``(N,)`` float32 values (``"abs_advantage"``: of ``advantage``'s dtype, float32 in a
        [`RolloutBatch`][banditlib.adapters.rlvr.RolloutBatch]).

    Raises:
        AttributeError: ``name`` is neither a feature nor a field of ``batch``.

    Examples:
        >>> b = RolloutBatch.from_tensors(group=[0, 0], reward=[1.0, 0.0], advantage=[0.5, -0.5],
        ...                               entropy=[0.25, 0.5], length=[3, 5], round=2)
        >>> feature(b, "abs_advantage", now=4).tolist(), feature(b, "age", now=4).tolist()
        ([0.5, 0.5], [2.0, 2.0])
        >>> feature(b, "length", now=4)
        tensor([3., 5.])
    """
    if name == "abs_advantage":
        return batch.advantage.abs()
    if name == "age":
        return (now - batch.round).float()
    return getattr(batch, name).float()


def one_step_gain(sim: Simulator, rows: RolloutBatch, weight: torch.Tensor, base: float | None = None) -> float:
    """``g(S)``: accuracy over ``World.oracle_ids`` after one PPO step on ``rows`` minus before.

    The step is taken on copies of the simulator's parameters and optimiser state
    ([`clone_state`][banditlib.adapters.rlvr.sim.train.clone_state]): ``sim`` is not changed. Accuracy is the
    exact expected accuracy, each prompt length weighted equally.

    Args:
        sim: the run, at the round to evaluate.
        rows: the candidate selection, rows built by
            [`Simulator.generate`][banditlib.adapters.rlvr.sim.loop.Simulator.generate] (they need their
            ``logprobs`` and ``payload``).
        weight: ``(n,)`` float32 loss weight of each row.
        base: the accuracy before the step, when already known (several candidates of one round share it);
            ``None`` computes it.

    Returns:
        The gain, a float (negative when the step hurts).

    Raises:
        InvalidInputError: ``rows.logprobs`` is None.

    Examples:
        >>> from banditlib.adapters.rlvr.sim import SimConfig
        >>> sim = Simulator(SimConfig(prompts_per_round=4, group_size=4))
        >>> batch, _ = sim.generate()
        >>> gain = one_step_gain(sim, batch, torch.ones(len(batch)))
        >>> isinstance(gain, float), -1.0 <= gain <= 1.0, sim.round  # the run itself has not moved
        (True, True, 0)
    """
    ids = sim.world.oracle_ids
    if base is None:
        base = length_balanced(sim.world, ids, expected_accuracy(sim.params, sim.world, ids))
    params, opt = clone_state(sim.params, sim.opt)
    ppo_step(params, opt, sim.world, training_rows(rows), weight)
    return length_balanced(sim.world, ids, expected_accuracy(params, sim.world, ids)) - base


def top_per_group(group: torch.Tensor, key: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Indices of the ``counts[g]`` rows of largest ``key`` in each group ``g`` (ties in row order).

    Args:
        group: ``(N,)`` int64 group index in ``0..n_groups-1``.
        key: ``(N,)`` float sort key.
        counts: ``(n_groups,)`` int64 rows to keep per group.

    Returns:
        ``(sum(counts),)`` int64 sorted row indices.

    Examples:
        >>> top_per_group(torch.tensor([0, 0, 1, 1]), torch.tensor([1.0, 2.0, 5.0, 3.0]), torch.tensor([1, 2]))
        tensor([1, 2, 3])
    """
    order = torch.argsort(-key, stable=True)
    order = order[torch.argsort(group[order], stable=True)]
    sizes = torch.bincount(group, minlength=counts.numel())
    start = torch.cumsum(sizes, 0) - sizes
    rank = torch.empty_like(order)
    rank[order] = torch.arange(order.numel()) - start[group[order]]
    return torch.nonzero(rank < counts[group]).squeeze(1)


def _fresh_family(batch: RolloutBatch, counts: torch.Tensor, gen: torch.Generator, n_random: int) -> dict[str, Any]:
    """Candidate fresh selections keeping ``counts[g]`` rollouts of each group ``g``."""
    _, group = torch.unique(batch.group, return_inverse=True)
    now = int(batch.round[0])
    family = {f"random-{i}": top_per_group(group, torch.rand(len(batch), generator=gen), counts)
              for i in range(n_random)}  # fmt: skip
    for name in FEATURES[:-1]:
        x = feature(batch, name, now)
        family[f"{name}-high"] = top_per_group(group, x, counts)
        family[f"{name}-low"] = top_per_group(group, -x, counts)
    # PODS max-variance for binary rewards: the best half and the worst half of each group's kept rows.
    hi = top_per_group(group, batch.reward, (counts + 1) // 2)
    lo = top_per_group(group, -batch.reward, counts // 2)
    family["max-variance"] = torch.unique(torch.cat([hi, lo]))
    return family


class RegretHook:
    """A [`run`][banditlib.adapters.rlvr.sim.run] hook measuring a scheduler's one-step regret against the family
    oracle.

    Each round, with the scheduler's choice keeping ``c_g`` fresh rollouts of group ``g`` (plus its replayed
    rows, held fixed), the family is the scheduler's own choice and every `_fresh_family` candidate with
    the same ``c_g`` (plus the same replayed rows). Regret of the round = ``max_family g - g(own)`` >= 0;
    the record also has the mean gain of the random candidates (a random selector's expected gain) and the
    gain of training on every fresh rollout (outside the family: a different budget).

    Args:
        n_random: random candidates per round.
        seed: seeds the random candidates (a generator of its own, so the run's samples are unchanged).

    Examples:
        >>> from banditlib.adapters.rlvr import MaxVarianceScheduler
        >>> from banditlib.adapters.rlvr.sim import SimConfig, run
        >>> r = run(MaxVarianceScheduler(keep_fraction=0.5), seed=0, steps=1,
        ...         config=SimConfig(prompts_per_round=4, group_size=4), hook=RegretHook(n_random=2))
        >>> rec = r.rounds[0]
        >>> rec["regret"] >= 0.0, rec["regret"] == rec["gain_best"] - rec["gain_own"]
        (True, True)
    """

    def __init__(self, n_random: int = 4, seed: int = 0) -> None:
        self.n_random = n_random
        self.gen = torch.Generator().manual_seed(10_000 + seed)

    def __call__(self, sim: Simulator, batch: RolloutBatch, s: Schedule, rows: RolloutBatch,
                 weight: torch.Tensor) -> dict[str, Any]:  # fmt: skip
        """The round's record (called by [`run`][banditlib.adapters.rlvr.sim.run] before the step).

        Args:
            sim: the run, before this round's step.
            batch: the round's fresh rollouts.
            s: the scheduler's decision for them.
            rows: the rows trained on (the kept fresh rows, then the replayed ones).
            weight: ``(len(rows),)`` float32 their loss weights.

        Returns:
            ``gain_own``, ``gain_best`` and ``best`` (the best candidate's gain and name: ``"own"``,
            ``"random-<i>"``, ``"<feature>-high"`` / ``"<feature>-low"`` or ``"max-variance"``), ``gain_random``,
            ``gain_keep_all`` and ``regret`` (floats).
        """
        ids = sim.world.oracle_ids
        base = length_balanced(sim.world, ids, expected_accuracy(sim.params, sim.world, ids))
        _, group = torch.unique(batch.group, return_inverse=True)
        counts = torch.bincount(group[s.fresh], minlength=int(group.max()) + 1)
        own = one_step_gain(sim, rows, weight, base)
        gains = {"own": own}
        for name, idx in _fresh_family(batch, counts, self.gen, self.n_random).items():
            cand = batch.select(idx)
            w = torch.ones(len(cand))
            if len(s.replay):
                cand, w = RolloutBatch.cat([cand, s.replay]), torch.cat([w, s.replay_weight.float()])
            gains[name] = one_step_gain(sim, cand, w, base)
        best = max(gains, key=gains.__getitem__)
        rand = [gains[f"random-{i}"] for i in range(self.n_random)]
        everything = one_step_gain(sim, batch, torch.ones(len(batch)), base)
        return {"gain_own": own, "gain_best": gains[best], "best": best, "gain_random": sum(rand) / len(rand),
                "gain_keep_all": everything, "regret": gains[best] - own}  # fmt: skip


def buffer_oracle(
    sim: Simulator,
    steps: int,
    buffers: tuple[int, ...] = (0, 1, 2, 4, 8),
    every: int = 10,
    n_random: int = 4,
    keep_fraction: float = 0.5,
) -> dict[str, Any]:
    """The oracle's one-step gain as the buffer grows, along a plain-GRPO trajectory (every rollout trained).

    At every ``every``-th round from ``max(buffers)`` on, for each buffer of ``L`` past rounds the pool is the
    fresh batch plus those ``L`` rounds' rollouts (with their stored advantages and behaviour log-probs), and
    the family is ``n_random`` random selections of ``n = keep_fraction B G`` pool rows plus the top-``n`` rows
    of the pool by every feature of [`FEATURES`][banditlib.adapters.rlvr.sim.oracle.FEATURES] in both directions
    (``age-low`` is "freshest first"). Same family size for every ``L``; ``nested`` is the running maximum over ``L``
    (the candidate sets nest).

    The simulator is trained in place: ``steps`` plain-GRPO steps, so ``sim.round`` advances by ``steps``.

    Args:
        sim: the run to follow (trained in place).
        steps: rounds to train.
        buffers: the buffer sizes ``L`` compared (rounds of past rollouts in the pool; non-empty).
        every: evaluate every ``every``-th round (from round ``max(buffers)`` on).
        n_random: random candidates per buffer size.
        keep_fraction: candidate size ``n = max(1, int(keep_fraction * B G))``.

    Returns:
        Plain lists: ``"buffers"`` (the sizes), ``"rounds"`` (the rounds evaluated), and per evaluated round one
        entry per buffer size: ``"best"`` (the best candidate's gain), ``"nested"`` (the running maximum of
        ``"best"`` over the sizes so far), ``"old_share"`` (share of rows from earlier rounds in the best
        candidate) and ``"best_name"`` (its name, as ``"reward-high"`` or ``"random-0"``).

    Examples:
        >>> from banditlib.adapters.rlvr.sim import SimConfig
        >>> out = buffer_oracle(Simulator(SimConfig(prompts_per_round=4, group_size=4)), steps=3, buffers=(0, 1),
        ...                     every=2)
        >>> out["buffers"], out["rounds"], len(out["best"][0]), out["old_share"][0][0]  # L = 0: fresh rows only
        ([0, 1], [2], 2, 0.0)
    """
    gen = torch.Generator().manual_seed(20_000 + sim.round)
    L_max = max(buffers)
    history: list[RolloutBatch] = []
    out: dict[str, Any] = {"buffers": list(buffers), "rounds": [], "best": [], "nested": [], "old_share": [],
                           "best_name": []}  # fmt: skip
    batch, _ = sim.generate()
    for t in range(steps):
        if t >= L_max and t % every == 0:
            ids = sim.world.oracle_ids
            base = length_balanced(sim.world, ids, expected_accuracy(sim.params, sim.world, ids))
            n = max(1, int(keep_fraction * len(batch)))
            best_row, share_row, name_row = [], [], []
            for L in buffers:
                pool = RolloutBatch.cat([batch, *history[len(history) - L :]]) if L else batch
                fam: dict[str, torch.Tensor] = {
                    f"random-{i}": torch.randperm(len(pool), generator=gen)[:n] for i in range(n_random)
                }
                for name in FEATURES:
                    x = feature(pool, name, t)
                    fam[f"{name}-high"] = torch.argsort(-x, stable=True)[:n]
                    fam[f"{name}-low"] = torch.argsort(x, stable=True)[:n]
                gains = {k: one_step_gain(sim, pool.select(i), torch.ones(n), base) for k, i in fam.items()}
                best = max(gains, key=gains.__getitem__)
                best_row.append(gains[best])
                share_row.append(float((pool.round[fam[best]] < t).float().mean()))
                name_row.append(best)
            out["rounds"].append(t)
            out["best"].append(best_row)
            out["nested"].append([max(best_row[: i + 1]) for i in range(len(best_row))])
            out["old_share"].append(share_row)
            out["best_name"].append(name_row)
        sim.train(batch, torch.ones(len(batch)))
        history = [*history, batch][-L_max:] if L_max else []
        batch, _ = sim.generate()
    return out
