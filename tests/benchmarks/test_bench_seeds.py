"""Smoke test: the seeds benchmark runs end to end in --quick mode, finds the batched runs identical and writes its
JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_seeds_quick(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_seeds.py"), "--quick", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads((tmp_path / "bench_seeds.json").read_text())["result"]
    assert set(result["contenders"]) == {
        "one seed",
        "3 separate",
        "3 batched",
        "3 separate, 2 jobs",
        "3 batched, 2 jobs",
    }
    assert all(r["median_s"] > 0 for r in result["contenders"].values())
    assert result["identical_to_separate"] == {"batched": True, "batched_2": True, "separate_2": True}
    assert result["batched_flags"] == [True, True, True]
    assert "| 3 batched |" in proc.stdout
    assert set(result["split"]) == {"1", "3"} and all(v > 0 for r in result["split"].values() for v in r.values())
    assert "Where a batched round goes" in proc.stdout
