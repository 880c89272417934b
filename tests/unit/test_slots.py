"""The in-flight bound: taken without a coroutine when free, handed over in order."""

from __future__ import annotations

import asyncio

import pytest

from async_counters.slots import Slots


async def test_slots_are_handed_to_waiters_in_order() -> None:
    slots = Slots(1)
    assert slots.try_take()
    assert not slots.try_take()
    order: list[int] = []

    async def waiter(i: int) -> None:
        await slots.take()
        order.append(i)

    tasks = [asyncio.create_task(waiter(i)) for i in range(3)]
    await asyncio.sleep(0)
    for _ in range(3):
        slots.release()
        await asyncio.sleep(0)
    await asyncio.gather(*tasks)
    assert order == [0, 1, 2]
    assert slots.free == 0 and not slots.waiters


async def test_a_cancelled_waiter_neither_loses_nor_keeps_a_slot() -> None:
    slots = Slots(1)
    assert slots.try_take()
    first = asyncio.create_task(slots.take())
    second = asyncio.create_task(slots.take())
    await asyncio.sleep(0)
    slots.release()  # handed to `first`...
    first.cancel()  # ...which is cancelled before it runs: it must pass the slot on
    with pytest.raises(asyncio.CancelledError):
        await first
    await second
    second_gone = asyncio.create_task(slots.take())
    await asyncio.sleep(0)
    second_gone.cancel()  # cancelled while waiting: it leaves the queue
    with pytest.raises(asyncio.CancelledError):
        await second_gone
    assert not slots.waiters
    slots.release()
    assert slots.free == 1
