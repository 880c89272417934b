"""``async-counters``: the command line.

Each subcommand lives with the code it drives and offers two functions, ``add_arguments(parser)``
and ``run(args) -> int``; this module only wires them together. Imports are lazy so that one
subcommand's extras are not needed by another.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

__all__ = ["main"]

# name -> (module with add_arguments/run, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "bench": (
        "async_counters.loadtest.cli",
        "load-test counters under contention and verify the totals",
    ),
    "verify": (
        "async_counters.loadtest.verify_cli",
        "check the totals of a bench run recorded with --run-id",
    ),
    "local": ("async_counters.local.cli", "run the embedded DynamoDB on 127.0.0.1"),
}


def _module(name: str):  # type: ignore[no-untyped-def]
    return importlib.import_module(SUBCOMMANDS[name][0])


def build_parser(available: Sequence[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="async-counters",
        description="Exact asyncio atomic counters on DynamoDB, and the load test proving them.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in available:
        help_text = SUBCOMMANDS[name][1]
        sub = commands.add_parser(name, help=help_text, description=help_text)
        _module(name).add_arguments(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``async-counters`` script; returns the exit status."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    available = []
    missing: dict[str, str] = {}
    for name in SUBCOMMANDS:
        try:
            _module(name)
        except ImportError as exc:  # an extra is not installed
            missing[name] = str(exc)
        else:
            available.append(name)
    if args_list and args_list[0] in missing:
        sys.stderr.write(
            f"async-counters {args_list[0]}: unavailable ({missing[args_list[0]]}); "
            "install the extra: pip install 'async-counters[bench]'\n"
        )
        return 2
    args = build_parser(available).parse_args(args_list)
    status: int = _module(args.command).run(args)
    return status


if __name__ == "__main__":
    sys.exit(main())
