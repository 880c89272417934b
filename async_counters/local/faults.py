"""Faults and latency: seeded draws the front makes for each request.

The fault injector draws one number per eligible request, so the same `Faults.seed` gives the
same sequence of faults over the same sequence of requests.
"""

from __future__ import annotations

import random
from typing import Final, Literal

from async_counters.local.config import Faults, Latency

Fault = Literal[
    "throttle", "error_before_apply", "error_after_apply", "drop_after_apply", "delay_after_apply"
]
FAULTS: Final[tuple[Fault, ...]] = (
    "throttle",
    "error_before_apply",
    "error_after_apply",
    "drop_after_apply",
    "delay_after_apply",
)


class FaultInjector:
    """Decides, request by request, which fault (if any) happens."""

    __slots__ = ("_random", "faults")

    def __init__(self, faults: Faults) -> None:
        self.faults = faults
        self._random = random.Random(faults.seed)

    def draw(self, operation: str) -> Fault | None:
        faults = self.faults
        if not faults.active or operation not in faults.operations:
            return None
        point = self._random.random()
        for kind in FAULTS:
            rate: float = getattr(faults, kind)
            if point < rate:
                return kind
            point -= rate
        return None


class LatencyModel:
    """Seconds to hold each request: uniform in ``[mean - jitter, mean + jitter]``."""

    __slots__ = ("_random", "latency")

    def __init__(self, latency: Latency) -> None:
        self.latency = latency
        self._random = random.Random(latency.seed)

    def draw(self) -> float:
        latency = self.latency
        if latency.jitter == 0:
            return latency.mean
        return self._random.uniform(latency.mean - latency.jitter, latency.mean + latency.jitter)
