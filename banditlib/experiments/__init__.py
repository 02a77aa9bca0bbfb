"""Regret validation on the :mod:`banditlib.envs` environments: what ``banditlib regret`` and ``banditlib demo`` run.

Modules, one concern each: :mod:`.specs` (policy and environment names), :mod:`.runner` (the run loop and
parallel execution), :mod:`.theory` (OFUL confidence radius, regret bound, elliptical potential, coverage),
:mod:`.report` (summary, theory verdicts, tables), :mod:`.plots` (the figure), :mod:`.suite` (``run_regret``)
and :mod:`.demo` (the default suite). Nothing is imported here, so ``import banditlib.experiments`` stays cheap.
"""

from __future__ import annotations

__all__: list[str] = []
