"""The regret-validation suite: what ``banditlib regret`` and ``banditlib demo`` run.

``run_regret`` parses the names, checks the output folder before any work, runs every (environment, policy,
seed) task, prints the markdown tables and writes

* ``DIR/results.json``: ``{"config", "runs": [{"env", "policy", "seed", "horizon", "regret", ...}],
  "summary": [{"env", "policy", "final_regret_mean", "final_regret_std", "growth_exponent", ...}],
  "theory": [{"env", "policy", "check", "value", "bound", "passed", "formula", "reference", ...}],
  "bounds": {env: {"t", "bound_final"}}}``; ``regret`` is the cumulative pseudo-regret after each round;
* ``DIR/table.md``: the markdown tables exactly as printed (regret per environment and policy, then the theory
  checks; see `banditlib.experiments.report.format_tables`);
* ``DIR/regret.png``: the curves with a band over seeds and the OFUL bound (see `.plots`); skipped, with a note,
  when matplotlib is not installed.
"""

from __future__ import annotations

import json
import math
import platform
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from banditlib import _validation as V
from banditlib.errors import InvalidInputError
from banditlib.experiments import INSTALL_ENVS, report, theory
from banditlib.experiments.plots import plot_regret
from banditlib.experiments.runner import RunResult, Task, run_tasks
from banditlib.experiments.specs import EnvSpec, PolicySpec, parse_env, parse_policy

__all__ = ["batching_note", "prepare_out", "run_regret"]


def prepare_out(out: str | Path, where: str = "run_regret()") -> Path:
    """Create the output folder if needed and check that files can be written there.

    Raises:
        InvalidInputError: the folder cannot be created or written to (named, with the system's reason).
    """
    folder = Path(out)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".banditlib-probe-"):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise InvalidInputError(f"{where}: cannot write to the output folder {str(folder)!r}: {reason}.") from None
    return folder


def _unique(specs: Sequence[EnvSpec] | Sequence[PolicySpec], where: str, what: str) -> None:
    labels = [s.label for s in specs]
    for label in labels:
        if labels.count(label) > 1:
            raise InvalidInputError(f"{where}: {what} {label!r} is given twice.")


def _bounds(results: Sequence[RunResult]) -> dict[str, np.ndarray]:
    """The OFUL bound curve per environment with a linear model (LinUCB's ``reg``, else the first policy's)."""
    facts: dict[str, dict[str, Any]] = {}
    for r in sorted(results, key=lambda r: not (r.theory or {}).get("oful_applies", False)):
        if r.theory is not None:
            facts.setdefault(r.env, r.theory)
    horizon = {r.env: r.horizon for r in results}
    out = {}
    for env, f in facts.items():
        t = np.arange(1, horizon[env] + 1)
        out[env] = np.asarray(
            theory.oful_regret_bound(t, f["d"], f["reg"], f["noise"], f["norm_bound"], f["context_bound"], f["delta"]),
            dtype=np.float64,
        )
    return out


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def _versions() -> dict[str, str]:
    import gymnasium
    import torch

    import banditlib

    return {
        "banditlib": banditlib.__version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "gymnasium": gymnasium.__version__,
        "python": platform.python_version(),
    }


def batching_note(results: Sequence[RunResult], batch_seeds: bool = True) -> str:
    """One line saying which (environment, policy) pairs ran their seeds as one batched computation.

    Examples:
        >>> batching_note([], batch_seeds=False)
        'seeds: every run separate (batching switched off).'
    """
    if not batch_seeds:
        return "seeds: every run separate (batching switched off)."
    pairs: dict[tuple[str, str], list[bool]] = {}
    for r in results:
        pairs.setdefault((r.env, r.policy), []).append(r.batched)
    batched = sorted({policy for (_, policy), flags in pairs.items() if any(flags)})
    if not batched:
        return "seeds: every run separate (no policy here has a seed-batched form)."
    n = sum(any(flags) for flags in pairs.values())
    return (
        f"seeds: batched into one computation (results identical to separate runs) for {n} of {len(pairs)} "
        f"(environment, policy) pairs: {', '.join(batched)}; the rest ran seed by seed."
    )


