"""Smoke test: the linear benchmark runs end to end in --quick mode and writes its JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_linear_quick(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_linear.py"), "--quick", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads((tmp_path / "bench_linear.json").read_text())
    online = result["online"]["results"]
    assert online["banditlib LinUCB float32"]["available"]
    assert online["banditlib LinUCB float32"]["rate_median"] > 0
    assert "| banditlib LinUCB float32 |" in proc.stdout
