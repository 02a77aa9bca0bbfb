"""banditlib.adapters: bandit policies applied to RL trainers.

The code lives in the repository's top-level ``adapters/`` folder; ``banditlib/adapters`` is a committed
relative symlink to it, so the folder tree and the import name agree for every tool (setuptools, pytest's
doctests, mypy, ruff, mkdocstrings). It installs as ``banditlib.adapters`` (real files in the wheel), never as
a top-level ``adapters`` package, which would collide with the PyPI package of that name. The RLVR scheduler
([`banditlib.adapters.rlvr`][banditlib.adapters.rlvr.scheduler]) and the trainer integrations
(``banditlib.adapters.trl``, ``.verl``, ``.openrlhf``) live here.
"""

from __future__ import annotations

__all__: list[str] = []
