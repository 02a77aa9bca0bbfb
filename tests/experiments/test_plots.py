"""The regret figure: coinciding curves stay distinguishable (style, marker, width, order) and are all named."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from banditlib.experiments.plots import curve_styles, plot_regret, regret_figure

pytest.importorskip("matplotlib")


def test_curve_styles_differ_beyond_colour() -> None:
    names = [f"policy{i}" for i in range(24)]
    styles = curve_styles(names)
    assert list(styles) == names
    pairs = {(repr(s["linestyle"]), s["marker"]) for s in styles.values()}
    assert len(pairs) == 24  # no two of 24 curves share both line style and marker
    assert len({s["color"] for s in list(styles.values())[:10]}) == 10
    widths = [s["linewidth"] for s in styles.values()]
    orders = [s["zorder"] for s in styles.values()]
    assert widths == sorted(widths, reverse=True) and widths[0] > widths[-1]  # wide ones underneath
    assert orders == sorted(orders) and len(set(orders)) == 24  # narrow ones on top
    offsets = [s["markevery"][0] for s in styles.values()]
    assert len(set(offsets)) == 24  # markers of identical curves land on different points
    assert all(s["markerfacecolor"] == "none" for s in styles.values())  # hollow: overlapping markers show
    assert curve_styles(["a", "a", "b"]).keys() == {"a", "b"}


def test_identical_curves_are_drawn_distinguishably_and_all_named() -> None:
    import matplotlib.pyplot as plt

    same = np.cumsum(np.ones((3, 50)), axis=1)
    curves = {
        "Linear-v0": {"LinUCB": same * 0.2, "Random": same},
        "Quadratic-v0": {"LinUCB": same, "LinTS": same.copy(), "Greedy": same.copy(), "NeuralLinUCB": same * 0.5},
    }
    fig = regret_figure(curves, bounds={"Linear-v0": np.sqrt(np.arange(1, 51.0))}, title="t")
    try:
        quadratic = fig.axes[1]  # top row, second column
        lines = {line.get_label(): line for line in quadratic.get_lines()}
        assert set(lines) == {"LinUCB", "LinTS", "Greedy", "NeuralLinUCB"}
        looks = {(line.get_linestyle(), line.get_marker(), line.get_color()) for line in lines.values()}
        assert len(looks) == 4
        # Drawn wider first and underneath: the three identical curves stay visible inside each other.
        ordered = sorted(lines.values(), key=lambda line: line.get_zorder())
        assert [line.get_linewidth() for line in ordered] == sorted(
            (ln.get_linewidth() for ln in ordered), reverse=True
        )
        # One figure legend names every policy of every panel (Random and LinTS appear in one panel each).
        legend = fig.legends[0]
        assert [t.get_text() for t in legend.get_texts()] == ["LinUCB", "Random", "LinTS", "Greedy", "NeuralLinUCB"]
        assert all(h.get_marker() not in ("", "None") for h in legend.legend_handles)
    finally:
        plt.close(fig)


def test_plot_regret_writes_a_png_or_reports_no_matplotlib(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    curves = {"E": {"A": np.cumsum(np.ones((2, 30)), axis=1)}}
    assert plot_regret(curves, tmp_path / "r.png")
    assert (tmp_path / "r.png").read_bytes().startswith(b"\x89PNG")
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert not plot_regret(curves, tmp_path / "none.png")
    assert not (tmp_path / "none.png").exists()
