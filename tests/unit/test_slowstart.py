"""A crowd on a cold key, in virtual time: it goes out a few at a time until the partition answers,
then as fast as the partition takes it; queueing behind a pace is not a retry deadline's business.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from async_counters import CounterPool, RetryPolicy, slowstart
from async_counters.slowstart import (
    KEY_RATE,
    LEAST_SECONDS,
    PARTITION_RATE,
    START,
    TABLE_START,
    LeastRoundTrip,
)
from async_counters.transport import Outcome, TransportError

from .fake import FakeTransport
from .partition_sim import REASONS, TABLE, Partitions, Timeline, load
from .virtual_loop import run_virtual


async def _crowd(transport: Partitions, callers: int) -> tuple[list[object], float, int]:
    """``callers`` increments of one cold key at once: results, virtual seconds, value read."""
    loop = asyncio.get_running_loop()
    await transport.create_table(TABLE)
    retry = RetryPolicy(clock=loop.time, rng=random.Random(1).random)  # the pool's clock: virtual
    async with CounterPool(TABLE, transport=transport, max_in_flight=4_096, retry=retry) as pool:
        start = loop.time()
        results = await asyncio.gather(
            *(pool.increment("hot") for _ in range(callers)), return_exceptions=True
        )
        elapsed = loop.time() - start
        assert not pool._sender._start.gates  # type: ignore[union-attr]  # idle: nothing kept
        return list(results), elapsed, await pool.get("hot")


def test_a_crowd_into_a_one_token_bucket_wastes_a_handful_not_one_request_each() -> None:
    """1,024 callers on a cold key capped at 100/s with one token: before, all 1,024 went out
    in the same instant and 1,023 came back throttled."""
    transport = Partitions(shape="gcra", rate=100.0, burst=0.01)
    results, _, value = run_virtual(_crowd(transport, 1_024))
    assert all(isinstance(r, int) for r in results)
    assert value == 1_024  # exact: read back from the server
    assert transport.counts.requests <= 1.10 * 1_024, transport.counts  # before: > 2 * 1,024


def test_a_partition_that_takes_the_crowd_lets_it_through_at_the_key_ceiling() -> None:
    """A deep bucket: the gate doubles every round trip up to `KEY_RATE` writes a second at
    the round trip (20 at once at 5 ms), and no further: 1,024 callers take 1,024 / 4,000 s."""
    transport = Partitions(shape="gcra", rate=1e6, burst=1.0, latency=0.005, jitter=0.0)
    results, elapsed, value = run_virtual(_crowd(transport, 1_024))
    assert all(isinstance(r, int) for r in results) and value == 1_024
    assert transport.counts.throttled == 0
    ceiling = 1_024 / KEY_RATE  # seconds of virtual time, not a speed
    assert 0.9 * ceiling <= elapsed <= 1.2 * ceiling + 4 * 0.005, elapsed


def test_on_a_slow_round_trip_the_gate_grows_wide() -> None:
    """At 50 ms a round trip the ceiling is 200 writes at once: 1,024 callers are through in
    about ten round trips (8, 16, ... 128, then 200 at a time), not 1,024 / 4,000 s."""
    transport = Partitions(shape="gcra", rate=1e6, burst=1.0, latency=0.05, jitter=0.0)
    results, elapsed, value = run_virtual(_crowd(transport, 1_024))
    assert all(isinstance(r, int) for r in results) and value == 1_024
    assert elapsed <= 12 * 0.05, elapsed


def test_a_deep_bucket_running_out_under_a_crowd_throttles_a_ceiling_not_the_crowd() -> None:
    """1,024 callers on a key capped at 10/s holding 300 s of it (3,000 writes). Without a
    ceiling the gate grew to 1,024 before the bucket ran out, then all 1,024 writes on the wire
    were throttled at once, and their retries alone queued 100 s behind the partition's rate:
    1.40 requests per increment over 30 s, and 7 increments past a 30 s retry deadline."""
    result = run_virtual(
        load(shape="gcra", rate=10.0, burst=300.0, callers=1_024, seconds=30.0, warmup=10.0)
    )
    assert result.failed == 0, result.line()
    assert result.value == result.acks_total
    assert result.per_ack <= 1.05, result.line()  # the whole run, the burst's end included


@pytest.mark.parametrize("seed", [1, 2])
def test_a_crowd_that_slows_its_own_round_trip_does_not_widen_the_gate(seed: int) -> None:
    """Each write on the wire adds 0.3 ms to every round trip (a busy server or client): 5 ms
    unloaded, 35 ms under 100 at once. A ceiling read from the smoothed round trip grew with the
    crowd it let through, to 256 writes at once, all throttled when the 1 s burst ran out:
    1.21-1.23 requests per ack over 8 s. At the least round trip it stays near 20."""
    result = run_virtual(
        load(
            shape="gcra",
            rate=100.0,
            burst=1.0,
            callers=256,
            seconds=8.0,
            warmup=3.0,
            seed=seed,
            queueing=0.0003,
        )
    )
    assert result.failed == 0, result.line()
    assert result.value == result.acks_total
    assert result.steady_goodput >= 0.95, result.line()
    assert result.per_ack <= 1.10, result.line()  # the whole run, the burst's end included


def test_a_crowd_that_slows_its_own_round_trip_still_gets_a_partitions_rate() -> None:
    """The same queueing on a partition that takes everything: at the least round trip the
    gate still carries more than the 1,000 writes/s one partition can serve."""
    transport = Partitions(
        shape="gcra", rate=1e6, burst=1.0, latency=0.005, jitter=0.0, queueing=0.0003
    )
    results, elapsed, value = run_virtual(_crowd(transport, 1_024))
    assert all(isinstance(r, int) for r in results) and value == 1_024
    assert elapsed <= 1_024 / PARTITION_RATE, elapsed  # seconds of virtual time, not a speed


def test_a_round_trip_that_varies_widely_still_carries_a_partitions_rate() -> None:
    """50 ms +- 49 ms: the least round trip (about 1 ms) would hold the gate to 8 writes at once,
    160/s at the 50 ms they take on average. The gate still carries one partition's 1,000/s at
    the smoothed round trip."""
    transport = Partitions(shape="gcra", rate=1e6, burst=1.0, latency=0.05, jitter=0.049)
    results, elapsed, value = run_virtual(_crowd(transport, 1_024))
    assert all(isinstance(r, int) for r in results) and value == 1_024
    assert elapsed <= 1.5 * 1_024 / PARTITION_RATE, elapsed  # virtual seconds, not a speed


def test_the_least_round_trip_follows_a_path_that_got_slower_for_good() -> None:
    least = LeastRoundTrip()
    assert least() == 0.0  # no answer yet
    least.add(0.005, 0.0)
    least.add(0.040, 1.0)  # a loaded round trip does not raise it
    assert least() == 0.005
    least.add(0.030, LEAST_SECONDS)  # a new span: the one before still counts
    assert least() == 0.005
    least.add(0.030, 2 * LEAST_SECONDS)  # two spans on, the unloaded 5 ms is forgotten
    assert least() == 0.030


def test_callers_cancelled_at_the_gate_are_not_sent_and_free_their_place() -> None:
    async def main() -> tuple[int, int, int]:
        transport = Partitions(shape="gcra", rate=1e6, burst=1.0, latency=0.005, jitter=0.0)
        await transport.create_table(TABLE)
        loop = asyncio.get_running_loop()
        retry = RetryPolicy(clock=loop.time, rng=random.Random(1).random)
        async with CounterPool(TABLE, transport=transport, retry=retry) as pool:
            tasks = [asyncio.create_task(pool.increment("hot")) for _ in range(100)]
            await asyncio.sleep(0.001)  # the first START are on the wire, the rest at the gate
            for task in tasks[50:]:
                task.cancel()
            results = await asyncio.gather(*tasks, return_exceptions=True)
            acknowledged = sum(isinstance(r, int) for r in results)
            assert not pool._sender._start.gates  # type: ignore[union-attr]
            return acknowledged, await pool.get("hot"), transport.counts.requests

    acknowledged, value, requests = run_virtual(main())
    assert acknowledged == 50 == value == requests  # the cancelled ones were never sent


def test_time_queued_behind_the_pace_does_not_count_against_the_retry_deadline() -> None:
    """256 callers on a key capped at 25/s queue ~10 s for each attempt; a 2 s deadline
    bounds the retrying, not the queueing: none fails, and a retry goes ahead of the queue."""
    result = run_virtual(
        load(shape="gcra", rate=25.0, burst=0.05, callers=256, seconds=30.0, deadline=2.0)
    )
    assert result.failed == 0, result.line()
    assert result.value == result.acks_total
    assert result.steady_goodput >= 0.95, result.line()
    # Little's law is the whole wait: 256 / 25 = 10.2 s, and a throttled retry does not wait
    # behind the queue again (before: up to three times that).
    assert result.latency.max <= 1.3 * 256 / 25.0, result.line()


def test_a_throttled_retry_is_not_a_failure_when_the_crowd_is_large() -> None:
    result = run_virtual(
        load(shape="tokens", rate=10.0, burst=0.05, callers=1_024, seconds=30.0, warmup=10.0)
    )
    assert result.failed == 0, result.line()
    assert result.value == result.acks_total
    assert result.per_ack <= 1.10, result.line()  # the whole run, cold start included


def test_a_stray_throttle_does_not_hold_a_crowd_to_a_few_writes_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One throttle at the start, then a partition that takes everything: the key is known to
    the pacer but never paced (1 throttle in its first window of ~150 answers), and its gate must
    still open: one frozen at the ~15 it had reached would hold 1,024 callers to 15 a round trip,
    under the cap of a partition further away."""

    class OneThrottle(Partitions):
        thrown = False

        async def call(self, operation: str, params: Any) -> dict[str, Any]:
            if operation == "UpdateItem" and not self.thrown:
                self.thrown = True
                self.counts.requests += 1
                await asyncio.sleep(self.base_latency)  # answered like the others
                raise self._throttle()
            return await super().call(operation, params)

    monkeypatch.setattr(slowstart, "KEY_RATE", 1e9)  # the gate's growth, not its ceiling
    transport = OneThrottle(shape="gcra", rate=1e6, burst=1.0, latency=0.001, jitter=0.0)
    results, elapsed, value = run_virtual(_crowd(transport, 1_024))
    assert all(isinstance(r, int) for r in results) and value == 1_024
    assert transport.counts.throttled == 1
    assert elapsed <= 30 * 0.001  # round trips of virtual time; frozen at 15 it takes ~70


