"""Every intersection of the pool's modes, under faults, judged by what the server really applied.

coalesce x exactly_once x shards (1, 3) x transport (fast, botocore) x adaptive: 32 combinations.
In each, three pools of the same modes (as three processes of one app) write the same few keys
at once, about 175 writes in all, through the embedded DynamoDB (memory backend, its capacity
model on), which throttles, fails with a 500 before or after applying, and drops connections
after applying; every fault strikes in every combination (asserted from the server's stats, so
no run passes vacuously). Its ledger is the truth:

- exactly-once: the ledger equals what was acknowledged, and no caller sees `AmbiguousWriteError`;
- plain: acknowledged <= ledger <= acknowledged + ambiguous, per counter;
- unsharded counters: the values callers got fit one serial order (no two own the same units);
- stats add up, and callers plus ``stats.detached`` account for every applied amount when a
  share of callers is cancelled at random (in half of the combinations, chosen so that every
  four of the five modes meet cancellation in all their sixteen combinations);
- floored decrements never oversell an unsharded counter, and a sharded one refuses a floor;
- a user's key that looks like a shard (``alpha#1``) is a counter of its own.

Apart from the load: a pool not yet open, or already closed, refuses every call with
`RuntimeError` and sends nothing; a key no server can store (a lone surrogate) is refused before
anything is sent. Each check of a run is collected, so a failure lists every broken invariant.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal

import pytest
from aiobotocore.session import get_session

from async_counters import CounterPool, Outcome, PoolHooks, PoolStats, RetryPolicy
from async_counters.local import Capacity, Faults, LocalDynamo
from tests.integration.accounting import Tally, ledger_by_counter, serial_order_problems

#: Sharded where the pool shards: incremented by 1 (alpha, bravo) or by amounts unique per pool
#: (charlie, whose callers are the ones cancelled).
SHARDED = ("alpha", "bravo", "charlie")
#: A user's key that today's naming would make shard 1 of alpha; never sharded itself.
NEIGHBOUR = "alpha#1"
#: Floored decrements (floor 0) of an unsharded counter filled before the storm.
STOCK = "stock"
STEADY_KEYS = ("alpha", "bravo", NEIGHBOUR)
POOLS = 3
STEADY_CALLERS = 4  # per pool, each looping over the steady keys
#: Per steady caller, one after another: even merged, a pool's writes take at least this many
#: requests, so three pools send at least 30 (see FAULTS).
STEADY_WRITES = 10
CHARLIE_AMOUNTS = range(1, 13)  # one caller per amount per pool: 78 per pool
STOCK_UNITS = 12
STOCK_CALLERS = 6  # per pool: 18 callers want 12 units
#: Share of charlie's writes whose caller is cancelled the moment the pool acknowledges it, and
#: chance per request of cancelling a random charlie caller (queued, paced, sent or answered).
CANCEL_ON_ACKNOWLEDGEMENT = 0.3
CANCEL_PER_REQUEST = 0.04

#: Within the first 30 writes this seed throttles 4, fails 3 after applying, drops 4 after
#: applying and fails 1 before applying (whichever requests they are): every combination sends
#: more than 30, so each meets every fault on any machine.
FAULTS = Faults(
    throttle=0.15, error_before_apply=0.03, error_after_apply=0.07, drop_after_apply=0.05, seed=39
)
FAULT_KINDS = ("throttle", "error_before_apply", "error_after_apply", "drop_after_apply")
#: Short backoff (the run stays small) under a deadline no storm here comes near.
RETRY = RetryPolicy(base=0.005, cap=0.05, deadline=30.0)
#: Far beyond what a run takes on any machine (a few seconds): only a hang meets it.
RUN_BOUND = 120.0
#: A call that must be refused before sending needs no retries: one that sends anyway gives up
#: soon (a closed pool's connections fail, a server refuses a key it cannot decode).
HASTY = RetryPolicy(attempts=2, base=0.001, cap=0.001, deadline=5.0)


@dataclass(frozen=True)
class Modes:
    coalesce: bool
    exactly_once: bool
    shards: int
    transport: Literal["fast", "botocore"]
    adaptive: bool

    @property
    def cancels(self) -> bool:
        """Whether callers are cancelled: the parity of the five modes, so that fixing any four
        leaves one combination with cancellation and one without."""
        bits = (self.coalesce, self.exactly_once, self.shards > 1, self.transport == "fast")
        return (sum(bits) + self.adaptive) % 2 == 1

    def options(self, botocore_session: Any, *, sharded: Any = None) -> dict[str, Any]:
        """The pool's keyword arguments; ``sharded`` is what ``shards=`` gets when it shards."""
        shards = dict.fromkeys(SHARDED, self.shards) if sharded is None else sharded
        options = {
            "coalesce": self.coalesce,
            "exactly_once": self.exactly_once,
            "shards": shards if self.shards > 1 else 1,
            "transport": self.transport,
            "adaptive": self.adaptive,
            "retry": RETRY,
        }
        if self.transport == "botocore":
            options.update(session=botocore_session, region_name="us-east-1")
        return options

    def __str__(self) -> str:
        return "-".join(
            [
                "coalesce" if self.coalesce else "direct",
                "once" if self.exactly_once else "plain",
                f"shards{self.shards}",
                self.transport,
                "adaptive" if self.adaptive else "unpaced",
                *(["cancel"] if self.cancels else []),
            ]
        )


