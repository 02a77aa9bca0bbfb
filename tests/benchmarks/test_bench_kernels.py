"""Smoke test: the kernel benchmark runs end to end in --quick mode and writes its JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_kernels_quick(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_kernels.py"), "--quick", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads((tmp_path / "bench_kernels.json").read_text())
    assert set(result["cpu"]) == {"shared", "disjoint", "bonus", "topk"}
    assert result["cpu"]["shared"]["results"]["shared_score_torch"]["rate_median"] > 0
    assert "| shared_score_torch |" in proc.stdout
