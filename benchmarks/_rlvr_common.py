"""Helpers of the RLVR benchmarks that are about files, not measurements: compact JSON.

The intervals, runs, tables and figure of ``bench_rlvr.py`` live in the library
(``banditlib.adapters.rlvr.sim.comparison``, ``.intervals``, ``.report``), so they can be run from Python.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["compact_json"]

_NUMBER = r"(?:-?[0-9.eE+-]+|null|NaN|-?Infinity)"
_NUMBERS = re.compile(rf"\[\s*({_NUMBER}(?:,\s*{_NUMBER})*)\s*\]")


def compact_json(report: dict[str, Any]) -> str:
    """Indented JSON with every list of numbers on one line (the curves would otherwise take a line a number)."""
    text = json.dumps(report, indent=1, default=str)
    return _NUMBERS.sub(lambda m: "[" + ", ".join(x.strip() for x in m.group(1).split(",")) + "]", text) + "\n"
