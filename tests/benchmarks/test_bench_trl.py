"""Smoke test: the TRL benchmark (adapter and sketch overhead, schedulers on one-digit sums with an exact and a
faulty verifier) runs end to end in quick mode."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("trl")
pytest.importorskip("scipy")

ROOT = Path(__file__).resolve().parents[2]
COMPARED = {"uniform", "default", "cbs-group", "consistency", "dapo", "overlong", "priority"}


def test_bench_trl_quick(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_trl.py"), "--quick", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads((tmp_path / "bench_trl.json").read_text())
    assert result["overhead"]["ratio_median"] > 0 and math.isfinite(result["overhead"]["ratio_median"])
    for name in ("Bandit(uniform, answer_fn=None)", "Bandit(uniform)", "Bandit(uniform, grad_sketch=64)"):
        assert math.isfinite(result["overhead"][name]["ratio_median"])
    sketch = result["sketch_cost"]["timings"]
    assert {"sketch k=16", "sketch k=64", "sketch k=256"} <= set(sketch)
    assert all(r["median_s"] > 0 and math.isfinite(r["ratio_to_head"]) for r in sketch.values())
    assert len(result["faulty_sums"]) == 8  # 40% of the 20 training sums
    for verifier in ("exact", "faulty"):
        rows = [row for row in result["summary"] if row["verifier"] == verifier]
        assert {row["scheduler"] for row in rows} == COMPARED
        for row in rows:
            assert row["seeds"] == result["seeds"] == 2
            assert 0.0 <= row["reward"] <= 1.0 and 0.0 <= row["true_reward"] <= 1.0
            assert 0.0 <= row["greedy_acc"] <= 1.0 and 0.0 <= row["hacked"] <= 1.0
            assert 0.0 < row["kept_fraction"] <= 1.0
            diff = row["greedy_acc_vs_uniform"]
            if row["scheduler"] == "uniform":
                assert diff is None
            else:
                assert diff["seeds"] == 2 and diff["low"] <= diff["mean"] <= diff["high"]
        if verifier == "exact":  # the exact verifier's reward is the true one
            assert all(row["reward"] == pytest.approx(row["true_reward"]) for row in rows)
    run = result["runs"][0]
    assert len(run["reward"]) == len(run["true_reward"]) == result["steps"] and len(run["greedy_acc"]) >= 1
    assert "torch threads: 1" in proc.stdout
    assert "| exact | uniform" in proc.stdout and "| faulty | priority" in proc.stdout