TRANSPORTS: tuple[Literal["fast", "botocore"], ...] = ("fast", "botocore")
MODES = [
    Modes(coalesce=c, exactly_once=e, shards=s, transport=t, adaptive=a)
    for c, e, s, t, a in itertools.product(
        (False, True), (False, True), (1, 3), TRANSPORTS, (True, False)
    )
]


@pytest.fixture(scope="module")
def server() -> Iterator[LocalDynamo]:
    # A partition of 400 writes/s with a 50 ms burst: hot keys meet it when callers all start.
    capacity = Capacity(partition_write_units=400, burst_seconds=0.05)
    with LocalDynamo(backend="memory", capacity=capacity) as server:
        yield server


@pytest.fixture(scope="module")
def botocore_session() -> Any:
    """One aiobotocore session for every botocore pool, as one app's pools would share it: a
    client from a fresh session costs about 0.2 s of CPU here, from a used one a few ms."""
    session = get_session()
    session.set_credentials("local", "local")  # the embedded server does not check them
    return session


class Canceller(PoolHooks):
    """Cancels charlie's callers of one pool at moments only the pool sees: right after it
    acknowledges a write (before its caller resumes), and at random ends of requests."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.callers: dict[int, asyncio.Task[None]] = {}  # by amount: unique within the pool

    def on_settled(self, key: str, delta: int, outcome: Outcome, seconds: float) -> None:
        if key == "charlie" and outcome is Outcome.ACKNOWLEDGED:
            caller = self.callers.get(delta)
            if caller is not None and self.rng.random() < CANCEL_ON_ACKNOWLEDGEMENT:
                caller.cancel()

    def on_request(self, operation: str, outcome: Outcome, seconds: float) -> None:
        if self.rng.random() < CANCEL_PER_REQUEST:
            live = [caller for caller in self.callers.values() if not caller.done()]
            if live:
                self.rng.choice(live).cancel()


class Problems(list[str]):
    def check(self, holds: bool, message: str) -> None:
        if not holds:
            self.append(message)


@pytest.mark.parametrize("modes", MODES, ids=str)
async def test_modes_meet_under_faults(
    server: LocalDynamo, table_name: str, modes: Modes, botocore_session: Any
) -> None:
    endpoint = server.endpoint_url
    sharded = modes.shards > 1
    problems = Problems()
    async with CounterPool(table_name, endpoint_url=endpoint) as filler:
        await filler.ensure_table()
        assert await filler.increment(STOCK, STOCK_UNITS) == STOCK_UNITS

    cancellers = [Canceller(seed) for seed in range(POOLS)] if modes.cancels else []
    pools = [
        CounterPool(
            table_name,
            endpoint_url=endpoint,
            hooks=cancellers[i : i + 1],
            **modes.options(botocore_session),
        )
        for i in range(POOLS)
    ]
    tallies = [Tally() for _ in pools]
    async with contextlib.AsyncExitStack() as stack:
        for pool in pools:
            await stack.enter_async_context(pool)
        if sharded:
            requests = server.stats()["requests"]
            try:
                await pools[0].decrement("alpha", 1, floor=0)
            except ValueError:
                pass
            else:
                problems.append("a floor on a sharded counter was accepted")
            problems.check(server.stats()["requests"] == requests, "a refused floor sent a request")
        before = server.stats()
        server.set_faults(FAULTS)
        try:
            # Bounded: a pool that lost a caller's answer must fail here, not hang the suite.
            async with asyncio.timeout(RUN_BOUND):
                await asyncio.gather(*_callers(pools, tallies, cancellers), return_exceptions=True)
        finally:
            server.set_faults(Faults())
    stats = [pool.stats for pool in pools]  # after aclose(): every write has settled
    after = server.stats()

    ledger, unowned = ledger_by_counter(
        server.ledger(table_name),
        plain=[NEIGHBOUR, STOCK, *([] if sharded else SHARDED)],
        sharded=SHARDED if sharded else [],
    )
    problems.extend(unowned)
    read_options = {**modes.options(botocore_session), "transport": "fast"}
    read_options.pop("session", None)
    async with CounterPool(table_name, endpoint_url=endpoint, **read_options) as reader:
        stored = await reader.get_many(ledger)
    problems.check(
        stored == ledger, f"the values read back {stored} differ from the ledger {ledger}"
    )

    _check_faults_struck(problems, modes, before, after, stats, tallies)
    for i, (s, tally) in enumerate(zip(stats, tallies, strict=True)):
        _check_stats(problems, modes, f"pool {i}", s, tally)
    _check_ledger(problems, modes, ledger, stats, tallies)
    _check_serial_order(problems, sharded, ledger, tallies)
    assert not problems, f"{modes}:\n  " + "\n  ".join(problems)


def _callers(
    pools: list[CounterPool], tallies: list[Tally], cancellers: list[Canceller]
) -> list[asyncio.Task[None]]:
    """Every caller of every pool, started together: steady ones looping over the steady keys,
    one per charlie amount (the only ones ever cancelled), and the stock's buyers."""

    def start(tally: Tally, key: str, delta: int, write: Callable[[], Awaitable[int]]) -> Any:
        return asyncio.create_task(tally.call(key, delta, write))

    async def steady(pool: CounterPool, tally: Tally, caller: int) -> None:
        for i in range(STEADY_WRITES):
            key = STEADY_KEYS[(caller + i) % len(STEADY_KEYS)]
            await tally.call(key, 1, partial(pool.increment, key))

    tasks: list[asyncio.Task[None]] = []
    for round_ in range(max(STEADY_CALLERS, len(CHARLIE_AMOUNTS), STOCK_CALLERS)):
        for i, (pool, tally) in enumerate(zip(pools, tallies, strict=True)):
            if round_ < STEADY_CALLERS:
                tasks.append(asyncio.create_task(steady(pool, tally, round_)))
            if round_ < len(CHARLIE_AMOUNTS):
                amount = CHARLIE_AMOUNTS[round_]
                task = start(tally, "charlie", amount, partial(pool.increment, "charlie", amount))
                tasks.append(task)
                if cancellers:
                    cancellers[i].callers[amount] = task
            if round_ < STOCK_CALLERS:
                tasks.append(start(tally, STOCK, -1, partial(pool.decrement, STOCK, floor=0)))
    return tasks


