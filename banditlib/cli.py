"""The ``banditlib`` command line (also ``python -m banditlib``).

Subcommands:

* ``banditlib regret --env Linear-v0 --policy linucb --policy "lints:scale=0.5" --horizon 10000 --seeds 10
  --jobs 2 --out DIR``: the regret suite (environment names with or without the ``banditlib/`` namespace,
  policy hyperparameters after a colon); prints the markdown tables and writes them to ``DIR/table.md``, with
  ``DIR/results.json`` and ``DIR/regret.png``;
* ``banditlib demo [--out DIR]``: the default suite, the same tables and files, in well under two minutes;
* ``banditlib envs`` and ``banditlib policies``: what is available, each with the first paragraph of its
  docstring (wrapped to the terminal) and its defaults;
* ``banditlib --version``: prints ``banditlib <version>``.

Bad input (unknown names, bad hyperparameters, an unwritable output folder) prints one line on stderr and exits
with status 2, as argparse does for malformed options. So does a missing optional dependency of the ``envs``
extra (gymnasium, matplotlib, tqdm, scikit-learn): the line names the module and the install command,
``pip install 'banditlib[envs]'``.
"""

from __future__ import annotations

import argparse
import inspect
import re
import shutil
import sys
import textwrap
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


OUTPUTS = "DIR/results.json (every run), DIR/table.md (the printed tables) and DIR/regret.png (the curves)"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, one subcommand per job."""
    from banditlib import __version__

    parser = argparse.ArgumentParser(prog="banditlib", description="Batched contextual bandits for PyTorch.")
    parser.add_argument("--version", action="version", version=f"banditlib {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{regret,demo,envs,policies}")

    regret = sub.add_parser(
        "regret",
        help="regret of policies x environments x seeds, with theory checks, tables and a plot",
        description="Run every policy on every environment for several seeds; print the regret and theory "
        f"tables (markdown); write {OUTPUTS}.",
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
    regret.add_argument(
        "--out",
        default="regret-results",
        metavar="DIR",
        help="output folder for results.json, table.md (the printed tables) and regret.png (default regret-results)",
    )
    regret.add_argument("--title", default=None, help="title of the figure")
    regret.add_argument("--no-progress", action="store_true", help="no progress bar")
    regret.add_argument(
        "--no-batch-seeds",
        action="store_true",
        help="run every seed separately; by default the seeds of the neural policies (but EENet) run "
        "as one batched computation, with identical results",
    )

    demo = sub.add_parser(
        "demo",
        help="the default regret suite: linear, drifting and non-linear problems, tables and plot",
        description=f"Run the built-in regret suite, print the tables (markdown), write {OUTPUTS}.",
    )
    demo.add_argument("--horizon", type=_positive, default=2000, help="rounds per run (default 2000)")
    demo.add_argument("--seeds", type=_positive, default=5, help="runs per environment and policy (default 5)")
    demo.add_argument("--jobs", type=_positive, default=None, help="worker processes (default: one per core)")
    demo.add_argument(
        "--out",
        default="demo-results",
        metavar="DIR",
        help="output folder for results.json, table.md (the printed tables) and regret.png (default demo-results)",
    )
    demo.add_argument("--no-progress", action="store_true", help="no progress bar")

    sub.add_parser(
        "envs",
        help="list the registered environments",
        description="List the environments: id, summary, observation shape and arms, default arguments.",
    )
    sub.add_parser(
        "policies",
        help="list the registered policies",
        description="List the policies: name for --policy, summary, default hyperparameters.",
    )
    return parser


def _unrole(match: re.Match[str]) -> str:
    target = match.group(1)
    return target.rsplit(".", 1)[-1] if target.startswith("~") else target


_MARKUP = (
    (re.compile(r"\[([^\]]+)\]\[[^\]]*\]"), r"\1"),  # mkdocstrings cross-reference: [`LinTS`][banditlib.LinTS]
    (re.compile(r"\[([^\]]+)\]\([^)]*\)"), r"\1"),  # markdown link: [text](url)
    (re.compile(r":[\w.:+-]+:`([^`]+)`"), _unrole),  # rst role: :class:`banditlib.LinTS`, :mod:`~a.b`
    (re.compile(r"\*\*([^*]+)\*\*"), r"\1"),  # bold
    (re.compile(r"`+([^`]+)`+"), r"\1"),  # inline code: ``x`` and `x`
)


def summary(obj: Any) -> str:
    """The summary of ``obj``'s docstring: its first paragraph (up to the first blank line) on one line, with
    rst and markdown markup removed (inline code, roles such as ``:class:``, cross-references, links, bold).

    Examples:
        >>> def f():
        ...     '''Sum of ``x`` and
        ...     :class:`~banditlib.LinTS` (see [`y`][banditlib.y]).
        ...
        ...     Details.'''
        >>> summary(f)
        'Sum of x and LinTS (see y).'
    """
    doc = inspect.getdoc(obj) or ""
    paragraph = " ".join(re.split(r"\n\s*\n", doc.strip(), maxsplit=1)[0].split())
    for pattern, repl in _MARKUP:
        paragraph = pattern.sub(repl, paragraph)
    return paragraph


def _entry(name: str, width: int, paragraphs: Sequence[str], columns: int) -> str:
    """``name`` padded to ``width``, then each paragraph wrapped to ``columns`` under a hanging indent."""
    indent = " " * (width + 2)
    wrap = max(columns, width + 42)  # a narrow terminal still gets 40 characters of text per line
    lines = []
    for i, text in enumerate(p for p in paragraphs if p):
        first = f"{name:<{width}}  " if i == 0 else indent
        lines.append(
            textwrap.fill(
                text,
                wrap,
                initial_indent=first,
                subsequent_indent=indent,
                break_long_words=False,
                break_on_hyphens=False,
            )
        )
    return "\n".join(lines) if lines else name


def _columns() -> int:
    return shutil.get_terminal_size(fallback=(100, 24)).columns - 1


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
    columns = _columns()
    for env_id in ids:
        entry = gym.registry[env_id].entry_point
        creator = load_env_creator(entry) if isinstance(entry, str) else entry
        env = parse_env(env_id).make()
        _, arms = arm_model(env)
        env.close()
        model = f"obs {env.observation_space.shape}, arms={arms}"
        defaults = _defaults(creator, ("self",))
        print(_entry(env_id, width, [summary(creator), f"{model}; defaults: {defaults or 'none'}"], columns))


def _list_policies() -> None:
    from banditlib.experiments.specs import RESERVED_POLICY_ARGS, available_policies

    policies = available_policies()
    width = max(len(n) for n in policies)
    columns = _columns()
    for name, cls in policies.items():
        args = _defaults(cls.__init__, ("self", *RESERVED_POLICY_ARGS))
        print(_entry(name, width, [summary(cls), f"defaults: {args or 'none'}"], columns))


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
            batch_seeds=not args.no_batch_seeds,
        )
    elif args.command == "demo":
        from banditlib.experiments.demo import run_demo

        run_demo(horizon=args.horizon, seeds=args.seeds, out=args.out, jobs=args.jobs, progress=not args.no_progress)
    elif args.command == "envs":
        _list_envs()
    elif args.command == "policies":
        _list_policies()


def missing_extra(exc: ImportError) -> tuple[str, str] | None:
    """``(module, distribution)`` of the ``envs`` extra whose absence ``exc`` reports, or ``None`` when ``exc``
    is about another module.

    Examples:
        >>> missing_extra(ModuleNotFoundError("No module named 'sklearn.datasets'", name="sklearn.datasets"))
        ('sklearn', 'scikit-learn')
        >>> missing_extra(ModuleNotFoundError("No module named 'yaml'", name="yaml")) is None
        True
    """
    from banditlib.experiments import ENVS_EXTRA

    name = exc.name
    if name is None:  # raised by hand, or pickled without its name: read the message
        found = re.search(r"No module named '([\w.]+)'", str(exc))
        name = found.group(1) if found else ""
    module = name.split(".")[0]
    return (module, ENVS_EXTRA[module]) if module in ENVS_EXTRA else None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status (2 for bad input or a missing extra)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    from banditlib.errors import InvalidInputError
    from banditlib.experiments import INSTALL_ENVS

    prefix = f"{parser.prog} {args.command}: error:"
    try:
        _run(args)
    except InvalidInputError as exc:
        # The API's messages start with the function name ("parse_policy(): ..."); the command is clearer here.
        message = re.sub(r"^[\w.]+\(\): ", "", str(exc)).replace("\n", " ")
        parser.exit(2, f"{prefix} {message}\n")
    except ModuleNotFoundError as exc:
        missing = missing_extra(exc)
        if missing is None:
            raise
        module, dist = missing
        what = dist if module == dist else f"{dist} (module {module})"
        parser.exit(2, f"{prefix} the optional dependency {what} is not installed; install it with: {INSTALL_ENVS}\n")
    except KeyboardInterrupt:
        parser.exit(130, f"{parser.prog} {args.command}: interrupted\n")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
