"""The sender alone, in virtual time: the one retry loop, the in-flight bound, the wire mark."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Mapping
from typing import Any

import pytest

from async_counters.clock import Clock
from async_counters.errors import ThrottledError
from async_counters.observers import Observers
from async_counters.retry import RetryPolicy
from async_counters.sender import Failed, Sender, public_error
from async_counters.slots import Slots
from async_counters.transport import Outcome, TransportError


class VirtualTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class Scripted:
    """Answers from a script: a dict, or a TransportError to raise; each call takes 0.01 s."""

    def __init__(self, time: VirtualTime, *answers: dict[str, Any] | TransportError) -> None:
        self.time = time
        self.answers: deque[dict[str, Any] | TransportError] = deque(answers)
        self.sent: list[Mapping[str, Any]] = []
        self.marks: list[bool] = []

    async def call(self, operation: str, params: Mapping[str, Any]) -> dict[str, Any]:
        self.sent.append(params)
        self.time.now += 0.01
        answer = self.answers.popleft()
        if isinstance(answer, TransportError):
            raise answer
        return answer

    async def aclose(self) -> None:
        pass


def throttled() -> TransportError:
    return TransportError(Outcome.THROTTLED, "ThrottlingException", status=400)


def ambiguous() -> TransportError:
    return TransportError(Outcome.AMBIGUOUS, "InternalServerError", status=500)


def sender(time: VirtualTime, transport: Scripted, **policy: Any) -> Sender:
    retry = RetryPolicy(clock=time, sleep=time.sleep, rng=lambda: 0.5, **policy)
    return Sender(
        policy=retry,
        clock=Clock(now=time, sleep=time.sleep),
        observers=Observers(),
        slots=Slots(2),
        transport=transport,
    )


async def test_throttles_are_retried_with_the_policy_delays() -> None:
    time = VirtualTime()
    transport = Scripted(time, throttled(), throttled(), {"ok": 1})
    s = sender(time, transport, base=0.1, cap=1.0)
    assert await s.send("GetItem", {}, idempotent=True) == {"ok": 1}
    assert time.sleeps == [0.05, 0.1]
    stats = s._observers.stats.counts
    assert (stats["requests"], stats["retries"], stats["throttles"]) == (3, 2, 2)


async def test_the_deadline_counts_from_the_first_attempt_in_virtual_time() -> None:
    time = VirtualTime()
    transport = Scripted(time, *[throttled() for _ in range(100)])
    s = sender(time, transport, base=1.0, cap=1.0, deadline=2.0)
    with pytest.raises(Failed) as info:
        await s.send("GetItem", {}, idempotent=True)
    # 0.5 s backoff each, 0.01 s per call: the fourth retry would start after 2 s
    assert info.value.attempts == 4 and info.value.elapsed == pytest.approx(1.54)
    assert info.value.error.code == "ThrottlingException"


def busy_for_retries(time: VirtualTime, transport: Scripted) -> Slots:
    """One slot, free for the first attempt; for each retry, taken until 5 s later."""

    class Busy(Slots):
        def try_take(self) -> bool:
            return len(transport.sent) == 0 and super().try_take()

        async def take(self) -> None:
            time.now += 5.0
            assert super().try_take()

    return Busy(1)


async def test_a_retry_queued_for_a_slot_is_not_counted_toward_the_deadline() -> None:
    """Waiting for a pool slot (or behind a key's pace) is flow control, for a retry as for a
    first attempt: a retry that waits 5 s for its slot under a 2 s deadline is still sent."""
    time = VirtualTime()
    transport = Scripted(time, throttled(), throttled(), {"ok": 1})
    s = sender(time, transport, base=0.1, cap=0.1, deadline=2.0)
    s._slots = busy_for_retries(time, transport)
    assert await s.send("GetItem", {}, idempotent=True) == {"ok": 1}
    assert len(transport.sent) == 3 and time.now > 10.0


async def test_a_throttled_error_tells_retrying_from_waiting_its_turn() -> None:
    """The time the deadline counted, and the time queued besides, which it leaves out: the
    caller waited both."""
    time = VirtualTime()
    transport = Scripted(time, *(throttled() for _ in range(10)))
    s = sender(time, transport, base=0.4, cap=0.4, deadline=1.0)
    s._slots = busy_for_retries(time, transport)
    with pytest.raises(Failed) as info:
        await s.send("UpdateItem", {}, idempotent=False)
    failure = info.value
    # 0.01 s an attempt, 0.2 s of jittered backoff between: a sixth would end past 1 s
    assert failure.attempts == 5 and failure.elapsed == pytest.approx(0.85)
    assert failure.queued == pytest.approx(20.0)  # 5 s for a slot before each retry
    error = public_error(failure, table="t", key="k")
    assert isinstance(error, ThrottledError) and error.queued == pytest.approx(20.0)
    assert "5 attempt(s) in 0.85s, plus 20.00s waiting its turn (pacing, max_in_flight)" in str(
        error
    )
    plain = ThrottledError(key="k", attempts=2, elapsed=0.5, last_code="ThrottlingException")
    assert "waiting" not in str(plain)


@pytest.mark.parametrize(("idempotent", "requests"), [(True, 2), (False, 1)])
async def test_ambiguity_is_retried_only_when_idempotent(idempotent: bool, requests: int) -> None:
    time = VirtualTime()
    transport = Scripted(time, ambiguous(), {"ok": 1})
    s = sender(time, transport)
    if idempotent:
        assert await s.send("UpdateItem", {}, idempotent=True) == {"ok": 1}
    else:
        with pytest.raises(Failed) as info:
            await s.send("UpdateItem", {}, idempotent=False)
        assert info.value.error.outcome is Outcome.AMBIGUOUS
    assert len(transport.sent) == requests


async def test_a_request_answered_in_part_is_continued_by_the_same_loop() -> None:
    time = VirtualTime()
    transport = Scripted(time, {"part": 1}, {"part": 2}, {"part": 3})
    got: list[int] = []

    def more(response: dict[str, Any]) -> Mapping[str, Any] | None:
        got.append(response["part"])
        return None if len(got) == 3 else {"rest": len(got)}

    s = sender(time, transport, base=0.2, cap=1.0)
    assert await s.send("BatchGetItem", {"first": 0}, idempotent=True, more=more) == {"part": 3}
    assert got == [1, 2, 3]
    assert transport.sent == [{"first": 0}, {"rest": 1}, {"rest": 2}]
    assert time.sleeps == [0.1, 0.2]  # backoff between the parts, as for throttles


async def test_unprocessed_parts_give_up_as_throttled() -> None:
    time = VirtualTime()
    transport = Scripted(time, *[{} for _ in range(3)])
    s = sender(time, transport, attempts=3)
    with pytest.raises(Failed) as info:
        await s.send("BatchGetItem", {}, idempotent=True, more=lambda _response: {"again": 1})
    assert info.value.error.outcome is Outcome.THROTTLED
    assert info.value.error.code == "UnprocessedKeys"
    assert info.value.attempts == 3


async def test_the_wire_mark_is_set_only_while_a_request_awaits_its_answer() -> None:
    class Mark:
        on_wire = False

    time = VirtualTime()
    mark = Mark()
    seen: list[bool] = []

    class Watching(Scripted):
        async def call(self, operation: str, params: Mapping[str, Any]) -> dict[str, Any]:
            seen.append(mark.on_wire)
            return await super().call(operation, params)

    transport = Watching(time, throttled(), {"ok": 1})
    s = sender(time, transport)
    await s.send("UpdateItem", {}, idempotent=False, key="k", wire=mark)
    assert seen == [True, True] and mark.on_wire is False


async def test_a_cancelled_request_stays_marked_on_the_wire() -> None:
    class Mark:
        on_wire = False

    sent = asyncio.Event()

    class Hanging:
        async def call(self, operation: str, params: Mapping[str, Any]) -> dict[str, Any]:
            sent.set()
            await asyncio.Event().wait()
            raise AssertionError

        async def aclose(self) -> None:
            pass

    mark = Mark()
    slots = Slots(1)
    s = Sender(
        policy=RetryPolicy(),
        clock=Clock(),
        observers=Observers(),
        slots=slots,
        transport=Hanging(),
    )
    task = asyncio.create_task(s.send("UpdateItem", {}, idempotent=False, key="k", wire=mark))
    await sent.wait()
    assert mark.on_wire
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert mark.on_wire  # the write may have applied: its stage reports it ambiguous
    assert slots.try_take()  # and the slot was given back
    assert s.in_flight == 0


async def test_a_sender_without_a_transport_refuses() -> None:
    s = Sender(policy=RetryPolicy(), clock=Clock(), observers=Observers(), slots=Slots(1))
    with pytest.raises(RuntimeError, match="not open"):
        await s.send("GetItem", {}, idempotent=True)
