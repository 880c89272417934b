"""The last stage before the wire: a pool slot, the key's pace, the transport, the one retry loop.

Every request the pool makes goes through `Sender.send`: writes, their exactly-once reads,
``ensure_table``, ``get``/``get_many`` (whose ``UnprocessedKeys`` are retried by the same loop), and
the load test's ledger. It retries only what `is_retryable` allows (ambiguous answers only for an
idempotent request), with the `RetryPolicy`'s backoff, and reports every request and retry to the
`Observers`. Time is the injected `Clock`'s, so the whole loop runs in virtual time in a test.

A write's ``wire`` marker says while a request of it may still apply: from when it is sent until
an answer says what became of it. An ambiguous answer leaves the mark on, through the backoff and
the retry after it. A caller cancelled while it is on must not cancel the write, and a write
cancelled then is ambiguous.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from .clock import Clock
from .described import names_table_capacity
from .errors import ConnectError, CounterError, DynamoError, TableNotFoundError, ThrottledError
from .limiter import KeyLimiter
from .observers import Observers
from .retry import Backoff, RetryPolicy, is_retryable
from .slots import Slots
from .slowstart import START, TABLE_START, LeastRoundTrip, SlowStart
from .transport import Outcome, Transport, TransportError

__all__ = ["Failed", "Sender", "Wire", "public_error"]

#: The one key of the table's pace.
TABLE = "table"

#: ``more`` of a request answered in part: the parameters for the rest, or None when done.
More = Callable[[dict[str, Any]], Mapping[str, Any] | None]


class Wire(Protocol):
    """What the sender marks while a write's request is on the wire."""

    on_wire: bool


class Failed(Exception):
    """A request's final failure: the transport's error, the attempts made, the time spent
    retrying (what the deadline counts), and the time its retries queued behind a pace or for a
    pool slot besides."""

    def __init__(
        self, error: TransportError, attempts: int, elapsed: float, queued: float = 0.0
    ) -> None:
        super().__init__(str(error))
        self.error = error
        self.attempts = attempts
        self.elapsed = elapsed
        self.queued = queued


