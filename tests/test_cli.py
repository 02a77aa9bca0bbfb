"""The command line: smoke runs with tiny horizons, listings, --version, and one-line errors with exit status 2
(bad input, a missing optional dependency)."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

import banditlib
from banditlib import cli
from banditlib.cli import main
from banditlib.envs import env_ids
from banditlib.policies.base import registered_policies

PNG = b"\x89PNG\r\n\x1a\n"


def _console_script() -> list[str]:
    script = Path(sys.executable).with_name("banditlib")
    return [str(script)] if script.exists() else [sys.executable, "-m", "banditlib"]


def test_regret_console_script_in_parallel_writes_the_documented_outputs(tmp_path: Path) -> None:
    out = tmp_path / "nested" / "results"
    proc = subprocess.run(
        [
            *_console_script(),
            *shlex.split("regret --env Linear-v0:d=3,K=4 --env banditlib/Wheel-v0 --policy linucb"),
            *shlex.split("--policy lints:scale=0.5 --horizon 30 --seeds 2 --jobs 2 --out"),
            str(out),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "| Linear-v0(d=3,K=4) | LinUCB |" in proc.stdout and "| Wheel-v0 | LinTS(scale=0.5) |" in proc.stdout
    assert "Traceback" not in proc.stderr
    data = json.loads((out / "results.json").read_text())
    assert {"runs", "summary", "theory"} <= set(data)
    assert len(data["runs"]) == 2 * 2 * 2
    for run in data["runs"]:
        assert {"env", "policy", "seed", "horizon", "regret"} <= set(run)
        assert run["horizon"] == 30 and len(run["regret"]) == 30
    for row in data["summary"]:
        assert {"env", "policy", "final_regret_mean", "final_regret_std", "growth_exponent"} <= set(row)
    assert {c["check"] for c in data["theory"]} == {"elliptical_potential", "confidence_coverage", "oful_regret_bound"}
    assert all(c["env"] == "Linear-v0(d=3,K=4)" for c in data["theory"])
    png = (out / "regret.png").read_bytes()
    assert png.startswith(PNG) and len(png) > 10_000
    # table.md holds exactly the tables printed on stdout (everything before the "wrote ..." line).
    table = (out / "table.md").read_text(encoding="utf-8")
    assert proc.stdout.startswith(table) and table.endswith("|\n")
    rest = proc.stdout[len(table) :].strip()
    assert rest.startswith("seeds: every run separate") and "\nwrote " in rest and "table.md" in rest
    assert "| Linear-v0(d=3,K=4) | LinUCB |" in table and "Theory checks" in table
    # 30 rounds are too short for a growth exponent: n/a in the table (with the rule), null in results.json.
    assert all(row["growth_exponent"] is None for row in data["summary"])
    assert "| n/a |" in table and "T < 200 rounds" in table


def test_seeds_are_batched_by_default_and_the_flag_turns_it_off(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = shlex.split("regret --env Linear-v0:d=3,K=4 --policy neuralucb:hidden=(4,),train_every=3 --policy linucb "
                       "--horizon 20 --seeds 2 --no-progress --out")  # fmt: skip
    assert main([*argv, str(tmp_path / "on")]) == 0
    assert "seeds: batched into one computation (results identical to separate runs) for 1 of 2" in (
        capsys.readouterr().out
    )
    assert main([*argv, str(tmp_path / "off"), "--no-batch-seeds"]) == 0
    assert "seeds: every run separate (batching switched off)." in capsys.readouterr().out
    on, off = (json.loads((tmp_path / d / "results.json").read_text()) for d in ("on", "off"))
    assert on["config"]["batch_seeds"] and not off["config"]["batch_seeds"]
    assert [r["batched"] for r in on["runs"]] == [True, True, False, False]
    assert not any(r["batched"] for r in off["runs"])
    assert [r["regret"] for r in on["runs"]] == [r["regret"] for r in off["runs"]]


def test_demo_subcommand_in_process(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*shlex.split("demo --horizon 20 --seeds 1 --jobs 1 --no-progress --out"), str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "| Linear-v0 | LinUCB |" in out and "| Drifting-v0 | LinUCB(forget=0.99) |" in out
    assert (tmp_path / "regret.png").read_bytes().startswith(PNG)
    assert json.loads((tmp_path / "results.json").read_text())["runs"]
    table = (tmp_path / "table.md").read_text(encoding="utf-8")
    assert out.startswith(table) and "| Quadratic-v0 | NeuralLinUCB |" in table
    assert f"wrote {tmp_path / 'results.json'}, {tmp_path / 'table.md'} and {tmp_path / 'regret.png'}" in out


def test_version_prints_name_and_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out == f"banditlib {banditlib.__version__}\n"
    proc = subprocess.run([*_console_script(), "--version"], capture_output=True, text=True, check=False)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, f"banditlib {banditlib.__version__}\n", "")


def _entries(out: str) -> dict[str, str]:
    """Listing output -> {name: the entry's text on one line}; continuation lines are indented."""
    entries: dict[str, list[str]] = {}
    for line in out.splitlines():
        if line and not line[0].isspace():
            name, _, rest = line.partition(" ")
            entries[name] = [rest.strip()]
        else:
            entries[list(entries)[-1]].append(line.strip())
    return {name: " ".join(parts) for name, parts in entries.items()}


def _check_layout(out: str, columns: int) -> None:
    lines = out.splitlines()
    firsts = [line for line in lines if not line[0].isspace()]
    starts = {len(line) - len(line.split(maxsplit=1)[1]) for line in firsts}
    indents = {len(line) - len(line.lstrip()) for line in lines if line[0].isspace()}
    assert len(starts) == 1 and indents == starts  # text column aligned, continuation lines under it
    assert max(len(line) for line in lines) < columns
    assert not re.search(r"``|:\w+:`|\]\[", out)  # no rst/markdown markup left


def test_envs_lists_every_env_with_its_summary_wrapped(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    assert main(["envs"]) == 0
    out = capsys.readouterr().out
    entries = _entries(out)
    assert list(entries) == env_ids()
    _check_layout(out, 100)
    assert "obs (2,), arms=5; defaults: delta=0.95" in entries["banditlib/Wheel-v0"]
    assert entries["banditlib/Linear-v0"].startswith(
        "Stationary linear bandit: arm a pays x_a^T theta* + eps, eps ~ N(0, noise^2). obs (10, 10), arms=None"
    )


def test_policies_lists_full_summaries_wrapped_to_the_terminal(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for columns in (80, 140):
        monkeypatch.setenv("COLUMNS", str(columns))
        assert main(["policies"]) == 0
        out = capsys.readouterr().out
        entries = _entries(out)
        assert sorted(entries) == sorted(n.lower() for n in registered_policies())
        _check_layout(out, columns)
        for name, cls in registered_policies().items():
            # The whole first paragraph of the docstring, not its first line: it ends a sentence.
            assert entries[name.lower()].startswith(cli.summary(cls)) and cli.summary(cls).endswith(".")
        assert "defaults: alpha=1.0, reg=1.0" in entries["linucb"]
    assert "independent across arms and rows" in entries["neuralts"]  # the docstring's second line


def test_summary_joins_the_first_paragraph_and_strips_markup() -> None:
    class Documented:
        """Scores ``x^T theta`` like :class:`~banditlib.LinTS`, see [`LinUCB`][banditlib.LinUCB] and
        :mod:`banditlib.policies`, **fast** and `exact`.

        Details that are not part of the summary.
        """

    assert cli.summary(Documented) == (
        "Scores x^T theta like LinTS, see LinUCB and banditlib.policies, fast and exact."
    )
    assert cli.summary(type("Bare", (), {"__doc__": None})) == ""


@pytest.mark.parametrize(
    "args,message",
    [
        (["--env", "Nope-v0", "--policy", "linucb"], "unknown environment 'Nope-v0'; available: "),
        (["--env", "Linear-v0", "--policy", "nope"], "unknown policy 'nope'; available: "),
        (["--env", "Linear-v0", "--policy", "linucb:alpah=1"], "LinUCB has no hyperparameter `alpah`; valid: alpha"),
        (["--env", "Linear-v0", "--policy", "linucb:alpha=-1"], "bad hyperparameter for LinUCB"),
        (["--env", "Linear-v0:d=0", "--policy", "linucb"], "bad argument for banditlib/Linear-v0"),
        (["--env", "Linear-v0", "--policy", "linucb", "--policy", "LinUCB"], "policy 'LinUCB' is given twice"),
        (["--env", "Linear-v0", "--policy", "linucb", "--horizon", "0"], "positive integer"),
        (["--env", "Linear-v0", "--policy", "linucb", "--delta", "2"], "must be a number in (0, 1)"),
        (["--policy", "linucb"], "the following arguments are required: --env"),
    ],
)
def test_bad_input_exits_2_with_one_line(
    args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["regret", *args, "--out", str(tmp_path), "--no-progress"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("banditlib regret: error: ")


def test_unwritable_output_folder_exits_2_before_running(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(SystemExit) as exc:
        main(["regret", "--env", "Linear-v0", "--policy", "linucb", "--out", str(blocker / "out"), "--no-progress"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith("banditlib regret: error: cannot write to the output folder") and "a-file" in err


def test_console_script_error_is_one_line_on_stderr() -> None:
    proc = subprocess.run(
        [*_console_script(), "regret", "--env", "Linear-v0", "--policy", "nosuch"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "unknown policy 'nosuch'" in proc.stderr


@pytest.mark.parametrize("command", ["regret", "demo"])
def test_help_names_every_output_file(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "DIR/results.json" in text and "DIR/table.md (the printed tables)" in text and "DIR/regret.png" in text
    assert "--out DIR" in text and "table.md" in text.split("--out DIR", 1)[1]


@pytest.mark.parametrize(
    "module,argv,what",
    [
        ("gymnasium", ["envs"], "gymnasium"),
        ("gymnasium", ["regret", "--env", "Linear-v0", "--policy", "linucb", "--no-progress"], "gymnasium"),
        ("gymnasium", ["demo", "--horizon", "5", "--seeds", "1", "--no-progress"], "gymnasium"),
        ("sklearn", ["envs"], "scikit-learn (module sklearn)"),
        ("sklearn", ["regret", "--env", "Classification-v0", "--policy", "linucb", "--no-progress"], "scikit-learn"),
    ],
)
def test_missing_optional_dependency_exits_2_with_the_install_line(
    module: str, argv: list[str], what: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    if argv[0] != "envs":
        argv = [*argv, "--out", str(tmp_path / "out")]
    monkeypatch.setitem(sys.modules, module, None)  # `import module` now raises ModuleNotFoundError
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    captured = capsys.readouterr()
    err = captured.err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"banditlib {argv[0]}: error: the optional dependency {what}")
    assert err.rstrip().endswith("install it with: pip install 'banditlib[envs]'")
    assert not (tmp_path / "out" / "results.json").exists()


def test_missing_gymnasium_in_the_console_script(tmp_path: Path) -> None:
    # A package that fails to import the way an absent one does, first on the path of a fresh interpreter.
    (tmp_path / "gymnasium").mkdir()
    (tmp_path / "gymnasium" / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'gymnasium'\", name='gymnasium')\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    for command in (["envs"], ["regret", "--env", "Linear-v0", "--policy", "linucb", "--out", str(tmp_path / "o")]):
        proc = subprocess.run(
            [sys.executable, "-m", "banditlib", *command], capture_output=True, text=True, check=False, env=env
        )
        assert proc.returncode == 2 and proc.stdout == ""
        assert proc.stderr == (
            f"banditlib {command[0]}: error: the optional dependency gymnasium is not installed; install it with: "
            "pip install 'banditlib[envs]'\n"
        )


def test_missing_matplotlib_still_writes_results_and_tables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The figure is the only output that needs matplotlib: it is skipped with a note naming the install line.
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    argv = ["regret", "--env", "Linear-v0:d=2,K=2", "--policy", "linucb", "--horizon", "5", "--seeds", "1"]
    assert main([*argv, "--no-progress", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert (tmp_path / "results.json").exists() and (tmp_path / "table.md").exists()
    assert not (tmp_path / "regret.png").exists()
    assert "no regret.png: matplotlib is not installed; pip install 'banditlib[envs]'" in out


def test_other_missing_modules_are_not_hidden(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(args: object) -> None:
        raise ModuleNotFoundError("No module named 'yaml'", name="yaml")

    monkeypatch.setattr(cli, "_run", broken)
    with pytest.raises(ModuleNotFoundError, match="yaml"):
        main(["policies"])
    assert cli.missing_extra(ModuleNotFoundError("No module named 'tqdm.auto'")) == ("tqdm", "tqdm")
    assert cli.missing_extra(ModuleNotFoundError("No module named 'matplotlib'", name="matplotlib")) == (
        "matplotlib",
        "matplotlib",
    )
