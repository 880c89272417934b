"""The embedded DynamoDB's settings: a frozen dataclass per concern, and `LocalConfig` holding them.

`LocalDynamo(...)` keyword arguments and `async-counters local` flags both build a `LocalConfig`,
so every option is reachable from Python, from the command line and from the load test.

    config = LocalConfig(
        backend="memory",
        capacity=Capacity(partition_write_units=100),
        latency=Latency(mean=0.005, jitter=0.002),
        faults=Faults(error_after_apply=0.01, seed=7),
    )
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Final

from async_counters.checks import number, whole
from async_counters.transport import is_loopback

DEFAULT_HOST: Final = "127.0.0.1"
DEFAULT_REGION: Final = "us-east-1"
#: moto's DynamoDB model (fidelity first), applied one request at a time.
MOTO: Final = "moto"
#: The project's own in-memory model of the operations the pool uses (speed first).
MEMORY: Final = "memory"
#: What `MEMORY` was called before 0.2 (when "fast" also named the transport); still accepted.
MEMORY_ALIAS: Final = "fast"
#: dynalite (npm), started by the server on 127.0.0.1 and served through the same front.
DYNALITE: Final = "dynalite"
BUILTIN_BACKENDS: Final = (MOTO, MEMORY, DYNALITE)
#: Names the default backend of every `LocalDynamo` that is not given one (and of
#: ``async-counters local``), so a whole test suite can be rerun against another backend.
BACKEND_ENV: Final = "ASYNC_COUNTERS_LOCAL_BACKEND"

#: One partition serves at most 1,000 WCU/s and 3,000 RCU/s.
PARTITION_WRITE_UNITS: Final = 1000.0
PARTITION_READ_UNITS: Final = 3000.0
#: A new on-demand table starts warm at 4,000 WRU/s and 12,000 RRU/s.
TABLE_WRITE_UNITS: Final = 4000.0
TABLE_READ_UNITS: Final = 12000.0
#: A bucket holds this many seconds of its rate: what an idle key may spend at once.
BURST_SECONDS: Final = 1.0
#: How long a "delayed past the client's timeout" response is held back.
FAULT_DELAY_SECONDS: Final = 5.0
#: Faults hit the pool's item writes unless told otherwise: control-plane calls and reads stay
#: reliable.
FAULT_OPERATIONS: Final = frozenset({"UpdateItem", "TransactWriteItems"})
#: How long the memory backend keeps an expired item before deleting it: DynamoDB takes
#: "typically within a few days". Long enough that every test and benchmark run meets expired
#: items still readable, as on DynamoDB; short enough that a server left running sheds them.
TTL_DELAY_SECONDS: Final = 300.0


def default_backend() -> str:
    """``$ASYNC_COUNTERS_LOCAL_BACKEND`` if set, else moto."""
    return os.environ.get(BACKEND_ENV) or MOTO


def _check_rate(name: str, value: float) -> None:
    number(value, name)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")


def _check_probability(name: str, value: float) -> None:
    number(value, name)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be within [0, 1], got {value!r}")


@dataclass(frozen=True, kw_only=True)
class Capacity:
    """Per-partition and per-table token buckets, in capacity units per second.

    A write costs 1 unit per started KB of item; a strongly consistent read 1 unit per started
    4 KB, an eventually consistent one half that. A request that finds its key's bucket or the
    table's bucket short is answered with DynamoDB's throttling error and not applied.
    """

    partition_write_units: float = PARTITION_WRITE_UNITS
    partition_read_units: float = PARTITION_READ_UNITS
    table_write_units: float = TABLE_WRITE_UNITS
    table_read_units: float = TABLE_READ_UNITS
    burst_seconds: float = BURST_SECONDS

    def __post_init__(self) -> None:
        for name in (
            "partition_write_units",
            "partition_read_units",
            "table_write_units",
            "table_read_units",
            "burst_seconds",
        ):
            _check_rate(name, getattr(self, name))


@dataclass(frozen=True, kw_only=True)
class Latency:
    """Added to every DynamoDB request: uniform in ``[mean - jitter, mean + jitter]`` seconds."""

    mean: float = 0.0
    jitter: float = 0.0
    seed: int | None = None

    def __post_init__(self) -> None:
        for name in ("mean", "jitter"):
            value = getattr(self, name)
            number(value, name)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if self.jitter > self.mean:
            raise ValueError(f"jitter ({self.jitter}) cannot exceed mean ({self.mean})")


@dataclass(frozen=True, kw_only=True)
class Faults:
    """Injected failures, each a probability per eligible request (they sum to at most 1).

    - ``throttle``: DynamoDB's throttling answer (HTTP 400, with ``ThrottlingReasons``) whatever
      the capacity; the request was not applied. A throttling storm, for testing retries.
    - ``error_before_apply``: HTTP 500 ``InternalServerError``; the request was not applied.
    - ``error_after_apply``: applied, then HTTP 500 all the same.
    - ``drop_after_apply``: applied, then the connection is closed without a response.
    - ``delay_after_apply``: applied, then the response is held for ``delay`` seconds, past a
      client's read timeout.

    The same ``seed`` gives the same sequence of faults over the sequence of eligible requests.
    Only the ``operations`` named are eligible (item writes by default).
    """

    throttle: float = 0.0
    error_before_apply: float = 0.0
    error_after_apply: float = 0.0
    drop_after_apply: float = 0.0
    delay_after_apply: float = 0.0
    delay: float = FAULT_DELAY_SECONDS
    seed: int | None = None
    operations: frozenset[str] = field(default=FAULT_OPERATIONS)

    def __post_init__(self) -> None:
        rates = (
            ("throttle", self.throttle),
            ("error_before_apply", self.error_before_apply),
            ("error_after_apply", self.error_after_apply),
            ("drop_after_apply", self.drop_after_apply),
            ("delay_after_apply", self.delay_after_apply),
        )
        for name, value in rates:
            _check_probability(name, value)
        if sum(value for _, value in rates) > 1.0 + 1e-9:
            raise ValueError("fault rates add up to more than 1")
        _check_rate("delay", self.delay)
        if not isinstance(self.operations, frozenset):
            object.__setattr__(self, "operations", frozenset(self.operations))

    @property
    def active(self) -> bool:
        """Whether any fault can happen at all."""
        return (
            self.throttle
            + self.error_before_apply
            + self.error_after_apply
            + self.drop_after_apply
            + self.delay_after_apply
        ) > 0.0


@dataclass(frozen=True, kw_only=True)
class LocalConfig:
    """Everything a `LocalDynamo` is started with.

    ``backend`` is ``"moto"`` (default, fidelity), ``"memory"`` (the project's own model of the
    operations the pool uses; ``"fast"`` is its old name), ``"dynalite"`` (started by the server;
    needs node and the npm package) or the ``http://`` URL of another DynamoDB endpoint to stand
    in front of.
    ``capacity=None`` turns throttling off. ``ttl_delay`` is how long the memory backend keeps
    an item past its TTL before deleting it (moto and dynalite never delete).
    """

    host: str = DEFAULT_HOST
    port: int = 0
    region: str = DEFAULT_REGION
    backend: str = field(default_factory=default_backend)
    capacity: Capacity | None = None
    latency: Latency = field(default_factory=Latency)
    faults: Faults = field(default_factory=Faults)
    ttl_delay: float = TTL_DELAY_SECONDS

    def __post_init__(self) -> None:
        number(self.ttl_delay, "ttl_delay")
        if not math.isfinite(self.ttl_delay) or self.ttl_delay < 0:
            raise ValueError(f"ttl_delay must be a finite number >= 0, got {self.ttl_delay!r}")
        if not isinstance(self.host, str) or not is_loopback(self.host):
            raise ValueError(
                f"host must be a loopback address (127.0.0.1, ::1 or localhost), got {self.host!r}"
            )
        whole(self.port, "port")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be within [0, 65535], got {self.port}")
        if not isinstance(self.region, str) or not self.region:
            raise ValueError("region must be a non-empty str")
        if self.backend == MEMORY_ALIAS:
            object.__setattr__(self, "backend", MEMORY)
        if self.backend not in BUILTIN_BACKENDS and not self.backend.startswith(
            ("http://", "https://")
        ):
            raise ValueError(
                "backend must be 'moto', 'memory', 'dynalite' or an http(s):// URL, "
                f"got {self.backend!r}"
            )