class Sender:
    """Sends one operation under the in-flight bound and the key's pace, retrying as allowed.

    >>> sender = Sender(policy=RetryPolicy(), clock=Clock(), observers=Observers(), slots=Slots(4))
    >>> sender.transport = transport
    >>> item = await sender.send("GetItem", params, idempotent=True)
    """

    __slots__ = (
        "_clock",
        "_least",
        "_observers",
        "_outstanding",
        "_pace",
        "_policy",
        "_rtt",
        "_slots",
        "_start",
        "_table_start",
        "_ungated",
        "_whole",
        "describe",
        "in_flight",
        "transport",
    )

    def __init__(
        self,
        *,
        policy: RetryPolicy,
        clock: Clock,
        observers: Observers,
        slots: Slots,
        pace: KeyLimiter | None = None,
        transport: Transport | None = None,
    ) -> None:
        self._policy = policy
        self._clock = clock
        self._observers = observers
        self._slots = slots
        self._pace = pace
        # The table's own pace, for throttles that name a limit every key shares (a provisioned
        # table's capacity): one more key of a limiter of its own, passed by every paced write.
        self._whole: KeyLimiter | None = None
        self.transport = transport
        self.in_flight = 0
        self._outstanding: dict[str, int] = {}  # writes per key inside `send` (paced, on the wire)
        self._rtt = 0.0  # the round trip of answered requests, smoothed (0: none yet)
        # A crowd on a key the pacer knows nothing of goes out a few at a time at first, through
        # gates whose ceiling is set by the round trip unloaded (kept only where there are gates);
        # a crowd over many keys, through the table's gate (see `slowstart`).
        self._least: LeastRoundTrip | None = None
        self._start: SlowStart | None = None
        self._table_start: SlowStart | None = None
        self._ungated = 0  # writes inside `send` that met no gate of their key
        # Called at a throttle naming the table's own write capacity (`described`): the pool
        # reads the table's description and `tell_table` passes on what it says.
        self.describe: Callable[[], None] | None = None
        if pace is not None:
            whole = self._whole = KeyLimiter(
                clock=clock.now, sleep=clock.sleep, pause=True, rate_only=True
            )
            least = self._least = LeastRoundTrip()
            self._start = SlowStart(known=pace.known, paced=pace.paced, least=least, rtt=self.rtt)
            if slots.free > TABLE_START:  # a gate as wide as the pool's bound would hold nothing
                self._table_start = SlowStart(
                    known=whole.known,
                    paced=whole.paced,
                    least=least,
                    rtt=self.rtt,
                    start=TABLE_START,
                    top=slots.free,
                )

    def rtt(self) -> float:
        """The round trip of answered requests lately (seconds; 0 before the first answer),
        smoothed as TCP does (an eighth of each new sample)."""
        return self._rtt

    def table_rate(self) -> float | None:
        """The table's own pace (requests/s), while throttles naming its limits hold it; None
        otherwise."""
        whole = self._whole
        return None if whole is None else whole.rates().get(TABLE)

    def tell_table(self, write_units: float) -> None:
        """The table's write capacity (units/s), as its description gives it: its pace starts
        there, a write a unit, if it only guessed so far (`KeyLimiter.tell`).

        A unit a write, not what writes were charged: a charge includes the units of the
        table's indexes (``ReturnConsumedCapacity=TOTAL``), which have capacities of their own,
        and the first throttle comes before any write was counted. The counters' items are
        small. A larger item's writes, told too many, overrun and are cut to what the table
        accepts, as after any pace that held; told too few, they would be held under it."""
        whole = self._whole
        if whole is not None:
            whole.tell(TABLE, write_units)

    def load(self, key: str) -> tuple[float, int]:
        """How soon a write to ``key`` could leave (its pace's delay, seconds) and how many writes
        to it are already waiting or on the wire: what sharding compares to pick a shard."""
        pace = self._pace
        return (0.0 if pace is None else pace.delay(key), self._outstanding.get(key, 0))

    async def send(
        self,
        operation: str,
        params: Mapping[str, Any],
        *,
        idempotent: bool,
        key: str | None = None,
        wire: Wire | None = None,
        more: More | None = None,
    ) -> dict[str, Any]:
        """The response to ``operation``; raises `Failed` when it finally failed.

        ``idempotent``: an ambiguous answer may be retried (reads, conditional records). A
        ``wire`` marker makes it a write to ``key``, paced per key. ``more`` continues a request
        answered in part (``UnprocessedKeys``): each follow-up counts as a throttled attempt.
        """
        if wire is None or key is None:
            return await self._send(operation, params, idempotent, key, wire, more)
        outstanding = self._outstanding
        writes = outstanding[key] = outstanding.get(key, 0) + 1
        start, table = self._start, self._table_start
        passed = keyed = counted = passed_table = acknowledged = False
        try:
            if start is not None and (writes > START or start.gates):
                keyed = await start.enter(key, writes)  # a gate standing counts every write
            passed = True
            if table is not None and not keyed:  # a key's gate holds its crowd back already
                counted = True
                ungated = self._ungated = self._ungated + 1
                if ungated > TABLE_START or table.gates:
                    await table.enter(TABLE, ungated)
            passed_table = True
            response = await self._send(operation, params, idempotent, key, wire, more)
            acknowledged = True
            return response
        finally:
            left = outstanding[key] - 1
            if left:
                outstanding[key] = left
            else:
                del outstanding[key]  # memory follows the keys being written, not all keys
            if counted:
                self._ungated -= 1
            if start is not None and start.gates:
                start.leave(key, passed=passed, acknowledged=acknowledged, writes_left=left)
            if counted and table is not None and table.gates:
                table.leave(
                    TABLE, passed=passed_table, acknowledged=acknowledged, writes_left=self._ungated
                )

    async def _send(
        self,
        operation: str,
        params: Mapping[str, Any],
        idempotent: bool,
        key: str | None,
        wire: Wire | None,
        more: More | None,
    ) -> dict[str, Any]:
        transport = self.transport
        if transport is None:
            raise RuntimeError("the pool is not open: use `async with CounterPool(...)`")
        now = self._clock.now
        slots = self._slots
        observers = self._observers
        pace = self._pace if wire is not None and key is not None else None
        whole = self._whole
        first: float | None = None  # when the first attempt left: the deadline counts from there
        backoff: Backoff | None = None
        epoch = whole_epoch = 0
        while True:
            # A retry's wait for its pace's slot or a pool slot is flow control, as the first
            # attempt's is: it does not count toward the deadline.
            queued = now() if backoff is not None else 0.0
            if pace is not None:
                assert key is not None and whole is not None
                unpaced = pace.unpaced_epoch(key)
                unpaced_whole = whole.unpaced_epoch(TABLE) if whole.held else 0
                if unpaced is not None and unpaced_whole is not None and slots.try_take():
                    epoch, whole_epoch = unpaced, unpaced_whole
                else:
                    epoch, whole_epoch = await self._admit(pace, key, again=first is not None)
            elif not slots.try_take():
                await slots.take()
            sent = now()
            if first is None:
                first = sent
            elif backoff is not None:
                backoff.exclude(sent - queued)
            if wire is not None:
                wire.on_wire = True
            self.in_flight += 1
            try:
                try:
                    response = await transport.call(operation, params)
                except TransportError as exc:
                    error: TransportError | None = exc
                else:
                    error = None
                finally:
                    self.in_flight -= 1
                outcome = Outcome.ACKNOWLEDGED if error is None else error.outcome
                if wire is not None and outcome is not Outcome.AMBIGUOUS:
                    # Not on cancellation, nor after an ambiguous answer: the write may still
                    # apply.
                    wire.on_wire = False
                if pace is not None:
                    assert key is not None and whole is not None
                    if error is not None and outcome is Outcome.THROTTLED:
                        took = now() - sent
                        await self._throttled(pace, key, error, epoch, whole_epoch, took)
                    else:
                        pace.observe(key, outcome, epoch, self._rtt)
                        if whole.held:  # an answer counts for the table's pace too, if it has one
                            whole.observe(TABLE, outcome, whole_epoch, self._rtt)
            finally:
                slots.release()
            if error is None:
                done = now()
                took = done - sent
                rtt = self._rtt
                self._rtt = took if not rtt else rtt + (took - rtt) * 0.125
                if self._least is not None:
                    self._least.add(took, done)
                observers.answered(operation, key, took, response)
                if more is None:
                    return response
                rest = more(response)
                if rest is None:
                    return response
                params = rest
                error = TransportError(Outcome.THROTTLED, "UnprocessedKeys", "answered in part")
            else:
                observers.failed(operation, key, outcome, now() - sent)
            if backoff is None:
                backoff = Backoff(self._policy, start=first, clock=now)
            if not is_retryable(error.outcome, idempotent=idempotent):
                raise Failed(error, backoff.attempts, backoff.elapsed, backoff.queued)
            delay = backoff.next_delay()
            if delay is None:
                raise Failed(error, backoff.attempts, backoff.elapsed, backoff.queued)
            if pace is not None and error.outcome is Outcome.THROTTLED:
                assert key is not None and whole is not None
                partition, table = throttled_by(error)
                if (partition and pace.paced(key)) or (table and whole.paced(TABLE)):
                    # The limit that throttled is paced: its pace spaces the retry (a backoff on
                    # top would only leave the capacity idle while its callers sleep).
                    delay = 0.0
            observers.retry(operation, key, error.outcome, backoff.attempts - 1, delay)
            if delay > 0:
                await self._clock.sleep(delay)

    async def _throttled(
        self,
        pace: KeyLimiter,
        key: str,
        error: TransportError,
        epoch: int,
        whole_epoch: int,
        took: float,
    ) -> None:
        """Count a throttle for its key's pace and the table's, while it still holds its pool
        slot.

        A refusal back sooner than an ack could be (a bucket in front of the server) waits until
        that ack would be, slot held: counted at once, it makes its window read as more
        throttled, and slower, than it is; and its slot freed at once, the pool's bound would
        let a new write out for every refusal, many a round trip, where it means a round trip's
        writes at most."""
        whole = self._whole
        assert whole is not None
        # A throttle names its limits: the key's partition (or none named), and the table's (or
        # an index's, or the account's), which every key's writes share.
        partition, table = throttled_by(error)
        if partition and not table and self._table_start is not None:
            # The limit is a key's, paced per key: the table's gate would hold the other keys
            # back with it.
            self._table_start.end(TABLE)
        rtt = self._rtt
        wait = max(
            pace.refusal_wait(key, took, rtt) if partition else 0.0,
            whole.refusal_wait(TABLE, took, rtt) if table else 0.0,
        )
        if wait > 0.0:
            await self._clock.sleep(wait)
        if partition:
            pace.observe(key, Outcome.THROTTLED, epoch, self._rtt)
        if table:
            whole.observe(TABLE, Outcome.THROTTLED, whole_epoch, self._rtt)
            # After the table's state exists, so that the answer has one to tell; once told,
            # nothing more is read until it is forgotten.
            describe = self.describe
            if (
                describe is not None
                and not whole.told(TABLE)
                and names_table_capacity(error.reasons)
            ):
                describe()

    async def _admit(self, pace: KeyLimiter, key: str, *, again: bool) -> tuple[int, int]:
        """Pass the key's pace and the table's, then take a pool slot; go round again if either
        was cut while waiting, so that a cut holds back what already queued. Returns both
        epochs. ``again``: a retry, which goes ahead of the requests waiting for their first
        attempt."""
        slots = self._slots
        whole = self._whole
        assert whole is not None
        while True:
            epoch = pace.unpaced_epoch(key)
            if epoch is None:
                epoch = await pace.acquire(key, again=again)
            whole_epoch = whole.unpaced_epoch(TABLE)
            if whole_epoch is None:
                whole_epoch = await whole.acquire(TABLE, again=again)
            if not slots.try_take():
                await slots.take()
            if not pace.stale(key, epoch) and not whole.stale(TABLE, whole_epoch):
                return epoch, whole_epoch
            slots.release()
            again = True  # sent back by a cut: it waited its turn once


