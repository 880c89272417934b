"""Pure arithmetic of merged writes: which amounts of a batch may go, and on what condition.

A batch is a key's increments and decrements in arrival order; it is sent as one ``ADD`` of their
sum. Its serial order is the arrival order, so decrement ``i`` with a floor ``f`` needs
``value + prefix_i >= f``, where ``prefix_i`` sums the batch up to and including ``i``. The write is
made conditional on ``value >= max(f - prefix_i)``: one condition keeps every floor of the batch.

When that condition fails and the current value is known (from ``ALL_OLD`` or a consistent read),
the floored decrements that fit are granted in arrival order and the others refused; increments
are always granted. Nothing is applied until a write succeeds, so a refusal based on the value
read is a linearizable answer: the decrement was refused at that moment.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Plan", "caller_values", "plan"]


@dataclass(frozen=True, slots=True)
class Plan:
    """What to send for a batch.

    ``granted``: indices that go into the write (arrival order); ``refused``: ``(index, value)``
    pairs of floored decrements that cannot fit, with the value each would have met; ``total``: the
    sum of the granted amounts; ``minimum``: the value the counter must hold for the write to keep
    every granted floor (None: no condition).
    """

    granted: list[int]
    refused: list[tuple[int, int]]
    total: int
    minimum: int | None


def plan(deltas: Sequence[int], floors: Sequence[int | None], current: int | None = None) -> Plan:
    """Plan a batch of ``deltas`` with their ``floors``, knowing the ``current`` value or not.

    >>> plan([5, -3, -4], [None, 0, 0], current=1)
    Plan(granted=[0, 1], refused=[(2, 3)], total=2, minimum=-2)
    """
    granted: list[int] = []
    refused: list[tuple[int, int]] = []
    prefix = 0
    minimum: int | None = None
    for index, (delta, floor) in enumerate(zip(deltas, floors, strict=True)):
        if floor is not None and current is not None and current + prefix + delta < floor:
            refused.append((index, current + prefix))
            continue
        prefix += delta
        granted.append(index)
        if floor is not None:
            need = floor - prefix
            minimum = need if minimum is None or need > minimum else minimum
    return Plan(granted, refused, prefix, minimum)


def caller_values(total_after: int, deltas: Sequence[int]) -> list[int]:
    """Each caller's value in a batch that left the counter at ``total_after``.

    The batch applied ``sum(deltas)`` at once; in its serial order (arrival order) caller ``i``
    saw ``total_after - sum(deltas) + deltas[0] + ... + deltas[i]``: distinct values for
    increments, so that a ticket counter hands out unique numbers.

    >>> caller_values(10, [1, 1, 1])
    [8, 9, 10]
    """
    running = total_after - sum(deltas)
    values = []
    for delta in deltas:
        running += delta
        values.append(running)
    return values
