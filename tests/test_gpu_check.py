"""``benchmarks/gpu_check.sh`` and the CUDA checks it runs.

Two halves:

1. The script, here on a machine without CUDA: it parses, prints its usage, stops within seconds with a
   message naming CUDA (and env.txt written), and with ``GPU_CHECK_ALLOW_CPU=1`` runs its tests and bench
   steps end to end, with the packages a bare GPU machine lacks made unimportable, failing both steps for the
   right reasons (the gpu tests were skipped; the bench has no GPU section).
2. ``gpu``-marked tests that the script runs: every Triton kernel, and the policies on top of them, against
   the torch path on CUDA tensors, at sizes and shapes the CPU suite cannot reach (autotuned configurations,
   several blocks and chunks, bfloat16). Each has a CPU twin that runs the same code on CPU tensors through
   Triton's interpreter (``TRITON_INTERPRET=1``, set by tests/conftest.py), so that this code is known to run
   before it first meets a GPU. Shapes are fixed, not drawn: on a GPU every new shape key is an autotuning
   run that compiles every configuration, and the script has a time budget.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import banditlib
from banditlib.kernels import disjoint_score, dispatch, masked_topk, neural_bonus, shared_score

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"
HAS_CUDA = torch.cuda.is_available()
no_cuda = pytest.mark.skipif(HAS_CUDA, reason="checks the script's behaviour on a machine without CUDA")

# Packages that a bare GPU machine (torch, triton, numpy, scipy, pytest, hypothesis) does not have.
ABSENT_ON_GPU_MACHINE = (
    "mkdocs", "mkdocstrings", "material", "gymnasium", "gym", "trl", "transformers", "accelerate", "datasets",
    "matplotlib", "sklearn", "tqdm", "mabwiser", "vowpalwabbit", "contextualbandits", "threadpoolctl",
    "selenium", "pandas",
)  # fmt: skip

# Installed through PYTHONPATH as ``sitecustomize``: imports of those packages fail as if they were not there,
# and every attempt is written to $GPU_CHECK_BLOCK_LOG (guarded imports, like bench_kernels' MABWiser, are fine).
BLOCKER = """
import importlib.abc, os, sys
BLOCKED = set({blocked!r})
LOG = os.environ["GPU_CHECK_BLOCK_LOG"]
with open(LOG, "a") as f:
    f.write("loaded " + " ".join(sys.argv[:2]) + "\\n")
