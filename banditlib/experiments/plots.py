"""The regret figure: one column per environment; cumulative regret with a band over seeds on top, the same
curves on log-log axes below with the OFUL bound drawn in where it applies (slope 1 there is linear regret)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

__all__ = ["plot_regret"]

Curves = Mapping[str, Mapping[str, NDArray[np.float64]]]


def plot_regret(
    curves: Curves,
    path: str | Path,
    *,
    bounds: Mapping[str, NDArray[np.float64]] | None = None,
    title: str | None = None,
) -> bool:
    """Write the regret figure to ``path`` (PNG); ``False`` when matplotlib is not installed.

    Args:
        curves: ``{env: {policy: (seeds, T) cumulative regret}}``.
        path: output file.
        bounds: ``{env: (T,) bound on R(t)}`` for environments where a theoretical bound applies.
        title: figure title.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    bounds = bounds or {}
    n = max(len(curves), 1)
    fig, axes = plt.subplots(2, n, figsize=(4.2 * n, 6.6), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    policies = list(dict.fromkeys(p for by in curves.values() for p in by))
    color = {p: colors[i % len(colors)] for i, p in enumerate(policies)}
    for j, (env, by) in enumerate(curves.items()):
        top, bottom = axes[0, j], axes[1, j]
        for policy, arr in by.items():
            t = np.arange(1, arr.shape[1] + 1)
            mean, std = arr.mean(axis=0), arr.std(axis=0)
            top.plot(t, mean, color=color[policy], lw=1.4, label=policy)
            top.fill_between(t, mean - std, mean + std, color=color[policy], alpha=0.18, lw=0)
            bottom.plot(t, np.maximum(mean, 1e-3), color=color[policy], lw=1.4)
        if env in bounds:
            b = bounds[env]
            bottom.plot(np.arange(1, b.shape[0] + 1), b, "k--", lw=1.2, label="OFUL bound (Thm 3)")
            bottom.legend(loc="upper left", fontsize=8, frameon=False)
        top.set_title(env, fontsize=10)
        top.set_xlabel("round t")
        bottom.set_xlabel("round t (log)")
        bottom.set_xscale("log")
        bottom.set_yscale("log")
        top.grid(alpha=0.3)
        bottom.grid(alpha=0.3, which="both")
    axes[0, 0].set_ylabel("cumulative pseudo-regret\n(mean ± std over seeds)")
    axes[1, 0].set_ylabel("log-log: slope < 1 is sublinear")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 6), fontsize=9, frameon=False)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout(rect=(0, 0.06, 1, 0.97 if title else 1))
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True
