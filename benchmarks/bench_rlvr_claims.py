"""The paper's claims in the simulator: CBS (``preset="paper"``) against plain GRPO, PODS, DAPO, a threshold and
recency replay in the i.i.d. false-positive world, its regret, and the buffer oracle.

1. Learning curves. Every scheduler trains the simulator's policy (``banditlib.adapters.rlvr.sim``: digit
   strings, a shared-parameter MLP policy, a verifier accepting wrong answers with probability 0.1, GRPO with
   PPO clipping; ``B = 32`` prompts x ``G = 8`` rollouts a round) for ``steps`` rounds on every seed. The same
   seed gives every scheduler the same world, initial policy and first batch. Quality is the held-out
   expected accuracy (exact probability that a sampled answer is correct, prompt lengths weighted equally),
   after every step. Every round generates ``B G`` rollouts whatever the scheduler, so accuracy at equal
   rollouts generated is accuracy at equal steps; backward passes (rows trained) differ and are reported.
   Target accuracy (a fixed rule): uniform GRPO's mean held-out accuracy at half the step budget. Steps to
   target: the first step whose 5-step trailing average is at or above it (``null`` when never reached;
   counted as ``steps + 1`` in means and intervals, so those are lower bounds). 95% intervals: Student t
   over seeds; paired differences per seed (same seed, same world, initial policy and first batch).
2. Regret of CBS against a per-round oracle: the best true one-step gain over a finite family of selections
   with the same per-group budget (random ones, top by each single feature, max-variance), evaluated
   counterfactually from the same parameters (``sim.oracle.RegretHook``); a random selector's regret against
   the same oracle is the yardstick; the slope of log R(t) against log t (t in the last 3/4) tells sublinear.
3. The oracle's gain as the buffer grows (``sim.oracle.buffer_oracle``) along plain GRPO trajectories.
4. Scheduler time: ``schedule()`` for 512 prompts x 16 rollouts with a 65,536-rollout buffer (8 rounds) on
   CPU, median and best of repeats, each CBS mode and the baselines (one thread).
5. With ``--diagnostics`` (not in the default run): a random half of every group (the cost of keeping half),
   every rollout except the verifier's false positives (ground truth: the headroom of noise-aware selection),
   and CBS-group with a greedy policy (alpha = 0), with a ``reward x group pass rate`` feature, and with its
   label replaced by the true one-step gain of its own selection (a noiseless label).

The comparison across verifier-fault worlds, with the default scheduler and the 2026 peers, is
``benchmarks/bench_rlvr.py``; this script keeps the measurements of the paper's own claims reproducible.

Runs go to ``--workers`` processes (one torch thread each). Usage:
``python benchmarks/bench_rlvr_claims.py [--quick] [--out DIR] [--workers N] [--seeds N] [--steps N]
[--false-positive P] [--prompts-per-round B] [--only NAME ...] [--diagnostics]``; writes
``DIR/bench_rlvr_claims.json`` (``{"schedulers": {name: {"steps_to_target": [...], "final_accuracy": [...]}},
...}``, the full report), ``DIR/rlvr_claims.png`` and prints markdown tables.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import re
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _common import machine_info, table

from banditlib.adapters import rlvr
from banditlib.adapters.rlvr.sim import SimConfig, Simulator, run
from banditlib.adapters.rlvr.sim.intervals import band, mean_ci
from banditlib.adapters.rlvr.sim.oracle import RegretHook, buffer_oracle, one_step_gain, top_per_group
from banditlib.adapters.rlvr.sim.timing import schedule_timing
from banditlib.policies import LinUCB

DISTS = ("torch", "numpy", "scipy")
# Budgets (rows trained a round, N = B G = 256 fresh rollouts): cbs-group and pods N/2; cbs-both N/2 kept
# + REUSE picked over kept and buffered rows = N (uniform's budget); cbs-global and recency N + REUSE = 1.5 N.
KEEP, BUFFER_ROUNDS, REUSE, MIN_ABS_ADV = 0.5, 4, 128, 0.5
FULL = {"seeds": 16, "steps": 150, "regret_seeds": 3, "regret_steps": 150, "buffer_seeds": 3, "buffer_steps": 151,
        "buffer_every": 10, "timing": [512, 16, 8], "timing_repeats": 11}  # fmt: skip
QUICK = {"seeds": 3, "steps": 60, "regret_seeds": 1, "regret_steps": 40, "buffer_seeds": 1, "buffer_steps": 41,
         "buffer_every": 10, "timing": [512, 16, 8], "timing_repeats": 3}  # fmt: skip
CBS_MODES = ("cbs-group", "cbs-global", "cbs-both")
TARGET_RATIO = 0.8  # CBS steps to target <= 0.8 x uniform's (the issue)
SMOOTH = 5  # steps to target are read off a 5-step trailing average: one step's accuracy is noisy


def makers() -> dict[str, Callable[[int], Any]]:
    """Every scheduler of the comparison by table name; CBS in each mode gets the run's seed."""
    return {
        "cbs-group": lambda s: rlvr.RolloutScheduler(preset="paper", mode="group", keep_fraction=KEEP, seed=s),
        "cbs-global": lambda s: rlvr.RolloutScheduler(preset="paper", mode="global", keep_fraction=KEEP, reuse=REUSE,
                                                      buffer_rounds=BUFFER_ROUNDS, seed=s),
        "cbs-both": lambda s: rlvr.RolloutScheduler(preset="paper", mode="both", keep_fraction=KEEP, reuse=REUSE,
                                                    buffer_rounds=BUFFER_ROUNDS, seed=s),
        "uniform": lambda s: rlvr.UniformScheduler(),
        "pods": lambda s: rlvr.MaxVarianceScheduler(keep_fraction=KEEP),
        "dapo": lambda s: rlvr.DynamicSamplingFilter(),
        "threshold": lambda s: rlvr.ThresholdScheduler(min_abs_advantage=MIN_ABS_ADV),
        "recency": lambda s: rlvr.RecencyReplay(reuse=REUSE, buffer_rounds=BUFFER_ROUNDS),
    }  # fmt: skip


