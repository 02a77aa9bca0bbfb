"""``python -m banditlib``: the command line."""

from __future__ import annotations

from banditlib.cli import main

raise SystemExit(main())
