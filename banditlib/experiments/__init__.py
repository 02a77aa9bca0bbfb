"""Regret validation on the `banditlib.envs` environments: what ``banditlib regret`` and ``banditlib demo`` run.

Modules, one concern each: `.specs` (policy and environment names), `.runner` (the run loop and
parallel execution), [`.theory`][banditlib.experiments.theory] (OFUL confidence radius, regret bound, elliptical
potential, coverage), `.report` (summary, theory verdicts, tables), `.plots` (the figure), `.suite` (``run_regret``)
and `.demo` (the default suite). Nothing is imported here, so ``import banditlib.experiments`` stays cheap; the
package itself holds only the optional dependencies these modules may need (`ENVS_EXTRA`, the ``envs`` extra by
import name) and the line that installs them (`INSTALL_ENVS`).
"""

from __future__ import annotations

__all__ = ["ENVS_EXTRA", "INSTALL_ENVS"]

# The `envs` extra of pyproject.toml, by import name: what `banditlib regret`, `demo` and `envs` may need.
ENVS_EXTRA = {"gymnasium": "gymnasium", "matplotlib": "matplotlib", "tqdm": "tqdm", "sklearn": "scikit-learn"}
INSTALL_ENVS = "pip install 'banditlib[envs]'"