def run_regret(
    envs: Sequence[str | EnvSpec],
    policies: Sequence[str | PolicySpec],
    *,
    horizon: int = 1000,
    seeds: int = 5,
    jobs: int = 1,
    out: str | Path | None = None,
    delta: float = 0.05,
    progress: bool = True,
    title: str | None = None,
    echo: bool = True,
    batch_seeds: bool = True,
) -> dict[str, Any]:
    """Run every policy on every environment for ``seeds`` seeds (``0 .. seeds-1``) and report.

    Args:
        envs: environment names (``"Linear-v0"``, ``"banditlib/Cosine-v0:support='sphere'"``) or specs.
        policies: policy names (``"linucb"``, ``"lints:scale=0.5"``) or specs.
        horizon: rounds per run ``T``.
        seeds: runs per (environment, policy).
        jobs: worker processes.
        out: output folder for ``results.json``, ``table.md`` (the printed tables) and ``regret.png``, or
            ``None`` to write nothing.
        delta: failure probability of the theory checks.
        progress: show a progress bar on stderr.
        title: figure title.
        echo: print the tables (and which runs were batched).
        batch_seeds: run the seeds of each (environment, policy) pair as one batched computation where the
            policy has a seed-batched form (NeuralUCB, NeuralTS, NeuralEpsilonGreedy, NeuralLinUCB, NeuralLinTS; see
            `banditlib.experiments.runner`); the results are identical to separate runs, only faster.

    Returns:
        The dictionary written to ``results.json``.

    Raises:
        InvalidInputError: unknown or malformed names, bad arguments, an unwritable ``out``.
    """
    where = "run_regret()"
    horizon = V.check_int(horizon, where, "horizon")  # type: ignore[assignment]
    seeds = V.check_int(seeds, where, "seeds")  # type: ignore[assignment]
    jobs = V.check_int(jobs, where, "jobs")  # type: ignore[assignment]
    delta = V.check_float(delta, where, "delta", low=0.0, high=1.0, low_open=True, high_open=True)
    if not envs or not policies:
        raise InvalidInputError(f"{where}: name at least one environment and one policy.")
    env_specs = [e if isinstance(e, EnvSpec) else parse_env(e) for e in envs]
    policy_specs = [p if isinstance(p, PolicySpec) else parse_policy(p) for p in policies]
    _unique(env_specs, where, "environment")
    _unique(policy_specs, where, "policy")
    folder = prepare_out(out, where) if out is not None else None

    tasks = [
        Task(env=e, policy=p, seed=s, horizon=horizon, delta=delta)
        for e in env_specs
        for p in policy_specs
        for s in range(seeds)
    ]
    start = time.perf_counter()
    results = run_tasks(tasks, jobs=jobs, progress=progress, batch_seeds=batch_seeds)
    wall = time.perf_counter() - start
    summary = report.summarize(results)
    checks = report.theory_checks(results)
    bounds = _bounds(results)
    payload: dict[str, Any] = {
        "config": {
            "envs": [{"id": e.env_id, "kwargs": e.kwargs, "label": e.label} for e in env_specs],
            "policies": [{"class": p.cls.__name__, "kwargs": p.kwargs, "label": p.label} for p in policy_specs],
            "horizon": horizon,
            "seeds": seeds,
            "jobs": jobs,
            "delta": delta,
            "batch_seeds": batch_seeds,
            "wall_time_s": wall,
            "versions": _versions(),
        },
        "runs": [
            {
                "env": r.env,
                "policy": r.policy,
                "seed": r.seed,
                "horizon": r.horizon,
                "regret": r.regret.tolist(),
                "seconds": r.seconds,
                "batched": r.batched,
                **({"theory": r.theory} if r.theory is not None else {}),
            }
            for r in results
        ],
        "summary": summary,
        "theory": checks,
        "bounds": {env: {"t": int(b.shape[0]), "bound_final": float(b[-1])} for env, b in bounds.items()},
    }
    payload = _json_safe(payload)
    tables = report.format_tables(summary, checks)
    if echo:
        print(tables)
        print("\n" + batching_note(results, batch_seeds))
    if folder is not None:
        (folder / "results.json").write_text(json.dumps(payload), encoding="utf-8")
        (folder / "table.md").write_text(tables + "\n", encoding="utf-8")
        drawn = plot_regret(report.group_curves(results), folder / "regret.png", bounds=bounds, title=title)
        if echo:
            written = [str(folder / name) for name in ("results.json", "table.md", "regret.png")[: 3 if drawn else 2]]
            note = "" if drawn else f" (no regret.png: matplotlib is not installed; {INSTALL_ENVS})"
            print(f"\nwrote {', '.join(written[:-1])} and {written[-1]}{note} in {wall:.0f} s of runs")
    return payload
