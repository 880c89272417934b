"""What a run measured, in fixed memory: HdrHistograms, per-key sums and per-second rows.

Nothing here keeps a record per operation. A worker (`WorkerRecorder`, one per process) counts
outcomes through the pool's hooks, sums acknowledged deltas per key, and every interval hands a
`Tick` (counts plus an encoded interval histogram) to the parent; the parent's `Timeline` merges
the ticks of all workers into one row per interval and forgets their histograms.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from typing import Any, Final, TypedDict

from hdrh.histogram import HdrHistogram

from async_counters.stats import PoolHooks
from async_counters.transport import Outcome

__all__ = [
    "COUNT_NAMES",
    "HdrLatency",
    "KeyTally",
    "Tick",
    "Timeline",
    "WorkerRecorder",
    "WorkerResult",
    "merge_key_tallies",
]

#: Latency is recorded in microseconds from 1 µs to 1 hour, to 3 significant digits.
_LOWEST_US: Final = 1
_HIGHEST_US: Final = 3_600_000_000
_DIGITS: Final = 3
PERCENTILES: Final = (("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p99.9", 99.9))
#: A timeline row shorter than this share of the interval is a partial one (the run's last).
PARTIAL_SHARE: Final = 0.9

#: The counts every tick and result carry, summed across workers.
COUNT_NAMES: Final = (
    "operations",  # finished operations (increments and decrements), whatever the outcome
    "acknowledged",
    "increments",  # acknowledged increments
    "decrements",  # acknowledged decrements
    "floor_refused",
    "ambiguous",
    "throttled",  # gave up while throttled (retries ran out): not applied
    "unreachable",  # gave up unable to connect: not applied
    "cancelled",
    "errors",  # any other refusal: not applied
    "requests",  # requests sent, retries included
    "retries",
    "throttles",  # throttled responses received
    "started",  # operations handed to the pool
    "dropped",  # open loop: due before the end, never started (the rate was not held)
    "denied",  # --limit: hits the rate limiter denied (their window was full)
)

_OUTCOME_COUNT: Final = {
    Outcome.CONDITION_FAILED: "floor_refused",
    Outcome.AMBIGUOUS: "ambiguous",
    Outcome.THROTTLED: "throttled",
    Outcome.UNREACHABLE: "unreachable",
    Outcome.CANCELLED: "cancelled",
}


class HdrLatency:
    """An HdrHistogram of seconds (stored as µs), encodable to merge across processes."""

    __slots__ = ("_hdr",)

    def __init__(self) -> None:
        self._hdr = HdrHistogram(_LOWEST_US, _HIGHEST_US, _DIGITS)

    def record(self, seconds: float) -> None:
        micros = int(seconds * 1e6)
        self._hdr.record_value(min(_HIGHEST_US, max(_LOWEST_US, micros)))

    @property
    def count(self) -> int:
        return int(self._hdr.get_total_count())

    def encode(self) -> str:
        return str(self._hdr.encode().decode("ascii"))

    def add_encoded(self, encoded: str) -> None:
        self._hdr.decode_and_add(encoded.encode("ascii"))

    def reset(self) -> None:
        self._hdr.reset()

    def summary_ms(self) -> dict[str, float]:
        """Count, mean, p50, p90, p99, p99.9 and max, in milliseconds (zeros when empty)."""
        hdr = self._hdr
        count = self.count
        summary: dict[str, float] = {"count": count}
        if count == 0:
            summary.update({"mean": 0.0, "max": 0.0, **{name: 0.0 for name, _ in PERCENTILES}})
            return summary
        summary["mean"] = round(hdr.get_mean_value() / 1000, 3)
        for name, percentile in PERCENTILES:
            summary[name] = hdr.get_value_at_percentile(percentile) / 1000
        summary["max"] = hdr.get_max_value() / 1000
        return summary


class KeyTally(TypedDict):
    """What one key saw: ``acknowledged`` net delta, and ambiguous deltas split by sign.

    The key's true change lies in ``[acknowledged + ambiguous_down, acknowledged + ambiguous_up]``.
    """

    acknowledged: int
    ambiguous_up: int
    ambiguous_down: int


class Tick(TypedDict):
    """One worker's interval ``index`` (``seconds`` long): counts and the interval's histogram."""

    index: int
    seconds: float
    counts: dict[str, int]
    histogram: str


class WorkerResult(TypedDict):
    """Everything a worker hands back when it is done."""

    worker: int
    worker_id: str
    seconds: float
    counts: dict[str, int]
    errors: dict[str, int]
    acknowledged_amount: int
    write_units: float
    read_units: float
    #: The worker's own ledger requests (``--run-id``), not the workload's.
    ledger_write_units: float
    ledger_read_units: float
    histogram: str
    keys: dict[str, KeyTally]
    stopped_early: str | None
    #: --limit: hits denied, per ``key@window start`` (empty otherwise).
    denied: dict[str, int]


class WorkerRecorder(PoolHooks):
    """A worker's tally: pool hooks for outcomes, `record_latency` for the driver's latency."""

    def __init__(self, *, by_window: bool = False) -> None:
        # --window/--limit: per-key tallies are kept by the driver per ``key@window start``
        # (`window_sending`, `window_settled`), not by the pool's hooks per counter.
        self.by_window = by_window
        self.denied: Counter[str] = Counter()
        self.totals: Counter[str] = Counter()
        self.interval: Counter[str] = Counter()
        self.histogram = HdrLatency()
        self.interval_histogram = HdrLatency()
        self.acknowledged: defaultdict[str, int] = defaultdict(int)
        self.ambiguous_up: defaultdict[str, int] = defaultdict(int)
        self.ambiguous_down: defaultdict[str, int] = defaultdict(int)
        # Deltas sent and not yet settled, by key: what a record written mid-run must bound.
        self.pending_up: defaultdict[str, int] = defaultdict(int)
        self.pending_down: defaultdict[str, int] = defaultdict(int)
        self.acknowledged_amount = 0
        self._index = 0

    # -- pool hooks --------------------------------------------------------------------------

    def on_request(self, operation: str, outcome: Outcome, seconds: float) -> None:
        self.interval["requests"] += 1
        if outcome is Outcome.THROTTLED:
            self.interval["throttles"] += 1

    def on_retry(
        self, operation: str, key: str | None, outcome: Outcome, attempt: int, delay: float
    ) -> None:
        self.interval["retries"] += 1

    def on_settled(self, key: str, delta: int, outcome: Outcome, seconds: float) -> None:
        interval = self.interval
        interval["operations"] += 1
        if self.by_window:
            if outcome is Outcome.ACKNOWLEDGED:
                interval["acknowledged"] += 1
                interval["increments"] += 1
                self.acknowledged_amount += delta
            else:
                interval[_OUTCOME_COUNT.get(outcome, "errors")] += 1
            return
        if delta > 0:
            self.pending_up[key] -= delta
        else:
            self.pending_down[key] -= delta
        if outcome is Outcome.ACKNOWLEDGED:
            interval["acknowledged"] += 1
            interval["increments" if delta > 0 else "decrements"] += 1
            self.acknowledged[key] += delta
            self.acknowledged_amount += delta
        elif outcome is Outcome.AMBIGUOUS:
            interval["ambiguous"] += 1
            if delta > 0:
                self.ambiguous_up[key] += delta
            else:
                self.ambiguous_down[key] += delta
        else:
            interval[_OUTCOME_COUNT.get(outcome, "errors")] += 1

    # -- the windowed driver (--window, --limit) ---------------------------------------------

    def window_sending(self, name: str, amount: int) -> None:
        """An addition of ``amount`` to ``name`` (``key@window start``) is about to go."""
        self.pending_up[name] += amount

    def window_settled(self, name: str, amount: int, outcome: Outcome, *, hit: bool) -> None:
        """How it ended: ACKNOWLEDGED (added, or a hit admitted), AMBIGUOUS (may have been
        added: an unknown outcome, or a hit decided on an error), anything else not added
        (CONDITION_FAILED: a hit denied). ``hit``: a rate-limiter hit, which no pool hook
        counts: its operation is counted here."""
        self.pending_up[name] -= amount
        if outcome is Outcome.ACKNOWLEDGED:
            self.acknowledged[name] += amount
        elif outcome is Outcome.AMBIGUOUS:
            self.ambiguous_up[name] += amount
        if not hit:
            return
        interval = self.interval
        interval["operations"] += 1
        if outcome is Outcome.ACKNOWLEDGED:
            interval["acknowledged"] += 1
            interval["increments"] += 1
            self.acknowledged_amount += amount
        elif outcome is Outcome.CONDITION_FAILED:
            interval["denied"] += 1
            self.denied[name] += 1
        else:
            interval["ambiguous"] += 1

    # -- the driver --------------------------------------------------------------------------

    def sending(self, key: str, delta: int) -> None:
        """An operation on ``key`` is about to be submitted to the pool."""
        self.interval["started"] += 1
        if self.by_window:
            return
        if delta > 0:
            self.pending_up[key] += delta
        else:
            self.pending_down[key] += delta

    def drop(self, count: int) -> None:
        """``count`` scheduled operations could not start on time and were never sent."""
        if count:
            self.interval["dropped"] += count

    def unfinished(self) -> int:
        """Operations handed to the pool and not settled yet (after the last `tick`)."""
        started = self.totals["started"] + self.interval["started"]
        return started - self.totals["operations"] - self.interval["operations"]

    def record_latency(self, seconds: float) -> None:
        self.histogram.record(seconds)
        self.interval_histogram.record(seconds)

    def tick(self, seconds: float) -> Tick:
        """Close the current interval: its counts and histogram, then start the next."""
        counts = {name: self.interval[name] for name in COUNT_NAMES}
        self.totals.update(self.interval)
        tick = Tick(
            index=self._index,
            seconds=seconds,
            counts=counts,
            histogram=self.interval_histogram.encode(),
        )
        self.interval.clear()
        self.interval_histogram.reset()
        self._index += 1
        return tick

    def key_tallies(self, *, include_pending: bool = False) -> dict[str, KeyTally]:
        """Per key: acknowledged net delta and the ambiguous bound (plus what is in flight)."""
        names = set(self.acknowledged) | set(self.ambiguous_up) | set(self.ambiguous_down)
        if include_pending:
            names |= {k for k, v in self.pending_up.items() if v}
            names |= {k for k, v in self.pending_down.items() if v}
        tallies: dict[str, KeyTally] = {}
        for key in sorted(names):
            up = self.ambiguous_up.get(key, 0)
            down = self.ambiguous_down.get(key, 0)
            if include_pending:
                up += self.pending_up.get(key, 0)
                down += self.pending_down.get(key, 0)
            tallies[key] = KeyTally(
                acknowledged=self.acknowledged.get(key, 0), ambiguous_up=up, ambiguous_down=down
            )
        return tallies


def merge_key_tallies(tallies: Iterable[Mapping[str, KeyTally]]) -> dict[str, KeyTally]:
    """Sum per-key tallies of several workers (exact integer arithmetic)."""
    merged: dict[str, KeyTally] = {}
    for one in tallies:
        for key, tally in one.items():
            into = merged.setdefault(
                key, KeyTally(acknowledged=0, ambiguous_up=0, ambiguous_down=0)
            )
            into["acknowledged"] += tally["acknowledged"]
            into["ambiguous_up"] += tally["ambiguous_up"]
            into["ambiguous_down"] += tally["ambiguous_down"]
    return merged


class _Partial:
    __slots__ = ("counts", "histogram", "reported", "seconds")

    def __init__(self, histogram: HdrLatency) -> None:
        self.counts: Counter[str] = Counter()
        self.histogram = histogram
        self.reported: set[int] = set()
        self.seconds = 0.0


class Timeline:
    """Merges workers' ticks into one row per interval, in order, as soon as a row is complete.

    A row is complete when every worker has reported that interval or finished; its histogram is
    then reduced to percentiles and dropped. Memory: one small dict per interval.
    """

    def __init__(self, workers: int, interval: float) -> None:
        self._workers = workers
        self._interval = interval
        self._last: dict[int, int] = {}
        self._done: set[int] = set()
        self._partial: dict[int, _Partial] = {}
        # Histograms of finished rows, reset for reuse: an HdrHistogram is ~200 KB of counts
        # that would otherwise be allocated and collected every interval.
        self._spare: list[HdrLatency] = []
        self.rows: list[dict[str, Any]] = []
        self.totals: Counter[str] = Counter()

    def add(self, worker: int, tick: Tick) -> None:
        partial = self._partial.get(tick["index"])
        if partial is None:
            histogram = self._spare.pop() if self._spare else HdrLatency()
            partial = self._partial[tick["index"]] = _Partial(histogram)
        partial.counts.update(tick["counts"])
        partial.histogram.add_encoded(tick["histogram"])
        partial.reported.add(worker)
        partial.seconds = max(partial.seconds, tick["seconds"])
        self._last[worker] = tick["index"]
        self.totals.update(tick["counts"])
        self._flush()

    def finish(self, worker: int) -> None:
        self._done.add(worker)
        self._flush()

    def _flush(self) -> None:
        while True:
            index = len(self.rows)
            partial = self._partial.get(index)
            if partial is None:
                return
            waiting = [
                w
                for w in range(self._workers)
                if w not in self._done and self._last.get(w, -1) < index
            ]
            if waiting:
                return
            del self._partial[index]
            self.rows.append(self._row(index, partial))
            partial.histogram.reset()
            self._spare.append(partial.histogram)

    def _row(self, index: int, partial: _Partial) -> dict[str, Any]:
        seconds = partial.seconds or self._interval
        latency = partial.histogram.summary_ms()
        row: dict[str, Any] = {
            "t": round(index * self._interval + seconds, 3),
            "seconds": round(seconds, 3),
            "rate": round(partial.counts["acknowledged"] / seconds, 1) if seconds else 0.0,
            # The last interval of a run is usually cut short (the drain, a few answers): its
            # rate is of another phase, and is not shown as the rate of the run.
            "partial": seconds < PARTIAL_SHARE * self._interval,
        }
        row.update({name: partial.counts[name] for name in COUNT_NAMES})
        row.update({f"{k}_ms": v for k, v in latency.items() if k != "count"})
        return row

    @property
    def latest(self) -> dict[str, Any] | None:
        return self.rows[-1] if self.rows else None


def percent(part: float, whole: float) -> float:
    return 0.0 if not whole else round(100.0 * part / whole, 3)


def finite(value: float) -> float:
    return value if math.isfinite(value) else 0.0
