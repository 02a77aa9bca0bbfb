"""The adapters' docstring examples, run as installed (``banditlib.adapters...``).

pytest's ``--doctest-modules`` would import ``adapters/`` under the top-level name ``adapters``, a second copy
of every module (see DESIGN 2.1), so the examples are collected here through the installed package instead.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import banditlib.adapters
import pytest

MODULES = sorted(
    m.name
    for m in pkgutil.walk_packages(banditlib.adapters.__path__, prefix="banditlib.adapters.")
    if m.name.split(".")[-1] not in {"trl"}  # needs trl; its behaviour is tested through trainer.train()
)


def test_every_adapter_module_is_found() -> None:
    assert "banditlib.adapters.rlvr.scheduler" in MODULES and "banditlib.adapters.rlvr.sim" in MODULES


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} docstring examples of {name} failed"
