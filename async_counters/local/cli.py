"""``async-counters local``: the embedded DynamoDB as a process of its own, and its admin.

    async-counters local --port 8000 --backend memory --latency-ms 5 --jitter-ms 2
    async-counters local ledger --endpoint-url http://127.0.0.1:8000 counters
    async-counters local faults --endpoint-url http://127.0.0.1:8000 --error-after-apply 0.01

Serving prints the endpoint URL on one line first (scripts and benchmarks read it from stdout),
then runs until SIGINT or SIGTERM (or, with ``--exit-with-stdin``, until its standard input
closes: how the load test makes sure a server it started never outlives it).
`add_config_arguments` and `config_from_args` let another command (the load test) offer the same
options.
"""

from __future__ import annotations

import argparse
import dataclasses
import errno
import json
import os
import signal
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from types import FrameType
from typing import Any, Final

from async_counters.local.config import (
    BACKEND_ENV,
    DEFAULT_HOST,
    DEFAULT_REGION,
    FAULT_OPERATIONS,
    TTL_DELAY_SECONDS,
    Capacity,
    Faults,
    Latency,
    LocalConfig,
    default_backend,
)
from async_counters.local.server import LocalDynamo
from async_counters.transport import is_loopback

DESCRIPTION: Final = (
    "Run the embedded DynamoDB on 127.0.0.1 until interrupted (the endpoint URL is printed "
    "first), or read its ledger and change its faults while it runs."
)
#: How often the main thread checks that the server thread is still alive.
_WATCH_INTERVAL: Final = 1.0
_ADMIN_TIMEOUT: Final = 10.0
_FAULT_RATES: Final = (
    ("throttle", "throttled whatever the capacity, not applied"),
    ("error_before_apply", "HTTP 500, not applied"),
    ("error_after_apply", "applied, then HTTP 500"),
    ("drop_after_apply", "applied, then the connection is dropped"),
    ("delay_after_apply", "applied, then the answer is held past the client's timeout"),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``local`` subcommand's flags and its ``ledger``/``faults`` actions."""
    add_config_arguments(parser)
    parser.add_argument(
        "--exit-with-stdin",
        action="store_true",
        help="also stop when standard input closes: a parent that holds the other end of a pipe "
        "takes the server with it however it ends, even killed",
    )
    actions = parser.add_subparsers(dest="local_action", metavar="{ledger,faults}")
    ledger = actions.add_parser("ledger", help="print what a running server really applied")
    _add_endpoint_argument(ledger)
    # A positional: as an option, --table would be an ambiguous prefix of --table-wcu.
    ledger.add_argument("table", nargs="?", help="only this table")
    ledger.add_argument("--reset", action="store_true", help="forget the ledger after printing")
    faults = actions.add_parser(
        "faults",
        help="print a running server's faults, or change the ones named (the others stay)",
        description="Print a running server's faults; given fault flags, change only those "
        "(the others keep their values; --clear first turns every fault off).",
    )
    _add_endpoint_argument(faults)
    faults.add_argument(
        "--clear", action="store_true", help="turn every fault off before applying the flags"
    )
    _add_fault_arguments(faults.add_argument_group("faults"))


def add_config_arguments(parser: argparse.ArgumentParser, *, prefix: str = "") -> None:
    """Flags for every `LocalConfig` option; ``prefix`` (e.g. ``"local-"``) avoids clashes."""
    p = f"--{prefix}"
    server = parser.add_argument_group("server")
    server.add_argument(
        f"{p}host",
        default=DEFAULT_HOST,
        help="loopback address to bind (default %(default)s; other hosts are refused)",
    )
    server.add_argument(
        f"{p}port", type=int, default=0, help="port to bind (default 0: pick a free one)"
    )
    server.add_argument(f"{p}region", default=DEFAULT_REGION, help="region (default %(default)s)")
    server.add_argument(
        f"{p}backend",
        default=None,
        help=f"'moto' (default, or ${BACKEND_ENV}), 'memory', 'dynalite', or the http:// URL of "
        "a DynamoDB endpoint to stand in front of",
    )
    server.add_argument(
        f"{p}ttl-delay-seconds",
        type=float,
        default=TTL_DELAY_SECONDS,
        metavar="SECONDS",
        # The default is spelled out, not %(default)g: bench reuses these flags with no defaults.
        help="how long the memory backend keeps an item past its TTL before deleting it, as "
        f"DynamoDB deletes late (default {TTL_DELAY_SECONDS:g}; 0: at the next sweep)",
    )
    capacity = parser.add_argument_group(
        "capacity (throttling like DynamoDB; off unless one of these is given)"
    )
    capacity.add_argument(
        f"{p}capacity", action="store_true", help="turn throttling on with DynamoDB's limits"
    )
    for flag, default, what in (
        ("partition-wcu", Capacity.partition_write_units, "write units/s per partition key"),
        ("partition-rcu", Capacity.partition_read_units, "read units/s per partition key"),
        ("table-wcu", Capacity.table_write_units, "write units/s per table, as described"),
        ("table-rcu", Capacity.table_read_units, "read units/s per table"),
        ("burst-seconds", Capacity.burst_seconds, "seconds of its rate a bucket holds"),
    ):
        capacity.add_argument(
            f"{p}{flag}", type=float, default=None, help=f"{what} (default {default:g})"
        )
    latency = parser.add_argument_group("latency")
    latency.add_argument(
        f"{p}latency-ms", type=float, default=0.0, help="added to each request (default 0)"
    )
    latency.add_argument(
        f"{p}jitter-ms", type=float, default=0.0, help="latency varies by up to this (default 0)"
    )
    _add_fault_arguments(parser.add_argument_group("faults"), prefix=prefix)


def _add_fault_arguments(group: Any, *, prefix: str = "") -> None:
    p = f"--{prefix}"
    for name, what in _FAULT_RATES:
        group.add_argument(
            f"{p}{name.replace('_', '-')}",
            type=float,
            default=None,
            metavar="RATE",
            help=f"share of requests {what}",
        )
    group.add_argument(
        f"{p}fault-delay",
        type=float,
        default=None,
        metavar="SECONDS",
        help=f"how long a delayed answer is held (default {Faults.delay:g})",
    )
    group.add_argument(
        f"{p}fault-operations",
        default=None,
        metavar="OP,OP",
        help=f"operations faults may hit (default {','.join(sorted(FAULT_OPERATIONS))})",
    )
    group.add_argument(
        f"{p}seed", type=int, default=None, help="seed for faults and latency jitter"
    )


def _add_endpoint_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--endpoint-url", required=True, help="the running server, e.g. http://127.0.0.1:8000"
    )


