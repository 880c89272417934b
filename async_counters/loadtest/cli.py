"""``async-counters bench``: load-test counters under contention, then prove the totals.

    async-counters bench                                   # embedded server, 10 s, verified
    async-counters bench --duration 30 --rate 500 --json out.json --plot out.png
    async-counters bench --endpoint-url http://127.0.0.1:8000 --table counters --processes 2
    async-counters bench --aws --region eu-west-1 --table bench --run-id nightly-1

Exit status: 0 when every counter is exactly its value before plus what was acknowledged;
1 when any counter differs (each one is printed, expected against actual); 2 on bad usage;
3 when nothing differs but the result is not exact (ambiguous outcomes, failed or unfinished
workers, an unreachable target); 4 when the counters are exact but an open loop (--rate) did
not hold its rate (what could not start on time was dropped and counted).
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final

from .config import (
    DEFAULT_CONCURRENCY,
    DEFAULT_DRAIN,
    DEFAULT_DURATION,
    DEFAULT_KEYS,
    DEFAULT_MAX_OUTSTANDING,
    DEFAULT_RECORD_EVERY,
    DEFAULT_TABLE,
    DEFAULT_TIME_LIMIT,
    DISTRIBUTIONS,
    RunConfig,
    ServerOptions,
    Target,
    Workload,
)
from .cost import add_arguments as add_cost_arguments
from .cost import prices_from_args
from .verify import EXIT_USAGE

__all__ = ["POOL_FLAGS", "add_arguments", "config_from_args", "run"]


class UsageError(ValueError):
    """Flags that do not make a run; reported with exit status 2."""


def _amount(text: str) -> tuple[int, int]:
    low, sep, high = text.partition(":")
    try:
        values = (int(low), int(high) if sep else int(low))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an integer N or a range LO:HI, got {text!r}"
        ) from None
    return values


def _share(text: str) -> float:
    try:
        value = float(text.rstrip("%")) / (100.0 if text.endswith("%") else 1.0)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a share like 0.1 or 10%, got {text!r}"
        ) from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"a share must be within [0, 1], got {text!r}")
    return value


def _pool_option(text: str) -> tuple[str, Any]:
    name, sep, raw = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return name.replace("-", "_"), value


# Flags that set a CounterPool option: (flag, pool option, add_argument keywords). Adding a pool
# option to the bench is one line here; the value lands in RunConfig.pool_options and reaches
# every worker's pool unchanged (--pool-option NAME=VALUE reaches any other option).
POOL_FLAGS: Final[list[tuple[str, str, dict[str, Any]]]] = [
    ("--max-in-flight", "max_in_flight", {"type": int, "help": "requests on the wire per process"}),
    ("--transport", "transport", {"choices": ("fast", "botocore"), "help": "how requests go"}),
    ("--adaptive", "adaptive", {"action": argparse.BooleanOptionalAction, "help": "key pacing"}),
    (
        "--coalesce",
        "coalesce",
        {"action": argparse.BooleanOptionalAction, "help": "merge writes per key"},
    ),
    ("--linger", "linger", {"type": float, "help": "seconds a coalesced write may wait"}),
    (
        "--exactly-once",
        "exactly_once",
        {"action": argparse.BooleanOptionalAction, "help": "retry ambiguity safely"},
    ),
    ("--shards", "shards", {"type": int, "help": "items each counter is spread over (1)"}),
    ("--connect-timeout", "connect_timeout", {"type": float, "help": "seconds (3)"}),
    ("--read-timeout", "read_timeout", {"type": float, "help": "seconds (10)"}),
    ("--key-attribute", "key_attribute", {"help": "the table's partition key (pk)"}),
    ("--value-attribute", "value_attribute", {"help": "the counter attribute (count)"}),
]
# Flags that set a field of the pool's RetryPolicy.
RETRY_FLAGS: Final[list[tuple[str, str, Callable[[str], Any], str]]] = [
    ("--retry-deadline", "deadline", float, "seconds an operation may spend retrying (30)"),
    ("--retry-attempts", "attempts", int, "at most this many requests per operation"),
    ("--retry-base", "base", float, "first backoff ceiling in seconds (0.025)"),
    ("--retry-cap", "cap", float, "largest backoff in seconds (1.0)"),
]
#: Prefix of the attributes holding embedded-server flags in the parsed arguments.
_SERVER_DEST: Final = "server__"
# Workload flags that --config replaces (output flags may still be given with it).
_WORKLOAD_DESTS: Final = (
    *("increments", "duration", "time_limit", "keys", "key_prefix", "distribution"),
    *("zipf_exponent", "hot_share", "amount", "decrements", "floor", "concurrency", "rate"),
    *("max_outstanding", "seed", "processes", "loop", "run_id", "record_every", "drain"),
    *("window", "limit"),
    *("endpoint_url", "aws", "region", "table", "pool_option"),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``bench`` subcommand's flags."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.description = __doc__.split("\n\n", 1)[0] if __doc__ else None
    parser.epilog = __doc__.split("\n\n", 1)[1] if __doc__ else None

    target = parser.add_argument_group("target (default: the embedded DynamoDB, own process)")
    where = target.add_mutually_exclusive_group()
    where.add_argument("--endpoint-url", metavar="URL", help="any DynamoDB-speaking endpoint")
    where.add_argument(
        "--aws", action="store_true", help="real DynamoDB with the default credential chain"
    )
    target.add_argument("--region", help="AWS region (implies --aws without --endpoint-url)")
    target.add_argument("--table", help=f"table, created if missing (default {DEFAULT_TABLE})")

    server = parser.add_argument_group(
        "embedded server (the options of `async-counters local`; only without --endpoint-url/--aws)"
    )
    server.add_argument(
        "--backend",
        dest=_SERVER_DEST + "backend",
        metavar="NAME",
        help="memory (default: the client is what is measured), moto (fidelity), dynalite, or URL",
    )

    load = parser.add_argument_group("workload")
    load.add_argument(
        "--increments",
        "-n",
        type=int,
        metavar="N",
        help="operations in total (with --duration: whichever ends first)",
    )
    load.add_argument(
        "--duration",
        "-d",
        type=float,
        metavar="S",
        help=f"seconds to run (default {DEFAULT_DURATION:g} unless --increments)",
    )
    load.add_argument(
        "--time-limit",
        type=float,
        metavar="S",
        help="no worker runs longer than S seconds, whatever it is doing (default "
        f"{DEFAULT_TIME_LIMIT:g})",
    )
    load.add_argument(
        "--drain",
        type=float,
        metavar="S",
        help="seconds what is in flight at the end may take to finish; what has not by then is "
        f"reported unfinished (default {DEFAULT_DRAIN:g})",
    )
    load.add_argument(
        "--keys", "-k", type=int, metavar="K", help=f"counters to spread over ({DEFAULT_KEYS})"
    )
    load.add_argument(
        "--key-prefix",
        metavar="P",
        help="counter names are P0, P1, ... (default bench:<random>: or bench:<run id>:)",
    )
    load.add_argument("--distribution", choices=DISTRIBUTIONS, help="key popularity (zipf)")
    load.add_argument("--zipf-exponent", type=float, metavar="S", help="zipf skew (1.0)")
    load.add_argument("--hot-share", type=_share, metavar="F", help="hot: share on key 0 (0.5)")
    load.add_argument("--amount", type=_amount, metavar="N|LO:HI", help="amount per operation (1)")
    load.add_argument(
        "--decrements",
        type=_share,
        metavar="F",
        help="share of operations that are floored decrements (0.05; 0 with --shards)",
    )
    load.add_argument("--floor", type=int, help="floor of the decrements (0)")
    load.add_argument(
        "--concurrency",
        "-c",
        type=int,
        metavar="C",
        help=f"closed loop: operations in flight across all processes ({DEFAULT_CONCURRENCY})",
    )
    load.add_argument(
        "--rate",
        "-r",
        type=float,
        metavar="R",
        help="open loop: start R operations/s on a fixed schedule (latency from schedule)",
    )
    load.add_argument(
        "--max-outstanding",
        type=int,
        metavar="M",
        help=f"open loop: unfinished operations per process at most ({DEFAULT_MAX_OUTSTANDING:,})",
    )
    load.add_argument("--seed", type=int, help="seed of keys, amounts and decrements (0)")
    load.add_argument(
        "--window",
        type=int,
        metavar="S",
        help="windowed counters: increments count per S-second window, verified per window",
    )
    load.add_argument(
        "--limit",
        type=int,
        metavar="L",
        help="with --window: drive RateLimiter hits (L per window and key); verified per "
        "window: admitted <= L, and == L wherever a hit was denied",
    )

    scale = parser.add_argument_group("processes and event loop")
    scale.add_argument(
        "--processes", "-p", type=int, metavar="P", help="worker processes, one loop each (1)"
    )
    scale.add_argument("--loop", choices=("uvloop", "asyncio"), help="event loop (uvloop)")
    scale.add_argument(
        "--run-id",
        metavar="ID",
        help="record what workers acknowledge in the table; check later with `verify --run-id`",
    )
    scale.add_argument(
        "--record-every",
        type=float,
        metavar="S",
        help=f"with --run-id: rewrite each worker's record every S s ({DEFAULT_RECORD_EVERY:g})",
    )

    pool = parser.add_argument_group("pool options")
    for flag, name, keywords in POOL_FLAGS:
        pool.add_argument(flag, dest=name, **keywords)
    for flag, _, kind, text in RETRY_FLAGS:
        pool.add_argument(flag, type=kind, help=text)
    pool.add_argument("--jitter", choices=("full", "decorrelated"), help="backoff jitter (full)")
    pool.add_argument(
        "--pool-option",
        type=_pool_option,
        action="append",
        metavar="NAME=VALUE",
        help="any other CounterPool option (VALUE is JSON); repeatable",
    )

    output = parser.add_argument_group("output")
    output.add_argument("--json", metavar="PATH", help="write every result and the config here")
    output.add_argument("--plot", metavar="PATH", help="PNG of throughput and latency over time")
    output.add_argument("--quiet", "-q", action="store_true", help="no live progress")
    output.add_argument(
        "--config",
        metavar="PATH",
        help="run again the configuration of a results JSON (output flags still apply)",
    )
    _mirror_server_options(parser, server)
    add_cost_arguments(parser)


def _mirror_server_options(parser: argparse.ArgumentParser, group: Any) -> None:
    """Offer every option of the installed ``async-counters local`` under the same flag, or
    ``--server-<flag>`` where the bench has a flag of that name (``--seed``, ``--region``)."""
    from .embedded import local_options

    taken = set(parser._option_string_actions)
    for action in local_options():
        flags = [
            flag if flag not in taken else "--server-" + flag.lstrip("-")
            for flag in action.option_strings
            if flag.startswith("--")
        ]
        common: dict[str, Any] = {"dest": _SERVER_DEST + action.dest, "default": None}
        if action.help:
            common["help"] = action.help
        if action.nargs == 0:
            group.add_argument(*flags, action="store_const", const=True, **common)
        else:
            metavar = action.metavar or action.dest.upper()
            group.add_argument(*flags, type=action.type, metavar=metavar, **common)


def _given(args: argparse.Namespace, name: str) -> bool:
    value = getattr(args, name, None)
    return value is not None and value is not False


def _pick(value: Any, default: Any) -> Any:
    return default if value is None else value


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """The `RunConfig` the flags describe; `UsageError` (or `ValueError`) when they do not."""
    if args.config:
        given = [name for name in _WORKLOAD_DESTS if _given(args, name)]
        given += [dest for dest in _server_values(args)]
        if given:
            flags = ", ".join("--" + name.replace("_", "-") for name in given)
            raise UsageError(f"--config replays a run as recorded; drop {flags}")
        try:
            data = json.loads(Path(args.config).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise UsageError(f"--config {args.config}: {exc}") from None
        if not isinstance(data, Mapping):
            raise UsageError(f"--config {args.config}: not a results JSON")
        return RunConfig.from_dict(data)

    target = _target(args)
    server_values = _server_values(args)
    if server_values and target.kind != "embedded":
        names = ", ".join(server_values)
        raise UsageError(
            f"embedded server option(s) {names} given with --endpoint-url/--aws: they only "
            "configure the server the bench starts itself"
        )
    backend = server_values.pop("backend", None)
    server = ServerOptions(backend=backend or ServerOptions.backend, flags=server_values)

    run_id = args.run_id
    prefix = args.key_prefix
    if prefix is None:
        prefix = f"bench:{run_id}:" if run_id else f"bench:{secrets.token_hex(4)}:"
    elif run_id:
        raise UsageError(
            "--key-prefix cannot be combined with --run-id (its counters are bench:<run id>:N)"
        )
    elif args.window is not None:
        raise UsageError(
            "--key-prefix cannot be combined with --window: a windowed run verifies each window "
            "from 0, so its counters are always new (bench:<random>:N)"
        )
    duration = args.duration
    if args.increments is None and duration is None:
        duration = DEFAULT_DURATION
    low, high = _pick(args.amount, (1, 1))
    processes = _pick(args.processes, 1)
    concurrency = _pick(args.concurrency, DEFAULT_CONCURRENCY)
    if args.rate is not None and args.concurrency is not None:
        raise UsageError("--concurrency is for the closed loop; --rate makes it an open loop")
    workload = Workload(
        increments=args.increments,
        duration=duration,
        time_limit=_pick(args.time_limit, DEFAULT_TIME_LIMIT),
        keys=_pick(args.keys, DEFAULT_KEYS),
        key_prefix=prefix,
        distribution=_pick(args.distribution, "zipf"),
        zipf_exponent=_pick(args.zipf_exponent, 1.0),
        hot_share=_pick(args.hot_share, 0.5),
        amount_min=low,
        amount_max=high,
        decrement_share=_decrement_share(args),
        floor=_pick(args.floor, 0),
        concurrency=concurrency,
        rate=args.rate,
        max_outstanding=_pick(args.max_outstanding, DEFAULT_MAX_OUTSTANDING),
        seed=_pick(args.seed, 0),
        drain=_pick(args.drain, DEFAULT_DRAIN),
        window=args.window,
        limit=args.limit,
    )
    if args.rate is None and workload.concurrency < processes:
        raise UsageError(
            f"--concurrency {workload.concurrency} is less than --processes {processes}: each "
            "process needs at least one operation in flight"
        )
    return RunConfig(
        target=target,
        server=server,
        workload=workload,
        processes=processes,
        loop=_pick(args.loop, _default_loop()),
        pool_options=_pool_options(args, workload, processes),
        run_id=run_id,
        record_every=_pick(args.record_every, DEFAULT_RECORD_EVERY),
    )


def _decrement_share(args: argparse.Namespace) -> float:
    """Floored decrements by default, except on sharded counters, where floors do not hold,
    and in windowed runs (--window, --limit), which only add."""
    sharded = args.shards is not None and args.shards > 1
    if args.decrements is None:
        return 0.0 if sharded or args.window is not None or args.limit is not None else 0.05
    if sharded and args.decrements > 0:
        raise UsageError(
            "--decrements are floored, and a floor holds on one item: not with --shards > 1"
        )
    share: float = args.decrements
    return share


def _server_values(args: argparse.Namespace) -> dict[str, Any]:
    """Embedded-server options given on the command line, by the server's own names."""
    return {
        name[len(_SERVER_DEST) :]: value
        for name, value in vars(args).items()
        if name.startswith(_SERVER_DEST) and value is not None
    }


