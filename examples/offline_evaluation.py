"""Off-policy evaluation on simulated logs: bias, interval coverage and width of every estimator of banditlib.offline.

Two worlds, two logging policies, three target policies:

* worlds: ``Linear-v0`` (``d = 5``, ``K = 5``, noise 0.5, one fixed instance; shared-parameter model, so the ridge
  reward model of doubly robust is well specified) and ``Wheel-v0`` (``delta = 0.95``, ``K = 5`` disjoint arms,
  2-d contexts; rewards are not linear in the context, so the reward model is misspecified, and the rare
  reward of 50 makes the weights matter);
* loggers: ``Random`` (propensity ``1/K``) and ``EpsilonGreedy(epsilon=0.2)`` learning online as it logs
  (propensities ``0.04`` or ``0.84``);
* targets, trained beforehand on 500 rounds of the same world and then fixed: ``LinUCB``, ``EpsilonGreedy(0.1)``
  (stochastic, closed form) and ``LinTS`` (stochastic, Monte Carlo action probabilities from 200 samples).

For each of ``--seeds`` logs of ``--rounds`` rounds (the env seed and the logger's seed vary) the estimators are
compared with the target's true value on the logged contexts (``true_value``, from the environments' expected
rewards). The action probabilities of each target are computed once per log (``action_probabilities``) and
passed to the estimators as a function, which gives the same numbers as passing the policy and is faster. The
columns: the mean bias across seeds with its standard error, the fraction of 95% intervals that contain the
truth, and the mean interval width. Replay runs the fixed target (``learn=False``); it assumes a uniform logger
and is biased under epsilon-greedy logging (it warns; the warnings are silenced here).

Usage: ``python examples/offline_evaluation.py [--seeds 100] [--rounds 1000]`` (prints Markdown tables;
about 80 seconds on 2 CPU cores with the defaults).
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import warnings
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import torch

import banditlib
import banditlib.envs  # registers the ids
from banditlib import offline
from banditlib.experiments.runner import play

WORLDS: dict[str, tuple[str, dict[str, Any], int, int | None]] = {
    # name: (env id, kwargs, d, arms: None for the shared-parameter model)
    "Linear-v0": ("banditlib/Linear-v0", {"d": 5, "K": 5, "noise": 0.5, "instance_seed": 3}, 5, None),
    "Wheel-v0": ("banditlib/Wheel-v0", {"delta": 0.95}, 2, 5),
}
LOGGERS: dict[str, Callable[[int, int | None, int], banditlib.Policy]] = {
    "Random": lambda d, arms, seed: banditlib.Random(d, arms, seed=seed),
    "EpsilonGreedy(0.2)": lambda d, arms, seed: banditlib.EpsilonGreedy(d, arms, epsilon=0.2, seed=seed),
}
TARGETS: dict[str, Callable[[int, int | None], banditlib.Policy]] = {
    "LinUCB": lambda d, arms: banditlib.LinUCB(d, arms, seed=11),
    "EpsilonGreedy(0.1)": lambda d, arms: banditlib.EpsilonGreedy(d, arms, epsilon=0.1, seed=12),
    "LinTS": lambda d, arms: banditlib.LinTS(d, arms, seed=13),
}
CLIP = 10.0
ESTIMATORS: dict[str, Callable[[offline.BanditLog, Any, banditlib.Policy], Any]] = {
    "replay": lambda log, probs, policy: offline.replay(log, policy, learn=False),
    "IPS": lambda log, probs, policy: offline.ips(log, probs),
    f"IPS clip={CLIP:g}": lambda log, probs, policy: offline.ips(log, probs, clip=CLIP),
    "SNIPS": lambda log, probs, policy: offline.snips(log, probs),
    "DR": lambda log, probs, policy: offline.doubly_robust(log, probs),
    "DR cross-fit": lambda log, probs, policy: offline.doubly_robust(log, probs, cross_fit=True),
}


def evaluate(world: str, seeds: int, rounds: int) -> dict[tuple[str, str, str], dict[str, float]]:
    env_id, kwargs, d, arms = WORLDS[world]
    targets = {}
    for name, build in TARGETS.items():
        policy = build(d, arms)
        play(gym.make(env_id, **kwargs), policy, 500, seed=10_000)
        targets[name] = policy
    out = {}
    for logger_name, logger in LOGGERS.items():
        errors: dict[tuple[str, str], list[tuple[float, bool, float]]] = {}
        for seed in range(seeds):
            log = offline.log_policy(env_id, logger(d, arms, seed), rounds, seed, env_kwargs=kwargs)
            for target_name, target in targets.items():
                probs = offline.action_probabilities(target, log.contexts)
                truth = offline.true_value(log, lambda x, p=probs: p)
                for est_name, estimate in ESTIMATORS.items():
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", RuntimeWarning)
                        e = estimate(log, lambda x, p=probs: p, target)
                    row = (e.value - truth, e.ci[0] <= truth <= e.ci[1], e.ci[1] - e.ci[0])
                    errors.setdefault((target_name, est_name), []).append(row)
        for (target_name, est_name), rows in errors.items():
            bias, covered, width = (np.array(col, dtype=float) for col in zip(*rows, strict=True))
            out[(logger_name, target_name, est_name)] = {
                "bias": float(bias.mean()),
                "bias_se": float(bias.std(ddof=1) / np.sqrt(len(bias))),
                "rmse": float(np.sqrt((bias**2).mean())),
                "coverage": float(covered.mean()),
                "width": float(width.mean()),
            }
    return out


def table(results: dict[tuple[str, str, str], dict[str, float]], logger: str) -> str:
    head = "| estimator | " + " | ".join(f"{t}: bias | cover | width" for t in TARGETS) + " |"
    lines = [head, "|---|" + "---:|---:|---:|" * len(TARGETS)]
    for est in ESTIMATORS:
        cells = []
        for target in TARGETS:
            r = results[(logger, target, est)]
            cells += [f"{r['bias']:+.3f} ± {r['bias_se']:.3f}", f"{r['coverage']:.2f}", f"{r['width']:.3f}"]
        lines.append(f"| {est} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def machine() -> str:
    """The CPU model (from /proc/cpuinfo where there is one) and the number of CPUs."""
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            name = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), name)
    except OSError:
        pass
    return f"{name}, {os.cpu_count()} CPUs"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=1000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    start = time.perf_counter()
    for world in WORLDS:
        results = evaluate(world, args.seeds, args.rounds)
        for logger in LOGGERS:
            print(f"\n**{world}, logged by {logger}** ({args.seeds} logs of {args.rounds} rounds; 95% intervals)\n")
            print(table(results, logger))
    print(
        f"\n{time.perf_counter() - start:.0f} s on {machine()}, torch {torch.__version__}, banditlib "
        f"{banditlib.__version__}, one torch thread"
    )


if __name__ == "__main__":
    main()