def _get(args: argparse.Namespace, prefix: str, name: str) -> Any:
    return getattr(args, (prefix + name).replace("-", "_"))


def faults_from_args(args: argparse.Namespace, *, prefix: str = "") -> Faults | None:
    """The `Faults` the fault flags describe, or None if none was given."""
    fields = fault_fields(args, prefix=prefix)
    return Faults(**fields) if fields else None


def fault_fields(args: argparse.Namespace, *, prefix: str = "") -> dict[str, Any]:
    """The `Faults` fields the fault flags name, and only those."""
    fields: dict[str, Any] = {}
    for name, _ in _FAULT_RATES:
        value = _get(args, prefix, name)
        if value is not None:
            fields[name] = value
    delay = _get(args, prefix, "fault_delay")
    if delay is not None:
        fields["delay"] = delay
    operations = _get(args, prefix, "fault_operations")
    if operations is not None:
        fields["operations"] = frozenset(op.strip() for op in operations.split(",") if op.strip())
    seed = _get(args, prefix, "seed")
    if seed is not None:
        fields["seed"] = seed
    return fields


def config_from_args(args: argparse.Namespace, *, prefix: str = "") -> LocalConfig:
    """The `LocalConfig` the parsed flags describe."""
    capacity_fields = {
        field: _get(args, prefix, flag)
        for field, flag in (
            ("partition_write_units", "partition_wcu"),
            ("partition_read_units", "partition_rcu"),
            ("table_write_units", "table_wcu"),
            ("table_read_units", "table_rcu"),
            ("burst_seconds", "burst_seconds"),
        )
        if _get(args, prefix, flag) is not None
    }
    capacity = (
        Capacity(**capacity_fields) if capacity_fields or _get(args, prefix, "capacity") else None
    )
    seed = _get(args, prefix, "seed")
    latency = Latency(
        mean=_get(args, prefix, "latency_ms") / 1000,
        jitter=_get(args, prefix, "jitter_ms") / 1000,
        seed=seed,
    )
    return LocalConfig(
        host=_get(args, prefix, "host"),
        port=_get(args, prefix, "port"),
        region=_get(args, prefix, "region"),
        backend=_get(args, prefix, "backend") or default_backend(),
        capacity=capacity,
        latency=latency,
        faults=faults_from_args(args, prefix=prefix) or Faults(),
        ttl_delay=_get(args, prefix, "ttl_delay_seconds"),
    )


class AdminError(Exception):
    """A running server could not be asked (unreachable, or not the embedded server)."""


