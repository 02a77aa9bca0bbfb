"""Experiments built on the policies: for now the built-in regret demo (``banditlib demo``)."""

from __future__ import annotations

__all__: list[str] = []
