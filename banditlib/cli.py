"""The ``banditlib`` command line (also ``python -m banditlib``)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

__all__ = ["main"]


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer; got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, one subcommand per job."""
    parser = argparse.ArgumentParser(prog="banditlib", description="Batched contextual bandits for PyTorch.")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo",
        help="regret of LinUCB, LinTS, EpsilonGreedy and Random on a linear problem",
        description="Run the built-in regret comparison, print a table, write results.json and regret.png.",
    )
    demo.add_argument("--horizon", type=_positive, default=2000, help="rounds per run (default 2000)")
    demo.add_argument("--seeds", type=_positive, default=5, help="runs per policy (default 5)")
    demo.add_argument("--out", default="demo-results", help="output folder (default demo-results)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    args = build_parser().parse_args(argv)
    if args.command == "demo":
        from banditlib.experiments.demo import run_demo

        run_demo(horizon=args.horizon, seeds=args.seeds, out=args.out)
    return 0
