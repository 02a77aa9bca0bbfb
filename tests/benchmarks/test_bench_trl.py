"""Smoke test: the TRL benchmark (adapter overhead, schedulers on one-digit sums) runs end to end in quick mode."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("trl")

ROOT = Path(__file__).resolve().parents[2]


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
    names = {row["scheduler"] for row in result["summary"]}
    assert {"uniform", "cbs-group", "cbs-both", "pods", "dapo"} <= names
    for row in result["summary"]:
        assert 0.0 <= row["reward_last10"] <= 1.0 and 0.0 <= row["greedy_acc_final"] <= 1.0
        assert 0.0 < row["kept_fraction"] <= 1.0
    run = result["runs"][0]
    assert len(run["reward"]) == result["steps"] and len(run["greedy_acc"]) >= 1
    assert "| uniform |" in proc.stdout
