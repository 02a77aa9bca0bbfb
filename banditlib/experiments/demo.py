"""``banditlib demo``: the default regret suite, sized to finish in well under two minutes on two cores.

Three environments, each showing one thing:

* ``Linear-v0`` (``d = 10``, ``K = 10``): the linear policies' regret flattens (growth exponent well below 1)
  while ``EpsilonGreedy`` and ``Random`` grow linearly; the theory checks run on every policy's data
  (elliptical potential lemma, confidence-set coverage) and the OFUL bound is drawn in;
* ``Drifting-v0``: ``theta*`` turns once every 2000 rounds, so only the forgetting policy
  (``LinUCB(forget=0.99)``) tracks it;
* ``Quadratic-v0``: NeuralUCB's ``h1 = 10 (x^T a)^2``, a reward no linear model can fit: the linear policies'
  regret grows linearly, ``NeuralLinUCB`` (LinUCB over the features of a network it trains as it goes) ends
  far below them. On the linear problems it pays for its flexibility with more regret than ``LinUCB``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from banditlib.experiments.report import growth_exponent
from banditlib.experiments.runner import default_jobs
from banditlib.experiments.suite import run_regret

__all__ = ["DEMO_ENVS", "DEMO_POLICIES", "growth_exponent", "run_demo"]

DEMO_ENVS = ("Linear-v0", "Drifting-v0", "Quadratic-v0")
DEMO_POLICIES = ("linucb", "lints:scale=0.5", "linucb:forget=0.99", "neurallinucb", "epsilongreedy", "random")


def run_demo(
    horizon: int = 2000,
    seeds: int = 5,
    out: str | Path | None = "demo-results",
    *,
    jobs: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Run the default suite (`DEMO_ENVS` x `DEMO_POLICIES`), print the tables, write the outputs.

    Args:
        horizon: rounds per run.
        seeds: runs per (environment, policy).
        out: output folder for ``results.json``, ``table.md`` (the printed tables) and ``regret.png``
            (``None``: write nothing).
        jobs: worker processes (``None``: one per core).
        progress: show the progress bar.

    Returns:
        The dictionary written to ``results.json`` (see
        [`banditlib.experiments.suite.run_regret`][banditlib.experiments.demo.run_regret]).
    """
    return run_regret(
        DEMO_ENVS,
        DEMO_POLICIES,
        horizon=horizon,
        seeds=seeds,
        jobs=default_jobs() if jobs is None else jobs,
        out=out,
        progress=progress,
        title=f"banditlib demo: {seeds} seeds, T = {horizon}",
    )
