"""``python -m banditlib``: the command line.

The guard matters: worker processes started with ``spawn`` import the parent's main module, and must not run
the command again.
"""

from __future__ import annotations

from banditlib.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