class _Absent(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            with open(LOG, "a") as f:
                f.write("blocked " + name + "\\n")
            raise ModuleNotFoundError(f"No module named {{name!r}} (not on the GPU machine)", name=name)
        return None
sys.meta_path.insert(0, _Absent())
"""


def _run(
    args: list[str], env: dict[str, str] | None = None, timeout: float = 120, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd, stdin=subprocess.DEVNULL
    )


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment of a run of the script: ``python`` on PATH runs this interpreter (a wrapper, not a
    symlink, which would lose a virtual environment's site-packages)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    python = bin_dir / "python"
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    python.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GPU_CHECK_") and k not in ("PYTHON",)}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra)
    return env


def _targets() -> list[str]:
    proc = _run([str(SCRIPT), "--list-tests"])
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split()


# ---- 1. the script ----------------------------------------------------------------------------------------


def test_script_is_executable_and_parses() -> None:
    assert os.access(SCRIPT, os.X_OK), f"{SCRIPT} is not executable"
    assert SCRIPT.read_text().startswith("#!/usr/bin/env bash\n")
    proc = _run(["bash", "-n", str(SCRIPT)])
    assert proc.returncode == 0, proc.stderr


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed")
def test_shellcheck_is_clean() -> None:
    proc = _run(["shellcheck", "--severity=style", str(SCRIPT)])
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("args", [[], ["a", "b"], ["--bogus"], [""]], ids=["none", "two", "option", "empty"])
def test_without_one_outdir_it_prints_usage_and_exits_2(args: list[str]) -> None:
    proc = _run([str(SCRIPT), *args])
    assert proc.returncode == 2
    assert proc.stderr.startswith("usage: benchmarks/gpu_check.sh OUTDIR")
    assert proc.stdout == ""


def test_it_names_the_missing_python(tmp_path: Path) -> None:
    proc = _run([str(SCRIPT), str(tmp_path / "out")], env=_env(tmp_path, PYTHON="no-such-python"))
    assert proc.returncode == 3
    assert proc.stderr.strip().splitlines()[-1].startswith("gpu_check: FAIL: no 'no-such-python' on PATH")


@no_cuda
def test_without_cuda_it_fails_fast_and_clearly(tmp_path: Path) -> None:
    out = tmp_path / "new" / "out"  # given relative to the caller's directory
    start = time.perf_counter()
    proc = _run([str(SCRIPT), "new/out"], env=_env(tmp_path), timeout=60, cwd=tmp_path)
    elapsed = time.perf_counter() - start
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert elapsed < 20, f"took {elapsed:.1f}s"
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("gpu_check: FAIL: CUDA is not available to torch"), last
    env_txt = (out / "env.txt").read_text()
    assert f"torch: {torch.__version__}" in env_txt
    assert f"python: {sys.version.split()[0]} ({sys.executable})" in env_txt
    assert "result: FAIL: CUDA is not available" in env_txt
    summary = json.loads((out / "summary.json").read_text())
    assert summary["exit_status"] == 3 and [s["status"] for s in summary["steps"]] == ["FAIL"]
    assert last.removeprefix("gpu_check: FAIL: ") == summary["steps"][0]["detail"]
    assert "CUDA is not available" in (out / "gpu_check.log").read_text()
    assert not (out / "junit-gpu.xml").exists() and not (out / "bench_kernels.json").exists()


def test_the_tests_step_covers_every_gpu_test_and_selects_some() -> None:
    targets = _targets()
    assert targets[0] == "tests/kernels"
    holding = {
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / "tests").rglob("*.py")
        if re.search(r"pytest\.mark\.gpu\b", p.read_text(encoding="utf-8"))
    }
    assert "tests/test_gpu_check.py" in holding
    assert all(h in targets or h.startswith("tests/kernels/") for h in holding), (holding, targets)
    # pyproject's addopts say -m 'not slow and not gpu'; the command line's -m comes later and wins.
    proc = _run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-m", "gpu", "-p", "no:cacheprovider",
                 *targets], timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    collected = [line for line in proc.stdout.splitlines() if "::" in line]
    assert len(collected) >= 10, proc.stdout
    assert "tests/kernels/test_kernel_ops.py::test_triton_matches_torch_on_cuda_at_scale" in collected
    assert all("[cpu-interpreted" not in c for c in collected)


@no_cuda
def test_on_cpu_with_allow_cpu_every_step_runs_and_fails_for_its_reason(tmp_path: Path) -> None:
    """The whole script on a bare machine: the steps run (nothing beyond the GPU machine's packages is
    imported), the guards catch what a CUDA-less run cannot give, and the outputs are where they should be."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(BLOCKER.format(blocked=ABSENT_ON_GPU_MACHINE))
    block_log = tmp_path / "blocked.log"
    out = tmp_path / "out"
    env = _env(tmp_path, GPU_CHECK_ALLOW_CPU="1", GPU_CHECK_BENCH_ARGS="--quick --threads 1",
               GPU_CHECK_BLOCK_LOG=str(block_log), PYTHONPATH=str(site))  # fmt: skip
    proc = _run([str(SCRIPT), str(out)], env=env, timeout=300)
    log = (out / "gpu_check.log").read_text()
    assert proc.returncode == 1, log[-4000:]
    steps = {s["step"]: s for s in json.loads((out / "summary.json").read_text())["steps"]}
    assert [steps[s]["status"] for s in ("env", "tests", "bench")] == ["PASS", "FAIL", "FAIL"], steps
    assert "cuda: NOT available" in (out / "env.txt").read_text()

    # tests: collected without import errors, all gpu tests selected, every one skipped and so a failure.
    suite = ET.parse(out / "junit-gpu.xml").getroot()
    cases = list(suite.iter("testcase"))
    assert len(cases) >= 10 and all(c.find("skipped") is not None for c in cases)
    assert re.fullmatch(rf"{len(cases)} gpu tests: 0 passed, 0 failed, {len(cases)} skipped \(.*CUDA\)",
                        steps["tests"]["detail"]), steps["tests"]  # fmt: skip
    assert "test_triton_matches_torch_on_cuda_at_scale SKIPPED" in log

    # bench: ran to the end (CPU tables), wrote its JSON, and has no GPU section, which fails the step.
    report = json.loads((out / "bench_kernels.json").read_text())
    assert report["gpu"] is None and report["mode"] == "quick"
    assert "| shared_score_torch |" in log
    assert steps["bench"]["detail"] == "bench_kernels.json has no GPU section: the bench did not see CUDA"

    # only the GPU machine's packages: the blocker was loaded in every python the script ran, and whatever
    # asked for an absent package carried on (bench_kernels reports MABWiser as unavailable).
    attempts = block_log.read_text().splitlines()
    assert sum(line.startswith("loaded") for line in attempts) >= 4, attempts
    assert "mabwiser_error" in report["cpu"]["disjoint"]
    assert "== gpu_check summary" in log and log.rstrip().endswith(f"outputs in {out}")


def _snippets() -> dict[str, str]:
    """The script's embedded Python programs, by the step they serve."""
    blocks = re.findall(r"<<'PY'\n(.*?)\nPY\n", SCRIPT.read_text(), flags=re.S)
    assert len(blocks) == 3, len(blocks)
    snippets = dict(zip(("env", "junit", "bench"), blocks, strict=True))
    assert "env.txt" in snippets["env"] and "junit" in snippets["junit"] and "GPU section" in snippets["bench"]
    return snippets


def _snippet(code: str, path: Path) -> subprocess.CompletedProcess[str]:
    """Run one embedded program as the script does: ``python - PATH`` with the code on stdin."""
    return subprocess.run([sys.executable, "-", str(path)], input=code, capture_output=True, text=True, timeout=60)


def test_embedded_python_compiles_and_has_no_undefined_names(tmp_path: Path) -> None:
    """The branches that only a GPU machine takes are at least compiled and linted here."""
    ruff = Path(sys.executable).with_name("ruff")
    for name, code in _snippets().items():
        compile(code, f"gpu_check.sh:{name}", "exec")
        path = tmp_path / f"{name}.py"
        path.write_text(code)
        if ruff.exists() or shutil.which("ruff"):
            cmd = [str(ruff) if ruff.exists() else "ruff", "check", "--isolated", "--no-cache", "--select", "F,E9",
                   "--target-version", "py310", str(path)]  # fmt: skip
            proc = _run(cmd)
            assert proc.returncode == 0, f"{name}: {proc.stdout}{proc.stderr}"


def _fake_gpu_section() -> dict[str, Any]:
    """A GPU section shaped like bench_kernels.gpu_all's (checked by rendering it with gpu_tables)."""
    shared = [{"N": 1 << 20, "d": d, "triton_ms": 0.1 * d / 16, "torch_ms": 0.4 * d / 16, "achieved_GBps": 1200.0,
               "roofline_fraction": 0.8, "speedup_over_torch": 4.0} for d in (16, 32, 64, 128)]  # fmt: skip
    ops = [{"op": op, "triton_ms": 0.5, "torch_ms": 1.0, "speedup_over_torch": 2.0}
           for op in ("disjoint_score K=10 d=20", "neural_bonus 100x100", "masked_topk 4096x4096 k=8")]  # fmt: skip
    gpu = {"device": "NVIDIA Test GPU", "copy_bandwidth_GBps": 1500.0, "matmul_TFLOPs": 19.5, "shared": shared,
           "ops": ops}  # fmt: skip
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import bench_kernels

        assert "NVIDIA Test GPU" in "\n".join(bench_kernels.gpu_tables(gpu))
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    return gpu


def test_bench_verdict_reads_a_gpu_report(tmp_path: Path) -> None:
    code = _snippets()["bench"]
    report = tmp_path / "bench_kernels.json"
    gpu = _fake_gpu_section()
    report.write_text(json.dumps({"benchmark": "bench_kernels", "gpu": gpu}))
    proc = _snippet(code, report)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip() == (
        "NVIDIA Test GPU: copy 1500 GB/s; shared d=64: 80% of copy bandwidth (target 70%), 4.0x torch (target 3x); "
        "disjoint_score 2.0x, neural_bonus 2.0x, masked_topk 2.0x"
    )
    gpu["shared"][1]["triton_ms"] = float("nan")
    report.write_text(json.dumps({"gpu": gpu}))
    proc = _snippet(code, report)
    assert proc.returncode == 1 and "bad times" in proc.stdout, proc.stdout + proc.stderr


def test_junit_verdict_on_real_pytest_reports(tmp_path: Path) -> None:
    code = _snippets()["junit"]
    (tmp_path / "test_x.py").write_text(
        "import os, pytest\n"
        "def test_a(): pass\n"
        "def test_b(): assert os.environ.get('FAIL_B') != '1'\n"
        "@pytest.mark.skipif(os.environ.get('SKIP_C') == '1', reason='no CUDA')\n"
        "def test_c(): pass\n"
    )

    def verdict(**env: str) -> tuple[int, str]:
        xml = tmp_path / "junit.xml"
        xml.unlink(missing_ok=True)
        pytest_args = ["-q", "-p", "no:cacheprovider", f"--junitxml={xml}", "test_x.py"]
        subprocess.run([sys.executable, "-m", "pytest", *pytest_args], cwd=tmp_path, env={**os.environ, **env},
                       capture_output=True, timeout=120)  # fmt: skip
        proc = _snippet(code, xml)
        return proc.returncode, proc.stdout.strip().splitlines()[-1]

    assert verdict() == (0, "3 gpu tests: 3 passed, 0 failed, 0 skipped")
    assert verdict(FAIL_B="1") == (1, "3 gpu tests: 2 passed, 1 failed, 0 skipped")
    rc, last = verdict(SKIP_C="1")
    assert rc == 1 and last.startswith("3 gpu tests: 2 passed, 0 failed, 1 skipped (a skipped gpu test")
    proc = _snippet(code, tmp_path / "absent.xml")
    assert proc.returncode == 1 and proc.stdout.strip() == "no junit XML written"


# ---- 2. Triton against the torch path on CUDA (and on CPU through the interpreter) -------------------------

DEVICES = [
    pytest.param("cuda", marks=pytest.mark.gpu, id="cuda"),
    pytest.param(
        "cpu",
        marks=pytest.mark.skipif(not dispatch.interpreting(), reason="the CPU twin needs TRITON_INTERPRET=1"),
        id="cpu-interpreted",
    ),
]
DTYPES = [pytest.param(torch.float32, id="float32"), pytest.param(torch.bfloat16, id="bfloat16")]
RTOL, ATOL = 1e-4, 1e-5  # atol relative to the largest reference magnitude: float32 accumulation only

# (N, d, K) for the linear scores; N = 100,000 and d = 130 take many row blocks and several d-tiles.
LINEAR = {
    ("cuda", torch.float32): [(1, 1, 1), (33, 7, 3), (4097, 20, 10), (100_000, 64, 1), (513, 130, 2)],
    ("cuda", torch.bfloat16): [(4097, 20, 10)],
    ("cpu", torch.float32): [(1, 1, 1), (33, 7, 3), (70, 20, 2)],
    ("cpu", torch.bfloat16): [(33, 7, 3)],
}
# The shared score is the disjoint kernel with K = 1; it runs for the d whose (d, 1) key is tuned anyway (the
# policies use d = 20): on a GPU each new (d, K, dtype) is an autotuning run that compiles six configurations.
SHARED_D = {1, 20, 64}
# (N, n_out, n_in) for the neural bonus.
NEURAL = {
    ("cuda", torch.float32): [(1, 1, 1), (70, 33, 17), (4096, 100, 100), (1000, 130, 257)],
    ("cuda", torch.bfloat16): [(4096, 100, 100)],
    ("cpu", torch.float32): [(1, 1, 1), (70, 33, 17)],
    ("cpu", torch.bfloat16): [(20, 9, 5)],
}
# (B, K, k, masked) for top-k; K = 9000 takes three chunks and a second pass.
TOPK = {
    "cuda": [(1, 1, 1, True), (5, 300, 8, True), (64, 9000, 4, False), (512, 4096, 8, True)],
    "cpu": [(1, 1, 1, True), (5, 300, 8, True), (2, 9000, 4, False)],
}


@pytest.fixture(autouse=True)
def _ieee_float32_matmul() -> Iterator[None]:
    """The torch path on CUDA must not use TF32 (an environment can turn it on); the kernels use IEEE."""
    before = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32 = before


def _close(got: torch.Tensor, want: torch.Tensor, device: str, what: str) -> None:
    assert got.device.type == device and got.dtype == torch.float32, (what, got.device, got.dtype)
    assert got.shape == want.shape, (what, got.shape, want.shape)
    scale = max(float(want.abs().max()) if want.numel() else 0.0, 1.0)
    got64 = got.detach().double().cpu()
    torch.testing.assert_close(got64, want, rtol=RTOL, atol=ATOL * scale, msg=lambda m: f"{what}: {m}")


def _spd_inverse(K: int, d: int, gen: torch.Generator) -> torch.Tensor:
    M = torch.randn(K, d, d, generator=gen, dtype=torch.float64)
    return torch.linalg.inv(M @ M.transpose(1, 2) / d + torch.eye(d, dtype=torch.float64))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("device", DEVICES)
def test_linear_scores_triton_matches_torch(device: str, dtype: torch.dtype) -> None:
    gen = torch.Generator().manual_seed(0)
    for i, (N, d, K) in enumerate(LINEAR[(device, dtype)]):
        X = torch.randn(N, d, generator=gen, dtype=torch.float64).to(dtype)
        A_inv = _spd_inverse(K, d, gen).float()
        theta = torch.randn(K, d, generator=gen, dtype=torch.float64).float()
        X64, A64, t64 = X.double(), A_inv.double(), theta.double()  # the reference sees the rounded inputs
        want_mean, want_var = X64 @ t64.T, torch.einsum("nd,kde,ne->nk", X64, A64, X64)
        Xd = X.to(device) if i % 2 == 0 else X.T.contiguous().to(device).T  # every other shape: a strided view
        Ad, td = A_inv.to(device), theta.to(device)
        for backend in ("triton", "torch"):
            tag = f"{backend} N={N} d={d} K={K} {dtype}"
            mean, var = disjoint_score(Xd, Ad, td, backend=backend)
            _close(mean, want_mean, device, f"disjoint mean {tag}")
            _close(var, want_var, device, f"disjoint var {tag}")
            if d not in SHARED_D:
                continue
            mean, var = shared_score(Xd, Ad[0], td[0], backend=backend)
            _close(mean, want_mean[:, 0], device, f"shared mean {tag}")
            _close(var, want_var[:, 0], device, f"shared var {tag}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("device", DEVICES)
def test_neural_bonus_triton_matches_torch(device: str, dtype: torch.dtype) -> None:
    gen = torch.Generator().manual_seed(1)
    for N, n_out, n_in in NEURAL[(device, dtype)]:
        delta = torch.randn(N, n_out, generator=gen, dtype=torch.float64).to(dtype)
        h = torch.randn(N, n_in, generator=gen, dtype=torch.float64).to(dtype)
        Z_inv = torch.rand(n_out, n_in, generator=gen, dtype=torch.float64).float()
        d64, h64, z64 = delta.double(), h.double(), Z_inv.double()
        want = torch.einsum("no,oi,ni->n", d64 * d64, z64, h64 * h64)
        args = (delta.to(device), h.to(device), Z_inv.to(device))
        for backend in ("triton", "torch"):
            _close(neural_bonus(*args, backend=backend), want, device, f"{backend} N={N} {n_out}x{n_in} {dtype}")


@pytest.mark.parametrize("device", DEVICES)
def test_masked_topk_triton_matches_torch(device: str) -> None:
    rng = np.random.default_rng(2)
    for B, K, k, masked in TOPK[device]:
        scores = torch.from_numpy(rng.normal(size=(B, K)).astype(np.float32))
        mask = torch.from_numpy(rng.random((B, K)) < 0.7) if masked else None
        if mask is not None:
            mask[0] = False  # an all-masked row: -inf values, in-range indices
        masked_scores = scores if mask is None else scores.masked_fill(~mask, float("-inf"))
        want = masked_scores.topk(k, dim=1).values
        sd, md = scores.to(device), None if mask is None else mask.to(device)
        for backend in ("triton", "torch"):
            tag = f"{backend} B={B} K={K} k={k} masked={masked}"
            values, indices = masked_topk(sd, k, md, backend=backend)
            assert values.device.type == indices.device.type == device, tag
            assert values.shape == indices.shape == (B, k) and indices.dtype == torch.long, tag
            values, indices = values.cpu(), indices.cpu()
            assert torch.equal(values, want), tag
            assert bool(((indices >= 0) & (indices < K)).all()), tag
            finite = torch.isfinite(want)
            assert torch.equal(masked_scores.gather(1, indices)[finite], want[finite]), tag


@pytest.mark.parametrize("device", DEVICES)
def test_triton_topk_breaks_ties_by_lowest_index_across_chunks(device: str) -> None:
    scores = torch.zeros(2, 9000, device=device)
    scores[:, [8999, 5000, 7]] = 1.0
    values, indices = masked_topk(scores, 4, backend="triton")
    assert indices.tolist() == [[7, 5000, 8999, 0]] * 2
    assert values.tolist() == [[1.0, 1.0, 1.0, 0.0]] * 2


NEURAL_KW: dict[str, Any] = {"hidden": (16,), "train_every": 3, "train_steps": 2}
POLICIES = [
    pytest.param(banditlib.LinUCB, {}, None, id="LinUCB-shared"),
    pytest.param(banditlib.LinUCB, {}, 10, id="LinUCB-disjoint"),
    pytest.param(banditlib.LinTS, {}, None, id="LinTS-shared"),
    pytest.param(banditlib.LinTS, {}, 10, id="LinTS-disjoint"),
    pytest.param(banditlib.NeuralUCB, NEURAL_KW, None, id="NeuralUCB-shared"),
    pytest.param(banditlib.NeuralLinUCB, NEURAL_KW, None, id="NeuralLinUCB-shared"),
]


@pytest.mark.parametrize("cls,kw,arms", POLICIES)
@pytest.mark.parametrize("device", DEVICES)
def test_policies_on_triton_and_torch_decide_alike(
    device: str, cls: type[banditlib.Policy], kw: dict[str, Any], arms: int | None
) -> None:
    d = 20
    p_triton = cls(d, arms, seed=3, backend="triton", device=device, **kw)  # type: ignore[call-arg]
    p_torch = cls(d, arms, seed=3, backend="torch", device=device, **kw)  # type: ignore[call-arg]
    rng = np.random.default_rng(0)
    K = arms or 7
    for t in range(8):
        B, k = (1, 2, 5)[t % 3], 1 + t % 2
        x = rng.normal(size=(B, d) if arms else (B, K, d)).astype(np.float32)
        mask = rng.random((B, K)) < 0.7
        mask[:, :2] = True
        s1, s2 = p_triton.select(x, k=k, mask=mask), p_torch.select(x, k=k, mask=mask)
        assert s1.actions.device.type == s1.scores.device.type == device
        torch.testing.assert_close(s1.scores, s2.scores, rtol=RTOL, atol=ATOL, msg=lambda m, t=t: f"round {t}: {m}")
        if not torch.equal(s1.actions, s2.actions):  # only a near-tie may order the arms differently
            torch.testing.assert_close(s2.scores.gather(1, s1.actions), s2.scores.gather(1, s2.actions),
                                       rtol=RTOL, atol=ATOL)  # fmt: skip
        r = rng.normal(size=(B, k))
        p_triton.update(x, s2.actions, r)  # the same history for both, whatever a near-tie did
        p_torch.update(x, s2.actions, r)


@pytest.mark.gpu
def test_on_cuda_auto_runs_compiled_triton_not_the_interpreter() -> None:
    assert not dispatch.interpreting(), "TRITON_INTERPRET=1 leaked into the GPU run: the kernels would be interpreted"
    x = torch.zeros(2, 3, device="cuda")
    assert dispatch.resolve_backend("auto", x) == "triton"
    assert dispatch.resolve_backend("auto", x.bfloat16()) == "triton"
    assert dispatch.resolve_backend("auto", x.double()) == "torch"
    assert dispatch.resolve_backend("auto", x.cpu()) == "torch"
    selection = banditlib.LinUCB(20, seed=0, device="cuda").select(torch.randn(3, 5, 20), k=2)
    assert selection.actions.device.type == "cuda" and selection.actions.shape == (3, 2)
