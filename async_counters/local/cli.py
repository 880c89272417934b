"""``async-counters local``: the embedded DynamoDB as a process of its own.

It prints the endpoint URL on one line first (scripts and benchmarks read it from stdout), then
serves until SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType
from typing import Final

from async_counters.local.config import DEFAULT_HOST, DEFAULT_REGION, MOTO, LocalConfig
from async_counters.local.server import LocalDynamo

DESCRIPTION: Final = (
    "Run the embedded DynamoDB on 127.0.0.1 until interrupted; the endpoint URL is printed first."
)
#: How often the main thread checks that the server thread is still alive.
_WATCH_INTERVAL: Final = 1.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``local`` subcommand's flags to ``parser``."""
    parser.add_argument(
        "--host",
        default=DEFAULT_HOST,
        help="loopback address to bind (default %(default)s; other hosts are refused)",
    )
    parser.add_argument(
        "--port", type=int, default=0, help="port to bind (default 0: pick a free one)"
    )
    parser.add_argument("--region", default=DEFAULT_REGION, help="region (default %(default)s)")
    parser.add_argument(
        "--backend",
        default=MOTO,
        help="'moto' (default), 'fast', or the http:// URL of a DynamoDB endpoint to front",
    )


def config_from_args(args: argparse.Namespace) -> LocalConfig:
    """The `LocalConfig` the parsed flags describe."""
    return LocalConfig(host=args.host, port=args.port, region=args.region, backend=args.backend)


def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT/SIGTERM; return the process exit status."""
    try:
        config = config_from_args(args)
    except (TypeError, ValueError) as exc:
        sys.stderr.write(f"async-counters local: {exc}\n")
        return 2
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with LocalDynamo.from_config(config) as server:
            sys.stdout.write(server.endpoint_url + "\n")
            sys.stdout.flush()
            while not stop.wait(_WATCH_INTERVAL):
                if not server.running:
                    sys.stderr.write("async-counters local: the server stopped unexpectedly\n")
                    return 1
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
