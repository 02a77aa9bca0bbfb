"""The command line: smoke runs with tiny horizons, listings, and one-line errors with exit status 2."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

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


def test_demo_subcommand_in_process(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*shlex.split("demo --horizon 20 --seeds 1 --jobs 1 --no-progress --out"), str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "| Linear-v0 | LinUCB |" in out and "| Drifting-v0 | LinUCB(forget=0.99) |" in out
    assert (tmp_path / "regret.png").read_bytes().startswith(PNG)
    assert json.loads((tmp_path / "results.json").read_text())["runs"]


def test_envs_lists_every_registered_env_one_line_each(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["envs"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split()[0] for line in lines] == env_ids()
    assert any("arms=5" in line for line in lines if line.startswith("banditlib/Wheel-v0"))


def test_policies_lists_every_registered_policy_one_line_each(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policies"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert sorted(line.split()[0] for line in lines) == sorted(n.lower() for n in registered_policies())
    assert any(line.startswith("linucb") and "alpha=1.0" in line for line in lines)


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