def _check_faults_struck(
    problems: Problems,
    modes: Modes,
    before: dict[str, int],
    after: dict[str, int],
    stats: list[PoolStats],
    tallies: list[Tally],
) -> None:
    """The run was not vacuous: every fault struck, and the pools met them."""
    injected = {kind: after[kind] - before[kind] for kind in FAULT_KINDS}
    problems.check(all(n > 0 for n in injected.values()), f"not every fault struck: {injected}")
    problems.check(sum(s.throttles for s in stats) > 0, "no pool met a throttle")
    if modes.exactly_once:
        problems.check(sum(s.recovered for s in stats) > 0, "no lost answer was recovered")
        # Every buyer is answered exactly: more of them than units, so some are refused.
        problems.check(sum(t.key(STOCK).refused for t in tallies) > 0, "the stock never ran out")
    else:
        problems.check(sum(t.ambiguous_calls for t in tallies) > 0, "no caller saw an ambiguity")
    if modes.cancels:
        problems.check(sum(t.cancelled for t in tallies) > 0, "no caller was cancelled")


def _check_stats(problems: Problems, modes: Modes, name: str, s: PoolStats, tally: Tally) -> None:
    """The pool's stats add up, and agree with what its callers were told."""
    check = problems.check
    check(not tally.unexpected, f"{name}: callers saw unexpected errors: {tally.unexpected[:3]}")
    check(s.in_progress == 0, f"{name}: in_progress={s.in_progress} after aclose()")
    check(s.calls == s.settled + s.in_progress, f"{name}: calls={s.calls}, settled={s.settled}")
    # Every call the pool counted either reached its caller or is counted as cancelled before
    # it was sent, or as detached (its caller gone, its write settled all the same).
    reached = s.settled - s.cancelled - s.detached
    check(
        reached == tally.answered,
        f"{name}: {s.settled} settled - {s.cancelled} cancelled - {s.detached} detached = "
        f"{reached}, but {tally.answered} callers got an answer",
    )
    check(
        s.floor_refused == sum(t.refused for t in tally.keys.values()),
        f"{name}: floor_refused={s.floor_refused}",
    )
    if not modes.cancels:
        check(s.cancelled == s.detached == 0, f"{name}: cancelled/detached without cancellation")
    if modes.exactly_once:
        check(
            s.ambiguous == 0 and tally.ambiguous_calls == 0,
            f"{name}: exactly-once, yet {s.ambiguous} ambiguous "
            f"({tally.ambiguous_calls} reached callers)",
        )
        check(
            s.acknowledged_amount == tally.acknowledged + s.detached_amount,
            f"{name}: acknowledged_amount={s.acknowledged_amount}, callers got "
            f"{tally.acknowledged}, detached_amount={s.detached_amount}",
        )
    else:
        check(
            s.acknowledged_amount + s.ambiguous_amount
            == tally.acknowledged + tally.ambiguous + s.detached_amount,
            f"{name}: acknowledged_amount + ambiguous_amount = "
            f"{s.acknowledged_amount + s.ambiguous_amount}, callers got "
            f"{tally.acknowledged} + {tally.ambiguous} ambiguous, "
            f"detached_amount={s.detached_amount}",
        )


