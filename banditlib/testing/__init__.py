"""Test support shipped with the package: common policy checks, float64 references, hypothesis strategies.

Importing `banditlib.testing.strategies` needs ``hypothesis`` (the ``dev`` extra); the rest needs
nothing beyond banditlib's own requirements.
"""

from __future__ import annotations

from banditlib.testing.checks import ALL_CHECKS
from banditlib.testing.references import LinearReference

__all__ = ["ALL_CHECKS", "LinearReference"]
