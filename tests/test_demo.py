"""The built-in regret demo: outputs, and that it ranks the policies the way theory says it must."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from banditlib.experiments.demo import growth_exponent, run_demo


def test_growth_exponent_recovers_known_powers() -> None:
    t = np.arange(1, 4001, dtype=float)
    assert growth_exponent(t) == pytest.approx(1.0, abs=1e-9)
    assert growth_exponent(np.sqrt(t)) == pytest.approx(0.5, abs=1e-9)


def test_demo_writes_results_and_learning_beats_random(tmp_path: Path) -> None:
    result = run_demo(horizon=400, seeds=2, out=tmp_path)
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["summary"] == result["summary"]
    assert len(saved["runs"]) == 8 and all(len(r["regret"]) == 400 for r in saved["runs"])
    final = {row["policy"]: row["final_regret_mean"] for row in result["summary"]}
    # Wide margins: Random's regret grows linearly (about 0.5 per round here); LinUCB's flattens out.
    assert final["LinUCB"] < 0.3 * final["Random"]
    assert final["LinTS"] < 0.5 * final["Random"]
    slope = {row["policy"]: row["growth_exponent"] for row in result["summary"]}
    assert slope["Random"] > 0.9 and slope["LinUCB"] < 0.8
