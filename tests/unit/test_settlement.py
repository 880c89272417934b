"""Settlement alone, the key queues' merge policies, the observers' fan-out, the local rule."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from async_counters import builders
from async_counters.connect import LOCAL_REGION, is_local
from async_counters.errors import CounterFloorError
from async_counters.keyqueue import merge_all, merge_background
from async_counters.observers import Observers
from async_counters.settlement import Call, Settlement, same
from async_counters.stats import PoolHooks
from async_counters.transport import Outcome


class Clock:
    def __init__(self) -> None:
        self.now = 10.0

    def __call__(self) -> float:
        return self.now


def calls(loop: asyncio.AbstractEventLoop, *deltas: int, start: float = 9.0) -> list[Call]:
    return [Call(delta, None, loop.create_future(), start) for delta in deltas]


def counted(observers: Observers, n: int) -> None:
    for _ in range(n):
        observers.called()


async def test_a_batch_answers_each_caller_in_arrival_order() -> None:
    observers = Observers()
    settlement = Settlement(observers, Clock())
    batch = calls(asyncio.get_running_loop(), 1, 1, 5)
    counted(observers, 3)
    settlement.acknowledged("k", batch, after=17, total=7)
    assert [c.future.result() for c in batch if c.future] == [11, 12, 17]
    counts = observers.stats.counts
    assert (counts["acknowledged"], counts["acknowledged_amount"], counts["in_progress"]) == (
        3,
        7,
        0,
    )
    assert observers.stats.latency.count == 3 and observers.stats.latency.max == 1.0


async def test_every_call_ends_once() -> None:
    observers = Observers()
    settlement = Settlement(observers, Clock())
    (call,) = calls(asyncio.get_running_loop(), 4)
    counted(observers, 1)
    settlement.acknowledged("k", [call], after=4, total=4)
    settlement.ended("k", [call], Outcome.AMBIGUOUS, same(RuntimeError()))
    counts = observers.stats.counts
    assert (counts["acknowledged"], counts["ambiguous"], counts["in_progress"]) == (1, 0, 0)
    assert call.future is not None and call.future.result() == 4


async def test_callers_gone_are_detached_once_and_background_failures_unwritten() -> None:
    loop = asyncio.get_running_loop()
    observers = Observers()
    settlement = Settlement(observers, Clock())
    gone, waiting = calls(loop, 3, 4)
    assert gone.future is not None
    gone.future.cancel()
    background = Call(5, None, None, 9.0)
    counted(observers, 3)
    settlement.ended("k", [gone, waiting, background], Outcome.AMBIGUOUS, same(TimeoutError()))
    counts = observers.stats.counts
    assert (counts["detached"], counts["detached_amount"]) == (1, 3)
    assert (counts["unwritten"], counts["unwritten_amount"]) == (1, 5)
    assert (counts["ambiguous"], counts["ambiguous_amount"]) == (3, 12)
    assert waiting.future is not None and isinstance(waiting.future.exception(), TimeoutError)


async def test_a_caller_that_left_after_its_answer_was_set_is_detached() -> None:
    observers = Observers()
    settlement = Settlement(observers, Clock())
    (call,) = calls(asyncio.get_running_loop(), 2)
    counted(observers, 1)
    settlement.acknowledged("k", [call], after=2, total=2)
    assert settlement.caller_left(call)  # answered: it would have resumed to its value
    assert not settlement.caller_left(call) or observers.stats.counts["detached"] == 1
    assert observers.stats.counts["detached_amount"] == 2


async def test_calls_never_sent_are_cancelled_not_detached() -> None:
    observers = Observers()
    settlement = Settlement(observers, Clock())
    waiting, gone = calls(asyncio.get_running_loop(), 1, 2)
    assert gone.future is not None
    gone.future.cancel()
    counted(observers, 2)
    assert not settlement.caller_left(gone)
    settlement.ended("k", [waiting, gone], Outcome.CANCELLED)
    counts = observers.stats.counts
    assert (counts["cancelled"], counts["detached"]) == (2, 0)
    assert waiting.future is not None and waiting.future.cancelled()


async def test_merging_policies() -> None:
    loop = asyncio.get_running_loop()

    def call(delta: int, awaited: bool) -> Call:
        return Call(delta, None, loop.create_future() if awaited else None, 0.0)

    queue = [call(1, True), call(2, True), call(3, False), call(4, False), call(5, True)]
    go, gone, rest = merge_all(queue)
    assert [c.delta for c in go] == [1, 2, 3, 4, 5] and gone == rest == []
    go, gone, rest = merge_background(queue)
    assert [c.delta for c in go] == [1] and len(rest) == 4
    go, gone, rest = merge_background(queue[2:])
    assert [c.delta for c in go] == [3, 4] and [c.delta for c in rest] == [5]
    assert queue[1].future is not None
    queue[1].future.cancel()  # its caller left while it waited: never sent
    go, gone, rest = merge_all(queue)
    assert [c.delta for c in go] == [1, 3, 4, 5] and [c.delta for c in gone] == [2]
    big = [call(builders.MAX_NUMBER, True), call(1, True)]
    go, gone, rest = merge_all(big)
    assert len(go) == 1 and len(rest) == 1  # a sum DynamoDB cannot hold is split


def test_observers_tell_stats_first_and_survive_a_broken_hook(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[Any] = []

    class Broken(PoolHooks):
        def on_settled(self, key: str, delta: int, outcome: Outcome, seconds: float) -> None:
            raise RuntimeError("observer bug")

    class Recorder(PoolHooks):
        def on_settled(self, key: str, delta: int, outcome: Outcome, seconds: float) -> None:
            seen.append((key, delta, outcome))

    observers = Observers(hooks=[Broken(), Recorder()])
    observers.called()
    with caplog.at_level(logging.ERROR, logger="async_counters"):
        observers.settled("k", 3, Outcome.CONDITION_FAILED, 0.1, "")
    assert seen == [("k", 3, Outcome.CONDITION_FAILED)]
    assert observers.stats.counts["floor_refused"] == 1
    assert "a pool hook raised" in caplog.text


def test_floor_errors_name_the_counter() -> None:
    error = CounterFloorError(key="stock", amount=2, floor=0, current=1)
    assert error.key == "stock" and error.current == 1


@pytest.mark.parametrize(
    ("endpoint", "session", "local"),
    [
        ("http://127.0.0.1:8000", None, True),
        ("http://localhost:8000", None, True),
        ("http://[::1]:8000", None, True),
        ("http://127.0.0.1:8000", object(), False),  # a session says where credentials are
        ("https://dynamodb.eu-west-1.amazonaws.com", None, False),
        (None, None, False),
    ],
)
def test_the_rule_for_local_servers(endpoint: str | None, session: object, local: bool) -> None:
    assert is_local(endpoint, session=session) is local
    assert LOCAL_REGION == "us-east-1"
