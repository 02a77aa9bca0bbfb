"""Smoke test: the benchmark of the paper's claims (CBS, regret, buffer oracle) runs end to end on a tiny
configuration, writes bench_rlvr_claims.json with the documented schema, the plot and the tables."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NAMES = {"cbs-group", "cbs-global", "cbs-both", "uniform", "pods", "dapo", "threshold", "recency"}


def test_bench_rlvr_claims_tiny(tmp_path: Path) -> None:
    sizes = ["--seeds", "2", "--steps", "8", "--regret-seeds", "1", "--regret-steps", "4", "--buffer-seeds", "1",
             "--buffer-steps", "11", "--timing", "64", "4", "2", "--workers", "1"]  # fmt: skip
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_rlvr_claims.py"), "--quick", "--out", str(tmp_path), *sizes],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads((tmp_path / "bench_rlvr_claims.json").read_text())
    assert set(result["schedulers"]) == NAMES
    for r in result["schedulers"].values():
        assert len(r["final_accuracy"]) == 2 and all(0.0 <= a <= 1.0 for a in r["final_accuracy"])
        assert len(r["steps_to_target"]) == 2
        assert all(s is None or (isinstance(s, int) and 0 <= s <= 8) for s in r["steps_to_target"])
    assert 0.0 < result["target_accuracy"] < 1.0
    assert set(result["comparisons"]) == {"cbs-group", "cbs-global", "cbs-both"}
    assert set(result["regret"]) == {"cbs-group", "cbs-both"}
    m, lo, hi = result["regret"]["cbs-group"]["final"]  # one regret seed: a finite mean and no interval
    assert math.isfinite(m) and (lo, hi) == (-math.inf, math.inf)
    assert result["buffer"]["buffers"] == [0, 1, 2, 4, 8] and result["buffer"]["evaluations"] == 1
    assert result["timing"]["cbs-group"]["schedule_ms_median"] > 0
    assert result["machine"]["versions"]["torch"]
    assert (tmp_path / "rlvr_claims.png").stat().st_size > 10_000
    assert "| cbs-group |" in proc.stdout and "| uniform |" in proc.stdout