# ---------------------------------------------------------------------------------------- diagnostics


class _TrueGain(rlvr.GainReward):
    """CBS's label replaced by the true one-step gain of its own selection (set by the benchmark each round)."""

    value = 0.0

    def gain(self, v_t: float, e_t: float, v_next: float, e_next: float) -> float:
        return self.value


class _Rule:
    """A fixed selection: ``random-half`` of each group, or ``drop-lucky`` (every fresh rollout except the
    verifier's false positives: reads the simulator's ground truth, an upper bound for noise-aware selection)."""

    def __init__(self, rule: str, seed: int) -> None:
        self.name, self.rule, self.gen = f"diag:{rule}", rule, torch.Generator().manual_seed(seed)

    def schedule(self, b: rlvr.RolloutBatch) -> rlvr.Schedule:
        n = len(b)
        if self.rule == "drop-lucky":
            idx = torch.nonzero(~b.payload["lucky"]).squeeze(1)
        else:
            _, grp = torch.unique(b.group, return_inverse=True)
            counts = (torch.bincount(grp) + 1) // 2
            idx = top_per_group(grp, torch.rand(n, generator=self.gen), counts)
        return rlvr.Schedule(idx, torch.ones(len(idx)), rlvr.RolloutBatch.empty_like(b), torch.ones(0),
                             torch.full((n,), math.nan), math.nan)  # fmt: skip

    def observe(self, b: rlvr.RolloutBatch) -> None:
        return None


def diagnostic_makers() -> dict[str, Callable[[int], Any]]:
    """Runs that explain the comparison (``--diagnostics``): how much keeping half costs, how much noise-aware
    selection could gain, and CBS-group with a greedy policy, an interaction feature, and a noiseless label."""
    d = rlvr.RolloutFeaturizer(rlvr.PAPER_FEATURES).dim
    return {
        "diag:random-half": lambda s: _Rule("random-half", s),
        "diag:drop-lucky": lambda s: _Rule("drop-lucky", s),
        "diag:cbs-group-greedy": lambda s: rlvr.RolloutScheduler(
            policy=LinUCB(dim=d, alpha=0.0, forget=0.99, seed=s), preset="paper", mode="group", keep_fraction=KEEP,
            seed=s),
        "diag:cbs-group+reward-x-pass": lambda s: rlvr.RolloutScheduler(
            preset="paper", mode="group", keep_fraction=KEEP, seed=s,
            featurizer=rlvr.RolloutFeaturizer([*rlvr.PAPER_FEATURES, "reward_x_pass"])),
        "diag:cbs-group-true-gain": lambda s: rlvr.RolloutScheduler(
            preset="paper", mode="group", keep_fraction=KEEP, seed=s, reward=_TrueGain()),
    }  # fmt: skip


def _true_gain_hook(sch: Any) -> Any:
    def hook(sim: Simulator, b: Any, s: Any, rows: Any, w: torch.Tensor) -> dict[str, Any]:
        sch.label.reward.value = one_step_gain(sim, rows, w)
        return {}

    return hook


