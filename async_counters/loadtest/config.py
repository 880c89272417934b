"""What a bench run is: one frozen `RunConfig`, built from flags, written into the results JSON.

Everything that decides what the run does is here (target, server options, workload, processes,
event loop, pool options), so that a results file names a reproducible run:
``async-counters bench --config results.json`` runs it again.

Pool keyword options pass through one place, `RunConfig.pool_options`: a flag that sets a
`CounterPool` option only adds an entry there (see ``cli.POOL_FLAGS``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Final, Literal, TypeVar
from urllib.parse import urlsplit, urlunsplit

from async_counters.checks import number, whole
from async_counters.windows import MAX_WINDOW

__all__ = [
    "DEFAULT_DRAIN",
    "DEFAULT_DURATION",
    "DISTRIBUTIONS",
    "RunConfig",
    "ServerOptions",
    "Target",
    "Workload",
    "pool_kwargs",
    "safe_url",
]

Distribution = Literal["uniform", "zipf", "hot"]
DISTRIBUTIONS: Final = ("uniform", "zipf", "hot")
TargetKind = Literal["embedded", "endpoint", "aws"]
LoopName = Literal["uvloop", "asyncio"]

#: A plain `async-counters bench` runs this long (plus ~3 s to start and verify), however fast
#: the client and server are.
DEFAULT_DURATION: Final = 10.0
DEFAULT_KEYS: Final = 100
DEFAULT_CONCURRENCY: Final = 64
DEFAULT_TABLE: Final = "async-counters-bench"
#: No worker runs longer than this, whatever it is doing (the drain included).
DEFAULT_TIME_LIMIT: Final = 600.0
#: How long operations still in flight when the run ends may take to finish. What is still
#: unfinished then is reported as such (an ambiguous bound), never waited for without end.
DEFAULT_DRAIN: Final = 10.0
#: Open loop: at most this many operations started and not yet finished, per process.
DEFAULT_MAX_OUTSTANDING: Final = 10_000
#: With --run-id, each worker rewrites its record in the table this often (seconds).
DEFAULT_RECORD_EVERY: Final = 5.0
RUN_ID_PATTERN: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

_T = TypeVar("_T")


def _positive_int(name: str, value: object) -> None:
    value = whole(value, name)
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")


def _positive_number(name: str, value: object) -> None:
    value = number(value, name)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive finite number, got {value}")


def _share(name: str, value: object) -> None:
    value = number(value, name)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be within [0, 1], got {value}")


def safe_url(url: str | None) -> str | None:
    """``url`` without any user:password part, query or fragment: safe to print and record."""
    if url is None:
        return None
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host if parts.port is None else f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


@dataclass(frozen=True, kw_only=True)
class Target:
    """Where the counters live: the embedded server, any endpoint, or real DynamoDB."""

    kind: TargetKind = "embedded"
    endpoint_url: str | None = None
    region: str | None = None
    table: str = DEFAULT_TABLE

    def __post_init__(self) -> None:
        if self.kind not in ("embedded", "endpoint", "aws"):
            raise ValueError(f"unknown target kind {self.kind!r}")
        if self.kind == "endpoint":
            if not self.endpoint_url:
                raise ValueError("an endpoint target needs endpoint_url")
            parts = urlsplit(self.endpoint_url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(
                    "--endpoint-url must be an http(s)://host[:port] URL, "
                    f"got {self.endpoint_url!r}"
                )
            if parts.username or parts.password:
                raise ValueError("--endpoint-url must not carry credentials")
        elif self.endpoint_url is not None:
            raise ValueError("endpoint_url is only for an endpoint target")
        if not self.table or not re.fullmatch(r"[A-Za-z0-9_.-]{3,255}", self.table):
            raise ValueError(
                f"--table must be 3-255 characters of A-Z a-z 0-9 _ . -, got {self.table!r}"
            )


@dataclass(frozen=True, kw_only=True)
class ServerOptions:
    """How the embedded server is started (only for the embedded target).

    ``backend`` and ``flags``: options of ``async-counters local`` by their argparse names
    (``{"wcu_per_key": 100.0, "latency_ms": 5.0, "seed": 7}``), passed on to it as they are and
    checked by the server's own parser and `LocalConfig` before anything starts.
    """

    backend: str = "memory"
    flags: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.backend, str) or not self.backend:
            raise ValueError("--backend must name a backend (memory, moto, dynalite or a URL)")
        for name in ("host", "port", "region", "backend"):
            if name in self.flags:
                raise ValueError(f"the bench sets the embedded server's {name} itself")

    def given(self) -> dict[str, Any]:
        """The backend and every option given."""
        return {"backend": self.backend, **self.flags}


@dataclass(frozen=True, kw_only=True)
class Workload:
    """What the workers do.

    ``increments`` operations in total (increments and floored decrements) or for ``duration``
    seconds, whichever ends first; ``time_limit`` bounds every run. Closed loop: ``concurrency``
    callers, each starting its next operation when the last finished. Open loop (``rate`` set):
    operations start on a fixed schedule of ``rate`` per second whatever the server does, and
    latency counts from each one's scheduled start. ``drain``: how long what is in flight at the
    end may take to finish; no worker runs past `hard_limit`.
    """

    increments: int | None = None
    duration: float | None = DEFAULT_DURATION
    time_limit: float = DEFAULT_TIME_LIMIT
    keys: int = DEFAULT_KEYS
    key_prefix: str = ""
    distribution: Distribution = "zipf"
    zipf_exponent: float = 1.0
    hot_share: float = 0.5
    amount_min: int = 1
    amount_max: int = 1
    decrement_share: float = 0.05
    floor: int = 0
    concurrency: int = DEFAULT_CONCURRENCY
    rate: float | None = None
    max_outstanding: int = DEFAULT_MAX_OUTSTANDING
    seed: int = 0
    drain: float = DEFAULT_DRAIN
    window: int | None = None
    limit: int | None = None

    def __post_init__(self) -> None:
        if self.increments is None and self.duration is None:
            raise ValueError("give --increments or --duration (or both)")
        if self.increments is not None:
            _positive_int("--increments", self.increments)
        if self.duration is not None:
            _positive_number("--duration", self.duration)
        _positive_number("--time-limit", self.time_limit)
        _positive_int("--keys", self.keys)
        if self.distribution not in DISTRIBUTIONS:
            raise ValueError(
                f"--distribution must be one of {', '.join(DISTRIBUTIONS)}, "
                f"got {self.distribution!r}"
            )
        _positive_number("--zipf-exponent", self.zipf_exponent)
        _share("--hot-share", self.hot_share)
        _positive_int("--amount", self.amount_min)
        _positive_int("--amount", self.amount_max)
        if self.amount_max < self.amount_min:
            raise ValueError("--amount LO:HI needs LO <= HI")
        if self.amount_max >= 10**38:
            raise ValueError("--amount exceeds the 38 digits a DynamoDB number holds")
        _share("--decrements", self.decrement_share)
        whole(self.floor, "--floor")
        _positive_int("--concurrency", self.concurrency)
        if self.rate is not None:
            _positive_number("--rate", self.rate)
        _positive_int("--max-outstanding", self.max_outstanding)
        whole(self.seed, "--seed")
        _positive_number("--drain", self.drain)
        if self.window is not None:
            _positive_int("--window", self.window)
            if self.window > MAX_WINDOW:
                raise ValueError(f"--window must be at most {MAX_WINDOW} seconds")
            if self.decrement_share:
                raise ValueError(
                    "--decrements with --window: windowed runs only add (their verification "
                    "is per window, of increments)"
                )
        if self.limit is not None:
            if self.window is None:
                raise ValueError("--limit needs --window S: the limit holds per S-second window")
            _positive_int("--limit", self.limit)
            if self.amount_max > self.limit:
                raise ValueError(
                    f"--amount {self.amount_max} exceeds --limit {self.limit}: such a hit could "
                    "never be admitted"
                )

    @property
    def open_loop(self) -> bool:
        return self.rate is not None

    @property
    def stop_after(self) -> float:
        """Seconds after the start when no new operation starts."""
        return self.time_limit if self.duration is None else min(self.duration, self.time_limit)

    @property
    def hard_limit(self) -> float:
        """Seconds after the start by which every worker has stopped, in-flight work included:
        the end of the run plus the drain, and never past the time limit."""
        return min(self.stop_after + self.drain, self.time_limit)

    @property
    def windowed(self) -> bool:
        """--window (and --limit): counts per window, verified per window."""
        return self.window is not None

    def key_names(self) -> list[str]:
        """The counters the run touches, ``{key_prefix}{index}``."""
        width = len(str(self.keys - 1))
        return [f"{self.key_prefix}{index:0{width}d}" for index in range(self.keys)]

    def operations(self, rate: float | None = None) -> int | None:
        """How many operations at most: the count given, else what the open-loop schedule holds."""
        planned = self.increments
        if rate is not None and self.duration is not None:
            scheduled = max(1, math.floor(rate * self.duration))
            planned = scheduled if planned is None else min(planned, scheduled)
        return planned


@dataclass(frozen=True, kw_only=True)
class RunConfig:
    """A whole bench run; `to_dict` / `from_dict` round-trip it through JSON."""

    target: Target = field(default_factory=Target)
    server: ServerOptions = field(default_factory=ServerOptions)
    workload: Workload = field(default_factory=Workload)
    processes: int = 1
    loop: LoopName = "uvloop"
    pool_options: Mapping[str, Any] = field(default_factory=dict)
    run_id: str | None = None
    record_every: float = DEFAULT_RECORD_EVERY

    def __post_init__(self) -> None:
        _positive_int("--processes", self.processes)
        if self.loop not in ("uvloop", "asyncio"):
            raise ValueError(f"--loop must be uvloop or asyncio, got {self.loop!r}")
        if self.run_id is not None and not RUN_ID_PATTERN.match(self.run_id):
            raise ValueError(
                "--run-id must be 1-64 characters of A-Z a-z 0-9 _ . - (starting with a letter "
                f"or digit), got {self.run_id!r}"
            )
        _positive_number("--record-every", self.record_every)
        check_pool_options(self.pool_options)
        if self.workload.window is not None:
            mode = "--limit" if self.workload.limit is not None else "--window"
            if self.pool_options.get("exactly_once"):
                raise ValueError(
                    f"{mode} cannot run with --exactly-once: each window is a new item, and a "
                    "retry could land in the next window"
                )
            if self.run_id is not None:
                raise ValueError(
                    f"{mode} cannot run with --run-id yet: the run's records do not hold "
                    "windows (verify at the end of one invocation instead)"
                )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["target"]["endpoint_url"] = safe_url(self.target.endpoint_url)
        data["pool_options"] = dict(self.pool_options)
        data["server"]["flags"] = dict(self.server.flags)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunConfig:
        """The config a results file (or its ``config`` section) describes."""
        data = data.get("config", data)
        return cls(
            target=_build(Target, data.get("target", {})),
            server=_build(ServerOptions, data.get("server", {})),
            workload=_build(Workload, data.get("workload", {})),
            processes=data.get("processes", 1),
            loop=data.get("loop", "uvloop"),
            pool_options=dict(data.get("pool_options", {})),
            run_id=data.get("run_id"),
            record_every=data.get("record_every", DEFAULT_RECORD_EVERY),
        )


def _build(cls: type[_T], data: Mapping[str, Any]) -> _T:
    names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    unknown = set(data) - names
    if unknown:
        raise ValueError(f"unknown {cls.__name__} settings: {', '.join(sorted(unknown))}")
    return cls(**data)


#: CounterPool arguments the bench sets itself, per worker: never pool options.
_NOT_POOL_OPTIONS: Final = frozenset(
    {"self", "table", "endpoint_url", "region_name", "session", "client", "hooks"}
)


def pool_option_names() -> frozenset[str]:
    """The keyword options of the installed `CounterPool` (new options need no change here)."""
    import inspect

    from async_counters import CounterPool

    names = inspect.signature(CounterPool.__init__).parameters
    return frozenset(names) - _NOT_POOL_OPTIONS


def check_pool_options(options: Mapping[str, Any]) -> None:
    unknown = set(options) - pool_option_names()
    if unknown:
        raise ValueError(
            f"unknown pool option(s): {', '.join(sorted(unknown))} (CounterPool takes "
            f"{', '.join(sorted(pool_option_names()))})"
        )
    retry = options.get("retry")
    if retry is not None and not isinstance(retry, Mapping):
        raise ValueError("pool option retry must be a mapping of RetryPolicy fields")


def pool_kwargs(options: Mapping[str, Any]) -> dict[str, Any]:
    """`CounterPool` keyword arguments from ``pool_options`` (JSON values)."""
    from async_counters import RetryPolicy

    kwargs = dict(options)
    if "retry" in kwargs:
        kwargs["retry"] = RetryPolicy(**kwargs["retry"])
    return kwargs
