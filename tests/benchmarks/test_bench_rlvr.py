"""Smoke test: the verifier-fault-world benchmark runs end to end on a tiny configuration (two worlds, the
ablation, paper scale, timing), writes bench_rlvr.json with the documented schema, the plot and the tables."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_rlvr_tiny(tmp_path: Path) -> None:
    args = ["--quick", "--seeds", "2", "--steps", "6", "--worlds", "iid", "truncation", "--timing", "32", "4", "2",
            "--workers", "1", "--only", "consistency", "overlong", "--ablation", "--paper-scale",
            "--paper-steps", "3"]  # fmt: skip
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_rlvr.py"), "--out", str(tmp_path), *args],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((tmp_path / "bench_rlvr.json").read_text())
    assert set(result["worlds"]) == {"iid", "truncation"}
    for w in result["worlds"].values():
        names = set(w["schedulers"])
        assert {"default", "uniform", "consistency", "overlong"} <= names
        assert any(n.startswith("abl: ") for n in names)
        assert w["best_peer"] in {"consistency", "overlong"}
        assert set(w["diff_uniform"]) == names - {"uniform"}
        for r in w["schedulers"].values():
            assert len(r["final"]) == 2 and all(0.0 <= a <= 1.0 for a in r["final"])
            assert 0.0 <= r["kept_share"] <= 1.0 and r["schedule_ms"] >= 0
    assert set(result["verdict"]) == {"below_uniform", "above_uniform", "peers_significantly_above", "met"}
    assert set(result["paper_scale"]) == {"iid, B=256 x G=16", "iid, B=32 x G=8", "mixture, B=256 x G=16",
                                          "mixture, B=32 x G=8"}  # fmt: skip
    assert result["paper_scale"]["iid, B=32 x G=8"]["snr"]["rounds"] > 0
    assert result["timing"]["default"]["schedule_ms_median"] > 0
    assert (tmp_path / "rlvr_worlds.png").stat().st_size > 10_000
    assert "| **default** |" in proc.stdout and "Verdict" in proc.stdout


def test_bench_rlvr_timing_only(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_rlvr.py"), "--only-timing", "--timing", "32", "4", "2",
         "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((tmp_path / "bench_rlvr_timing.json").read_text())
    assert {"default", "default-group", "paper-global", "consistency"} <= set(result["timing"])
    assert "| default-group |" in proc.stdout
