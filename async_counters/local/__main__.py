"""``python -m async_counters.local``: the same as ``async-counters local``."""

import sys

from async_counters.cli import CommandParser
from async_counters.local import cli


def main() -> int:
    parser = CommandParser(prog="python -m async_counters.local", description=cli.DESCRIPTION)
    cli.add_arguments(parser)
    return cli.run(parser.parse_args())


if __name__ == "__main__":
    sys.exit(main())
