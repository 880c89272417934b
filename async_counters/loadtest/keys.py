"""Which counter each operation hits, and by how much: seeded, so a run can be repeated.

Distributions over ``K`` keys:

- ``uniform``: every key alike;
- ``zipf``: key ``i`` (from 0) with weight ``1 / (i + 1) ** s`` (contention on a few hot keys, the
  shape of real traffic);
- ``hot``: key 0 takes ``hot_share`` of the operations, the rest spread uniformly over all keys.
"""

from __future__ import annotations

import bisect
import itertools
import random
from collections.abc import Callable, Sequence

from .config import Workload

__all__ = ["Operation", "OperationSource", "key_chooser"]

# (key, delta): delta > 0 is an increment, < 0 a decrement (floored at the workload's floor)
Operation = tuple[str, int]


def key_chooser(
    keys: Sequence[str],
    distribution: str,
    rng: random.Random,
    *,
    zipf_exponent: float = 1.0,
    hot_share: float = 0.5,
) -> Callable[[], str]:
    """A function returning the next key under ``distribution``."""
    if not keys:
        raise ValueError("no keys to choose from")
    draw = rng.random
    count = len(keys)
    if distribution == "uniform" or count == 1:
        return lambda: keys[int(draw() * count)]
    if distribution == "zipf":
        weights = (1.0 / (index + 1) ** zipf_exponent for index in range(count))
        cumulative = list(itertools.accumulate(weights))
        total = cumulative[-1]
        last = count - 1

        def zipf() -> str:
            return keys[min(last, bisect.bisect_right(cumulative, draw() * total))]

        return zipf
    if distribution == "hot":
        hot = keys[0]

        def hot_key() -> str:
            if draw() < hot_share:
                return hot
            return keys[int(draw() * count)]

        return hot_key
    raise ValueError(f"unknown distribution {distribution!r}")


class OperationSource:
    """The stream of operations of one worker: ``source()`` returns the next ``(key, delta)``."""

    def __init__(self, workload: Workload, keys: Sequence[str], seed: int) -> None:
        self._rng = random.Random(seed)
        self._key = key_chooser(
            keys,
            workload.distribution,
            self._rng,
            zipf_exponent=workload.zipf_exponent,
            hot_share=workload.hot_share,
        )
        self._low = workload.amount_min
        self._high = workload.amount_max
        self._decrements = workload.decrement_share

    def __call__(self) -> Operation:
        key = self._key()
        rng = self._rng
        amount = self._low if self._low == self._high else rng.randint(self._low, self._high)
        if self._decrements and rng.random() < self._decrements:
            return key, -amount
        return key, amount
