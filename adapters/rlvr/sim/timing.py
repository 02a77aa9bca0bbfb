"""Scheduler time at trainer scale: ``schedule()`` and ``observe()`` with a full buffer, on one torch thread.

No simulator here: batches of synthetic rollouts (binary rewards, entropies, clip ratios, lengths, truncation
flags, ``(N, 16)`` log-probs, answer ids and a 16-column token payload) of ``prompts x group`` rows a round, so
the measurement is the scheduler's own cost at the sizes a trainer feeds it.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

import torch

from banditlib.adapters import rlvr
from banditlib.errors import InvalidInputError

from .contenders import REUSE
from .loop import single_thread

__all__ = ["schedule_timing", "timing_schedulers"]


def timing_schedulers(rounds: int) -> dict[str, Callable[[], Any]]:
    """The timed schedulers by name: every mode of the default and of the paper preset, and the peers, each with
    a buffer of ``rounds`` rounds where it keeps one.

    Args:
        rounds: rounds the buffer holds (``buffer_rounds``; ``PriorityReplay``: ``max_age = rounds - 1``).

    Returns:
        ``{name: () -> scheduler}``.

    Examples:
        >>> s = timing_schedulers(8)
        >>> list(s)[:4], s["paper-both"]().mode
        (['default', 'default-group', 'default-global', 'paper-group'], 'both')
    """
    S = rlvr.RolloutScheduler
    return {
        "default": lambda: S(buffer_rounds=rounds, seed=0),  # mode both, priority replay of 0.5 N
        **{f"default-{m}": partial(S, mode=m, buffer_rounds=rounds, seed=0) for m in ("group", "global")},
        **{f"paper-{m}": partial(S, preset="paper", mode=m, reuse=REUSE, buffer_rounds=rounds, seed=0)
           for m in ("group", "global", "both")},
        "uniform": rlvr.UniformScheduler, "pods": lambda: rlvr.MaxVarianceScheduler(keep_fraction=0.5),
        "dapo": rlvr.DynamicSamplingFilter, "recency": lambda: rlvr.RecencyReplay(reuse=REUSE, buffer_rounds=rounds),
        "priority-replay": lambda: rlvr.PriorityReplay(max_age=rounds - 1), "consistency": rlvr.ConsistencyFilter,
        "overlong": rlvr.OverlongFilter,
    }  # fmt: skip


def schedule_timing(
    prompts: int = 512,
    group: int = 16,
    rounds: int = 8,
    repeats: int = 11,
    schedulers: Mapping[str, Callable[[], Any]] | None = None,
) -> dict[str, Any]:
    """Milliseconds of ``schedule()`` and ``observe()`` at ``prompts x group`` rollouts a round once the buffer
    holds ``rounds`` rounds of them, median and best of ``repeats``, on one torch thread.

    Args:
        prompts: prompts a round.
        group: rollouts per prompt.
        rounds: rounds observed before timing (fills a buffer of that many rounds).
        repeats: timed rounds.
        schedulers: ``{name: () -> scheduler}`` (``None``: `timing_schedulers` ``(rounds)``).

    Returns:
        ``prompts``, ``group``, ``buffer_rollouts`` (``prompts group rounds``), ``repeats``, and per scheduler
        ``{"schedule_ms_median", "schedule_ms_best", "observe_ms_median"}``.

    Raises:
        InvalidInputError: ``prompts``, ``group``, ``rounds`` or ``repeats`` is not an int ``>= 1``.

    Examples:
        >>> t = schedule_timing(8, 4, rounds=2, repeats=1, schedulers={"uniform": rlvr.UniformScheduler})
        >>> t["buffer_rollouts"], sorted(t["uniform"])
        (64, ['observe_ms_median', 'schedule_ms_best', 'schedule_ms_median'])
    """
    for name, value in {"prompts": prompts, "group": group, "rounds": rounds, "repeats": repeats}.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise InvalidInputError(f"schedule_timing(): `{name}` must be an int >= 1; got {value!r}.")
    gen = torch.Generator().manual_seed(0)
    N = prompts * group

    def batch(t: int) -> rlvr.RolloutBatch:
        return rlvr.RolloutBatch.from_tensors(
            group=torch.arange(prompts).repeat_interleave(group), reward=(torch.rand(N, generator=gen) < 0.4).float(),
            entropy=torch.rand(N, generator=gen), clip_ratio=torch.rand(N, generator=gen) * 0.1,
            length=torch.randint(1, 512, (N,), generator=gen).float(), truncated=torch.rand(N, generator=gen) < 0.05,
            round=t, logprobs=-torch.rand(N, 16, generator=gen), answer=torch.randint(0, 4, (N,), generator=gen),
            payload={"tokens": torch.zeros(N, 16, dtype=torch.long)},
        )  # fmt: skip

    specs = timing_schedulers(rounds) if schedulers is None else schedulers
    out: dict[str, Any] = {"prompts": prompts, "group": group, "buffer_rollouts": N * rounds, "repeats": repeats}
    with single_thread():
        for name, make in specs.items():
            sch, t = make(), 0
            for _ in range(rounds):  # fill the buffer
                sch.schedule(batch(t))
                t += 1
                sch.observe(b := batch(t))
            sched, obs = [], []
            for _ in range(repeats):
                start = time.perf_counter()
                sch.schedule(b)
                sched.append(time.perf_counter() - start)
                t += 1
                b = batch(t)
                start = time.perf_counter()
                sch.observe(b)
                obs.append(time.perf_counter() - start)
            out[name] = {"schedule_ms_median": statistics.median(sched) * 1e3, "schedule_ms_best": min(sched) * 1e3,
                         "observe_ms_median": statistics.median(obs) * 1e3}  # fmt: skip
    return out
