"""banditlib.adapters: bandit policies applied to RL trainers (installed from the top-level ``adapters/``).

The folder installs under ``banditlib.adapters`` rather than as a top-level ``adapters`` package, which
would collide with the PyPI package of that name. The RLVR scheduler (``banditlib.adapters.rlvr``) and the
TRL integration (``banditlib.adapters.trl``) live here.
"""

from __future__ import annotations

__all__: list[str] = []
