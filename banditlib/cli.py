"""The ``banditlib`` command line (also ``python -m banditlib``).

Subcommands:

* ``banditlib regret --env Linear-v0 --policy linucb --policy "lints:scale=0.5" --horizon 10000 --seeds 10
  --jobs 2 --out DIR``: the regret suite (environment names with or without the ``banditlib/`` namespace,
  policy hyperparameters after a colon);
* ``banditlib demo [--out DIR]``: the default suite, a table and a plot in well under two minutes;
* ``banditlib envs`` and ``banditlib policies``: what is available, one line each.

Bad input (unknown names, bad hyperparameters, an unwritable output folder) prints one line on stderr and exits
with status 2, as argparse does for malformed options.
"""

from __future__ import annotations

import argparse
import inspect
import re
import sys
from collections.abc import Sequence
from typing import Any

__all__ = ["build_parser", "main"]


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer; got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer; got {value}")
    return value


def _probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number in (0, 1); got {text!r}") from None
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"must be a number in (0, 1); got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, one subcommand per job."""
    parser = argparse.ArgumentParser(prog="banditlib", description="Batched contextual bandits for PyTorch.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{regret,demo,envs,policies}")

    regret = sub.add_parser(
        "regret",
        help="regret of policies x environments x seeds, with theory checks, a table and a plot",
        description="Run every policy on every environment for several seeds; print the regret and theory "
        "tables; write DIR/results.json and DIR/regret.png.",
        epilog='Example: banditlib regret --env Linear-v0 --env Cosine-v0 --policy linucb --policy "lints:scale=0.5" '
        "--horizon 10000 --seeds 10 --jobs 2 --out results",
    )
    regret.add_argument(
        "--env",
        action="append",
        required=True,
        metavar="NAME[:k=v,...]",
        help="environment id, with or without the banditlib/ namespace; repeat for several (see `banditlib envs`)",
    )
    regret.add_argument(
        "--policy",
        action="append",
        required=True,
        metavar="NAME[:k=v,...]",
        help="lowercase policy class name, hyperparameters after a colon; repeat for several "
        "(see `banditlib policies`)",
    )
    regret.add_argument("--horizon", type=_positive, default=1000, help="rounds per run (default 1000)")
    regret.add_argument("--seeds", type=_positive, default=5, help="runs per environment and policy (default 5)")
    regret.add_argument("--jobs", type=_positive, default=1, help="worker processes (default 1)")
    regret.add_argument("--delta", type=_probability, default=0.05, help="theory checks' delta (default 0.05)")
    regret.add_argument("--out", default="regret-results", help="output folder (default regret-results)")
    regret.add_argument("--title", default=None, help="title of the figure")
    regret.add_argument("--no-progress", action="store_true", help="no progress bar")

    demo = sub.add_parser(
        "demo",
        help="the default regret suite: linear, drifting and non-linear problems, table and plot",
        description="Run the built-in regret suite, print the tables, write DIR/results.json and DIR/regret.png.",
    )
    demo.add_argument("--horizon", type=_positive, default=2000, help="rounds per run (default 2000)")
    demo.add_argument("--seeds", type=_positive, default=5, help="runs per environment and policy (default 5)")
    demo.add_argument("--jobs", type=_positive, default=None, help="worker processes (default: one per core)")
    demo.add_argument("--out", default="demo-results", help="output folder (default demo-results)")
    demo.add_argument("--no-progress", action="store_true", help="no progress bar")

    sub.add_parser("envs", help="list the registered environments", description="List the environments.")
    sub.add_parser("policies", help="list the registered policies", description="List the policies.")
    return parser


def _summary_line(obj: Any) -> str:
    doc = (inspect.getdoc(obj) or "").strip()
    return doc.splitlines()[0].replace("``", "") if doc else ""


def _defaults(fn: Any, skip: tuple[str, ...]) -> str:
    params = inspect.signature(fn).parameters.values()
    return ", ".join(
        f"{p.name}={p.default!r}"
        for p in params
        if p.name not in skip and p.default is not inspect.Parameter.empty and p.kind is not p.VAR_KEYWORD
    )


def _list_envs() -> None:
    import gymnasium as gym
    from gymnasium.envs.registration import load_env_creator

    from banditlib.experiments.specs import arm_model, available_envs, parse_env

    ids = available_envs()
    width = max(len(i) for i in ids)
    for env_id in ids:
        entry = gym.registry[env_id].entry_point
        creator = load_env_creator(entry) if isinstance(entry, str) else entry
        env = parse_env(env_id).make()
        _, arms = arm_model(env)
        env.close()
        model = f"obs {env.observation_space.shape}, arms={arms}"
        print(f"{env_id:<{width}}  {model:<22} {_summary_line(creator)} [{_defaults(creator, ('self',))}]")


def _list_policies() -> None:
    from banditlib.experiments.specs import RESERVED_POLICY_ARGS, available_policies

    policies = available_policies()
    width = max(len(n) for n in policies)
    for name, cls in policies.items():
        args = _defaults(cls.__init__, ("self", *RESERVED_POLICY_ARGS))
        print(f"{name:<{width}}  {_summary_line(cls)} [{args}]")


def _run(args: argparse.Namespace) -> None:
    if args.command == "regret":
        from banditlib.experiments.suite import run_regret

        run_regret(
            args.env,
            args.policy,
            horizon=args.horizon,
            seeds=args.seeds,
            jobs=args.jobs,
            out=args.out,
            delta=args.delta,
            progress=not args.no_progress,
            title=args.title,
        )
    elif args.command == "demo":
        from banditlib.experiments.demo import run_demo

        run_demo(horizon=args.horizon, seeds=args.seeds, out=args.out, jobs=args.jobs, progress=not args.no_progress)
    elif args.command == "envs":
        _list_envs()
    elif args.command == "policies":
        _list_policies()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    from banditlib.errors import InvalidInputError

    try:
        _run(args)
    except InvalidInputError as exc:
        # The API's messages start with the function name ("parse_policy(): ..."); the command is clearer here.
        message = re.sub(r"^[\w.]+\(\): ", "", str(exc)).replace("\n", " ")
        parser.exit(2, f"{parser.prog} {args.command}: error: {message}\n")
    except KeyboardInterrupt:
        parser.exit(130, f"{parser.prog} {args.command}: interrupted\n")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
