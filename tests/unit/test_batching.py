"""The arithmetic of merged writes, as tables of cases."""

from __future__ import annotations

import itertools
import random

import pytest

from async_counters.batching import caller_values, plan


@pytest.mark.parametrize(
    ("deltas", "floors", "current", "granted", "refused", "total", "minimum"),
    [
        # no floors: everything goes, unconditionally
        ([1, 2, 3], [None, None, None], None, [0, 1, 2], [], 6, None),
        # value unknown: grant all, on the condition that keeps every floor
        ([5, -3, -4], [None, 0, 0], None, [0, 1, 2], [], -2, 2),
        # the condition failed at value 1: the last decrement cannot fit
        ([5, -3, -4], [None, 0, 0], 1, [0, 1], [(2, 3)], 2, -2),
        # increments arriving after a decrement do not help it
        ([-1, 10], [0, None], 0, [1], [(0, 0)], 10, None),
        # refused ones do not consume: a later smaller decrement may still fit
        ([-5, -1], [0, 0], 3, [1], [(0, 3)], -1, 1),
        # floors other than 0, and negative floors
        ([-2, -2, -2], [-3, -3, -3], 0, [0], [(1, -2), (2, -2)], -2, -1),
    ],
)
def test_plan(
    deltas: list[int],
    floors: list[int | None],
    current: int | None,
    granted: list[int],
    refused: list[tuple[int, int]],
    total: int,
    minimum: int | None,
) -> None:
    result = plan(deltas, floors, current)
    assert (result.granted, result.refused, result.total, result.minimum) == (
        granted,
        refused,
        total,
        minimum,
    )


def test_a_plan_made_knowing_the_value_passes_its_own_condition_and_never_oversells() -> None:
    rng = random.Random(5)
    for _ in range(2_000):
        n = rng.randint(1, 8)
        deltas = [rng.choice([1, 2, -1, -2, -3]) for _ in range(n)]
        floors = [rng.choice([None, 0, -1, 2]) if d < 0 else None for d in deltas]
        current = rng.randint(-3, 6)
        result = plan(deltas, floors, current)
        assert result.minimum is None or current >= result.minimum
        value = current
        for index in result.granted:  # replay the granted ones in their serial order
            value += deltas[index]
            floor = floors[index]
            assert floor is None or value >= floor
        assert value == current + result.total
        assert sorted(result.granted + [i for i, _ in result.refused]) == list(range(n))


def test_caller_values_are_the_serial_order() -> None:
    assert caller_values(10, [1, 1, 1]) == [8, 9, 10]
    assert caller_values(0, [5, -3, -2]) == [5, 2, 0]
    values = caller_values(1_000, [1] * 100)
    assert values == list(range(901, 1_001))
    assert len(set(values)) == len(values)
    assert list(itertools.accumulate([3, 4], initial=0))[1:] == [
        v - (10 - 7) for v in caller_values(10, [3, 4])
    ]
