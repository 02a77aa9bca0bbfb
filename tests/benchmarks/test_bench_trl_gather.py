"""Smoke test: the gather benchmark runs two gloo processes in --quick mode and writes its JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_trl_gather_quick(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_trl_gather.py"), "--quick", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads((tmp_path / "bench_trl_gather.json").read_text())
    rows, stats = result["modes"]["rows"], result["modes"]["statistics"]
    assert rows["received_bytes_per_round"] > stats["received_bytes_per_round"] > 0
    assert result["bytes_ratio"] > 1 and stats["ms_median"] > 0
    assert "| statistics |" in proc.stdout
