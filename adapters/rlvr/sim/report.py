"""The scheduler comparison as a reader sees it: the markdown tables ``bench_rlvr.py`` prints, and the figure.

Run a comparison from Python with [`compare`][banditlib.adapters.rlvr.sim.comparison.compare], then:

* [`format_tables`][banditlib.adapters.rlvr.sim.report.format_tables]: every table at once, in the benchmark's
  order: the paired differences to uniform in every world (`summary_table`), one table per world
  (`world_table`), the verdict (`verdict_text`), and optionally the paper-scale runs (`paper_table`) and the
  scheduler times (`timing_table`, from [`schedule_timing`][banditlib.adapters.rlvr.sim.timing.schedule_timing]);
* [`plot_worlds`][banditlib.adapters.rlvr.sim.report.plot_worlds]: held-out accuracy per world of uniform, the
  default and the world's best peer, mean and 95% band over seeds, styled by
  ``banditlib.experiments.plots.curve_styles`` (a scheduler keeps its style in every panel).

Intervals are 95% Student-t intervals over seeds, paired seed by seed
([`sim.intervals`][banditlib.adapters.rlvr.sim.intervals]).
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from banditlib.errors import InvalidInputError
from banditlib.experiments.plots import curve_styles

from .comparison import Comparison
from .contenders import DEFAULT, UNIFORM
from .intervals import band

__all__ = [
    "fmt_ci", "format_tables", "markdown_table", "paper_table", "plot_worlds", "summary_table", "timing_table",
    "verdict_text", "world_table", "worlds_figure",
]  # fmt: skip


def fmt_ci(c: Sequence[float], digits: int = 3, signed: bool = False) -> str:
    """``"m [lo, hi]"`` from a ``(mean, low, high)`` triple.

    Args:
        c: ``(mean, low, high)``, as [`mean_ci`][banditlib.adapters.rlvr.sim.intervals.mean_ci] returns.
        digits: decimals.
        signed: always print the sign (for differences).

    Returns:
        The text.

    Examples:
        >>> fmt_ci((0.25, 0.2, 0.3)), fmt_ci((0.05, -0.01, 0.11), digits=2, signed=True)
        ('0.250 [0.200, 0.300]', '+0.05 [-0.01, +0.11]')
    """
    f = f"{{:+.{digits}f}}" if signed else f"{{:.{digits}f}}"
    return f"{f.format(c[0])} [{f.format(c[1])}, {f.format(c[2])}]"


def markdown_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[str]], notes: Sequence[str]) -> str:
    """A markdown table under a ``###`` heading, with notes below it.

    Args:
        title: the heading.
        headers: column names.
        rows: cells, one list per row.
        notes: paragraphs below the table (none: nothing below).

    Returns:
        The markdown.

    Examples:
        >>> print(markdown_table("T", ["a", "b"], [["1", "2"]], ["A note."]))
        ### T
        <BLANKLINE>
        | a | b |
        |---|---|
        | 1 | 2 |
        <BLANKLINE>
        A note.
    """
    lines = [f"### {title}", "", "| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join([*lines, "", *notes] if notes else lines)


def _bold(name: str) -> str:
    return f"**{name}**" if name == DEFAULT else name


def summary_table(comparison: Comparison) -> str:
    """One row per scheduler but uniform: its paired difference to uniform in every world, significant ones marked
    ``(+)`` / ``(-)``; the last row names each world's best peer.

    Args:
        comparison: what [`compare`][banditlib.adapters.rlvr.sim.comparison.compare] returned.

    Returns:
        The markdown table.

    Examples:
        >>> from banditlib.adapters.rlvr.sim import compare, comparison_schedulers
        >>> makers = comparison_schedulers()
        >>> c = compare({n: makers[n] for n in ("uniform", "dapo")}, ["none", "iid"], seeds=2, steps=2,
        ...             config={"prompts_per_round": 4, "group_size": 4})
        >>> for line in summary_table(c).splitlines()[2:6]:
        ...     print(line)
        | scheduler | none | iid |
        |---|---|---|
        | dapo | -0.000 | -0.000 |
        | best peer | dapo | dapo |
    """
    worlds = comparison.summaries
    rows = []
    for name in comparison.names:
        if name == UNIFORM:
            continue
        cells = [_bold(name)]
        for s in worlds.values():
            d = s["diff_uniform"].get(name)
            mark = "" if d is None or (d[1] <= 0 <= d[2]) else (" (+)" if d[1] > 0 else " (-)")
            cells.append("-" if d is None else f"{d[0]:+.3f}{mark}")
        rows.append(cells)
    rows.append(["best peer"] + [f"{s['best_peer']}" for s in worlds.values()])
    notes = ["(+)/(-): the 95% interval of the paired difference excludes 0."]
    return markdown_table("Final held-out accuracy minus uniform's, paired over seeds", ["scheduler", *worlds], rows,
                          notes)  # fmt: skip


def world_table(comparison: Comparison, world: str) -> str:
    """One world's table: per scheduler final accuracy, paired differences to uniform and to the best peer (also
    at uniform's rows trained), steps to target, kept share, rows a round, misleading shares and scheduler time.

    Args:
        comparison: what [`compare`][banditlib.adapters.rlvr.sim.comparison.compare] returned.
        world: one of ``comparison.worlds``.

    Returns:
        The markdown table, with the world's target and uniform's shares among all generated rows below it.

    Raises:
        InvalidInputError: ``world`` was not run.

    Examples:
        >>> from banditlib.adapters.rlvr.sim import compare, comparison_schedulers
        >>> c = compare({"uniform": comparison_schedulers()["uniform"]}, ["iid"], seeds=1, steps=1,
        ...             config={"prompts_per_round": 4, "group_size": 4})
        >>> world_table(c, "iid").splitlines()[0]
        '### World `iid` (a wrong answer passes with probability 0.2, each time anew): 1 seeds x 1 steps'
    """
    if world not in comparison.summaries:
        raise InvalidInputError(f"world_table(): `world` must be one of {list(comparison.summaries)}; got {world!r}.")
    s = comparison.summaries[world]
    best = s["best_peer"]
    rows = []
    for name, r in s["schedulers"].items():
        du = s["diff_uniform"].get(name)
        db = s["diff_best_peer"].get(name)
        rows.append([
            _bold(name), fmt_ci(r["final_ci"]),
            "-" if du is None else fmt_ci(du, signed=True), "-" if db is None else fmt_ci(db, signed=True),
            "-" if name == UNIFORM else fmt_ci(s["diff_uniform_equal_backward"][name], signed=True),
            fmt_ci(r["steps_ci"], 1), f"{r['reached']}/{r['n']}", f"{r['kept_share']:.2f}",
            f"{r['rows_per_round']:.0f}", f"{r['lucky_share_kept']:.3f}", f"{r['missed_share_kept']:.3f}",
            f"{r['schedule_ms']:.2f}",
        ])  # fmt: skip
    u = s["schedulers"][UNIFORM]
    headers = ["scheduler", "final held-out acc. [95% CI]", "vs uniform (paired)", f"vs best peer ({best})",
               "vs uniform at equal backward passes", "steps to target", "reached", "kept share", "rows/round",
               "lucky share of kept +", "missed share of kept -", "ms/round"]  # fmt: skip
    title = (f"World `{world}` ({comparison.worlds[world].description}): {comparison.seeds} seeds x "
             f"{comparison.steps} steps")  # fmt: skip
    notes = [f"Target {s['target']:.3f}; among all generated rows: lucky share of positives "
             f"{u['lucky_share_all']:.3f}, missed share of negatives {u['missed_share_all']:.3f}. Equal backward "
             f"passes: accuracy when a run has trained on {s['backward_budget']:,.0f} rows (uniform's whole run; "
             "a run training on fewer is read at its end)."]  # fmt: skip
    return markdown_table(title, headers, rows, notes)


def verdict_text(verdict: Mapping[str, Any]) -> str:
    """The verdict as one line.

    Args:
        verdict: what [`verdict`][banditlib.adapters.rlvr.sim.comparison.verdict] returned.

    Returns:
        The line.

    Examples:
        >>> print(verdict_text({"below_uniform": [], "above_uniform": ["iid", "judge"],
        ...                     "peers_significantly_above": {}, "met": True}))  # doctest: +NORMALIZE_WHITESPACE
        Verdict (default vs uniform and the peers): below uniform in no world; above in ['iid', 'judge'];
        peers significantly above it: none -> met.
    """
    v = verdict
    return (
        f"Verdict (default vs uniform and the peers): below uniform in {v['below_uniform'] or 'no world'}; above in "
        f"{v['above_uniform'] or 'no world'}; peers significantly above it: {v['peers_significantly_above'] or 'none'}"
        f" -> {'met' if v['met'] else 'NOT met'}."
    )


def paper_table(settings: Mapping[str, Mapping[str, Any]]) -> str:
    """Summaries of several settings (the benchmark's paper scale: a world at ``B x G``) in one table, with the
    round label's signal-to-noise below it where a setting has an ``"snr"`` entry.

    Args:
        settings: ``{setting: summary}``, each a
            [`summarise_world`][banditlib.adapters.rlvr.sim.comparison.summarise_world] dict, optionally with
            ``"snr"``: [`label_snr`][banditlib.adapters.rlvr.sim.comparison.label_snr] of the paper preset's runs.

    Returns:
        The markdown table.

    Examples:
        >>> s = {"schedulers": {"uniform": {"final_ci": (0.3, 0.3, 0.3), "kept_share": 1.0}}, "diff_uniform": {}}
        >>> paper_table({"iid, B=8 x G=4": s}).splitlines()[-1]
        '| iid, B=8 x G=4 | uniform | 0.300 [0.300, 0.300] | - | 1.00 |'
    """
    rows = []
    for key, p in settings.items():
        for name, r in p["schedulers"].items():
            d = p["diff_uniform"].get(name)
            rows.append([key, name, fmt_ci(r["final_ci"]), "-" if d is None else fmt_ci(d, signed=True),
                         f"{r['kept_share']:.2f}"])  # fmt: skip
    notes = []
    for key, p in settings.items():
        snr = p.get("snr")
        if snr is None or snr["observed_std"] is None or snr["true_std"] is None:
            continue
        corr = "-" if snr["corr"] is None else f"{snr['corr']:.2f}"
        notes.append(f"{key}: the paper preset's round label: std of the observed r_t {snr['observed_std']:.4f}, std "
                     f"of the true one-step gain of its selection {snr['true_std']:.4f}, correlation {corr} "
                     f"({snr['rounds']} rounds).")  # fmt: skip
    return markdown_table("Paper scale", ["setting", "scheduler", "final held-out acc.", "vs uniform (paired)",
                                          "kept share"], rows, notes)  # fmt: skip


def timing_table(timing: Mapping[str, Any]) -> str:
    """Scheduler times, one row per scheduler, against the 10 ms budget a round.

    Args:
        timing: what [`schedule_timing`][banditlib.adapters.rlvr.sim.timing.schedule_timing] returned.

    Returns:
        The markdown table.

    Examples:
        >>> t = {"prompts": 8, "group": 4, "buffer_rollouts": 64, "repeats": 1,
        ...      "uniform": {"schedule_ms_median": 0.1, "schedule_ms_best": 0.1, "observe_ms_median": 0.05}}
        >>> timing_table(t).splitlines()[-1]
        '| uniform | 0.10 | 0.10 | 0.05 | yes |'
    """
    rows = [[name, f"{r['schedule_ms_median']:.2f}", f"{r['schedule_ms_best']:.2f}", f"{r['observe_ms_median']:.2f}",
             "yes" if r["schedule_ms_median"] <= 10 else "NO"]
            for name, r in timing.items() if isinstance(r, dict)]  # fmt: skip
    title = (f"schedule() time: {timing['prompts']} prompts x {timing['group']} rollouts, buffer "
             f"{timing['buffer_rollouts']:,} rollouts, {timing['repeats']} repeats, 1 thread")  # fmt: skip
    return markdown_table(title, ["scheduler", "schedule ms (median)", "(best)", "observe ms (median)", "<= 10 ms"],
                          rows, [])  # fmt: skip


def format_tables(
    comparison: Comparison,
    paper: Mapping[str, Mapping[str, Any]] | None = None,
    timing: Mapping[str, Any] | None = None,
) -> str:
    """Every table of the benchmark, in its order, separated by blank lines.

    Args:
        comparison: what [`compare`][banditlib.adapters.rlvr.sim.comparison.compare] returned.
        paper: settings for `paper_table` (``None`` or empty: no table).
        timing: for `timing_table` (``None``: no table).

    Returns:
        The markdown.

    Examples:
        >>> from banditlib.adapters.rlvr.sim import compare, comparison_schedulers
        >>> c = compare({"uniform": comparison_schedulers()["uniform"]}, ["none"], seeds=1, steps=1,
        ...             config={"prompts_per_round": 4, "group_size": 4})
        >>> for line in format_tables(c).splitlines():
        ...     if line.startswith(("###", "Verdict")):
        ...         print(line[:60])
        ### Final held-out accuracy minus uniform's, paired over see
        ### World `none` (a perfect verifier): 1 seeds x 1 steps
        Verdict (default vs uniform and the peers): below uniform in
    """
    tables = [summary_table(comparison)] + [world_table(comparison, w) for w in comparison.summaries]
    tables.append(verdict_text(comparison.verdict()))
    if paper:
        tables.append(paper_table(paper))
    if timing:
        tables.append(timing_table(timing))
    return "\n\n".join(tables)


def worlds_figure(comparison: Comparison) -> Any:
    """The figure as a matplotlib ``Figure`` (imports matplotlib; `plot_worlds` writes it to a file).

    One panel per world, three columns: held-out accuracy against training steps of uniform, the default and the
    world's best peer (whichever of them was run), mean and 95% band over seeds.

    Args:
        comparison: what [`compare`][banditlib.adapters.rlvr.sim.comparison.compare] returned.

    Returns:
        The ``matplotlib.figure.Figure``.

    Examples:
        >>> from banditlib.adapters.rlvr.sim import compare, comparison_schedulers
        >>> c = compare({"uniform": comparison_schedulers()["uniform"]}, ["none", "iid"], seeds=1, steps=1,
        ...             config={"prompts_per_round": 4, "group_size": 4})
        >>> fig = worlds_figure(c)
        >>> [ax.get_title() for ax in fig.axes][:2], fig.axes[2].axison
        (['none: a perfect verifier', 'iid: a wrong answer passes with probability 0.2, each time\\nanew'], False)
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    worlds = comparison.summaries
    n, cols = len(worlds), 3
    nrows = (n + cols - 1) // cols
    fig, axes = plt.subplots(nrows, cols, figsize=(13, 3.6 * nrows), squeeze=False)
    shown = {w: [(UNIFORM, UNIFORM), (DEFAULT, DEFAULT), ("best", s["best_peer"])] for w, s in worlds.items()}
    style = curve_styles([name for by in shown.values() for _, name in by if name is not None])
    for ax, (w, by) in zip(axes.flat, shown.items(), strict=False):
        for key, name in by:
            if name is None or name not in comparison.runs[w]:
                continue
            acc = np.array([r["accuracy"] for r in comparison.runs[w][name]])
            m, lo, hi = band(acc)
            t = np.arange(acc.shape[1])
            ax.plot(t, m, label=f"best peer: {name}" if key == "best" else name, **style[name])
            ax.fill_between(t, lo, hi, color=style[name]["color"], alpha=0.12, lw=0)
        ax.set_title("\n".join(textwrap.wrap(f"{w}: {comparison.worlds[w].description}", 58)), fontsize=8)
        ax.set_xlabel("training steps")
        ax.set_ylabel("held-out accuracy")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, frameon=False, loc="lower right")
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.tight_layout()
    return fig


def plot_worlds(comparison: Comparison, path: str | Path) -> bool:
    """Write the figure (`worlds_figure`) to ``path`` (PNG); ``False`` when matplotlib is not installed.

    Args:
        comparison: what [`compare`][banditlib.adapters.rlvr.sim.comparison.compare] returned.
        path: output file.

    Returns:
        Whether the file was written.

    Examples:
        >>> import tempfile
        >>> from banditlib.adapters.rlvr.sim import compare, comparison_schedulers
        >>> c = compare({"uniform": comparison_schedulers()["uniform"]}, ["none"], seeds=1, steps=1,
        ...             config={"prompts_per_round": 4, "group_size": 4})
        >>> with tempfile.TemporaryDirectory() as d:
        ...     plot_worlds(c, Path(d) / "worlds.png") and (Path(d) / "worlds.png").stat().st_size > 0
        True
    """
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    fig = worlds_figure(comparison)
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True
