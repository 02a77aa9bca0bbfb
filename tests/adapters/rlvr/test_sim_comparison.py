"""The scheduler comparison from Python (``sim.comparison``, ``.intervals``, ``.report``, ``.timing``): a tiny
comparison returns the documented structure, in-process and in worker processes alike; the paired intervals
match scipy's paired t-test; the tables and the figure come out; bad arguments raise."""

from __future__ import annotations

import math
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from scipy import stats

from banditlib.adapters import rlvr
from banditlib.adapters.rlvr.sim import WORLDS, Comparison, ablation_schedulers, compare, comparison_schedulers
from banditlib.adapters.rlvr.sim.comparison import LAST, label_snr, summarise_world, verdict
from banditlib.adapters.rlvr.sim.contenders import WorldSpec, is_peer
from banditlib.adapters.rlvr.sim.intervals import band, first_at, mean_ci, paired_difference, smooth
from banditlib.adapters.rlvr.sim.report import format_tables, plot_worlds, world_table, worlds_figure
from banditlib.adapters.rlvr.sim.timing import schedule_timing
from banditlib.errors import InvalidInputError

SMALL = {"prompts_per_round": 4, "group_size": 4}
NAMES = ("uniform", "default", "pods")
SEEDS, STEPS = 3, 3


def _makers(names: tuple[str, ...] = NAMES) -> dict[str, Any]:
    makers = comparison_schedulers()
    return {n: makers[n] for n in names}


@pytest.fixture(scope="module")
def comparison() -> Comparison:
    return compare(_makers(), ["iid", "truncation"], seeds=SEEDS, steps=STEPS, config=SMALL)


def _untimed(summaries: dict[str, Any]) -> dict[str, Any]:
    """The summaries without scheduler time (the only field that is not a function of the seeds)."""
    return {w: {**s, "schedulers": {n: {k: v for k, v in r.items() if k != "schedule_ms"}
                                    for n, r in s["schedulers"].items()}} for w, s in summaries.items()}  # fmt: skip


def test_a_tiny_comparison_returns_the_documented_structure(comparison: Comparison) -> None:
    c = comparison
    assert list(c.worlds) == ["iid", "truncation"] and c.worlds["iid"] == WORLDS["iid"]
    assert c.names == list(NAMES) and (c.seeds, c.steps) == (SEEDS, STEPS)
    for w in c.worlds:
        assert list(c.runs[w]) == list(NAMES)
        for name, records in c.runs[w].items():
            assert [r["seed"] for r in records] == list(range(SEEDS))
            for r in records:
                assert r["world"] == w and r["name"] == name and len(r["accuracy"]) == STEPS + 1
                assert r["final"] == pytest.approx(np.mean(r["accuracy"][-LAST:]), abs=1e-5)
                assert len(r["backward"]) == STEPS + 1 and 0.0 <= r["kept_share"] <= 1.0
                assert r["true_gain"] is None and len(r["observed_gain"]) == STEPS
        s = c.summaries[w]
        assert set(s) == {"target", "best_peer", "schedulers", "diff_uniform", "diff_best_peer",
                          "diff_uniform_equal_backward", "backward_budget"}  # fmt: skip
        assert s["best_peer"] == "pods"  # the only peer
        assert set(s["diff_uniform"]) == set(s["diff_uniform_equal_backward"]) == {"default", "pods"}
        assert set(s["diff_best_peer"]) == {"uniform", "default"}
        for r in s["schedulers"].values():
            assert len(r["final"]) == len(r["steps_to_target"]) == r["n"] == SEEDS
            m, lo, hi = r["final_ci"]
            assert lo <= m <= hi and 0.0 <= m <= 1.0
        assert s["backward_budget"] == STEPS * 16  # uniform trains on every rollout
    curves = c.curves()
    assert np.asarray(curves["iid"]["default"]).shape == (SEEDS, STEPS + 1)
    assert set(c.verdict()) == {"below_uniform", "above_uniform", "peers_significantly_above", "met"}


def test_worker_processes_give_the_same_numbers(comparison: Comparison) -> None:
    again = compare(_makers(), ["iid", "truncation"], seeds=SEEDS, steps=STEPS, config=SMALL, jobs=2)
    assert _untimed(again.summaries) == _untimed(comparison.summaries)
    assert again.curves() == comparison.curves()


