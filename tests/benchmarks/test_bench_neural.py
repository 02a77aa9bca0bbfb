"""Smoke test: the neural benchmark runs end to end in --quick mode, agrees with its reference and writes its JSON."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_neural_quick(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_neural.py"), "--quick", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads((tmp_path / "bench_neural.json").read_text())
    speed = result["speed"]["arms"]
    assert [r["K"] for r in speed] == [64, 512]
    for r in speed:
        assert r["results"]["banditlib NeuralUCB.select"]["rate_median"] > 0
        assert r["bonus_max_rel_diff"] < 1e-4  # float32 agreement with the per-arm-backward reference
        assert r["same_argmax"]
        assert r["memory"]["banditlib NeuralUCB.select"]["peak_bytes"] > 0
    policies = result["regret"]["policies"]
    assert {"LinUCB", "NeuralUCB", "NeuralTS", "NeuralLinUCB"} <= set(policies)
    assert all(math.isfinite(v) for r in policies.values() for v in r["regret_mean"].values())
    assert "| NeuralUCB |" in proc.stdout
    assert "| 512 |" in proc.stdout