# ---------------------------------------------------------------------------------------- jobs (in workers)


Job = tuple[str, str, int, int, dict[str, Any], int]  # kind, scheduler, seed, steps, SimConfig kwargs, every


def _job(job: Job) -> tuple[str, str, int, dict[str, Any]]:
    kind, name, seed, steps, cfg, every = job
    torch.set_num_threads(1)
    config = SimConfig(**cfg)
    if kind == "curve":
        sch = {**makers(), **diagnostic_makers()}[name](seed)
        hook = _true_gain_hook(sch) if name.endswith("true-gain") else None
        return kind, name, seed, run(sch, seed, steps, config, hook=hook).as_dict()
    if kind == "regret":
        hook = RegretHook(seed=seed)
        return kind, name, seed, run(makers()[name](seed), seed, steps, config, hook=hook).as_dict()
    return kind, name, seed, buffer_oracle(Simulator(config, seed), steps, every=every)


def run_jobs(jobs: list[Job], workers: int) -> list[Any]:
    """Run ``jobs`` on ``workers`` processes (in order of submission, longest kinds first)."""
    if workers <= 1:
        return [_job(j) for j in jobs]
    with mp.get_context("fork").Pool(workers) as pool:
        return pool.map(_job, jobs, chunksize=1)


# ---------------------------------------------------------------------------------------- statistics


def smooth(curve: list[float]) -> np.ndarray:
    """Trailing moving average over ``SMOOTH`` steps (shorter at the start)."""
    c = np.cumsum(np.asarray(curve, dtype=float))
    out = c.copy()
    out[SMOOTH:] = c[SMOOTH:] - c[:-SMOOTH]
    return out / np.minimum(np.arange(1, len(curve) + 1), SMOOTH)


def first_at(curve: list[float], target: float) -> int | None:
    """First step whose smoothed accuracy (:func:`smooth`) is at least ``target``."""
    return next((t for t, a in enumerate(smooth(curve)) if a >= target), None)


def at_budget(backward: list[int], accuracy: list[float], budget: float) -> float:
    """Accuracy at the first step whose cumulative backward passes reach ``budget``."""
    t = next((i for i, b in enumerate(backward) if b >= budget), len(backward) - 1)
    return accuracy[t]