def test_paired_differences_match_scipys_paired_t_test(comparison: Comparison) -> None:
    s = comparison.summaries["iid"]
    for name in ("default", "pods"):
        a = [r["final"] for r in comparison.runs["iid"][name]]
        b = [r["final"] for r in comparison.runs["iid"]["uniform"]]
        m, lo, hi = s["diff_uniform"][name]
        ci = stats.ttest_rel(a, b).confidence_interval(0.95)
        assert m == pytest.approx(np.mean(np.subtract(a, b)), abs=1e-12)
        assert (lo, hi) == pytest.approx((ci.low, ci.high), abs=1e-12)
    # by hand: mean +- t_{0.975, n-1} s / sqrt(n)
    d = [0.03, -0.01, 0.05, 0.02]
    h = stats.t.ppf(0.975, 3) * np.std(d, ddof=1) / math.sqrt(4)
    assert paired_difference([x + 1 for x in d], [1.0] * 4) == pytest.approx((0.0225, 0.0225 - h, 0.0225 + h))
    lo99, hi99 = stats.t.interval(0.99, 3, loc=np.mean(d), scale=stats.sem(d))
    assert mean_ci(d, level=0.99)[1:] == pytest.approx((lo99, hi99))
    assert mean_ci([0.4]) == (0.4, -math.inf, math.inf)  # one seed: no interval, so nothing is significant
    m, lo, hi = band(np.array([d, [0.0] * 4]))
    assert m.shape == lo.shape == hi.shape == (4,) and (lo <= m).all() and (m <= hi).all()


def test_smoothing_and_steps_to_target() -> None:
    assert smooth([0.0, 1.0, 2.0, 3.0, 4.0, 5.0]).tolist() == [0.0, 0.5, 1.0, 1.5, 2.0, 3.0]
    assert first_at([0.0, 1.0, 2.0, 3.0, 4.0, 5.0], 1.5) == 3 and first_at([0.0, 0.1], 1.0) is None


def test_summaries_and_the_verdict_by_hand() -> None:
    def rec(seed: int, acc: list[float], backward: list[int]) -> dict[str, Any]:
        return {"seed": seed, "accuracy": acc, "backward": backward, "final": float(np.mean(acc[-LAST:])),
                **dict.fromkeys(["kept_share", "rows_per_round", "lucky_share_kept", "lucky_share_all",
                                 "missed_share_kept", "missed_share_all", "schedule_ms"], 0.5)}  # fmt: skip

    runs = {"uniform": [rec(s, [0.1, 0.2, 0.3 + 0.01 * s], [0, 8, 16]) for s in range(3)],
            "default": [rec(s, [0.1, 0.4, 0.6 + 0.02 * s], [0, 4, 8]) for s in (2, 0, 1)],  # any seed order
            "pods": [rec(s, [0.1, 0.1, 0.1], [0, 4, 8]) for s in range(3)]}  # fmt: skip
    s = summarise_world(runs, steps=2)
    assert s["schedulers"]["default"]["final"] == [pytest.approx((0.1 + 0.4 + 0.6 + 0.02 * i) / 3) for i in range(3)]
    assert s["target"] == pytest.approx(0.15)  # uniform's accuracy smoothed over steps 0..1, at step 2 // 2
    assert s["schedulers"]["default"]["steps_to_target"] == [1, 1, 1]
    pods = s["schedulers"]["pods"]
    assert pods["steps_to_target"] == [None] * 3 and pods["reached"] == 0 and pods["steps_ci"] == (3.0, 3.0, 3.0)
    assert s["best_peer"] == "pods"
    assert s["backward_budget"] == 16  # default never trains on 16 rows: read at its end
    assert s["schedulers"]["default"]["at_equal_backward"] == s["schedulers"]["default"]["final"]
    v = verdict({"w": s})
    assert v["above_uniform"] == ["w"] and v["below_uniform"] == [] and not v["met"]  # one world is not two
    with pytest.raises(InvalidInputError, match="uniform"):
        summarise_world({"default": runs["default"]}, steps=2)


def test_the_tables_and_the_figure(comparison: Comparison, tmp_path: Path) -> None:
    text = format_tables(comparison)
    assert text.startswith("### Final held-out accuracy minus uniform's, paired over seeds")
    assert "| **default** |" in text and "| best peer | pods | pods |" in text
    assert f"### World `iid` ({WORLDS['iid'].description}): {SEEDS} seeds x {STEPS} steps" in text
    assert "Verdict (default vs uniform and the peers)" in text and "### Paper scale" not in text
    with pytest.raises(InvalidInputError, match="world"):
        world_table(comparison, "judge")
    fig = worlds_figure(comparison)
    labels = [line.get_label() for line in fig.axes[0].get_lines()]
    assert labels == ["uniform", "default", "best peer: pods"] and not fig.axes[2].axison
    path = tmp_path / "worlds.png"
    assert plot_worlds(comparison, path) and path.stat().st_size > 10_000