def _target(args: argparse.Namespace) -> Target:
    table = _pick(args.table, DEFAULT_TABLE)
    if args.endpoint_url is not None:
        return Target(
            kind="endpoint", endpoint_url=args.endpoint_url, region=args.region, table=table
        )
    if args.aws or args.region is not None:
        return Target(kind="aws", region=args.region, table=table)
    return Target(kind="embedded", table=table)


def _pool_options(args: argparse.Namespace, workload: Workload, processes: int) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for _, name, _ in POOL_FLAGS:
        if getattr(args, name) is not None:
            options[name] = getattr(args, name)
    retry = {
        field: getattr(args, "retry_" + field)
        for _, field, _, _ in RETRY_FLAGS
        if getattr(args, "retry_" + field) is not None
    }
    if args.jitter is not None:
        retry["jitter"] = args.jitter
    if retry:
        options["retry"] = retry
    for name, value in args.pool_option or ():
        if name in options:
            raise UsageError(f"pool option {name} is given twice")
        options[name] = value
    if "max_in_flight" not in options and not workload.open_loop:
        # The in-flight bound each process's pool needs to keep its callers all on the wire.
        options["max_in_flight"] = -(-workload.concurrency // max(1, processes))
    return options


def _default_loop() -> str:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return "asyncio"
    return "uvloop"


def _usage(message: str) -> int:
    sys.stderr.write(f"async-counters bench: error: {message}\n")
    return EXIT_USAGE


def _check_pool_options(config: RunConfig) -> None:
    """Build (and drop) a pool with the run's options: a bad value fails here, in one line,
    instead of in every worker. Building one sends nothing."""
    from async_counters import CounterPool

    from .config import pool_kwargs

    CounterPool(
        config.target.table,
        endpoint_url="http://127.0.0.1:1",
        **pool_kwargs(config.pool_options),
    )


def run(args: argparse.Namespace) -> int:
    """Run the bench the flags describe; return the exit status."""
    try:
        config = config_from_args(args)
        prices = prices_from_args(args)
        _check_pool_options(config)
        if config.target.kind == "embedded":
            from .embedded import local_arguments

            local_arguments(config.server)
    except (ValueError, TypeError) as exc:
        return _usage(str(exc))
    for path in (args.json, args.plot):
        if path is not None and not Path(path).resolve().parent.is_dir():
            return _usage(f"cannot write {path}: no such directory")
    if args.plot is not None:
        from async_counters.extras import install_hint, missing

        if missing(["matplotlib"]):
            return _usage(f"--plot {install_hint(['matplotlib'])}")

    from .live import choose_view
    from .report import print_summary, write_json
    from .runner import run_bench

    view = choose_view(sys.stdout, quiet=args.quiet)
    outcome = run_bench(config, view, argv=["async-counters", *sys.argv[1:]])
    outcome.prices = prices
    if outcome.unreachable is not None:
        sys.stderr.write(f"async-counters bench: {outcome.unreachable}\n")
        if args.json is not None:
            write_json(args.json, outcome)
        return outcome.exit_status
    print_summary(outcome, sys.stdout)
    if args.json is not None:
        write_json(args.json, outcome)
        print(f"results: {args.json}")
    if args.plot is not None:
        from .plot import plot_timeline

        plot_timeline(outcome.timeline, args.plot, title=_plot_title(outcome))
        print(f"plot: {args.plot}")
    target = outcome.rate_target
    if target is not None and not target["held"]:
        from .live import rate_text

        sys.stderr.write(
            f"async-counters bench: the open loop missed its rate "
            f"({target['started_per_s']:,.0f}/s of {rate_text(target['rate'])} started, "
            f"{target['dropped']:,} dropped): lower --rate, or spread it over more --processes "
            "or hosts\n"
        )
    if config.run_id is not None:
        print(
            f"run {config.run_id}: recorded in table {config.target.table}; check every worker "
            f"of the run with: async-counters verify --run-id {config.run_id} "
            f"--table {config.target.table} ..."
        )
    return outcome.exit_status


def _plot_title(outcome: Any) -> str:
    from .live import describe_workload
    from .runner import describe_target

    return (
        f"async-counters bench: {describe_workload(outcome.config)}\n"
        f"{describe_target(outcome.target)}"
    )