def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT/SIGTERM, or run a ``ledger``/``faults`` action; the exit status."""
    action = getattr(args, "local_action", None)
    command = "async-counters local" + (f" {action}" if action else "")
    try:
        if action == "ledger":
            return _ledger(args)
        if action == "faults":
            return _faults(args)
        config = config_from_args(args)
    except AdminError as exc:
        sys.stderr.write(f"{command}: {exc}\n")
        return 1
    except (TypeError, ValueError) as exc:
        sys.stderr.write(f"{command}: error: {exc}\n")
        return 2
    return _serve(config, exit_with_stdin=getattr(args, "exit_with_stdin", False))


def start_failure(config: LocalConfig, exc: BaseException) -> str:
    """One line saying why a server with ``config`` did not start, and what to do."""
    address = f"{config.host}:{config.port}"
    if isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE:
        return (
            f"port {config.port} on {config.host} is in use (another server?): choose another "
            "with --port, or --port 0 for a free one"
        )
    if isinstance(exc, OSError) and exc.errno == errno.EACCES:
        return f"not allowed to listen on {address}: choose a port above 1023 with --port"
    cause = exc.__cause__ if isinstance(exc, RuntimeError) and exc.__cause__ else exc
    if isinstance(cause, ImportError):
        from async_counters.extras import needed_for

        extra = needed_for(cause, "local")
        assert extra is not None
        return (
            f"the {config.backend} backend needs {extra.distribution}, which is not installed: "
            f"pip install 'async-counters[{extra.extra}]', or use --backend memory"
        )
    return f"the {config.backend} backend did not start: {type(cause).__name__}: {cause}"


def _serve(config: LocalConfig, *, exit_with_stdin: bool = False) -> int:
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    def on_end_of_input(fd: int) -> None:
        # os.read, not sys.stdin: a daemon thread blocked in a buffered read holds the
        # buffer's lock, and the interpreter aborts at exit when it cannot take it.
        try:
            for _ in iter(lambda: os.read(fd, 4096), b""):
                pass  # whatever is written is ignored; only the end of input counts
        finally:
            stop.set()  # a read that fails ends the watch too: never serve on unwatched

    if exit_with_stdin:
        if sys.stdin is None:
            sys.stderr.write("async-counters local: --exit-with-stdin, but there is no stdin\n")
            return 2
        threading.Thread(
            target=on_end_of_input, args=(sys.stdin.fileno(),), name="stdin-watch", daemon=True
        ).start()
    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    server = LocalDynamo.from_config(config)
    try:
        try:
            server.start()
        except (OSError, RuntimeError) as exc:
            sys.stderr.write(f"async-counters local: {start_failure(config, exc)}\n")
            return 1
        try:
            sys.stdout.write(server.endpoint_url + "\n")
            sys.stdout.flush()
            while not stop.wait(_WATCH_INTERVAL):
                if not server.running:
                    sys.stderr.write("async-counters local: the server stopped unexpectedly\n")
                    return 1
        finally:
            server.stop()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def _ledger(args: argparse.Namespace) -> int:
    query = f"?{urllib.parse.urlencode({'table': args.table})}" if args.table else ""
    _print(_admin(args.endpoint_url, "GET", f"ledger{query}"))
    if args.reset:
        _admin(args.endpoint_url, "DELETE", "ledger")
    return 0


def _faults(args: argparse.Namespace) -> int:
    """Print the faults, or change the ones named: a rate not named keeps its value."""
    from async_counters.local.front import faults_from_json, faults_to_json

    fields = fault_fields(args)
    if not fields and not args.clear:
        _print(_admin(args.endpoint_url, "GET", "faults"))
        return 0
    base = Faults() if args.clear else faults_from_json(_admin(args.endpoint_url, "GET", "faults"))
    faults = dataclasses.replace(base, **fields)  # checked here, before anything is sent
    _print(_admin(args.endpoint_url, "PUT", "faults", faults_to_json(faults)))
    return 0


def _admin(endpoint_url: str, method: str, name: str, payload: Any = None) -> Any:
    """Ask the running server's admin endpoint; `AdminError` in one line if it cannot answer."""
    parts = urllib.parse.urlsplit(endpoint_url)
    host = parts.hostname or ""
    if parts.scheme != "http" or not host:
        raise ValueError(f"--endpoint-url must be http://127.0.0.1:PORT, got {endpoint_url!r}")
    if not is_loopback(host):
        raise ValueError(f"the embedded server only runs on loopback, not {host!r}")
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(
        f"{endpoint_url.rstrip('/')}/_local/{name}", data=data, method=method
    )
    try:
        with urllib.request.urlopen(request, timeout=_ADMIN_TIMEOUT) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            raise AdminError(
                f"{endpoint_url} is not the embedded DynamoDB (no /_local/{name}): give the "
                "URL that `async-counters local` printed"
            ) from None
        raise AdminError(f"{endpoint_url} refused the request: {_error_text(exc)}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise AdminError(
            f"cannot reach {endpoint_url} ({_reason(reason)}): is `async-counters local` "
            "running there?"
        ) from None
    except ValueError:
        raise AdminError(f"{endpoint_url} answered something that is not JSON") from None


def _reason(reason: object) -> str:
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror.lower()
    return str(reason)


def _error_text(exc: urllib.error.HTTPError) -> str:
    try:
        return str(json.loads(exc.read()).get("error", exc.reason))
    except (ValueError, AttributeError, OSError):
        return str(exc.reason)


def _print(payload: Any) -> None:
    sys.stdout.write(json.dumps(payload, indent=2, sort_keys=True) + "\n")
