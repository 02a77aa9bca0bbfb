"""The training loop of the simulator: the interface's loop, exactly, around a real GRPO learner.

``b = gen(0); for t: s = sch.schedule(b); train(b.select(s.fresh) + s.replay); b = gen(t + 1); sch.observe(b)``.

Every round generates ``B G`` rollouts; training is one clipped-PPO step on the rows the scheduler chose (fresh
rows are on-policy, replayed rows are trained against their stored behaviour log-probs). Held-out quality is
the exact expected accuracy of a sampled answer (see
[`expected_accuracy`][banditlib.adapters.rlvr.sim.expected_accuracy]), measured after every step, plus greedy accuracy
at the end.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

from banditlib.errors import InvalidInputError

from .. import RolloutBatch, Schedule
from .._base import SchedulerLike
from ..groups import group_range
from ..influence import head_gradients
from ._model import Params
from .train import AdamState, adam_init, grpo_advantages, ppo_step, warm_start
from .world import (
    Generation,
    SimConfig,
    World,
    expected_accuracy,
    generate,
    greedy_accuracy,
    head_inputs,
    init_params,
)  # fmt: skip
from .world import token_logprobs as _token_logprobs

__all__ = ["RunResult", "SchedulerLike", "Simulator", "run", "single_thread"]


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """Run torch on one intra-op thread, then restore the previous setting.

    A context manager (``torch.set_num_threads``: process-wide, not per thread). The simulator's ops are tiny
    and latency-bound: more threads only add synchronisation (on a busy machine a descheduled worker stalls
    every op, making a run ten times slower). [`run`][banditlib.adapters.rlvr.sim.loop.run] uses it.

    Examples:
        >>> before = torch.get_num_threads()
        >>> with single_thread():
        ...     torch.get_num_threads()
        1
        >>> torch.get_num_threads() == before
        True
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class Simulator:
    """One seeded RLVR run's world, policy, optimiser and generator; builds batches and trains on them.

    Construction builds the [`World`][banditlib.adapters.rlvr.sim.world.World], initialises the policy and runs
    its [`warm_start`][banditlib.adapters.rlvr.sim.train.warm_start].

    Args:
        config: the world's sizes and knobs (``None``: ``SimConfig()``).
        seed: seeds the policy's initialisation, its warm start and every sample (one ``torch.Generator``).

    Attributes:
        config: the [`SimConfig`][banditlib.adapters.rlvr.sim.world.SimConfig].
        world: the [`World`][banditlib.adapters.rlvr.sim.world.World] built from it.
        generator: the run's ``torch.Generator``.
        params: the policy's parameters ([`init_params`][banditlib.adapters.rlvr.sim.world.init_params]).
        opt: their [`AdamState`][banditlib.adapters.rlvr.sim.train.AdamState].
        prev_params: the parameters before the last [`train`][banditlib.adapters.rlvr.sim.loop.Simulator.train]
            (``None`` before the first).
        round: the round the next [`generate`][banditlib.adapters.rlvr.sim.loop.Simulator.generate] belongs to
            (optimisation steps taken).

    Examples:
        >>> sim = Simulator(SimConfig(prompts_per_round=4, group_size=4), seed=0)
        >>> batch, gen = sim.generate()
        >>> len(batch), batch.payload["tokens"].shape, batch.grad.shape  # grad: V H + V = 7 * 64 + 7
        (16, torch.Size([16, 6]), torch.Size([16, 455]))
        >>> stats = sim.train(batch, torch.ones(len(batch)))
        >>> stats.rows, sim.round, 0.0 <= sim.heldout_accuracy() <= 1.0
        (16, 1, True)
    """

    def __init__(self, config: SimConfig | None = None, seed: int = 0) -> None:
        self.config = config or SimConfig()
        self.world = World(self.config)
        self.generator = torch.Generator().manual_seed(seed)
        self.params: Params = init_params(self.config, self.generator)
        self.opt: AdamState = adam_init(self.params)
        warm_start(self.params, self.opt, self.world, self.generator)
        self.prev_params: Params | None = None
        self.round = 0

    def generate(self) -> tuple[RolloutBatch, Generation]:
        """Round ``self.round``'s ``B G`` rollouts as a [`RolloutBatch`][banditlib.adapters.rlvr.RolloutBatch] (and the
        raw generation).

        ``clip_ratio`` of a fresh rollout is the fraction of its tokens whose probability ratio between the
        current policy and the policy before the last optimisation step lies outside ``[1 - eps, 1 + eps]``:
        how much the last step moved this rollout (0 in round 0). ``answer`` holds the answer ids; ``grad``
        the exact gradient of each rollout's mean token log-prob with respect to the output layer (``W3``,
        ``b3``: ``(N, V H + V)``, [`head_gradients`][banditlib.adapters.rlvr.influence.head_gradients]). ``payload``
        carries ``prompt`` ``(N,)``, ``tokens`` ``(N, L)``, ``mask`` ``(N, L)``, and, for diagnostics only,
        ``correct``, ``lucky`` (false positive) and ``missed`` (false negative).
        """
        cfg = self.config
        B, G = cfg.prompts_per_round, cfg.group_size
        prompts = self.world.sample_prompts(B, self.generator).repeat_interleave(G)
        gen = generate(self.params, self.world, prompts, self.generator)
        group = torch.arange(B).repeat_interleave(G)
        clip = torch.zeros(B * G)
        if self.prev_params is not None:
            with torch.no_grad():
                old, _ = _token_logprobs(self.prev_params, self.world, prompts, gen.tokens, cfg.temperature)
            out = ((gen.logprobs - old).exp() - 1).abs() > cfg.clip_eps
            clip = (out & gen.mask).sum(1).float() / gen.length
        batch = RolloutBatch.from_tensors(
            group=group, reward=gen.reward, advantage=grpo_advantages(gen.reward, group), entropy=gen.entropy,
            clip_ratio=clip, length=gen.length, truncated=gen.truncated, round=self.round, logprobs=gen.logprobs,
            payload={"prompt": prompts, "tokens": gen.tokens, "mask": gen.mask, "correct": gen.correct,
                     "lucky": gen.lucky, "missed": gen.missed},
            answer=gen.answer, grad=self._head_grad(prompts, gen.tokens, gen.mask),
        )  # fmt: skip
        return batch, gen

    def _head_grad(self, prompts: torch.Tensor, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        T = self.config.temperature
        hidden, probs = head_inputs(self.params, self.world, prompts, tokens, T)
        return head_gradients(hidden, probs, tokens, mask, T)

    def probe(self) -> RolloutBatch:
        """The trusted probe of this round: the reference answers of ``World.probe_ids`` (30 prompts, up to 8 per
        length) with reward and advantage 1 and their output-layer gradients, so ``mean_j A_j g_j`` is the
        supervised direction towards the right answers (I-PPO's validation gradient; GradAlign's trusted set).
        """
        ids = self.world.probe_ids
        answer = self.world.answer[ids]
        mask = torch.arange(answer.shape[1])[None, :] <= self.world.prompt_len[ids][:, None]
        n = ids.shape[0]
        ones = torch.ones(n)
        return RolloutBatch.from_tensors(
            group=torch.arange(n),
            reward=ones,
            advantage=ones,
            entropy=torch.zeros(n),
            length=mask.sum(1),
            round=self.round,
            grad=self._head_grad(ids, answer, mask),
        )

    def train(self, rows: RolloutBatch, weight: torch.Tensor) -> Any:
        """One PPO step on ``rows`` with loss weights ``weight``; advances the round.

        Args:
            rows: rollouts built by [`generate`][banditlib.adapters.rlvr.sim.loop.Simulator.generate] (this
                round's or replayed ones: their ``payload`` and behaviour ``logprobs`` are trained on).
            weight: ``(n,)`` float32 loss weight of each row.

        Returns:
            The step's [`StepStats`][banditlib.adapters.rlvr.sim.train.StepStats].

        Raises:
            InvalidInputError: ``rows.logprobs`` is None.
        """
        self.prev_params = {k: p.clone() for k, p in self.params.items()}
        stats = ppo_step(self.params, self.opt, self.world, training_rows(rows), weight)
        self.round += 1
        return stats

    def heldout_accuracy(self) -> float:
        """Mean expected accuracy over held-out prompts, each prompt length weighted equally."""
        return length_balanced(
            self.world, self.world.heldout_ids, expected_accuracy(self.params, self.world, self.world.heldout_ids)
        )

    def greedy_heldout_accuracy(self) -> float:
        """Greedy accuracy over held-out prompts, each prompt length weighted equally."""
        ok = greedy_accuracy(self.params, self.world, self.world.heldout_ids).float()
        return length_balanced(self.world, self.world.heldout_ids, ok)


def length_balanced(world: World, ids: torch.Tensor, values: torch.Tensor) -> float:
    """Mean of ``values`` ``(P,)`` over prompts ``ids`` with every prompt length weighted equally."""
    lens = world.prompt_len[ids]
    return float(torch.stack([values[lens == k].mean() for k in torch.unique(lens)]).mean())


def training_rows(rows: RolloutBatch) -> dict[str, torch.Tensor]:
    """The tensors [`ppo_step`][banditlib.adapters.rlvr.sim.ppo_step] reads, from a batch built by
    [`Simulator`][banditlib.adapters.rlvr.sim.Simulator]."""
    if rows.logprobs is None:
        raise InvalidInputError("training_rows(): `rows.logprobs` is None; replayed rows need behaviour log-probs.")
    p = rows.payload
    return {"prompt": p["prompt"], "tokens": p["tokens"], "mask": p["mask"], "logprobs": rows.logprobs,
            "advantage": rows.advantage}  # fmt: skip


def check_schedule(s: Schedule, batch: RolloutBatch, name: str) -> None:
    """Raise [`InvalidInputError`][banditlib.InvalidInputError] when a scheduler's decision breaks the interface's shape
    contract."""
    N, where = len(batch), f"run(): scheduler {name!r} returned"
    f = s.fresh
    if f.dtype != torch.int64 or f.dim() != 1:
        raise InvalidInputError(f"{where} `fresh` of dtype {f.dtype} and shape {tuple(f.shape)}; want (n,) int64.")
    if f.numel() and (int(f.min()) < 0 or int(f.max()) >= N):
        raise InvalidInputError(f"{where} `fresh` indices outside [0, {N}).")
    if torch.unique(f).numel() != f.numel():
        raise InvalidInputError(f"{where} repeated `fresh` indices.")
    if tuple(s.fresh_weight.shape) != tuple(f.shape):
        raise InvalidInputError(
            f"{where} `fresh_weight` of shape {tuple(s.fresh_weight.shape)}; want {tuple(f.shape)}."
        )
    n_rep = len(s.replay)
    if tuple(s.replay_weight.shape) != (n_rep,):
        raise InvalidInputError(f"{where} `replay_weight` of shape {tuple(s.replay_weight.shape)}; want ({n_rep},).")
    if tuple(s.scores.shape) != (N,):
        raise InvalidInputError(f"{where} `scores` of shape {tuple(s.scores.shape)}; want ({N},).")
    if n_rep:
        r = s.replay
        if r.logprobs is None or tuple(r.logprobs.shape) != (n_rep, batch.payload["tokens"].shape[1]):
            raise InvalidInputError(f"{where} `replay` rows without (n, L) behaviour `logprobs`.")
        for key, value in batch.payload.items():
            if key not in r.payload or tuple(r.payload[key].shape) != (n_rep, *value.shape[1:]):
                raise InvalidInputError(f"{where} `replay.payload[{key!r}]` missing or of the wrong shape.")
        if int(r.round.max()) >= int(batch.round[0]):
            raise InvalidInputError(f"{where} replayed rows from the current round or later.")


@dataclass
class RunResult:
    """Curves and per-round records of one run (lists, JSON-ready).

    ``accuracy[t]`` is the held-out expected accuracy after ``t`` steps (``t = 0..steps``), with
    ``rollouts[t] = t B G`` rollouts generated and ``backward[t]`` rows trained so far (one forward and
    backward pass each). ``rounds`` holds one dict per step.

    Attributes:
        name: the scheduler's ``name``.
        seed: the simulator's seed.
        accuracy: ``steps + 1`` held-out expected accuracies (each prompt length weighted equally), before
            the first step and after each.
        rollouts: ``steps + 1`` counts of rollouts generated so far, ``t B G``.
        backward: ``steps + 1`` running counts of rows trained (fresh and replayed).
        rounds: one record per step: ``train_reward``, ``train_correct`` and ``entropy`` (means over the fresh
            batch), ``n_fresh``, ``n_replay``, ``replay_age`` (mean age of the replayed rows, ``None`` without
            any), ``lucky_share_all`` / ``lucky_share_kept`` (false positives among the rows of positive
            advantage, in the batch / among the kept rows), ``missed_share_all`` / ``missed_share_kept``
            (false negatives among the rows of negative advantage), ``kept_share``, ``zero_var_groups_share``,
            ``observed_gain`` (what ``observe`` returned, or ``None``), ``replay_clip_ratio`` and
            ``replay_ratio_dev`` (when rows were replayed), and whatever the hook returned.
        greedy_final: held-out greedy accuracy after the last step (NaN until the run ends).
        schedule_seconds: time spent in the scheduler's ``schedule`` and ``observe``.
        wall_seconds: time of the whole run, simulator construction included.

    Examples:
        >>> import json
        >>> from banditlib.adapters.rlvr import UniformScheduler
        >>> r = run(UniformScheduler(), seed=0, steps=2, config=SimConfig(prompts_per_round=4, group_size=4))
        >>> r.name, len(r.accuracy), r.rollouts, r.rounds[0]["n_fresh"]
        ('uniform', 3, [0, 16, 32], 16)
        >>> RunResult(**json.loads(json.dumps(r.as_dict()))) == r  # a JSON round trip
        True
    """

    name: str
    seed: int
    accuracy: list[float] = field(default_factory=list)
    rollouts: list[int] = field(default_factory=list)
    backward: list[int] = field(default_factory=list)
    rounds: list[dict[str, Any]] = field(default_factory=list)
    greedy_final: float = float("nan")
    schedule_seconds: float = 0.0
    wall_seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """Everything, as plain Python values."""
        return dict(self.__dict__)


Hook = Callable[[Simulator, RolloutBatch, Schedule, RolloutBatch, torch.Tensor], dict[str, Any]]


def run(
    scheduler: SchedulerLike,
    seed: int,
    steps: int,
    config: SimConfig | None = None,
    *,
    hook: Hook | None = None,
) -> RunResult:
    """Train the simulator's policy for ``steps`` rounds under ``scheduler`` and record its curves.

    Args:
        scheduler: any scheduler of ``banditlib.adapters.rlvr`` (the loop runs on one torch thread).
        seed: the simulator's seed (same seed, same world, initial policy and first batch for every scheduler).
        steps: rounds, one optimisation step each.
        config: the world (defaults to `SimConfig()`).
        hook: called each round before training with ``(sim, batch, schedule, rows, weight)``; its dict is
            merged into that round's record (the benchmark's oracle uses it).

    Returns:
        [`RunResult`][banditlib.adapters.rlvr.sim.RunResult].

    Raises:
        InvalidInputError: when ``steps < 1`` or the scheduler's decision breaks the interface's contract.

    Examples:
        >>> class KeepAll:
        ...     name = "keep-all"
        ...     def schedule(self, b):
        ...         n = len(b)
        ...         return Schedule(torch.arange(n), torch.ones(n), b.select(torch.arange(0)), torch.ones(0),
        ...                         torch.full((n,), float("nan")), float("nan"))
        ...     def observe(self, b):
        ...         return None
        >>> r = run(KeepAll(), seed=0, steps=2, config=SimConfig(prompts_per_round=4, group_size=4))
        >>> len(r.accuracy), r.rollouts, r.backward
        (3, [0, 16, 32], [0, 16, 32])
    """
    if not isinstance(steps, int) or steps < 1:
        raise InvalidInputError(f"run(): `steps` must be an int >= 1; got {steps!r}.")
    with single_thread():
        return _run(scheduler, seed, steps, config, hook)


def _run(scheduler: SchedulerLike, seed: int, steps: int, config: SimConfig | None, hook: Hook | None) -> RunResult:
    start = time.perf_counter()
    sim = Simulator(config, seed)
    B, G = sim.config.prompts_per_round, sim.config.group_size
    res = RunResult(scheduler.name, seed, [sim.heldout_accuracy()], [0], [0])
    batch, _ = sim.generate()
    probing = bool(getattr(scheduler, "uses_probe", False))
    probe = sim.probe() if probing else None
    for _ in range(steps):
        t0 = time.perf_counter()
        s = scheduler.schedule(batch, probe=probe) if probing else scheduler.schedule(batch)  # type: ignore[call-arg]
        res.schedule_seconds += time.perf_counter() - t0
        check_schedule(s, batch, scheduler.name)
        kept = batch.select(s.fresh)
        rows = RolloutBatch.cat([kept, s.replay]) if len(s.replay) else kept
        weight = torch.cat([s.fresh_weight, s.replay_weight]).float()
        record = _round_record(batch, s, kept)
        if hook is not None:
            record.update(hook(sim, batch, s, rows, weight))
        stats = sim.train(rows, weight)
        if len(s.replay):
            record["replay_clip_ratio"] = float(stats.clip_ratio[len(kept) :].mean())
            record["replay_ratio_dev"] = float(stats.ratio_dev[len(kept) :].mean())
        batch, _ = sim.generate()
        probe = sim.probe() if probing else None
        t0 = time.perf_counter()
        gain = scheduler.observe(batch, probe=probe) if probing else scheduler.observe(batch)  # type: ignore[call-arg]
        res.schedule_seconds += time.perf_counter() - t0
        record["observed_gain"] = None if gain is None else float(gain)
        res.accuracy.append(sim.heldout_accuracy())
        res.rollouts.append(sim.round * B * G)
        res.backward.append(res.backward[-1] + stats.rows)
        res.rounds.append(record)
    res.greedy_final = sim.greedy_heldout_accuracy()
    res.wall_seconds = time.perf_counter() - start
    return res


def _round_record(batch: RolloutBatch, s: Schedule, kept: RolloutBatch) -> dict[str, Any]:
    """Per-round diagnostics: sizes, staleness, and how many misleading rows (lucky positives, missed
    negatives) were kept."""
    # Misleading signal: verifier-accepted wrong answers among the rows pushed up (advantage > 0).
    lucky, pos, neg = batch.payload["lucky"], batch.advantage > 0, batch.advantage < 0
    kept_pos, kept_neg = kept.advantage > 0, kept.advantage < 0
    rep = s.replay
    return {
        "train_reward": float(batch.reward.mean()), "train_correct": float(batch.payload["correct"].float().mean()),
        "entropy": float(batch.entropy.mean()), "n_fresh": int(s.fresh.numel()), "n_replay": len(rep),
        "replay_age": float((batch.round[0] - rep.round).float().mean()) if len(rep) else None,
        "lucky_share_all": float((lucky & pos).sum() / pos.sum().clamp(min=1)),
        "lucky_share_kept": float((kept.payload["lucky"] & kept_pos).sum() / kept_pos.sum().clamp(min=1)),
        # Misleading signal the other way: right answers rejected (cut off) among the rows pushed down.
        "missed_share_all": float((batch.payload["missed"] & neg).sum() / neg.sum().clamp(min=1)),
        "missed_share_kept": float((kept.payload["missed"] & kept_neg).sum() / kept_neg.sum().clamp(min=1)),
        "kept_share": s.kept_share,
        "zero_var_groups_share": _zero_var_share(batch),
    }  # fmt: skip


def _zero_var_share(batch: RolloutBatch) -> float:
    _, inv = torch.unique(batch.group, return_inverse=True)
    lo, hi = group_range(batch.reward, inv, int(inv.max()) + 1)
    return float((lo == hi).float().mean())
