"""Summaries, theory verdicts and tables from hand-made run results."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from banditlib.experiments.report import (
    EXPONENT_RULE,
    MIN_HORIZON,
    format_tables,
    growth_exponent,
    summarize,
    theory_checks,
)
from banditlib.experiments.runner import RunResult


def _result(env: str, policy: str, seed: int, regret: Any, theory: dict[str, Any] | None = None) -> RunResult:
    arr = np.asarray(regret, dtype=np.float64)
    return RunResult(env, policy, policy.split("(")[0], seed, arr.shape[0], arr, seconds=0.001 * arr.shape[0],
                     theory=theory)  # fmt: skip


def _facts(**over: Any) -> dict[str, Any]:
    base = {
        "reg": 1.0,
        "delta": 0.05,
        "d": 2,
        "noise": 0.5,
        "norm_bound": 1.0,
        "context_bound": 1.0,
        "potential_sum": 3.0,
        "potential_bound": 6.0,
        "potential_holds": True,
        "coverage": 1.0,
        "coverage_always": True,
        "coverage_max_ratio": 0.4,
        "beta_final": 2.5,
        "oful_applies": True,
        "regret_bound": 100.0,
    }
    return base | over


def test_growth_exponent_recovers_known_powers() -> None:
    t = np.arange(1, 4001, dtype=float)
    assert growth_exponent(t) == pytest.approx(1.0, abs=1e-9)
    assert growth_exponent(np.sqrt(t)) == pytest.approx(0.5, abs=1e-9)
    assert growth_exponent(5 * t**0.3) == pytest.approx(0.3, abs=1e-9)
    assert math.isnan(growth_exponent([1.0, 2.0]))


def test_growth_exponent_is_nan_when_the_run_is_too_short() -> None:
    # The fitted range is the second half: T = MIN_HORIZON (100 rounds fitted) is the shortest run with one.
    assert MIN_HORIZON == 200
    t = np.arange(1, MIN_HORIZON + 1, dtype=float)
    assert growth_exponent(t) == pytest.approx(1.0, abs=1e-9)
    assert math.isnan(growth_exponent(t[:-1]))
    # A 10-round run whose regret jumps late used to report an exponent of several units.
    assert math.isnan(growth_exponent([0, 0, 0, 0, 0, 0.01, 0.02, 0.5, 1.0, 2.0]))


def test_growth_exponent_is_nan_without_positive_regret_over_the_fitted_range() -> None:
    t = np.arange(1, 1001, dtype=float)
    late = np.where(t > 600, t - 600, 0.0)  # first mistake after T/2: log R undefined at the start of the fit
    assert math.isnan(growth_exponent(late))
    assert math.isnan(growth_exponent(np.zeros(1000)))
    assert math.isnan(growth_exponent(np.where(t == 900, np.nan, t)))
    early = np.where(t > 400, t - 400, 0.0)  # zero only before T/2: fine
    assert 1.0 < growth_exponent(early) < 3.0


def test_short_runs_show_n_a_with_the_rule_in_a_footnote() -> None:
    short = [_result("E", "A", 0, np.arange(1, 11.0))]
    table = format_tables(summarize(short), [])
    assert "| E | A | 10.0 ± 0.0 | n/a |" in table
    assert table.endswith(EXPONENT_RULE) and "T < 200 rounds" in EXPONENT_RULE and "R(t) = 0" in EXPONENT_RULE
    long = [_result("E", "A", 0, np.arange(1, 1001.0))]
    table = format_tables(summarize(long), [])
    assert "| E | A | 1,000.0 ± 0.0 | 1.00 |" in table and "n/a" not in table
    # Rows read back from results.json carry null (None) for n/a.
    assert "| n/a |" in format_tables([summarize(short)[0] | {"growth_exponent": None}], [])


def test_summary_mean_std_and_exponent_over_seeds() -> None:
    t = np.arange(1, 401, dtype=float)
    results = [
        _result("E", "A", 0, 2 * np.sqrt(t)),
        _result("E", "A", 1, 4 * np.sqrt(t)),
        _result("E", "B", 0, t),
    ]
    rows = {r["policy"]: r for r in summarize(results)}
    assert rows["A"]["final_regret_mean"] == pytest.approx(60.0)
    assert rows["A"]["final_regret_std"] == pytest.approx(np.std([40.0, 80.0], ddof=1))
    assert rows["A"]["growth_exponent"] == pytest.approx(0.5, abs=1e-9)
    assert rows["B"]["final_regret_std"] == 0.0 and rows["B"]["seeds"] == 1
    assert rows["A"]["us_per_round"] == pytest.approx(1000.0)
    assert {"env", "policy", "final_regret_mean", "final_regret_std", "growth_exponent"} <= set(rows["A"])


def test_theory_verdicts() -> None:
    results = [
        _result("E", "LinUCB", 0, [1.0, 2.0], _facts()),
        _result("E", "LinUCB", 1, [1.0, 150.0], _facts(coverage=0.9, coverage_always=False)),
        _result("E", "Random", 0, [1.0, 2.0], _facts(oful_applies=False)),
        _result("F", "LinUCB", 0, [1.0, 2.0]),  # no linear model: no checks
    ]
    checks = theory_checks(results)
    by = {(c["policy"], c["check"]): c for c in checks}
    assert {c["env"] for c in checks} == {"E"}
    assert set(by) == {
        ("LinUCB", "elliptical_potential"),
        ("LinUCB", "confidence_coverage"),
        ("LinUCB", "oful_regret_bound"),
        ("Random", "elliptical_potential"),
        ("Random", "confidence_coverage"),
    }
    cov = by[("LinUCB", "confidence_coverage")]
    assert cov["value"] == pytest.approx(0.95) and cov["min"] == 0.9 and cov["always_fraction"] == 0.5
    assert cov["bound"] == pytest.approx(0.95) and not cov["passed"] and cov["max_ratio"] == 0.4
    bound = by[("LinUCB", "oful_regret_bound")]
    assert bound["value"] == 150.0 and bound["bound"] == 100.0 and not bound["passed"]
    assert by[("LinUCB", "elliptical_potential")]["passed"]
    for c in checks:
        assert c["formula"] and "Abbasi-Yadkori" in c["reference"]
    table = format_tables(summarize(results), checks)
    assert "| E | LinUCB | 76.0 ± 104.7 |" in table
    assert "| E | LinUCB | oful_regret_bound | max R(T) 150.0 | ≤ 100.0 | NO |" in table
