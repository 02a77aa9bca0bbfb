"""The built-in demo suite: its outputs, and that it ranks the policies the way theory says it must."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from banditlib.experiments.demo import DEMO_ENVS, DEMO_POLICIES, run_demo


def _final(result: dict[str, Any], env: str) -> dict[str, float]:
    return {row["policy"]: row["final_regret_mean"] for row in result["summary"] if row["env"] == env}


def test_demo_writes_results_and_plot_and_learning_beats_random(tmp_path: Path) -> None:
    result = run_demo(horizon=400, seeds=2, out=tmp_path, jobs=1, progress=False)
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["summary"] == result["summary"]
    n = len(DEMO_ENVS) * len(DEMO_POLICIES)
    assert len(saved["runs"]) == 2 * n and len(saved["summary"]) == n
    assert all(len(r["regret"]) == 400 for r in saved["runs"])
    assert (tmp_path / "regret.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = (tmp_path / "table.md").read_text(encoding="utf-8")
    assert table.startswith("Cumulative pseudo-regret after T = 400 rounds") and "| Quadratic-v0 | Random |" in table
    # T = 400 is long enough for a growth exponent in every row (no n/a, no null).
    assert all(row["growth_exponent"] is not None for row in saved["summary"]) and "n/a" not in table
    checks = {(c["policy"], c["check"]): c for c in saved["theory"] if c["env"] == "Linear-v0"}
    assert checks[("LinUCB", "elliptical_potential")]["passed"]
    assert checks[("LinUCB", "confidence_coverage")]["passed"]
    assert checks[("LinUCB", "oful_regret_bound")]["passed"]
    final = _final(result, "Linear-v0")
    # Wide margins: Random's regret grows linearly (about 0.5 per round here); LinUCB's flattens out.
    assert final["LinUCB"] < 0.3 * final["Random"]
    assert final["LinTS(scale=0.5)"] < 0.5 * final["Random"]


@pytest.mark.slow
def test_demo_at_full_size_shows_what_its_docstring_claims(tmp_path: Path) -> None:
    result = run_demo(out=tmp_path, jobs=2, progress=False)
    slope = {(r["env"], r["policy"]): r["growth_exponent"] for r in result["summary"]}
    assert slope[("Linear-v0", "LinUCB")] < 0.6 and slope[("Linear-v0", "Random")] > 0.9
    drifting = _final(result, "Drifting-v0")
    assert drifting["LinUCB(forget=0.99)"] < 0.5 * drifting["LinUCB"]
    quadratic = _final(result, "Quadratic-v0")
    assert quadratic["NeuralLinUCB"] < 0.7 * quadratic["LinUCB"]
    assert slope[("Quadratic-v0", "LinUCB")] > 0.9
