"""The regret figure: one column per environment; cumulative regret with a band over seeds on top, the same
curves on log-log axes below with the OFUL bound drawn in where it applies (slope 1 there is linear regret).

Curves often coincide (on ``Quadratic-v0`` every linear policy ends near the same regret), so colour alone does
not tell them apart: each policy also gets its own line style and hollow marker shape (`curve_styles`), the
markers of different policies sit at staggered positions along the lines, earlier policies are drawn wider and
underneath, later ones narrower on top (two identical curves show as a thin line inside a wide one), and one
legend below the figure names every policy of every panel.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["curve_styles", "plot_regret", "regret_figure"]

Curves = Mapping[str, Mapping[str, NDArray[np.float64]]]

# matplotlib's default colour cycle ("tab10"), spelled out so the styles need no matplotlib import.
COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
          "#17becf")  # fmt: skip
LINESTYLES: tuple[Any, ...] = ("-", "--", "-.", ":", (0, (6, 2, 1, 2, 1, 2)), (0, (9, 3)), (0, (1, 3)),
                               (0, (4, 1, 4, 1, 1, 1)))  # fmt: skip
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">", "h", "p")
MARK_SPACING = 0.1  # distance between two markers of one curve, as a fraction of the axes' diagonal


def curve_styles(names: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Matplotlib ``plot`` keyword arguments per curve, distinct beyond colour, in draw order.

    Curve ``i`` of ``n`` gets colour ``i`` (mod 10), line style ``i`` (mod 8) and hollow marker ``i`` (mod 12),
    so any two of the first 24 curves differ in line style or marker, and any two of the first 10 in colour too;
    markers every ``MARK_SPACING`` of the axes' diagonal, each curve's shifted by its own fraction of that
    spacing so that two identical curves do not put their markers on the same points; line width from 2.6
    (first) down to 1.2 (last) with ``zorder`` rising, so a later curve drawn over an earlier one leaves it
    visible on both sides.

    Examples:
        >>> s = curve_styles(["LinUCB", "Random"])
        >>> s["LinUCB"]["linestyle"], s["Random"]["linestyle"], s["LinUCB"]["marker"], s["Random"]["marker"]
        ('-', '--', 'o', 's')
        >>> s["LinUCB"]["linewidth"] > s["Random"]["linewidth"], s["LinUCB"]["zorder"] < s["Random"]["zorder"]
        (True, True)
    """
    unique = list(dict.fromkeys(names))
    n = len(unique)
    styles = {}
    for i, name in enumerate(unique):
        color = COLORS[i % len(COLORS)]
        styles[name] = {
            "color": color,
            "linestyle": LINESTYLES[i % len(LINESTYLES)],
            "marker": MARKERS[i % len(MARKERS)],
            "markerfacecolor": "none",
            "markeredgecolor": color,
            "markeredgewidth": 1.2,
            "markersize": 5.5,
            "markevery": (MARK_SPACING * (0.2 + 0.8 * i / max(n, 1)), MARK_SPACING),
            "linewidth": 2.6 - 1.4 * i / (n - 1) if n > 1 else 1.6,
            "alpha": 0.9,
            "zorder": 3 + i,
        }
    return styles


def regret_figure(
    curves: Curves,
    *,
    bounds: Mapping[str, NDArray[np.float64]] | None = None,
    title: str | None = None,
) -> Any:
    """The regret figure as a matplotlib ``Figure`` (imports matplotlib; `plot_regret` writes it to a file).

    Args:
        curves: ``{env: {policy: (seeds, T) cumulative regret}}``.
        bounds: ``{env: (T,) bound on R(t)}`` for environments where a theoretical bound applies.
        title: figure title.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    bounds = bounds or {}
    n = max(len(curves), 1)
    fig, axes = plt.subplots(2, n, figsize=(4.2 * n, 6.9), squeeze=False)
    policies = list(dict.fromkeys(p for by in curves.values() for p in by))
    style = curve_styles(policies)
    for j, (env, by) in enumerate(curves.items()):
        top, bottom = axes[0, j], axes[1, j]
        for policy, arr in by.items():
            t = np.arange(1, arr.shape[1] + 1)
            mean, std = arr.mean(axis=0), arr.std(axis=0)
            top.fill_between(t, mean - std, mean + std, color=style[policy]["color"], alpha=0.1, lw=0, zorder=1)
            top.plot(t, mean, label=policy, **style[policy])
            bottom.plot(t, np.maximum(mean, 1e-3), label=policy, **style[policy])
        if env in bounds:
            b = bounds[env]
            bottom.plot(np.arange(1, b.shape[0] + 1), b, color="k", ls=(0, (2, 2)), lw=1.2, zorder=2,
                        label="OFUL bound (Thm 3)")  # fmt: skip
            handle = [h for h in bottom.get_legend_handles_labels()[0] if h.get_label() == "OFUL bound (Thm 3)"]
            bottom.legend(handles=handle, loc="upper left", fontsize=8, frameon=False)
        top.set_title(env, fontsize=10)
        top.set_xlabel("round t")
        bottom.set_xlabel("round t (log)")
        bottom.set_xscale("log")
        bottom.set_yscale("log")
        top.grid(alpha=0.3)
        bottom.grid(alpha=0.3, which="both")
    axes[0, 0].set_ylabel("cumulative pseudo-regret\n(mean ± std over seeds)")
    axes[1, 0].set_ylabel("log-log: slope < 1 is sublinear")
    handles = [
        Line2D([], [], **{k: v for k, v in style[p].items() if k not in ("markevery", "zorder")}, label=p)
        for p in policies
    ]
    rows = -(-len(handles) // 6)  # at most 6 entries a row, rows as even as possible
    if handles:
        fig.legend(handles=handles, loc="lower center", ncol=-(-len(handles) // rows), fontsize=9, frameon=False,
                   handlelength=3.5)  # fmt: skip
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout(rect=(0, 0.01 + 0.035 * rows, 1, 0.97 if title else 1))
    return fig


def plot_regret(
    curves: Curves,
    path: str | Path,
    *,
    bounds: Mapping[str, NDArray[np.float64]] | None = None,
    title: str | None = None,
) -> bool:
    """Write the regret figure (`regret_figure`) to ``path`` (PNG); ``False`` when matplotlib is not installed.

    Args:
        curves: ``{env: {policy: (seeds, T) cumulative regret}}``.
        path: output file.
        bounds: ``{env: (T,) bound on R(t)}`` for environments where a theoretical bound applies.
        title: figure title.
    """
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    fig = regret_figure(curves, bounds=bounds, title=title)
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True
