"""What a table says of its own write capacity, read when its throttles name that capacity.

A throttle naming a provisioned table's capacity (``TableWriteProvisionedThroughputExceeded``),
or an on-demand table's maximum (``TableWriteMaxOnDemandThroughputExceeded``), says that every
key's writes meet one bucket whose rate the table's description gives: ``WriteCapacityUnits``,
or ``OnDemandThroughput.MaxWriteRequestUnits``. Without it, the table's pace starts from a
guess and descends through the silence after the bucket ran dry, a few throttles a halving
(about 40 throttles to find 10/s after a crowd spent a second's burst). With it, the pace starts
at the rate.

The description is read at most once in `REFRESH` seconds, and it is a hint, not a limit: it
starts a pace that only guessed so far, and the pace goes on adapting from there (the table may
be shared with other writers, or its capacity changed since: auto scaling). A pace measured
is not told; once told, the table's pace is told nothing more, and the description not read,
until the pace is forgotten (released, then 10 s unthrottled). An index's
throttles (its capacity is not the table's) and the account's do not ask for it, and a
description that cannot be read (no ``dynamodb:DescribeTable`` permission) only leaves the
pace to find the rate itself.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

from .clock import Clock
from .tasks import Tasks

__all__ = ["REFRESH", "TableCapacity", "names_table_capacity", "write_capacity"]

logger = logging.getLogger("async_counters")

#: A table's description is read at most once in this many seconds.
REFRESH: Final = 10.0

#: The reasons that name a table's own write capacity (an index's start with ``Index``).
_REASONS: Final = frozenset(
    {"TableWriteProvisionedThroughputExceeded", "TableWriteMaxOnDemandThroughputExceeded"}
)


def names_table_capacity(reasons: tuple[str, ...]) -> bool:
    """Whether a throttle's ``ThrottlingReasons`` name the table's own write capacity.

    >>> names_table_capacity(("TableWriteProvisionedThroughputExceeded",))
    True
    >>> names_table_capacity(("IndexWriteProvisionedThroughputExceeded",))
    False
    """
    return any(reason in _REASONS for reason in reasons)


def write_capacity(description: Mapping[str, Any]) -> float | None:
    """The write units/s a ``DescribeTable`` answer gives its table: provisioned, or an
    on-demand table's maximum; None when it gives none (on demand without a maximum).

    >>> write_capacity({"Table": {"BillingModeSummary": {"BillingMode": "PROVISIONED"},
    ...                           "ProvisionedThroughput": {"WriteCapacityUnits": 25}}})
    25.0
    >>> write_capacity({"Table": {"BillingModeSummary": {"BillingMode": "PAY_PER_REQUEST"},
    ...                           "OnDemandThroughput": {"MaxWriteRequestUnits": -1}}})
    """
    table = description.get("Table")
    if not isinstance(table, Mapping):
        return None
    summary = table.get("BillingModeSummary")
    mode = summary.get("BillingMode") if isinstance(summary, Mapping) else None
    if mode == "PAY_PER_REQUEST":
        field, name = table.get("OnDemandThroughput"), "MaxWriteRequestUnits"
    else:  # a table created without a billing mode is provisioned
        field, name = table.get("ProvisionedThroughput"), "WriteCapacityUnits"
    units = field.get(name) if isinstance(field, Mapping) else None
    if isinstance(units, bool) or not isinstance(units, int | float) or not units > 0:
        return None
    return float(units)


class TableCapacity:
    """Reads ``table``'s description when called (at a throttle naming its capacity), at most
    once in `REFRESH` seconds and one at a time, in a task of its own, and passes the write
    capacity it gives to ``tell``. A description that cannot be read is logged once, at debug
    level, and asked for again no sooner than the next `REFRESH`. The pool's ``flush`` and
    ``aclose`` wait for a read in flight, as for its other tasks."""

    __slots__ = ("_clock", "_next", "_pending", "_send", "_table", "_tasks", "_tell", "_warned")

    def __init__(
        self,
        table: str,
        *,
        send: Callable[[str, Mapping[str, Any]], Awaitable[dict[str, Any]]],
        tell: Callable[[float], None],
        tasks: Tasks,
        clock: Clock,
    ) -> None:
        self._table = table
        self._send = send
        self._tell = tell
        self._tasks = tasks
        self._clock = clock
        self._next = -float("inf")
        self._pending = False
        self._warned = False

    def __call__(self) -> None:
        now = self._clock.now()
        if self._pending or now < self._next:
            return
        self._pending = True
        self._next = now + REFRESH
        self._tasks.start(self._read())

    async def _read(self) -> None:
        try:
            described = await self._send("DescribeTable", {"TableName": self._table})
        except Exception as exc:  # a hint only: the pace finds the rate without it
            if not self._warned:
                self._warned = True
                logger.debug("the table's capacity could not be read: %s", type(exc).__name__)
            return
        finally:
            self._pending = False
        units = write_capacity(described)
        if units is not None:
            self._tell(units)
