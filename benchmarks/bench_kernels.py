"""Scoring kernels: the torch path on the CPU against numpy and MABWiser, and Triton on a GPU when there is one.

CPU (measured on any machine), every figure from the same run:

1. shared linear score, ``N`` arms, ``d = 64``: ``shared_score_torch`` and a numpy ``einsum`` version, in
   GFLOP/s (``2 N d^2`` flops counted) and as a fraction of a float32 GEMM ``(N, d) @ (d, d)`` timed alongside;
2. disjoint linear score, ``N`` contexts, ``K = 10``, ``d = 20``: ``disjoint_score_torch``, numpy ``einsum``
   and MABWiser LinUCB ``predict`` (its own vectorised numpy; it also takes the argmax);
3. neural diagonal bonus of a width-100 layer: ``neural_bonus_torch`` against numpy ``einsum``;
4. masked top-k (``B x K`` scores, ``k = 8``): ``masked_topk_torch`` against reading the scores once
   (``amax``), the floor any top-k must pay.

GPU (only with CUDA; medians of ``triton.testing.do_bench``): every op's Triton kernel against its unfused
torch path, and the shared score against the device's measured copy bandwidth (the roofline for an op that
reads ``X`` once: ``N d`` inputs plus ``2 N`` outputs) and matmul rate.

Usage: ``python benchmarks/bench_kernels.py [--quick] [--out DIR] [--threads N]``; writes
``DIR/bench_kernels.json`` and prints markdown tables.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _common import machine_info, ms_cells, ratio_cells, speedup, summary, table, thread_limits, time_interleaved

from banditlib.kernels import (
    disjoint_score,
    disjoint_score_torch,
    masked_topk,
    masked_topk_torch,
    neural_bonus,
    neural_bonus_torch,
    shared_score,
    shared_score_torch,
)

TARGET_SHARED_GEMM = 0.40  # shared score at >= 40% of the float32 GEMM rate (CPU)
TARGET_DISJOINT_MABWISER = 15.0  # disjoint score >= 15x MABWiser predict (CPU)
TARGET_ROOFLINE, TARGET_FUSED = 0.70, 3.0  # GPU: shared score at >= 70% of copy bandwidth, >= 3x unfused torch

FULL = {"shared_n": 100_000, "shared_d": 64, "disjoint_n": 100_000, "arms": 10, "disjoint_d": 20,
        "bonus_n": 4096, "width": 100, "topk_b": 512, "topk_k_arms": 4096, "k": 8, "repeats": 10}  # fmt: skip
QUICK = {"shared_n": 10_000, "shared_d": 64, "disjoint_n": 10_000, "arms": 10, "disjoint_d": 20,
         "bonus_n": 512, "width": 100, "topk_b": 64, "topk_k_arms": 1024, "k": 8, "repeats": 3}  # fmt: skip
DISTS = ("torch", "numpy", "triton", "mabwiser")


def _spd_inverse(K: int, d: int, gen: torch.Generator) -> torch.Tensor:
    M = torch.randn(K, d, d, generator=gen)
    return torch.linalg.inv(M @ M.transpose(1, 2) / d + torch.eye(d))


def _timed(fns: dict[str, Callable[[], object]], repeats: int, work: float) -> dict[str, dict[str, Any]]:
    return {name: summary(t, work) for name, t in time_interleaved(fns, repeats).items()}


def cpu_shared(s: dict[str, int], gen: torch.Generator) -> dict[str, Any]:
    """Shared score vs numpy einsum and a float32 GEMM of the same shape."""
    n, d = s["shared_n"], s["shared_d"]
    X, A_inv, theta = torch.randn(n, d, generator=gen), _spd_inverse(1, d, gen)[0], torch.randn(d, generator=gen)
    W = torch.randn(d, d, generator=gen)
    Xn, An, tn = X.numpy(), A_inv.numpy(), theta.numpy()
    fns: dict[str, Callable[[], object]] = {
        "shared_score_torch": lambda: shared_score_torch(X, A_inv, theta),
        "numpy einsum": lambda: (Xn @ tn, np.einsum("nd,de,ne->n", Xn, An, Xn, optimize=True)),
        "float32 GEMM": lambda: torch.mm(X, W),
    }
    results = _timed(fns, s["repeats"], 2 * n * d * d)
    fraction = {name: speedup(r, results["float32 GEMM"]) for name, r in results.items()}
    return {"shapes": {"N": n, "d": d}, "results": results, "fraction_of_gemm_rate": fraction,
            "target": TARGET_SHARED_GEMM}  # fmt: skip


def cpu_disjoint(s: dict[str, int], gen: torch.Generator) -> dict[str, Any]:
    """Disjoint score vs numpy einsum and MABWiser LinUCB predict on the same trained arms."""
    n, K, d = s["disjoint_n"], s["arms"], s["disjoint_d"]
    X = torch.randn(n, d, generator=gen)
    A_inv, theta = _spd_inverse(K, d, gen), torch.randn(K, d, generator=gen)
    Xn, An, tn = X.numpy(), A_inv.numpy(), theta.numpy()
    fns: dict[str, Callable[[], object]] = {
        "disjoint_score_torch": lambda: disjoint_score_torch(X, A_inv, theta),
        "numpy einsum": lambda: (Xn @ tn.T, np.einsum("nd,kde,ne->nk", Xn, An, Xn, optimize=True)),
    }
    out: dict[str, Any] = {"shapes": {"N": n, "K": K, "d": d}}
    try:
        from mabwiser.mab import MAB, LearningPolicy

        rng = np.random.default_rng(0)
        train = rng.normal(size=(2000, d))
        mab = MAB(list(range(K)), LearningPolicy.LinUCB(alpha=1.0), seed=0)
        mab.fit(rng.integers(0, K, 2000), rng.normal(size=2000), train)
        X64 = Xn.astype(np.float64)
        fns["MABWiser predict"] = lambda: mab.predict(X64)
    except Exception as exc:  # a missing peer is reported, never a crash
        out["mabwiser_error"] = f"{type(exc).__name__}: {exc}"
    out["results"] = _timed(fns, s["repeats"], n)
    if "MABWiser predict" in out["results"]:
        peer = out["results"]["MABWiser predict"]
        out["speedup_over_mabwiser"] = {name: speedup(r, peer) for name, r in out["results"].items()}
    out["target"] = TARGET_DISJOINT_MABWISER
    return out


def cpu_bonus(s: dict[str, int], gen: torch.Generator) -> dict[str, Any]:
    """Neural diagonal bonus of one (width x width) layer vs numpy einsum."""
    n, w = s["bonus_n"], s["width"]
    delta, h, Z_inv = (
        torch.randn(n, w, generator=gen),
        torch.randn(n, w, generator=gen),
        torch.rand(w, w, generator=gen),
    )
    dn, hn, zn = delta.numpy(), h.numpy(), Z_inv.numpy()
    fns: dict[str, Callable[[], object]] = {
        "neural_bonus_torch": lambda: neural_bonus_torch(delta, h, Z_inv),
        "numpy einsum": lambda: np.einsum("no,oi,ni->n", dn * dn, zn, hn * hn, optimize=True),
    }
    results = _timed(fns, s["repeats"], 2 * n * w * w)
    return {"shapes": {"N": n, "out": w, "in": w}, "results": results,
            "speedup_over_numpy": {k: speedup(r, results["numpy einsum"]) for k, r in results.items()}}  # fmt: skip


def cpu_topk(s: dict[str, int], gen: torch.Generator) -> dict[str, Any]:
    """Masked top-k vs one read of the scores."""
    B, K, k = s["topk_b"], s["topk_k_arms"], s["k"]
    scores, mask = torch.randn(B, K, generator=gen), torch.rand(B, K, generator=gen) < 0.8
    fns: dict[str, Callable[[], object]] = {
        "masked_topk_torch": lambda: masked_topk_torch(scores, k, mask),
        "torch.topk (no mask)": lambda: scores.topk(k, dim=1),
        "read once (amax)": lambda: scores.amax(dim=1),
    }
    results = _timed(fns, s["repeats"], B * K)
    floor = results["read once (amax)"]
    return {"shapes": {"B": B, "K": K, "k": k}, "results": results,
            "fraction_of_read_rate": {n: speedup(r, floor) for n, r in results.items()}}  # fmt: skip


def gpu_all(s: dict[str, int]) -> dict[str, Any]:
    """Every op on CUDA: Triton vs the unfused torch path, and the shared score against the roofline."""
    import triton.testing

    dev, gen = "cuda", torch.Generator(device="cuda").manual_seed(0)
    bench = triton.testing.do_bench
    size = 1 << 28  # 1 GiB of float32: copy bandwidth
    src, dst = torch.empty(size, device=dev), torch.empty(size, device=dev)
    copy_ms = bench(lambda: dst.copy_(src))
    bandwidth = 2 * 4 * size / (copy_ms * 1e-3)
    a, b = torch.randn(8192, 8192, device=dev), torch.randn(8192, 8192, device=dev)
    mm_ms = bench(lambda: a @ b)
    out: dict[str, Any] = {"device": torch.cuda.get_device_name(), "copy_bandwidth_GBps": bandwidth / 1e9,
                           "matmul_TFLOPs": 2 * 8192**3 / (mm_ms * 1e-3) / 1e12, "shared": []}  # fmt: skip
    n = 1 << 20
    for d in (16, 32, 64, 128):
        X = torch.randn(n, d, device=dev, generator=gen)
        A_inv = torch.eye(d, device=dev) + 0.01 * torch.randn(d, d, device=dev, generator=gen)
        theta = torch.randn(d, device=dev, generator=gen)
        fused = bench(lambda X=X, A=A_inv, t=theta: shared_score(X, A, t, backend="triton"))
        unfused = bench(lambda X=X, A=A_inv, t=theta: shared_score(X, A, t, backend="torch"))
        gbps = 4 * (n * d + 2 * n) / (fused * 1e-3)
        out["shared"].append({
            "N": n, "d": d, "triton_ms": fused, "torch_ms": unfused, "achieved_GBps": gbps / 1e9,
            "roofline_fraction": gbps / bandwidth, "speedup_over_torch": unfused / fused,
        })  # fmt: skip
    X, A_inv, theta = (
        torch.randn(n, 20, device=dev),
        torch.eye(20, device=dev).repeat(10, 1, 1),
        torch.randn(10, 20, device=dev),
    )
    h, delta, Z = (
        torch.randn(n // 4, 100, device=dev),
        torch.randn(n // 4, 100, device=dev),
        torch.rand(100, 100, device=dev),
    )
    scores = torch.randn(4096, 4096, device=dev)
    mask = torch.rand(4096, 4096, device=dev) < 0.8
    for name, call in {
        "disjoint_score K=10 d=20": lambda be: disjoint_score(X, A_inv, theta, backend=be),
        "neural_bonus 100x100": lambda be: neural_bonus(delta, h, Z, backend=be),
        "masked_topk 4096x4096 k=8": lambda be: masked_topk(scores, 8, mask, backend=be),
    }.items():
        t_fused, t_torch = bench(lambda c=call: c("triton")), bench(lambda c=call: c("torch"))
        out.setdefault("ops", []).append({"op": name, "triton_ms": t_fused, "torch_ms": t_torch,
                                          "speedup_over_torch": t_torch / t_fused})  # fmt: skip
    return out


def cpu_tables(r: dict[str, Any]) -> list[str]:
    """The CPU tables, with targets."""
    sh, dj, bo, tk = r["shared"], r["disjoint"], r["bonus"], r["topk"]
    frac = sh["fraction_of_gemm_rate"]
    rows = [[n, *ms_cells(x), f"{x['rate_median'] / 1e9:.1f}", f"{frac[n]['median']:.1%}", f"{frac[n]['best']:.1%}",
             f">= {sh['target']:.0%}: {'met' if frac[n]['median'] >= sh['target'] else 'NOT met'}"
             if n == "shared_score_torch" else ""] for n, x in sh["results"].items()]  # fmt: skip
    tables = [table(f"Shared linear score (CPU): N={sh['shapes']['N']:,}, d={sh['shapes']['d']} (2 N d^2 flops)",
                    ["method", "ms (median)", "ms (best)", "GFLOP/s", "GEMM rate share (median)", "(best)", "target"],
                    rows, [])]  # fmt: skip
    ratios = dj.get("speedup_over_mabwiser", {})
    rows = [[n, *ms_cells(x), f"{x['rate_median']:,.0f}",
             *ratio_cells(ratios.get(n), dj["target"] if n == "disjoint_score_torch" else None)]
            for n, x in dj["results"].items()]  # fmt: skip
    notes = [f"- MABWiser: {dj['mabwiser_error']}"] if "mabwiser_error" in dj else []
    sd = dj["shapes"]
    tables.append(table(f"Disjoint linear score (CPU): N={sd['N']:,}, K={sd['K']}, d={sd['d']}",
                        ["method", "ms (median)", "ms (best)", "contexts/s", "speed-up over MABWiser (median)",
                         "(best)", "target"], rows, notes))  # fmt: skip
    rows = [[n, *ms_cells(x), f"{x['rate_median'] / 1e9:.1f}", *ratio_cells(bo["speedup_over_numpy"][n], None)[:2]]
            for n, x in bo["results"].items()]  # fmt: skip
    sb = bo["shapes"]
    tables.append(table(f"Neural diagonal bonus (CPU): N={sb['N']:,}, layer {sb['out']}x{sb['in']}",
                        ["method", "ms (median)", "ms (best)", "GFLOP/s", "speed-up over numpy (median)", "(best)"],
                        rows, []))  # fmt: skip
    fr = tk["fraction_of_read_rate"]
    rows = [[n, *ms_cells(x), f"{fr[n]['median']:.2f}", f"{fr[n]['best']:.2f}"] for n, x in tk["results"].items()]
    st = tk["shapes"]
    tables.append(table(f"Masked top-k (CPU): {st['B']} rows x {st['K']:,} arms, k={st['k']}",
                        ["method", "ms (median)", "ms (best)", "speed relative to one read (median)", "(best)"],
                        rows, []))  # fmt: skip
    return tables


def gpu_tables(g: dict[str, Any] | None) -> list[str]:
    """GPU tables, or a note that they await a GPU."""
    if g is None:
        return ["### GPU\n\nNo CUDA device on this machine: the Triton kernels were not timed. Run this script on "
                "a GPU machine to fill the GPU tables (the kernels' correctness is tested here under "
                "TRITON_INTERPRET=1)."]  # fmt: skip
    rows = [[f"{x['d']}", f"{x['triton_ms']:.3f}", f"{x['torch_ms']:.3f}", f"{x['achieved_GBps']:.0f}",
             f"{x['roofline_fraction']:.0%}", f"{x['speedup_over_torch']:.2f}x"] for x in g["shared"]]  # fmt: skip
    notes = [f"Device {g['device']}: copy bandwidth {g['copy_bandwidth_GBps']:.0f} GB/s, float32 matmul "
             f"{g['matmul_TFLOPs']:.1f} TFLOP/s. Targets: >= {TARGET_ROOFLINE:.0%} of bandwidth, "
             f">= {TARGET_FUSED:g}x torch."]  # fmt: skip
    out = [table(f"Shared linear score (GPU), N={g['shared'][0]['N']:,}",
                 ["d", "Triton ms", "torch ms", "GB/s", "of copy bandwidth", "speed-up"], rows, notes)]  # fmt: skip
    rows = [
        [x["op"], f"{x['triton_ms']:.3f}", f"{x['torch_ms']:.3f}", f"{x['speedup_over_torch']:.2f}x"] for x in g["ops"]
    ]
    out.append(table("Other ops (GPU)", ["op", "Triton ms", "torch ms", "speed-up"], rows, []))
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run every measurement, print the tables and write ``bench_kernels.json``; returns the report."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, few repeats (CI smoke test)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch and BLAS threads")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    start, load_before = time.perf_counter(), os.getloadavg()
    gen = torch.Generator().manual_seed(0)
    with thread_limits(args.threads):
        report: dict[str, Any] = {
            "benchmark": "bench_kernels", "mode": "quick" if args.quick else "full", "argv": sys.argv,
            "machine": machine_info(args.threads, DISTS), "sizes": sizes,
        }  # fmt: skip
        report["cpu"] = {"shared": cpu_shared(sizes, gen), "disjoint": cpu_disjoint(sizes, gen),
                         "bonus": cpu_bonus(sizes, gen), "topk": cpu_topk(sizes, gen)}  # fmt: skip
        report["gpu"] = gpu_all(sizes) if torch.cuda.is_available() else None
    report["elapsed_s"] = time.perf_counter() - start
    report["load_average_before_after"] = [load_before, os.getloadavg()]
    m = report["machine"]
    print(
        f"bench_kernels ({report['mode']}): {m['cpu_model']}, {m['cores']} cores, torch threads "
        f"{m['torch_num_threads']}, GPU {m['gpu']}, load average {load_before[0]:.2f}, {report['elapsed_s']:.0f} s\n"
    )
    print("\n\n".join(cpu_tables(report["cpu"]) + gpu_tables(report["gpu"])))
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "bench_kernels.json"
    path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"\nwrote {path}")
    return report


if __name__ == "__main__":
    main()