class _Held(FakeTransport):
    """Each write waits on the wire until the test answers it; answers go oldest first."""

    def __init__(self) -> None:
        super().__init__()
        self.held: list[asyncio.Future[None]] = []

    async def call(self, operation: str, params: Any) -> dict[str, Any]:
        if operation == "UpdateItem":
            answer: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self.held.append(answer)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            self._arrived.set()
            try:
                await answer
            finally:
                self.in_flight -= 1
        return self._apply(operation, params)

    def answer(self, count: int) -> None:
        for answer in self.held[:count]:
            answer.set_result(None)
        del self.held[:count]


async def _settle() -> None:
    for _ in range(10):  # a few turns of the loop: answers reach their writers, gates pass
        await asyncio.sleep(0)


async def _answer_all(transport: _Held) -> None:
    """Answer every held write, and those its answers let out, until none is held."""
    while transport.held:
        transport.answer(len(transport.held))
        await _settle()


async def test_writes_arriving_while_a_gate_stands_pass_it_however_few_are_inside(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A gate of 15, with 2 writes inside: 20 more arrive. The first 6 of them bring the key's
    writes to at most `START`; they must still count at the gate, or 21 would be on the wire."""
    monkeypatch.setattr(slowstart, "KEY_RATE", 1e9)  # answers held by the test: no ceiling
    transport = _Held()
    async with CounterPool("ttt", transport=transport) as pool:
        first = [asyncio.create_task(pool.increment("a")) for _ in range(START + 1)]
        more: list[asyncio.Task[int]] = []
        try:
            await transport.on_the_wire(START)
            await _settle()
            assert transport.in_flight == START  # the 9th waits at the gate
            transport.answer(START - 1)  # 7 acknowledged: the gate is 15 wide, the 9th goes out
            await _settle()
            assert transport.in_flight == 2
            more = [asyncio.create_task(pool.increment("a")) for _ in range(20)]
            await _settle()
            assert transport.in_flight == START + START - 1  # 15, the gate's width (was 21)
        finally:  # answer everything, so that a failed check does not leave the close waiting
            await _answer_all(transport)
        results = await asyncio.gather(*first, *more)
    assert sorted(results) == list(range(1, START + 22))
    assert transport.values == {"a": START + 21}


def test_a_bucket_that_runs_out_under_a_crowd_is_paced_within_a_few_throttles() -> None:
    """16 callers on a key of 25/s holding a second of it: the first window acknowledges the
    burst (15 in 13 ms, "1,150/s"), and the pace measured from it sent 70 requests into the
    empty bucket in the next 50 ms. The silence after it now cuts within a few throttles."""
    result = run_virtual(
        load(shape="gcra", rate=25.0, burst=1.0, callers=16, seconds=30.0, warmup=7.5)
    )
    assert result.failed == 0 and result.value == result.acks_total
    assert result.per_ack <= 1.12, result.line()  # the whole run; before: 1.20


def test_a_crowd_over_many_keys_into_a_small_table_loses_a_round_not_a_request_each() -> None:
    """256 callers over 32 keys (8 each: no key's gate stands) on a provisioned table of 10/s
    holding a second of it. Before the table's gate, all 256 went out at once: 294 throttles
    came back in the first 5 ms, and 1.43-1.73 requests per increment over the 30 s."""
    timeline = Timeline((0.0, 0.005, 30.0))
    result = run_virtual(
        load(
            shape="gcra",
            rate=10.0,
            burst=1.0,
            callers=256,
            seconds=30.0,
            warmup=10.0,
            scope="table",
            keys=32,
            timeline=timeline,
            described=False,  # the gate's measure, not the description's
        )
    )
    assert result.failed == 0 and result.value == result.acks_total, result.line()
    # Answered in the first 5 ms: the first round, and the two writes each of its 10 acks let
    # through (its place, and one more). Before: 300.
    assert timeline.requests[0] <= TABLE_START + 2 * 10, timeline.requests
    assert result.per_ack <= 1.20, result.line()  # the whole run, cold start included


async def test_the_first_crowd_over_many_keys_grows_to_the_pools_bound_and_no_gate_follows() -> (
    None
):
    """On a table that takes everything, a crowd of one write per key goes out `TABLE_START`
    at once, then one more per ack up to the pool's bound; after that, none waits again."""
    transport = _Held()
    async with CounterPool("ttt", transport=transport, max_in_flight=64) as pool:
        first = [asyncio.create_task(pool.increment(f"a{i}")) for i in range(100)]
        second: list[asyncio.Task[int]] = []
        try:
            await transport.on_the_wire(TABLE_START)
            await _settle()
            assert transport.in_flight == TABLE_START  # the rest wait at the table's gate
            transport.answer(TABLE_START)  # 32 acknowledged: 64 wide, the pool's bound
            await _settle()
            assert transport.in_flight == 64
            await _answer_all(transport)
            await asyncio.gather(*first)
            second = [asyncio.create_task(pool.increment(f"b{i}")) for i in range(100)]
            await _settle()
            assert transport.in_flight == 64  # at once: the gate grew to the bound, none since
        finally:  # answer everything, so that a failed check does not leave the close waiting
            await _answer_all(transport)
        results = await asyncio.gather(*first, *second)
    assert results == [1] * 200
    assert sum(transport.values.values()) == 200  # exact: read from the transport's items


class _PartitionThrottle(_Held):
    """Holds writes as `_Held` does; the first is throttled at once, naming its partition."""

    throttled = False

    async def call(self, operation: str, params: Any) -> dict[str, Any]:
        if operation == "UpdateItem" and not self.throttled:
            self.throttled = True
            raise TransportError(
                Outcome.THROTTLED,
                "ProvisionedThroughputExceededException",
                "capped",
                status=400,
                reasons=(REASONS["partition"],),
            )
        return await super().call(operation, params)


async def test_a_throttle_naming_a_partition_opens_the_tables_gate() -> None:
    """A key's partition is paced per key: a gate over all keys would hold the others back
    with it. The first throttle naming one opens the table's gate for good."""
    transport = _PartitionThrottle()
    async with CounterPool("ttt", transport=transport, max_in_flight=128) as pool:
        writes = [asyncio.create_task(pool.increment(f"a{i}")) for i in range(100)]
        try:
            await transport.on_the_wire(TABLE_START - 1)
            await _settle()
            # The gate opened at the throttle's answer: all the others are on the wire without
            # one acknowledged (and the throttled write too, if its backoff is already over).
            assert transport.in_flight >= 99
        finally:
            while transport.held or not all(w.done() for w in writes):
                transport.answer(len(transport.held))
                await _settle()
                await asyncio.sleep(0.01)
        results = await asyncio.gather(*writes)
    assert results == [1] * 100
    assert sum(transport.values.values()) == 100


async def test_a_write_cancelled_at_the_tables_gate_is_not_sent_and_frees_its_place() -> None:
    transport = _Held()
    async with CounterPool("ttt", transport=transport, max_in_flight=64) as pool:
        writes = [asyncio.create_task(pool.increment(f"a{i}")) for i in range(TABLE_START + 2)]
        try:
            await transport.on_the_wire(TABLE_START)
            await _settle()
            writes[-1].cancel()  # waiting at the gate: never sent
            await _settle()
            transport.answer(1)  # one place for the one write still waiting
            await _settle()
            assert transport.in_flight == TABLE_START
        finally:
            await _answer_all(transport)
        done = await asyncio.gather(*writes, return_exceptions=True)
    assert [isinstance(r, asyncio.CancelledError) for r in done].count(True) == 1
    assert sum(transport.values.values()) == TABLE_START + 1  # the cancelled one never applied
    assert not pool._sender._table_start.gates  # type: ignore[union-attr]  # idle: nothing kept
