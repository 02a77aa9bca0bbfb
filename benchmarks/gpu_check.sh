#!/usr/bin/env bash
# The GPU check: run it once on a machine with a CUDA GPU and write everything it learns into OUTDIR.
#
#   benchmarks/gpu_check.sh OUTDIR
#
# Needs only python with torch (a CUDA build), triton, numpy, scipy, pytest and hypothesis; no network and no
# install (this checkout goes on PYTHONPATH). Three steps, each under a time limit: about 3 to 5 minutes in all,
# under 8 minutes even when every limit is hit (see "Checking on a GPU" in docs/kernels.md):
#
#   env    (seconds) torch sees CUDA, triton imports and compiles one kernel  -> OUTDIR/env.txt
#   tests  the `gpu`-marked tests: Triton against the torch path on CUDA     -> OUTDIR/junit-gpu.xml
#   bench  benchmarks/bench_kernels.py, CPU tables and the GPU tables         -> OUTDIR/bench_kernels.json
#
# Everything printed also goes to OUTDIR/gpu_check.log; the per-step verdicts and durations end the log and
# are in OUTDIR/summary.json. Exit status: 0 every step passed, 1 a step failed, 2 usage, 3 the machine cannot
# run the check (no CUDA, no triton, a missing package): the last line printed says why.
#
# Environment: PYTHON (default: python on PATH); GPU_CHECK_TIMEOUT_ENV, GPU_CHECK_TIMEOUT_TESTS,
# GPU_CHECK_TIMEOUT_BENCH (seconds; 40, 270, 150); GPU_CHECK_BENCH_ARGS (extra bench_kernels.py options).
# GPU_CHECK_ALLOW_CPU=1 is for testing this script on a machine without CUDA: the environment check then
# warns instead of stopping, and the tests and bench steps run and fail (their GPU parts cannot run).
# `benchmarks/gpu_check.sh --list-tests` prints the pytest targets the tests step runs, one per line.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

usage() {
    cat >&2 <<'EOF'
usage: benchmarks/gpu_check.sh OUTDIR

Runs the gpu-marked tests (Triton kernels against the torch path on CUDA) and benchmarks/bench_kernels.py
on this machine's GPU, writing env.txt, gpu_check.log, junit-gpu.xml, bench_kernels.json and summary.json
into OUTDIR. Needs python (or $PYTHON) with a CUDA build of torch, triton, numpy, scipy, pytest, hypothesis.
EOF
}

# The tests step's pytest targets: tests/kernels and every other test file that holds a gpu-marked test.
# Only these are collected, so test modules needing gymnasium, trl, matplotlib, ... are never imported.
test_targets() {
    echo tests/kernels
    grep -rlE --include='*.py' 'pytest\.mark\.gpu([^A-Za-z0-9_]|$)' tests | grep -v '^tests/kernels/' | LC_ALL=C sort || true
}