def summarise(curves: dict[str, list[dict[str, Any]]], steps: int, bg: int) -> dict[str, Any]:
    """Per-scheduler summaries, target and CBS's comparisons."""
    uni = np.array([r["accuracy"] for r in curves["uniform"]])
    target = float(np.mean([smooth(c) for c in uni], axis=0)[steps // 2])
    budget = min(statistics.mean(r["backward"][-1] for r in runs) for runs in curves.values())
    out: dict[str, Any] = {}
    for name, runs in curves.items():
        hits = [first_at(r["accuracy"], target) for r in runs]
        censored = [steps + 1 if h is None else h for h in hits]
        back = [r["backward"][h] if h is not None else None for r, h in zip(runs, hits, strict=True)]
        out[name] = {
            "steps_to_target": hits, "final_accuracy": [r["accuracy"][-1] for r in runs],
            "rollouts_to_target": [None if h is None else h * bg for h in hits], "backward_to_target": back,
            "greedy_final": [r["greedy_final"] for r in runs], "backward_total": [r["backward"][-1] for r in runs],
            "accuracy_at_equal_backward": [at_budget(r["backward"], r["accuracy"], budget) for r in runs],
            "final_ci": mean_ci([r["accuracy"][-1] for r in runs]), "steps_ci": mean_ci(censored),
            "reached": sum(h is not None for h in hits), "n": len(runs),
            "schedule_ms_per_round": statistics.mean(r["schedule_seconds"] for r in runs) / steps * 1e3,
            "run_seconds": statistics.mean(r["wall_seconds"] for r in runs),
            "lucky_share_kept": statistics.mean(x["lucky_share_kept"] for r in runs for x in r["rounds"]),
            "lucky_share_all": statistics.mean(x["lucky_share_all"] for r in runs for x in r["rounds"]),
            "replay_rows_per_round": statistics.mean(x["n_replay"] for r in runs for x in r["rounds"]),
            "fresh_rows_per_round": statistics.mean(x["n_fresh"] for r in runs for x in r["rounds"]),
        }  # fmt: skip
    comparisons = {}
    for cbs in CBS_MODES:
        if cbs not in out:
            continue
        row: dict[str, Any] = {}
        for peer in ("uniform", "pods"):
            a, b = out[cbs]["steps_ci"], out[peer]["steps_ci"]
            pairs = zip(out[cbs]["steps_to_target"], out[peer]["steps_to_target"], strict=True)
            diff = [(x if x is not None else steps + 1) - (y if y is not None else steps + 1) for x, y in pairs]
            row[peer] = {"ratio_of_means": a[0] / b[0] if b[0] > 0 else None,
                         "intervals_overlap": not (a[2] < b[1] or b[2] < a[1]),
                         "paired_diff_ci": mean_ci(diff)}  # fmt: skip
        u, p, c = out["uniform"]["steps_ci"], out["pods"]["steps_ci"], out[cbs]["steps_ci"]
        row["target_met"] = bool(c[0] <= TARGET_RATIO * u[0] and c[2] < u[1] and c[0] <= p[0] and c[2] < p[1])
        comparisons[cbs] = row
    rule = f"uniform's mean {SMOOTH}-step-average held-out accuracy at step steps // 2"
    return {"target_accuracy": target, "target_rule": rule,
            "equal_backward_budget": budget, "schedulers": out, "comparisons": comparisons}  # fmt: skip


def regret_summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Cumulative regret of the scheduler and of a random selector, with the log-log slope of each."""

    def slope(cum: np.ndarray) -> float:
        T = cum.shape[0]
        t = np.arange(T // 4, T) + 1
        y = np.maximum(cum[T // 4 :], 1e-12)
        return float(np.polyfit(np.log(t), np.log(y), 1)[0])

    own = np.array([np.cumsum([x["regret"] for x in r["rounds"]]) for r in runs])
    rand = np.array([np.cumsum([x["gain_best"] - x["gain_random"] for x in r["rounds"]]) for r in runs])
    half = own.shape[1] // 2
    per_round_first = [float(c[half - 1] / half) for c in own]
    per_round_second = [float((c[-1] - c[half - 1]) / (own.shape[1] - half)) for c in own]
    best = [x["best"] for r in runs for x in r["rounds"]]
    # The bandit's label r_t against the true gain of its own selection: how much signal the label carries.
    obs = np.array([x["observed_gain"] for r in runs for x in r["rounds"]], dtype=float)
    true = np.array([x["gain_own"] for r in runs for x in r["rounds"]], dtype=float)
    spread = np.array([x["gain_best"] - x["gain_random"] for r in runs for x in r["rounds"]], dtype=float)
    label = {"observed_std": float(obs.std()), "true_gain_std": float(true.std()),
             "corr_observed_true": float(np.corrcoef(obs, true)[0, 1]) if obs.std() > 0 and true.std() > 0 else None,
             "oracle_minus_random_mean": float(spread.mean())}  # fmt: skip
    return {
        "label": label,
        "cumulative": own.tolist(), "random_cumulative": rand.tolist(),
        "final": mean_ci(own[:, -1].tolist()), "random_final": mean_ci(rand[:, -1].tolist()),
        "ratio_to_random": mean_ci((own[:, -1] / rand[:, -1]).tolist()),
        "slope": mean_ci([slope(c) for c in own]), "random_slope": mean_ci([slope(c) for c in rand]),
        "per_round_first_half": mean_ci(per_round_first), "per_round_second_half": mean_ci(per_round_second),
        "own_is_best_share": best.count("own") / len(best),
        "best_counts": {k: best.count(k) for k in sorted(set(best))},
        "mean_gain_own": statistics.mean(x["gain_own"] for r in runs for x in r["rounds"]),
        "mean_gain_random": statistics.mean(x["gain_random"] for r in runs for x in r["rounds"]),
        "mean_gain_best": statistics.mean(x["gain_best"] for r in runs for x in r["rounds"]),
        "mean_gain_keep_all": statistics.mean(x["gain_keep_all"] for r in runs for x in r["rounds"]),
    }  # fmt: skip


def buffer_summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean oracle gain per buffer size (each size's own family, and nested), over rounds and seeds."""
    buffers = runs[0]["buffers"]
    best = np.concatenate([np.array(r["best"]) for r in runs])
    nested = np.concatenate([np.array(r["nested"]) for r in runs])
    share = np.concatenate([np.array(r["old_share"]) for r in runs])
    return {"buffers": buffers, "best": [mean_ci(best[:, i].tolist()) for i in range(len(buffers))],
            "nested": [mean_ci(nested[:, i].tolist()) for i in range(len(buffers))],
            "old_share": share.mean(axis=0).tolist(), "evaluations": int(best.shape[0]), "runs": runs}  # fmt: skip


# ---------------------------------------------------------------------------------------- timing


def bench_timing(prompts: int, group: int, rounds: int, repeats: int) -> dict[str, Any]:
    """Milliseconds of ``schedule()`` (and ``observe()``) at ``prompts x group`` rollouts a round after the
    buffer holds ``rounds`` rounds of them (`sim.timing.schedule_timing`, one torch thread), for the published
    CBS in its three modes and the baselines."""
    specs: dict[str, Callable[[], Any]] = {
        **{f"cbs-{m}": (lambda m=m: rlvr.RolloutScheduler(preset="paper", mode=m, keep_fraction=KEEP, reuse=REUSE,
                                                          buffer_rounds=rounds, seed=0))
           for m in ("group", "global", "both")},
        "uniform": rlvr.UniformScheduler, "pods": lambda: rlvr.MaxVarianceScheduler(keep_fraction=KEEP),
        "dapo": rlvr.DynamicSamplingFilter, "recency": lambda: rlvr.RecencyReplay(reuse=REUSE, buffer_rounds=rounds),
    }  # fmt: skip
    return schedule_timing(prompts, group, rounds, repeats, schedulers=specs)


# ---------------------------------------------------------------------------------------- tables, plot


def fmt_ci(c: tuple[float, float, float] | list[float], digits: int = 3) -> str:
    return f"{c[0]:.{digits}f} [{c[1]:.{digits}f}, {c[2]:.{digits}f}]"


def curve_table(summary: dict[str, Any], sizes: dict[str, Any], config: SimConfig) -> str:
    """One row per scheduler: final accuracy, steps / rollouts / backward passes to target, reached n/N."""
    rows = []
    bg = config.prompts_per_round * config.group_size
    for name, r in summary["schedulers"].items():
        reached = [x for x in r["backward_to_target"] if x is not None]
        rows.append([name, fmt_ci(r["final_ci"]), fmt_ci(r["steps_ci"], 1),
                     f"{r['steps_ci'][0] * bg:,.0f}", f"{statistics.mean(reached):,.0f}" if reached else "-",
                     f"{r['reached']}/{r['n']}", f"{statistics.mean(r['accuracy_at_equal_backward']):.3f}",
                     f"{statistics.mean(r['backward_total']):,.0f}",
                     f"{r['lucky_share_kept']:.3f}", f"{r['schedule_ms_per_round']:.2f}"])  # fmt: skip
    headers = ["scheduler", "final held-out acc. [95% CI]", "steps to target [95% CI]", "rollouts to target",
               "backward passes to target", "reached", "acc. at equal backward passes", "backward passes (total)",
               "lucky share of kept positives", "scheduler ms/round"]  # fmt: skip
    title = (f"Schedulers in the simulator: {sizes['seeds']} seeds x {sizes['steps']} steps, "
             f"B={config.prompts_per_round} prompts x G={config.group_size} rollouts, verifier false-positive rate "
             f"{config.false_positive}, "
             f"target accuracy {summary['target_accuracy']:.3f}")  # fmt: skip
    notes = [
        f"Target: {summary['target_rule']}. Steps to target: seeds that never reach it count as steps + 1 "
        "(the interval is then a lower bound); rollouts to target = mean steps x B G (every scheduler generates "
        "B G rollouts a round, so equal rollouts means equal steps); backward passes to target: mean over seeds "
        f"that reached it. Accuracy at equal backward passes: at the first step with >= "
        f"{summary['equal_backward_budget']:,.0f} rows trained (the smallest mean total of any scheduler). "
        "Lucky share: verifier-accepted wrong answers among the fresh rows trained on with advantage > 0 (among all "
        "generated: "
        f"{summary['schedulers']['uniform']['lucky_share_all']:.3f})."
    ]
    return table(title, headers, rows, notes)


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def _ratio(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}x"


def comparison_table(summary: dict[str, Any]) -> str:
    """CBS against uniform and PODS: ratios of mean steps to target, overlap, paired differences, verdict."""
    rows = []
    for cbs, c in summary["comparisons"].items():
        u = c["uniform"]
        rows.append([cbs, _ratio(u["ratio_of_means"]), "yes" if u["intervals_overlap"] else "no",
                     fmt_ci(c["uniform"]["paired_diff_ci"], 1), _ratio(c["pods"]["ratio_of_means"]),
                     "yes" if c["pods"]["intervals_overlap"] else "no", fmt_ci(c["pods"]["paired_diff_ci"], 1),
                     "met" if c["target_met"] else "NOT met"])  # fmt: skip
    headers = ["CBS mode", "steps / uniform", "CIs overlap", "paired diff. (steps)", "steps / PODS", "CIs overlap",
               "paired diff. (steps)", f"target (<= {TARGET_RATIO}x uniform, <= PODS, CIs apart)"]  # fmt: skip
    return table("CBS against uniform GRPO and PODS (steps to target)", headers, rows, [])


def regret_table(regret: dict[str, Any]) -> str:
    rows = []
    for name, r in regret.items():
        rows.append([name, f"{len(r['cumulative'])}", fmt_ci(r["final"], 4), fmt_ci(r["random_final"], 4),
                     fmt_ci(r["ratio_to_random"], 2),
                     fmt_ci(r["slope"], 2), fmt_ci(r["random_slope"], 2), fmt_ci(r["per_round_first_half"], 5),
                     fmt_ci(r["per_round_second_half"], 5), f"{r['own_is_best_share']:.2f}",
                     f"{r['mean_gain_own'] * 1e3:.3f} / {r['mean_gain_random'] * 1e3:.3f} / "
                     f"{r['mean_gain_best'] * 1e3:.3f} / {r['mean_gain_keep_all'] * 1e3:.3f}"])  # fmt: skip
    headers = ["scheduler", "seeds", "cumulative regret R(T)", "random selector R(T)", "R(T) / random's",
               "log-log slope", "random slope", "regret/round, 1st half", "2nd half", "own = oracle",
               "gain x1e3: own / random / oracle / keep-all"]  # fmt: skip
    notes = [
        "The bandit's label: "
        + "; ".join(
            f"{n}: std of observed r_t {r['label']['observed_std']:.4f}, std of the true gain of its "
            f"selection {r['label']['true_gain_std']:.4f}, correlation {_num(r['label']['corr_observed_true'])}, "
            f"oracle - random gain {r['label']['oracle_minus_random_mean']:.5f}"
            for n, r in regret.items()
        )
        + ".",
        "Regret of a round: best true one-step gain (exact expected accuracy on a fixed sample of training prompts) "
        "over the family (own choice, 4 random, top/bottom by each feature, max-variance; same per-group budget) "
        "minus the gain of the scheduler's own choice. Slope of log R(t) on log t over the last 3/4 of rounds: 1 "
        "is linear, < 1 sublinear; gains shrink as the policy learns, so compare with the random selector's.",
    ]
    return table("Regret of CBS against the per-round family oracle", headers, rows, notes)


def buffer_table(buf: dict[str, Any]) -> str:
    base = buf["best"][0][0]
    cols = zip(buf["buffers"], buf["best"], buf["nested"], buf["old_share"], strict=True)
    rows = [[f"{L}", fmt_ci([x * 1e3 for x in b], 3), fmt_ci([x * 1e3 for x in n], 3),
             f"{n[0] / base:.2f}x" if base > 0 else "-", f"{s:.2f}"] for L, b, n, s in cols]  # fmt: skip
    headers = ["buffer (rounds)", "oracle gain x1e3 (own family)", "nested oracle gain x1e3", "nested / no buffer",
               "buffered share of oracle's rows"]  # fmt: skip
    notes = [
        f"{buf['evaluations']} evaluations (rounds x seeds) along plain-GRPO trajectories; each family: 4 "
        "random selections of B G / 2 pool rows and the top B G / 2 by each feature both ways."
    ]
    return table("The oracle's one-step gain as the buffer grows", headers, rows, notes)


def timing_table(timing: dict[str, Any]) -> str:
    rows = [[name, f"{r['schedule_ms_median']:.2f}", f"{r['schedule_ms_best']:.2f}", f"{r['observe_ms_median']:.2f}",
             "yes" if r["schedule_ms_median"] <= 10 else "NO"]
            for name, r in timing.items() if isinstance(r, dict)]  # fmt: skip
    title = (
        f"schedule() time: {timing['prompts']} prompts x {timing['group']} rollouts, buffer "
        f"{timing['buffer_rollouts']:,} rollouts, {timing['repeats']} repeats, 1 thread"
    )
    return table(title, ["scheduler", "schedule ms (median)", "(best)", "observe ms (median)", "<= 10 ms"], rows, [])


def compact_json(report: dict[str, Any]) -> str:
    """Indented JSON with every list of numbers on one line (the curves would otherwise take a line a number)."""
    text = json.dumps(report, indent=1, default=str)
    flat = re.compile(
        r"\[\s*((?:-?[0-9.eE+-]+|null|NaN|-?Infinity)(?:,\s*(?:-?[0-9.eE+-]+|null|NaN|-?Infinity))*)\s*\]"
    )
    return flat.sub(lambda m: "[" + ", ".join(x.strip() for x in m.group(1).split(",")) + "]", text) + "\n"


def plot(curves: dict[str, list[dict[str, Any]]], summary: dict[str, Any], regret: dict[str, Any],
         buf: dict[str, Any] | None, bg: int, path: Path) -> bool:  # fmt: skip
    """Accuracy vs steps (rollouts on the top axis) and vs backward passes, regret, oracle gain vs buffer."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(2, 2, figsize=(12, 8.4))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (name, runs) in enumerate((n, r) for n, r in curves.items() if not n.startswith("diag:")):
        c = colors[i % len(colors)]
        acc = np.array([r["accuracy"] for r in runs])
        steps = np.arange(acc.shape[1])
        m, lo, hi = band(acc)
        ls = "-" if name.startswith("cbs") else "--"
        ax[0, 0].plot(steps, m, color=c, lw=1.4, ls=ls, label=name)
        ax[0, 0].fill_between(steps, lo, hi, color=c, alpha=0.12, lw=0)
        grid = np.linspace(0, min(r["backward"][-1] for r in runs), 200)
        on_grid = np.array([np.interp(grid, r["backward"], r["accuracy"]) for r in runs])
        m, lo, hi = band(on_grid)
        ax[0, 1].plot(grid, m, color=c, lw=1.4, ls=ls, label=name)
        ax[0, 1].fill_between(grid, lo, hi, color=c, alpha=0.12, lw=0)
    for a in (ax[0, 0], ax[0, 1]):
        a.axhline(summary["target_accuracy"], color="k", lw=0.8, ls=":")
        a.set_ylabel("held-out expected accuracy\n(mean, 95% band over seeds)")
        a.grid(alpha=0.3)
    ax[0, 0].set_xlabel("training steps")
    top = ax[0, 0].secondary_xaxis("top", functions=(lambda s: s * bg, lambda r: r / bg))
    top.set_xlabel("rollouts generated")
    ax[0, 1].set_xlabel("backward passes (rows trained)")
    ax[0, 0].legend(fontsize=8, ncol=2, frameon=False, loc="lower right")
    for i, (name, r) in enumerate(regret.items()):
        cum = np.array(r["cumulative"])
        t = np.arange(1, cum.shape[1] + 1)
        ax[1, 0].plot(t, cum.mean(0), color=colors[i], lw=1.4, label=f"{name} (slope {r['slope'][0]:.2f})")
        ax[1, 0].plot(t, np.array(r["random_cumulative"]).mean(0), color=colors[i], lw=1, ls="--",
                      label=f"random selector, same budget (slope {r['random_slope'][0]:.2f})")  # fmt: skip
    ax[1, 0].set_xscale("log")
    ax[1, 0].set_yscale("log")
    ax[1, 0].set_xlabel("round t (log)")
    ax[1, 0].set_ylabel("cumulative regret vs family oracle")
    ax[1, 0].legend(fontsize=8, frameon=False)
    ax[1, 0].grid(alpha=0.3, which="both")
    L = buf["buffers"] if buf else []
    for key, label in (("best", "own family (same size)"), ("nested", "nested (candidate sets grow)")):
        if buf is None:
            break
        m = np.array([x[0] for x in buf[key]]) * 1e3
        lo = np.array([x[1] for x in buf[key]]) * 1e3
        hi = np.array([x[2] for x in buf[key]]) * 1e3
        bars = np.where(np.isfinite(lo) & np.isfinite(hi), [m - lo, hi - m], np.nan)  # one seed: no interval
        ax[1, 1].errorbar(L, m, yerr=bars, marker="o", capsize=3, label=label)
    ax[1, 1].set_xlabel("buffer (past rounds in the pool)")
    ax[1, 1].set_ylabel("oracle one-step gain x1e3 (95% CI)")
    ax[1, 1].legend(fontsize=8, frameon=False)
    ax[1, 1].grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


# ---------------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run every measurement, print the tables, write the JSON and the plot; returns the report."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer seeds and steps (<= 2 minutes)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    for flag in ("seeds", "steps", "regret-seeds", "regret-steps", "buffer-seeds", "buffer-steps"):
        parser.add_argument(f"--{flag}", type=int, default=None, help="override the mode's size")
    parser.add_argument("--timing", type=int, nargs=3, default=None, metavar=("PROMPTS", "G", "ROUNDS"))
    parser.add_argument("--only", nargs="*", default=None, help="schedulers to run (uniform and pods always run)")
    parser.add_argument("--diagnostics", action="store_true", help="add the diagnostic runs (diag:...)")
    parser.add_argument("--false-positive", type=float, default=None, help="the verifier's false-positive rate")
    parser.add_argument("--prompts-per-round", type=int, default=None, help="B (default 32)")
    args = parser.parse_args(argv)
    sizes = dict(QUICK if args.quick else FULL)
    for key in ("seeds", "steps", "regret_seeds", "regret_steps", "buffer_seeds", "buffer_steps", "timing"):
        if getattr(args, key) is not None:
            sizes[key] = getattr(args, key)
    names = [n for n in makers() if args.only is None or n in args.only or n in ("uniform", "pods")]
    names += list(diagnostic_makers()) if args.diagnostics else []
    overrides = {"false_positive": args.false_positive, "prompts_per_round": args.prompts_per_round}
    config = SimConfig(**{k: v for k, v in overrides.items() if v is not None})
    cfg = {k: getattr(config, k) for k in config.__dataclass_fields__}
    start, load_before = time.perf_counter(), os.getloadavg()
    regret_names = [n for n in ("cbs-group", "cbs-both") if n in names]
    jobs: list[Job] = [("regret", n, s, sizes["regret_steps"], cfg, 0) for n in regret_names
                       for s in range(sizes["regret_seeds"])]  # fmt: skip
    jobs += [("buffer", "uniform", s, sizes["buffer_steps"], cfg, sizes["buffer_every"])
             for s in range(sizes["buffer_seeds"])]  # fmt: skip
    jobs += [("curve", n, s, sizes["steps"], cfg, 0) for s in range(sizes["seeds"]) for n in names]
    results = run_jobs(jobs, args.workers)
    curves: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    regret_runs: dict[str, list[dict[str, Any]]] = {n: [] for n in regret_names}
    buffer_runs = []
    for kind, name, _seed, res in results:
        if kind == "curve":
            curves[name].append(res)
        elif kind == "regret":
            regret_runs[name].append(res)
        else:
            buffer_runs.append(res)
    learn_s = time.perf_counter() - start
    timing = bench_timing(*sizes["timing"], sizes["timing_repeats"])
    bg = config.prompts_per_round * config.group_size
    summary = summarise(curves, sizes["steps"], bg)
    regret = {n: regret_summary(r) for n, r in regret_runs.items() if r}
    buf = buffer_summary(buffer_runs) if buffer_runs else None
    report: dict[str, Any] = {
        "benchmark": "bench_rlvr", "mode": "quick" if args.quick else "full", "argv": sys.argv,
        "machine": machine_info(1, DISTS), "sizes": sizes, "workers": args.workers, "sim_config": cfg,
        "settings": {"keep_fraction": KEEP, "buffer_rounds": BUFFER_ROUNDS, "reuse": REUSE,
                     "threshold_min_abs_advantage": MIN_ABS_ADV},
        "target_accuracy": summary["target_accuracy"], "target_rule": summary["target_rule"],
        "equal_backward_budget": summary["equal_backward_budget"],
        "schedulers": summary["schedulers"], "comparisons": summary["comparisons"],
        "curves": {n: {"accuracy": [[round(a, 5) for a in r["accuracy"]] for r in runs],
                       "backward": [r["backward"] for r in runs]} for n, runs in curves.items()},
        "regret": regret, "buffer": buf, "timing": timing,
    }  # fmt: skip
    report["elapsed_s"] = time.perf_counter() - start
    report["learning_s"] = learn_s
    report["load_average_before_after"] = [load_before, os.getloadavg()]
    m = report["machine"]
    print(f"bench_rlvr ({report['mode']}): {m['cpu_model']}, {m['cores']} cores, {args.workers} workers x 1 torch "
          f"thread, load average {load_before[0]:.2f} before, {os.getloadavg()[0]:.2f} after, "
          f"{report['elapsed_s']:.0f} s\n")  # fmt: skip
    tables = [curve_table(summary, sizes, config), comparison_table(summary)]
    if regret:
        tables.append(regret_table(regret))
    tables += [buffer_table(buf)] if buf else []
    tables.append(timing_table(timing))
    print("\n\n".join(tables))
    args.out.mkdir(parents=True, exist_ok=True)
    text = compact_json(report)
    (args.out / "bench_rlvr_claims.json").write_text(text)
    report["plot"] = plot(curves, summary, regret, buf, bg, args.out / "rlvr_claims.png")
    print(f"\nwrote {args.out / 'bench_rlvr_claims.json'} and {args.out / 'rlvr_claims.png'}")
    return report


if __name__ == "__main__":
    main()
