"""From run results to what a reader sees: the summary, the theory verdicts, the markdown tables.

Summary per (environment, policy): mean and standard deviation over seeds of the final regret ``R(T)``, and the
growth exponent, the least-squares slope of ``log R(t)`` on ``log t`` over the second half of the horizon of
the seed-averaged curve: ``R(t) ~ c t^p`` gives ``p``; sublinear regret means ``p < 1`` (``sqrt(T)`` rates give
about 0.5, ``log T`` rates less, a constant error rate 1). It is not estimated (``nan``, ``n/a`` in the table,
``null`` in ``results.json``) when the run is too short or has no regret to fit: see `growth_exponent`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from banditlib.experiments.runner import RunResult

__all__ = [
    "EXPONENT_RULE",
    "MIN_HORIZON",
    "format_tables",
    "group_curves",
    "growth_exponent",
    "summarize",
    "theory_checks",
]

POTENTIAL = (
    "sum_t min(1, ||x_t||^2_{V_{t-1}^-1}) <= 2 log(det V_T / det V_0)",
    "Abbasi-Yadkori, Pal, Szepesvari, NeurIPS 2011, Lemma 11",
)
COVERAGE = (
    "||theta_hat_t - theta*||_{V_t} <= beta_t(delta) = R sqrt(2 log(det(V_t)^1/2 det(lambda I)^-1/2 / delta))"
    " + sqrt(lambda) S",
    "Abbasi-Yadkori, Pal, Szepesvari, NeurIPS 2011, Theorem 2",
)
BOUND = (
    "R_T <= 4 sqrt(T d log(lambda + T L^2/d)) (sqrt(lambda) S + R sqrt(2 log(1/delta) + d log(1 + T L^2/(lambda d))))",
    "Abbasi-Yadkori, Pal, Szepesvari, NeurIPS 2011, Theorem 3 (a guarantee for OFUL; LinUCB's constant alpha is "
    "not OFUL's beta_t, so for it the bound is a reference)",
)


# Shortest horizon with a growth exponent: the fit over its second half then has at least 100 rounds.
MIN_HORIZON = 200
EXPONENT_RULE = (
    f"n/a: no growth exponent, the run is too short (T < {MIN_HORIZON} rounds, so fewer than {MIN_HORIZON // 2} "
    "in the fitted second half) or R(t) = 0 somewhere in that second half."
)


def growth_exponent(regret: Any) -> float:
    """Least-squares slope of ``log R(t)`` on ``log t`` over the second half of ``regret`` ``(T,)``.

    Returns ``nan`` (shown as ``n/a``, stored as ``null``) when the slope cannot be told from noise:

    * the horizon is shorter than `MIN_HORIZON` (200 rounds: fewer than 100 in the second half). The fitted
      range always spans a factor of 2 in ``t`` (``log t`` varies by only 0.69), so with few rounds a handful
      of mistakes moves the slope arbitrarily: on ``Linear-v0`` the exponent of ``Random`` (truly 1) ranges
      over 0.3 to 1.8 across seeds at ``T = 10``, 0.9 to 1.2 at ``T = 100`` to ``200``;
    * ``R(t)`` is zero (or not finite) anywhere in the second half: ``log R`` is undefined there (a policy
      with no regret yet has no growth rate to measure).

    Examples:
        >>> t = np.arange(1, 1001.0)
        >>> round(growth_exponent(np.sqrt(t)), 6), round(growth_exponent(t), 6)
        (0.5, 1.0)
        >>> growth_exponent(np.arange(1, 11.0))  # 10 rounds: too short
        nan
    """
    r = np.asarray(regret, dtype=np.float64)
    half = r.shape[0] // 2
    tail = r[half:]
    if r.shape[0] < MIN_HORIZON or not (np.isfinite(tail).all() and (tail > 0).all()):
        return math.nan
    t = np.arange(half + 1, r.shape[0] + 1, dtype=np.float64)
    return float(np.polyfit(np.log(t), np.log(tail), 1)[0])


def group_curves(results: Sequence[RunResult]) -> dict[str, dict[str, NDArray[np.float64]]]:
    """Regret curves stacked per environment and policy: ``{env: {policy: (seeds, T)}}``, in run order."""
    groups: dict[str, dict[str, list[NDArray[np.float64]]]] = {}
    for r in results:
        groups.setdefault(r.env, {}).setdefault(r.policy, []).append(r.regret)
    return {env: {pol: np.stack(curves) for pol, curves in by.items()} for env, by in groups.items()}


def summarize(results: Sequence[RunResult]) -> list[dict[str, Any]]:
    """One row per (environment, policy): final regret mean and std over seeds, growth exponent, speed."""
    speed: dict[tuple[str, str], list[float]] = {}
    for r in results:
        speed.setdefault((r.env, r.policy), []).append(r.seconds / r.horizon)
    rows = []
    for env, by in group_curves(results).items():
        for policy, curves in by.items():
            finals = curves[:, -1]
            rows.append(
                {
                    "env": env,
                    "policy": policy,
                    "seeds": int(curves.shape[0]),
                    "horizon": int(curves.shape[1]),
                    "final_regret_mean": float(finals.mean()),
                    "final_regret_std": float(finals.std(ddof=1)) if finals.shape[0] > 1 else 0.0,
                    "growth_exponent": growth_exponent(curves.mean(axis=0)),
                    "us_per_round": 1e6 * float(np.median(speed[(env, policy)])),
                }
            )
    return rows


def theory_checks(results: Sequence[RunResult]) -> list[dict[str, Any]]:
    """The theory verdicts per (environment, policy), for runs on environments with a linear model.

    Three checks, each with its formula and source: the elliptical potential lemma (must hold in every run,
    exactly), confidence-set coverage (the fraction of rounds with ``theta*`` inside the ellipsoid, against
    ``1 - delta``; also the fraction of runs covered at every round, the event Theorem 2 is about), and, for
    ``LinUCB`` runs without forgetting, the final regret against the OFUL bound.
    """
    grouped: dict[tuple[str, str], list[RunResult]] = {}
    for r in results:
        if r.theory is not None:
            grouped.setdefault((r.env, r.policy), []).append(r)
    checks: list[dict[str, Any]] = []
    for (env, policy), runs in grouped.items():
        facts = [r.theory for r in runs if r.theory is not None]
        delta = float(facts[0]["delta"])
        base = {"env": env, "policy": policy, "seeds": len(runs), "delta": delta, "reg": facts[0]["reg"]}
        checks.append(
            base
            | {
                "check": "elliptical_potential",
                "value": float(np.mean([f["potential_sum"] for f in facts])),
                "bound": float(np.mean([f["potential_bound"] for f in facts])),
                "max_ratio": max(f["potential_sum"] / f["potential_bound"] for f in facts),
                "passed": all(f["potential_holds"] for f in facts),
                "formula": POTENTIAL[0],
                "reference": POTENTIAL[1],
            }
        )
        coverage = [float(f["coverage"]) for f in facts]
        checks.append(
            base
            | {
                "check": "confidence_coverage",
                "value": float(np.mean(coverage)),
                "min": min(coverage),
                "always_fraction": float(np.mean([f["coverage_always"] for f in facts])),
                "max_ratio": max(float(f["coverage_max_ratio"]) for f in facts),
                "bound": 1.0 - delta,
                "passed": min(coverage) >= 1.0 - delta,
                "beta_final": float(np.mean([f["beta_final"] for f in facts])),
                "formula": COVERAGE[0],
                "reference": COVERAGE[1],
            }
        )
        if all(f["oful_applies"] for f in facts):
            finals = [float(r.regret[-1]) for r in runs]
            checks.append(
                base
                | {
                    "check": "oful_regret_bound",
                    "value": max(finals),
                    "bound": float(facts[0]["regret_bound"]),
                    "passed": all(v <= f["regret_bound"] for v, f in zip(finals, facts, strict=True)),
                    "formula": BOUND[0],
                    "reference": BOUND[1],
                }
            )
    return checks


def _fmt(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:,.{digits}f}"


def format_tables(summary: Sequence[dict[str, Any]], checks: Sequence[dict[str, Any]]) -> str:
    """The markdown tables printed at the end of a suite (and written to ``DIR/table.md``): regret per
    (env, policy), with a footnote (`EXPONENT_RULE`) when a growth exponent is ``n/a``, then the theory checks."""
    if not summary:
        return ""
    seeds = sorted({row["seeds"] for row in summary})
    horizon = sorted({row["horizon"] for row in summary})
    lines = [
        f"Cumulative pseudo-regret after T = {'/'.join(map(str, horizon))} rounds, mean ± std over "
        f"{'/'.join(map(str, seeds))} seeds; growth exponent p of R(t) ~ t^p (sublinear: p < 1).",
        "",
        "| env | policy | final regret | growth exponent | µs / round |",
        "|---|---|---:|---:|---:|",
    ]
    for row in summary:
        lines.append(
            f"| {row['env']} | {row['policy']} | {_fmt(row['final_regret_mean'])} ± {_fmt(row['final_regret_std'])} "
            f"| {_fmt(row['growth_exponent'], 2)} | {_fmt(row['us_per_round'], 0)} |"
        )
    if any(_fmt(row["growth_exponent"]) == "n/a" for row in summary):
        lines += ["", EXPONENT_RULE]
    if checks:
        lines += [
            "",
            f"Theory checks (delta = {checks[0]['delta']}; see docs/regret.md for the formulas).",
            "",
            "| env | policy | check | measured | bound / target | holds |",
            "|---|---|---|---:|---:|:---:|",
        ]
        for c in checks:
            if c["check"] == "confidence_coverage":
                measured = (
                    f"{c['value']:.4f} (min {c['min']:.4f}; every round in {c['always_fraction']:.0%} of runs; "
                    f"max distance / beta {c['max_ratio']:.2f})"
                )
                bound = f"≥ {c['bound']:.2f}"
            elif c["check"] == "elliptical_potential":
                measured = f"{_fmt(c['value'], 2)} (max ratio to bound {c['max_ratio']:.2f})"
                bound = f"≤ {_fmt(c['bound'], 2)}"
            else:
                measured, bound = f"max R(T) {_fmt(c['value'])}", f"≤ {_fmt(c['bound'])}"
            verdict = "yes" if c["passed"] else "NO"
            lines.append(f"| {c['env']} | {c['policy']} | {c['check']} | {measured} | {bound} | {verdict} |")
    return "\n".join(lines)