if [[ $# -eq 1 && "$1" == "--list-tests" ]]; then
    cd "$REPO"
    test_targets
    exit 0
fi
if [[ $# -eq 1 && ( "$1" == "-h" || "$1" == "--help" ) ]]; then
    usage
    exit 0
fi
if [[ $# -ne 1 || -z "$1" || "$1" == -* ]]; then
    usage
    exit 2
fi

mkdir -p -- "$1"
OUT="$(cd -- "$1" && pwd)"  # resolved before moving to the checkout, so a relative OUTDIR is the caller's
cd "$REPO"
LOG="$OUT/gpu_check.log"
PYTHON="${PYTHON:-python}"
T_ENV="${GPU_CHECK_TIMEOUT_ENV:-40}"
T_TESTS="${GPU_CHECK_TIMEOUT_TESTS:-270}"
T_BENCH="${GPU_CHECK_TIMEOUT_BENCH:-150}"
read -r -a BENCH_EXTRA <<<"${GPU_CHECK_BENCH_ARGS:-}"

# Outputs of an earlier run would be read as this run's results: remove them first.
rm -f -- "$LOG" "$OUT/env.txt" "$OUT/junit-gpu.xml" "$OUT/bench_kernels.json" "$OUT/summary.json"
: >"$LOG"

log() { printf '%s\n' "$*" | tee -a "$LOG"; }

# This checkout, not some installed copy, is what gets tested; kernels compile for the GPU, never interpreted.
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
INTERPRET_WAS="${TRITON_INTERPRET-}"
unset TRITON_INTERPRET

if timeout --foreground --kill-after=5 5 true >/dev/null 2>&1; then  # GNU coreutils
    limit() { local secs="$1"; shift; timeout --foreground --kill-after=5 "$secs" "$@"; }
elif timeout 5 true >/dev/null 2>&1; then  # e.g. busybox
    limit() { local secs="$1"; shift; timeout "$secs" "$@"; }
else
    log "gpu_check: no timeout command: the steps run without time limits"
    limit() { shift; "$@"; }
fi

STEPS=() STATUS=() SECS=() DETAIL=()
record() { STEPS+=("$1"); STATUS+=("$2"); SECS+=("$3"); DETAIL+=("$4"); }

json_str() {  # a JSON string literal (the details are one line of our own text)
    local s="${1//\\/\\\\}"
    s="${s//\"/\\\"}"
    s="${s//$'\t'/ }"
    printf '"%s"' "$s"
}

finish() {  # finish EXIT_STATUS [LAST_LINE]: the summary table, summary.json, LAST_LINE on stderr, exit
    local code="$1" last="${2:-}" i overall
    overall=$([[ "$code" -eq 0 ]] && echo PASS || echo FAIL)
    log ""
    log "== gpu_check summary ($(date -u +%Y-%m-%dT%H:%M:%SZ), ${SECONDS}s in all) =="
    for i in "${!STEPS[@]}"; do
        log "$(printf '%-7s %-4s %4ss  %s' "${STEPS[$i]}" "${STATUS[$i]}" "${SECS[$i]}" "${DETAIL[$i]}")"
    done
    log "$(printf '%-7s %-4s %4ss  outputs in %s' overall "$overall" "$SECONDS" "$OUT")"
    {
        printf '{\n  "overall": "%s",\n  "exit_status": %s,\n  "seconds": %s,\n  "steps": [' "$overall" "$code" "$SECONDS"
        for i in "${!STEPS[@]}"; do
            [[ "$i" -gt 0 ]] && printf ','
            printf '\n    {"step": "%s", "status": "%s", "seconds": %s, "detail": %s}' \
                "${STEPS[$i]}" "${STATUS[$i]}" "${SECS[$i]}" "$(json_str "${DETAIL[$i]}")"
        done
        printf '\n  ]\n}\n'
    } >"$OUT/summary.json"
    [[ -z "$last" ]] || log "$last" >&2
    exit "$code"
}

log "gpu_check: $REPO -> $OUT (python: $PYTHON; limits env ${T_ENV}s, tests ${T_TESTS}s, bench ${T_BENCH}s)"
[[ -n "$INTERPRET_WAS" ]] && log "gpu_check: TRITON_INTERPRET=$INTERPRET_WAS was set; unset it so the kernels compile for the GPU"

# ---- step 1: environment (seconds) ----------------------------------------------------------------------
log ""
log "== env: torch, CUDA, triton =="
start=$SECONDS
if ! command -v "$PYTHON" >/dev/null 2>&1; then
    record env FAIL 0 "no '$PYTHON' on PATH"
    finish 3 "gpu_check: FAIL: no '$PYTHON' on PATH: set PYTHON=/path/to/python (with torch, triton, pytest, ...)"
fi
rc=0
out=$(GPU_CHECK_REPO="$REPO" limit "$T_ENV" "$PYTHON" - "$OUT/env.txt" 2>&1 <<'PY'
"""Write OUTDIR/env.txt line by line; the last line printed is OK: ... or FAIL: ... (exit 3)."""
import datetime
import importlib
import os
import platform
import shutil
import subprocess
import sys
import time

env_path, repo = sys.argv[1], os.path.realpath(os.environ["GPU_CHECK_REPO"])
allow_cpu = os.environ.get("GPU_CHECK_ALLOW_CPU") == "1"


def put(key, value):
    line = f"{key}: {value}"
    print(line, flush=True)
    with open(env_path, "a") as f:
        f.write(line + "\n")


def fail(message):
    put("result", "FAIL: " + " ".join(message.split()))  # one line: the script reports the last line
    sys.exit(3)


put("date", datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
put("host", f"{platform.node()} ({platform.platform()}, {os.cpu_count()} CPUs)")
put("python", f"{sys.version.split()[0]} ({sys.executable})")
if sys.version_info < (3, 10):
    fail(f"Python {sys.version.split()[0]} is too old: banditlib needs Python 3.10 or newer")
for var in ("CUDA_VISIBLE_DEVICES", "TRITON_CACHE_DIR"):
    put(var, os.environ.get(var, "(unset)"))
smi_driver = None
if shutil.which("nvidia-smi"):
    query = "--query-gpu=index,name,driver_version,memory.total,memory.used,compute_cap"
    try:
        smi = subprocess.run(["nvidia-smi", query, "--format=csv,noheader"], capture_output=True, text=True,
                             timeout=15)
        for row in (smi.stdout.strip() or smi.stderr.strip() or "(no output)").splitlines():
            put("nvidia-smi", row.strip())
        fields = smi.stdout.split(",")
        smi_driver = fields[2].strip() if smi.returncode == 0 and len(fields) > 2 else None
    except (OSError, subprocess.SubprocessError) as exc:
        put("nvidia-smi", f"failed: {exc}")
else:
    put("nvidia-smi", "not on PATH")

try:
    import torch
except Exception as exc:
    fail(f"torch does not import ({type(exc).__name__}: {exc})")
put("torch", f"{torch.__version__} (CUDA build {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()})")
cuda = torch.cuda.is_available()
gpu = "no GPU"
if not cuda:
    why = ("this torch is a CPU-only build (torch.version.cuda is None)" if torch.version.cuda is None else
           f"torch {torch.__version__} is built for CUDA {torch.version.cuda} but finds no usable device "
           f"(no NVIDIA GPU or driver, or CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', '(unset)')})")
    if not allow_cpu:
        fail(f"CUDA is not available to torch: {why}; run this check on a machine with an NVIDIA GPU and a CUDA "
             "build of torch")
    put("cuda", f"NOT available: {why} (GPU_CHECK_ALLOW_CPU=1: continuing; the GPU steps will fail)")
else:
    try:
        driver = torch._C._cuda_getDriverVersion()
    except Exception:
        driver = None
    put("cuda driver API", "unknown" if not driver else f"{driver // 1000}.{driver % 1000 // 10}")
    put("cuda devices", torch.cuda.device_count())
    for i in range(torch.cuda.device_count()):
        p = torch.cuda.get_device_properties(i)
        put(f"cuda:{i}", f"{p.name}, sm_{p.major}{p.minor}, {p.multi_processor_count} SMs, "
                         f"{p.total_memory / 2**30:.1f} GiB")
    try:
        ones = torch.ones(1024, device="cuda")
        assert float((ones + 1).sum()) == 2048.0
        free, total = torch.cuda.mem_get_info()
    except Exception as exc:
        fail(f"CUDA is available but a tensor operation on cuda:0 failed ({type(exc).__name__}: {exc})")
    put("cuda:0 free memory", f"{free / 2**30:.1f} of {total / 2**30:.1f} GiB")
    if free < 4 * 2**30:
        put("warning", "bench_kernels.py allocates about 3.5 GiB on the GPU; less than 4 GiB is free")
    gpu = f"{torch.cuda.get_device_name(0)}, CUDA {torch.version.cuda}, driver {smi_driver or 'unknown'}"

try:
    import triton
except Exception as exc:
    fail(f"triton does not import ({type(exc).__name__}: {exc}); the Triton kernels cannot run")
put("triton", f"{triton.__version__} ({os.path.dirname(triton.__file__)})")
if cuda:
    try:
        put("triton target", triton.runtime.driver.active.get_current_target())
    except Exception as exc:
        put("triton target", f"unknown ({type(exc).__name__}: {exc})")

missing = []
for name in ("numpy", "scipy", "pytest", "hypothesis"):
    try:
        put(name, importlib.import_module(name).__version__)
    except Exception as exc:
        missing.append(f"{name} ({type(exc).__name__}: {exc})")
if missing:
    fail(f"missing Python packages: {', '.join(missing)}")
try:
    import banditlib
    from banditlib.kernels import masked_topk
except Exception as exc:
    fail(f"banditlib does not import from {repo} ({type(exc).__name__}: {exc})")
where = os.path.dirname(os.path.realpath(banditlib.__file__))
put("banditlib", f"{banditlib.__version__} ({where})")
if os.path.commonpath([where, repo]) != repo:
    fail(f"banditlib imports from {where}, not from this checkout {repo}")

if cuda:  # one small kernel: triton finds its compiler, the driver and the GPU
    start = time.perf_counter()
    try:
        scores = torch.randn(3, 50, device="cuda")
        values, _ = masked_topk(scores, 2, backend="triton")
        torch.testing.assert_close(values, scores.topk(2, dim=1).values)
    except Exception as exc:
        fail(f"triton cannot compile and run a kernel on CUDA ({type(exc).__name__}: {str(exc)[:300]})")
    put("triton smoke test", f"masked_topk compiled and matched torch on cuda:0 in {time.perf_counter() - start:.1f}s")
put("result", f"OK: {gpu}, torch {torch.__version__}, triton {triton.__version__}")
PY
) || rc=$?
log "$out"
last="${out##*$'\n'}"
if [[ "$rc" -eq 124 || "$rc" -eq 137 ]]; then
    record env FAIL $((SECONDS - start)) "timed out after ${T_ENV}s"
    finish 3 "gpu_check: FAIL: the environment check timed out after ${T_ENV}s (see $OUT/env.txt)"
elif [[ "$rc" -ne 0 ]]; then
    reason="${last#result: FAIL: }"
    record env FAIL $((SECONDS - start)) "$reason"
    finish 3 "gpu_check: FAIL: $reason"
fi
record env PASS $((SECONDS - start)) "${last#result: OK: }"

# ---- step 2: gpu-marked tests -----------------------------------------------------------------------------
mapfile -t TARGETS < <(test_targets)
log ""
log "== tests: $PYTHON -m pytest -m gpu ${TARGETS[*]} =="
start=$SECONDS
rc=0
# The command line's -m gpu comes after pyproject's addopts (-m 'not slow and not gpu'), and the last -m wins.
limit "$T_TESTS" "$PYTHON" -m pytest -m gpu -p no:cacheprovider -v -rfEs --durations=15 \
    --junitxml="$OUT/junit-gpu.xml" -o junit_suite_name=gpu_check "${TARGETS[@]}" 2>&1 | tee -a "$LOG" || rc=$?
case "$rc" in
    0 | 1) detail="" ;;
    5) detail="pytest selected no gpu-marked tests" ;;
    124 | 137) detail="timed out after ${T_TESTS}s" ;;
    *) detail="pytest could not run the tests (exit $rc; see the log)" ;;
esac
check_rc=0
verdict=$("$PYTHON" - "$OUT/junit-gpu.xml" 2>&1 <<'PY'
"""Count the junit results: every selected gpu test must have run (not skipped) and passed."""
import os
import sys
import xml.etree.ElementTree as ET

path = sys.argv[1]
if not os.path.exists(path):
    print("no junit XML written")
    sys.exit(1)
root = ET.parse(path).getroot()
cases = list(root.iter("testcase"))
failed = [c for c in cases if c.find("failure") is not None or c.find("error") is not None]
skipped = [c for c in cases if c.find("skipped") is not None]
for c in skipped[:5]:
    print(f"skipped: {c.get('classname')}.{c.get('name')}: {c.find('skipped').get('message')}")
passed = len(cases) - len(failed) - len(skipped)
counts = f"{len(cases)} gpu tests: {passed} passed, {len(failed)} failed, {len(skipped)} skipped"
if not cases:
    print("0 gpu tests ran: the selection is empty")
elif skipped:
    print(f"{counts} (a skipped gpu test means the tests did not see CUDA)")
else:
    print(counts)
sys.exit(0 if cases and not failed and not skipped else 1)
PY
) || check_rc=$?
log "$verdict"
verdict="${verdict##*$'\n'}"
if [[ "$rc" -eq 0 && "$check_rc" -eq 0 ]]; then
    record tests PASS $((SECONDS - start)) "$verdict"
else
    record tests FAIL $((SECONDS - start)) "${detail:+$detail; }$verdict"
fi

# ---- step 3: bench_kernels.py -----------------------------------------------------------------------------
log ""
log "== bench: $PYTHON benchmarks/bench_kernels.py --out $OUT ${BENCH_EXTRA[*]-} =="
start=$SECONDS
rc=0
limit "$T_BENCH" "$PYTHON" benchmarks/bench_kernels.py --out "$OUT" ${BENCH_EXTRA[@]+"${BENCH_EXTRA[@]}"} 2>&1 | tee -a "$LOG" || rc=$?
check_rc=0
verdict=$("$PYTHON" - "$OUT/bench_kernels.json" 2>&1 <<'PY'
"""The bench's GPU section must be there, every time positive; the targets are reported, not enforced."""
import json
import math
import os
import sys

path = sys.argv[1]
if not os.path.exists(path):
    print("no bench_kernels.json written")
    sys.exit(1)
gpu = json.load(open(path)).get("gpu")
if not gpu:
    print("bench_kernels.json has no GPU section: the bench did not see CUDA")
    sys.exit(1)
rows = gpu.get("shared", []) + gpu.get("ops", [])
times = [r[key] for r in rows for key in ("triton_ms", "torch_ms")]
if len(rows) < 7 or not all(isinstance(t, (int, float)) and math.isfinite(t) and t > 0 for t in times):
    print(f"bench_kernels.json: GPU section incomplete or with bad times ({len(rows)} rows)")
    sys.exit(1)
by_d = {r["d"]: r for r in gpu["shared"]}
s64 = by_d.get(64, gpu["shared"][-1])
ops = ", ".join(f"{r['op'].split()[0]} {r['speedup_over_torch']:.1f}x" for r in gpu["ops"])
print(f"{gpu['device']}: copy {gpu['copy_bandwidth_GBps']:.0f} GB/s; shared d={s64['d']}: "
      f"{s64['roofline_fraction']:.0%} of copy bandwidth (target 70%), {s64['speedup_over_torch']:.1f}x torch "
      f"(target 3x); {ops}")
PY
) || check_rc=$?
log "$verdict"
verdict="${verdict##*$'\n'}"
case "$rc" in
    0) detail="" ;;
    124 | 137) detail="timed out after ${T_BENCH}s" ;;
    *) detail="bench_kernels.py failed (exit $rc; see the log)" ;;
esac
if [[ "$rc" -eq 0 && "$check_rc" -eq 0 ]]; then
    record bench PASS $((SECONDS - start)) "$verdict"
else
    record bench FAIL $((SECONDS - start)) "${detail:+$detail; }$verdict"
fi

for s in "${STATUS[@]}"; do
    [[ "$s" == PASS ]] || finish 1
done
finish 0
