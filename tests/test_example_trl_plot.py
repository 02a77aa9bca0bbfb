"""examples/trl_arithmetic.py's plot: every scheduler distinguishable (style, marker, order) and in one legend."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest

for module in ("matplotlib", "trl", "transformers", "datasets", "tokenizers"):
    pytest.importorskip(module)

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "trl_arithmetic.py"


@pytest.fixture(scope="module")
def example() -> Any:
    spec = importlib.util.spec_from_file_location("trl_arithmetic_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _run(name: str, seed: int, faulty: bool, shift: float = 0.0) -> dict[str, Any]:
    reward = [0.4 + shift + 0.002 * i for i in range(40)]
    return {
        "scheduler": name, "seed": seed, "faulty": faulty, "reward": reward, "completions": [16 * (i + 1) for i in
        range(40)], "greedy_acc_start": 0.5, "greedy_acc": [(s, 0.5 + 0.005 * s) for s in range(5, 41, 5)],
    }  # fmt: skip


def _figure(example: Any, results: list[dict[str, Any]], path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    import matplotlib.pyplot as plt

    kept: list[Any] = []
    monkeypatch.setattr(plt, "close", kept.append)  # keep the figure to look at it
    example.plot(results, str(path))
    assert path.read_bytes().startswith(b"\x89PNG")
    return kept[0]


def test_identical_schedulers_stay_distinguishable(
    example: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # consistency equals uniform under the exact verifier: the same curve twice, as in the real runs.
    names = list(example.SCHEDULERS)
    results = [_run(n, s, False, 0.0 if n in ("uniform", "consistency") else 0.01 * i) for i, n in
               enumerate(names) for s in range(2)]  # fmt: skip
    results += [_run("uniform", 0, True, 0.3)]  # a faulty run is not mixed into the exact-verifier curves
    fig = _figure(example, results, tmp_path / "p.png", monkeypatch)
    for ax in fig.axes:
        lines = {line.get_label(): line for line in ax.get_lines()}
        assert list(lines) == names
        assert len({(line.get_linestyle(), line.get_marker()) for line in lines.values()}) == len(names)
        uniform, consistency = lines["uniform"], lines["consistency"]
        assert list(uniform.get_ydata()) == list(consistency.get_ydata())
        assert uniform.get_zorder() < consistency.get_zorder()
        assert uniform.get_linewidth() > consistency.get_linewidth()  # the one on top is narrower
    assert [t.get_text() for t in fig.legends[0].get_texts()] == names
    assert fig._suptitle.get_text().startswith("exact verifier")


def test_faulty_only_results_are_plotted(example: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    results = [_run(n, 0, True) for n in ("uniform", "default")]
    fig = _figure(example, results, tmp_path / "f.png", monkeypatch)
    assert [line.get_label() for line in fig.axes[0].get_lines()] == ["uniform", "default"]
    assert fig._suptitle.get_text().startswith("faulty verifier")