def throttled_by(error: TransportError) -> tuple[bool, bool]:
    """Whether a throttle names the key's partition (``KeyRangeThroughputExceeded``, or no
    reasons at all), and whether it names a limit all keys share: a table's, an index's
    (its writes are the table's) or the account's."""
    reasons = error.reasons
    if not reasons:
        return True, False
    partition = any("KeyRange" in reason for reason in reasons)
    return partition, not all("KeyRange" in reason for reason in reasons)


def public_error(failure: Failed, *, table: str, key: str | None) -> CounterError:
    """The error a caller sees for a request that finally failed (reads, and writes' common
    cases; a write's floor refusal and ambiguity are told apart by its stage)."""
    error = failure.error
    outcome = error.outcome
    if outcome is Outcome.THROTTLED:
        return ThrottledError(
            key=key,
            attempts=failure.attempts,
            elapsed=failure.elapsed,
            last_code=error.code,
            queued=failure.queued,
        )
    if outcome is Outcome.UNREACHABLE:
        return ConnectError(
            key=key,
            attempts=failure.attempts,
            elapsed=failure.elapsed,
            last_code=error.code,
            queued=failure.queued,
        )
    if outcome is Outcome.TABLE_NOT_FOUND:
        return TableNotFoundError(table, key=key)
    return DynamoError(error.code, error.message, status=error.status, key=key)