def test_true_gain_custom_worlds_and_the_label_snr() -> None:
    worlds = {"mild-judge": WorldSpec({"fault": "judge", "judge_bias": 0.3}, "a judge at half the bias")}
    c = compare(_makers(("uniform", "paper (cbs-group)")), worlds, seeds=1, steps=3, config=SMALL,
                true_gain=["paper (cbs-group)"])  # fmt: skip
    runs = c.runs["mild-judge"]
    assert runs["uniform"][0]["true_gain"] is None
    snr = label_snr(runs["paper (cbs-group)"])
    assert snr["rounds"] == 3 and snr["observed_std"] is not None and snr["true_std"] is not None
    assert "a judge at half the bias" in world_table(c, "mild-judge")


def test_one_seed_marks_nothing_significant() -> None:
    """With one seed no interval can be estimated: the tables show ``[-inf, +inf]`` and no (+)/(-) mark, and
    the verdict finds the default neither above nor below uniform, whatever the point estimates."""
    c = compare(_makers(("uniform", "default", "pods")), ["iid"], seeds=1, steps=3, config=SMALL)
    s = c.summaries["iid"]
    m, lo, hi = s["diff_uniform"]["default"]
    assert (lo, hi) == (-math.inf, math.inf) and math.isfinite(m)
    text = format_tables(c)
    assert "(+)" not in text.split("(+)/(-):")[0] and "(-)" not in text.split("(+)/(-):")[0]
    assert "[-inf, +inf]" in text
    v = verdict(c.summaries)
    assert v["below_uniform"] == [] and v["above_uniform"] == [] and not v["met"]


def test_the_built_in_schedulers() -> None:
    peers, ablations = comparison_schedulers(), ablation_schedulers()
    assert len(peers) == 11 and len(ablations) == 16 and not set(peers) & set(ablations)
    assert [n for n in peers if not is_peer(n)] == ["default", "uniform"]
    assert not any(is_peer(n) for n in ablations)
    restored = pickle.loads(pickle.dumps(peers["default"]))
    assert isinstance(restored(3), rlvr.RolloutScheduler)


def test_bad_arguments_raise() -> None:
    with pytest.raises(InvalidInputError, match="'uniform'"):
        compare(_makers(("default",)), ["iid"], seeds=1, steps=1)
    with pytest.raises(InvalidInputError, match="unknown worlds"):
        compare(_makers(), ["typo"], seeds=1, steps=1)
    with pytest.raises(InvalidInputError, match="list of names"):
        compare(_makers(), "iid", seeds=1, steps=1)
    with pytest.raises(InvalidInputError, match="`seeds`"):
        compare(_makers(), ["iid"], seeds=0, steps=1)
    with pytest.raises(InvalidInputError, match="`true_gain`"):
        compare(_makers(), ["iid"], seeds=1, steps=1, true_gain=["pods-typo"])
    with pytest.raises(InvalidInputError, match="group_size"):
        compare(_makers(), ["iid"], seeds=1, steps=1, config={"group_size": 1})
    with pytest.raises(InvalidInputError, match="must pickle"):
        compare({"uniform": lambda s: rlvr.UniformScheduler()}, ["iid"], seeds=1, steps=1, jobs=2)
    with pytest.raises(InvalidInputError, match="one value per seed"):
        paired_difference([1.0, 2.0], [1.0])
    with pytest.raises(InvalidInputError, match="level"):
        mean_ci([1.0, 2.0], level=95)
    with pytest.raises(InvalidInputError, match="rounds"):
        schedule_timing(4, 2, rounds=0, repeats=1)


def test_schedule_timing_is_one_thread_and_restores_it() -> None:
    before = torch.get_num_threads()
    t = schedule_timing(8, 4, rounds=2, repeats=2, schedulers={"uniform": rlvr.UniformScheduler,
                                                               "dapo": rlvr.DynamicSamplingFilter})  # fmt: skip
    assert torch.get_num_threads() == before
    assert (t["prompts"], t["group"], t["buffer_rollouts"], t["repeats"]) == (8, 4, 64, 2)
    assert all(t[n]["schedule_ms_best"] <= t[n]["schedule_ms_median"] for n in ("uniform", "dapo"))
