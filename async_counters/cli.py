"""``async-counters``: the command line.

Each subcommand lives with the code it drives and offers two functions, ``add_arguments(parser)``
and ``run(args) -> int``; this module only wires them together. Imports are lazy so that one
subcommand's extras are not needed by another. A subcommand whose extra is not installed is
still listed (``--help`` says what to install), and running it says so in one line.

Anything a user types wrong is one line on stderr, ``async-counters CMD: error: ...``, with a
pointer to ``--help``, and exit status 2: never a page of usage, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import NamedTuple, NoReturn

from async_counters.extras import install_hint, missing

__all__ = ["CommandParser", "main"]

EXIT_USAGE = 2


class Subcommand(NamedTuple):
    module: str
    help: str
    #: Modules it cannot start without (checked without importing them).
    needs: tuple[str, ...] = ()
    #: Modules only its default needs, and what works without them (said in ``--help``).
    default_needs: tuple[tuple[str, ...], str] = ((), "")


SUBCOMMANDS: dict[str, Subcommand] = {
    "bench": Subcommand(
        "async_counters.loadtest.cli",
        "load-test counters under contention and verify the totals",
        ("hdrh", "rich"),
    ),
    "verify": Subcommand(
        "async_counters.loadtest.verify_cli",
        "check the totals of a bench run recorded with --run-id",
        ("hdrh",),
    ),
    "local": Subcommand(
        "async_counters.local.cli",
        "run the embedded DynamoDB on 127.0.0.1",
        default_needs=(("moto",), "or run it with --backend memory"),
    ),
}


class CommandParser(argparse.ArgumentParser):
    """An `ArgumentParser` whose errors are one line and a pointer to ``--help``."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser(
    available: Sequence[str], absent: dict[str, str] | None = None
) -> tuple[CommandParser, dict[str, CommandParser]]:
    """The parser, and each subcommand's own (for errors about its arguments)."""
    parser = CommandParser(
        prog="async-counters",
        description="Exact asyncio atomic counters on DynamoDB, and the load test proving them.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    subparsers: dict[str, CommandParser] = {}
    for name, command in SUBCOMMANDS.items():
        if name in available:
            help_text = command.help
            modules, instead = command.default_needs
            gone = missing(modules)
            if gone:
                help_text += f" (its default backend {install_hint(gone)}; {instead})"
            sub = commands.add_parser(name, help=help_text, description=command.help)
            importlib.import_module(command.module).add_arguments(sub)
            subparsers[name] = sub
        elif absent and name in absent:
            commands.add_parser(name, help=f"{command.help} ({absent[name]})", add_help=False)
    return parser, subparsers


def _absent() -> dict[str, str]:
    """Subcommands whose modules are not installed -> what to install."""
    absent = {}
    for name, command in SUBCOMMANDS.items():
        gone = missing(command.needs)
        if gone:
            absent[name] = install_hint(gone)
    return absent


def _unavailable(name: str, hint: str) -> int:
    sys.stderr.write(f"async-counters {name}: {hint}\n")
    return EXIT_USAGE


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``async-counters`` script; returns the exit status."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    absent = _absent()
    if args_list and args_list[0] in absent:
        return _unavailable(args_list[0], absent[args_list[0]])
    available = [name for name in SUBCOMMANDS if name not in absent]
    try:
        parser, subparsers = build_parser(available, absent)
    except ImportError as exc:  # a dependency of a dependency is missing: name the extra
        from async_counters.extras import needed_for

        extra = needed_for(exc, "bench")
        assert extra is not None
        return _unavailable(
            args_list[0] if args_list else "",
            f"{exc} (from the {extra.extra} extra): pip install 'async-counters[{extra.extra}]'",
        )
    args, unknown = parser.parse_known_args(args_list)
    if unknown:
        subparsers[args.command].error(f"unrecognized arguments: {' '.join(unknown)}")
    status: int = importlib.import_module(SUBCOMMANDS[args.command].module).run(args)
    return status


if __name__ == "__main__":
    sys.exit(main())
