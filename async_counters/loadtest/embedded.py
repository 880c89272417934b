"""The embedded DynamoDB in a process of its own, so that the bench measures the client alone.

It runs ``python -m async_counters.local --port 0 ...`` and reads the endpoint URL from the first
line of its output. `ServerOptions` map onto that command's flags; an option the installed server
does not offer is refused up front (`UnsupportedServerOption`), never silently dropped.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from typing import IO, Final

from .config import ServerOptions

__all__ = ["EmbeddedServer", "UnsupportedServerOption", "local_arguments"]

#: How long the server may take to print its endpoint.
START_TIMEOUT: Final = 60.0
STOP_TIMEOUT: Final = 10.0

#: Options of `async-counters local` the bench sets itself: 127.0.0.1, a free port, the default
#: region (which the pool signs for), and the backend (its own flag).
FIXED: Final = frozenset({"host", "port", "region", "backend"})


class UnsupportedServerOption(ValueError):
    """The installed embedded server has no flag for an option that was asked for."""


def local_config_parser() -> argparse.ArgumentParser:
    """A parser of exactly the installed ``async-counters local`` server's options."""
    from async_counters.local import cli

    parser = argparse.ArgumentParser(add_help=False, exit_on_error=False)
    cli.add_config_arguments(parser)
    return parser


def local_options() -> list[argparse.Action]:
    """The server's options a bench may set (everything but host, port and backend)."""
    return [
        action
        for action in local_config_parser()._actions
        if action.option_strings and action.dest not in FIXED
    ]


def local_arguments(options: ServerOptions) -> list[str]:
    """The ``async-counters local`` flags for ``options``, checked by the server's own parser.

    Raises `UnsupportedServerOption` for an option the installed server does not offer, and
    `ValueError` for values its `LocalConfig` refuses, before any process starts.
    """
    from async_counters.local import cli

    parser = local_config_parser()
    flags = {action.dest: action for action in parser._actions if action.option_strings}
    arguments = ["--backend", options.backend]
    for name, value in options.flags.items():
        action = flags.get(name)
        if action is None or name in FIXED:
            raise UnsupportedServerOption(
                f"the embedded server has no option {name!r} (see `async-counters local --help`)"
            )
        flag = action.option_strings[-1]
        if action.nargs == 0:
            if value:
                arguments.append(flag)
        else:
            arguments += [flag, str(value)]
    try:
        cli.config_from_args(parser.parse_args(arguments))
    except (argparse.ArgumentError, TypeError, ValueError) as exc:
        raise ValueError(f"embedded server: {exc}") from None
    return arguments


class EmbeddedServer:
    """``with EmbeddedServer(options) as server: server.endpoint_url``; stopped on exit."""

    def __init__(self, options: ServerOptions) -> None:
        self.options = options
        self._arguments = local_arguments(options)
        self._process: subprocess.Popen[str] | None = None
        self._log: IO[str] | None = None
        self.endpoint_url = ""

    def __enter__(self) -> EmbeddedServer:
        self._log = tempfile.TemporaryFile("w+")
        command = [
            sys.executable,
            "-m",
            "async_counters.local",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            # The server stops when this pipe closes, which the system does for us however
            # this process ends: a bench that is killed leaves no server behind.
            "--exit-with-stdin",
            *self._arguments,
        ]
        self._process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=self._log,
            stdin=subprocess.PIPE,
            text=True,
            # Out of the terminal's process group: Ctrl-C reaches the bench, which stops the
            # workers, verifies, and only then stops the server.
            start_new_session=True,
        )
        try:
            self.endpoint_url = self._read_endpoint(self._process)
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _read_endpoint(self, process: subprocess.Popen[str]) -> str:
        from async_counters.local.process import read_line

        assert process.stdout is not None
        url = read_line(process.stdout, START_TIMEOUT)
        if not url.startswith("http://"):
            # The server's own last line says why (it is one line: `async-counters local`).
            reason = self.log_tail(1).removeprefix("async-counters local: ") or repr(url)
            raise RuntimeError(f"the embedded server did not start: {reason}")
        return url

    def log_tail(self, lines: int = 5) -> str:
        if self._log is None:
            return ""
        self._log.flush()
        self._log.seek(0)
        return " / ".join(self._log.read().strip().splitlines()[-lines:])

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            for stream in (process.stdin, process.stdout):
                if stream is not None:
                    stream.close()
        if self._log is not None:
            self._log.close()
            self._log = None
