"""Packaging: the wheel's layout, import hygiene, the README's code, and the console script."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(out),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    (path,) = out.glob("banditlib-*.whl")
    return zipfile.ZipFile(path)


def test_wheel_installs_adapters_under_banditlib(wheel: zipfile.ZipFile) -> None:
    names = wheel.namelist()
    assert "banditlib/adapters/__init__.py" in names
    assert not any(n.startswith("adapters/") for n in names), "a top-level `adapters` package would collide"
    assert "banditlib/py.typed" in names
    assert "banditlib/policies/linear.py" in names


def test_adapters_folder_is_the_banditlib_adapters_package() -> None:
    """One copy of the adapters under one name: ``banditlib/adapters`` links to the top-level folder."""
    link = ROOT / "banditlib" / "adapters"
    assert link.is_symlink() and os.readlink(link) == "../adapters", "banditlib/adapters must be a relative symlink"
    import banditlib.adapters.rlvr

    assert Path(banditlib.adapters.rlvr.__file__).resolve().parent == (ROOT / "adapters" / "rlvr").resolve()
    assert "adapters" not in sys.modules, "the adapters were imported a second time under a top-level name"


def test_doctests_collect_the_adapters_under_their_import_name() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "banditlib/adapters/rlvr/scheduler.py"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert "banditlib/adapters/rlvr/scheduler.py::banditlib.adapters.rlvr.scheduler.RolloutScheduler" in out


def test_import_loads_no_optional_heavy_dependency() -> None:
    code = (
        "import sys, banditlib, banditlib.adapters; "
        "print(','.join(m for m in ('triton', 'gymnasium', 'matplotlib', 'transformers', 'trl') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout.strip()
    assert out == "", f"import banditlib loaded {out}"


def _python_blocks(markdown: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", markdown, flags=re.S)


@pytest.mark.parametrize("page", ["README.md", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md"))])
def test_documented_code_runs_as_written(page: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = _python_blocks((ROOT / page).read_text())
    assert blocks or page != "README.md"
    monkeypatch.chdir(tmp_path)
    for block in blocks:
        exec(compile(block, page, "exec"), {"__name__": "__docs__"})


def test_readme_starts_with_the_two_commands() -> None:
    head = (ROOT / "README.md").read_text().split("## ")[0]
    assert head.index("make demo") < head.index("make test")


def test_console_script_demo(tmp_path: Path) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "banditlib",
            "demo",
            "--horizon",
            "60",
            "--seeds",
            "2",
            "--out",
            str(tmp_path),
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert "| LinUCB |" in out and "| Random |" in out
    assert (tmp_path / "results.json").exists()


def test_console_script_rejects_bad_arguments() -> None:
    proc = subprocess.run([sys.executable, "-m", "banditlib", "demo", "--horizon", "0"], capture_output=True, text=True)
    assert proc.returncode == 2 and "positive integer" in proc.stderr