def _check_ledger(
    problems: Problems,
    modes: Modes,
    ledger: dict[str, int],
    stats: list[PoolStats],
    tallies: list[Tally],
) -> None:
    """What the server applied, per counter, against what callers (and detached ones) were told."""
    detached = sum(s.detached_amount for s in stats)
    for key in (*SHARDED, NEIGHBOUR, STOCK):
        acknowledged = sum(t.key(key).acknowledged for t in tallies)
        up = sum(t.key(key).ambiguous_up for t in tallies)
        down = sum(t.key(key).ambiguous_down for t in tallies)
        if key == STOCK:
            acknowledged += STOCK_UNITS  # the filler's
        if key == "charlie":  # detached callers are charlie's: their writes applied, or may have
            up += detached
        applied = ledger[key]
        if modes.exactly_once:
            problems.check(
                applied == acknowledged + detached * (key == "charlie"),
                f"{key}: applied {applied}, acknowledged {acknowledged}"
                + (f" + {detached} detached" if key == "charlie" else ""),
            )
        else:
            problems.check(
                acknowledged + down <= applied <= acknowledged + up,
                f"{key}: applied {applied}, outside [{acknowledged + down}, {acknowledged + up}] "
                "(acknowledged, with what was ambiguous or detached)",
            )
    problems.check(ledger[STOCK] >= 0, f"the stock was oversold: {ledger[STOCK]}")
    if modes.exactly_once:
        problems.check(ledger[STOCK] == 0, f"exactly-once left {ledger[STOCK]} in stock unsold")
    total = sum(ledger.values())
    acknowledged = STOCK_UNITS + sum(s.acknowledged_amount for s in stats)
    if modes.exactly_once:
        problems.check(
            total == acknowledged, f"applied {total} in all, the pools acknowledged {acknowledged}"
        )
    else:
        down = sum(t.key(STOCK).ambiguous_down for t in tallies)
        up = sum(t.ambiguous - t.key(STOCK).ambiguous_down for t in tallies) + detached
        problems.check(
            acknowledged + down <= total <= acknowledged + up,
            f"applied {total} in all, the pools acknowledged {acknowledged} (ambiguous: "
            f"{down} down, {up} up with detached)",
        )


def _check_serial_order(
    problems: Problems, sharded: bool, ledger: dict[str, int], tallies: list[Tally]
) -> None:
    """Unsharded counters: the values callers got fit one serial order of all the writes."""
    for key in [NEIGHBOUR, *([] if sharded else SHARDED)]:
        values = [value for t in tallies for value in t.key(key).values]
        problems.extend(serial_order_problems(key, values, start=0, end=ledger[key]))
    values = [value for t in tallies for value in t.key(STOCK).values]
    problems.extend(serial_order_problems(STOCK, values, start=STOCK_UNITS, end=ledger[STOCK]))


# Calls that must be refused before anything is sent: on a pool not open, and with a key no
# server can store.

#: Not Unicode: no UTF-8 encoding exists, so no request can carry them.
UNSTORABLE_KEYS = ("\ud800", "views-\udfff", "\ud800" * 600)


def _calls(pool: CounterPool, key: str) -> dict[str, Callable[[], object]]:
    """Every call of the public API that names ``key``."""
    return {
        "increment": lambda: pool.increment(key),
        "increment by 5": lambda: pool.increment(key, 5),
        "decrement": lambda: pool.decrement(key, 2),
        "floored decrement": lambda: pool.decrement(key, 1, floor=0),
        "add_nowait": lambda: pool.add_nowait(key, 3),
        "get": lambda: pool.get(key),
        "get_many": lambda: pool.get_many([key, "other"]),
    }


async def _refused(call: Callable[[], object]) -> BaseException | None:
    try:
        async with asyncio.timeout(RUN_BOUND):
            result = call()
            if isinstance(result, Awaitable):
                await result
    except Exception as error:
        return error
    return None


async def _nothing_sent(
    problems: Problems,
    server: LocalDynamo,
    table: str,
    pool: CounterPool,
    key: str,
    state: str,
    expected: type[Exception],
) -> None:
    """Every call on ``key`` raises ``expected``, and the server sees no request."""
    requests = server.stats()["requests"]
    ledger = server.ledger(table)
    calls = pool.stats.calls
    calls_made = _calls(pool, key)
    if state != "open":
        calls_made["ensure_table"] = pool.ensure_table
    shown = repr(key) if len(key) < 20 else f"{key[:2]!r}... ({len(key)} characters)"
    for name, call in calls_made.items():
        error = await _refused(call)
        allowed: tuple[type[Exception], ...] = (expected,)
        if name == "floored decrement" and pool.shards_of(key) > 1:
            allowed = (expected, ValueError)  # bad input and a closed pool: either may be first
        if error is None:
            problems.append(f"{state}: {name}({shown}) was accepted")
        elif not isinstance(error, allowed) or isinstance(error, UnicodeError):
            what = f"{type(error).__name__}: {' '.join(str(error).split())[:80]}"
            problems.append(f"{state}: {name}({shown}) raised {what}, not {expected.__name__}")
    sent = server.stats()["requests"] - requests
    problems.check(sent == 0, f"{state}: the refused calls on {shown} sent {sent} request(s)")
    problems.check(server.ledger(table) == ledger, f"{state}: the ledger changed")
    s = pool.stats
    problems.check(s.calls == calls, f"{state}: refused calls were counted ({s.calls} calls)")
    problems.check(
        s.in_progress == 0 and s.calls == s.settled,
        f"{state}: calls={s.calls} settled={s.settled} in_progress={s.in_progress}",
    )


@pytest.mark.parametrize("modes", MODES, ids=str)
async def test_calls_that_must_be_refused_send_nothing(
    server: LocalDynamo, table_name: str, modes: Modes, botocore_session: Any
) -> None:
    """Not yet open, or closed: `RuntimeError`. A key that is not Unicode: `ValueError`. In
    every mode, before anything is sent or counted."""
    problems = Problems()
    # Every key sharded when the pool shards (shards=3, not per key): the bad ones too.
    options = {**modes.options(botocore_session, sharded=modes.shards), "retry": HASTY}
    pool = CounterPool(table_name, endpoint_url=server.endpoint_url, **options)
    await _nothing_sent(problems, server, table_name, pool, "alpha", "unopened", RuntimeError)
    async with pool:
        await pool.ensure_table()
        await pool.increment("alpha")
        for key in UNSTORABLE_KEYS:
            await _nothing_sent(problems, server, table_name, pool, key, "open", ValueError)
    # bravo was never written: a sharded pool has not recorded its shards yet.
    for key in ("bravo", "alpha"):
        await _nothing_sent(problems, server, table_name, pool, key, "closed", RuntimeError)
    assert not problems, f"{modes}:\n  " + "\n  ".join(problems)
