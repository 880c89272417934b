"""The bench's fixed-memory measurements: histograms, per-key tallies, the merged timeline."""

from __future__ import annotations

import json
import random

from async_counters.loadtest.config import Workload
from async_counters.loadtest.keys import OperationSource, key_chooser
from async_counters.loadtest.ledger import chunk_tallies, parse_tallies
from async_counters.loadtest.metrics import (
    HdrLatency,
    KeyTally,
    Timeline,
    WorkerRecorder,
    merge_key_tallies,
)
from async_counters.transport import Outcome


def test_histogram_round_trips_through_its_encoding() -> None:
    histogram = HdrLatency()
    for ms in range(1, 1001):
        histogram.record(ms / 1000)
    merged = HdrLatency()
    merged.add_encoded(histogram.encode())
    merged.add_encoded(histogram.encode())
    summary = merged.summary_ms()
    assert summary["count"] == 2000
    assert abs(summary["p50"] - 500) <= 1
    assert abs(summary["p99"] - 990) <= 1
    assert abs(summary["max"] - 1000) <= 1


def test_recorder_tallies_outcomes_per_key() -> None:
    recorder = WorkerRecorder()
    for key, delta, outcome in [
        ("a", 2, Outcome.ACKNOWLEDGED),
        ("a", -1, Outcome.ACKNOWLEDGED),
        ("a", 5, Outcome.AMBIGUOUS),
        ("b", -3, Outcome.AMBIGUOUS),
        ("b", -1, Outcome.CONDITION_FAILED),
        ("b", 1, Outcome.THROTTLED),
    ]:
        recorder.sending(key, delta)
        recorder.on_settled(key, delta, outcome, 0.001)
    recorder.sending("c", 4)  # still in flight
    assert recorder.key_tallies() == {
        "a": KeyTally(acknowledged=1, ambiguous_up=5, ambiguous_down=0),
        "b": KeyTally(acknowledged=0, ambiguous_up=0, ambiguous_down=-3),
    }
    # A record written mid-run bounds what is in flight as ambiguous.
    assert recorder.key_tallies(include_pending=True)["c"] == KeyTally(
        acknowledged=0, ambiguous_up=4, ambiguous_down=0
    )
    tick = recorder.tick(1.0)
    assert tick["counts"]["operations"] == 6
    assert tick["counts"]["acknowledged"] == 2
    assert tick["counts"]["increments"] == 1 and tick["counts"]["decrements"] == 1
    assert tick["counts"]["ambiguous"] == 2
    assert tick["counts"]["floor_refused"] == 1
    assert tick["counts"]["throttled"] == 1
    assert recorder.tick(1.0)["counts"]["operations"] == 0
    assert recorder.totals["operations"] == 6


def test_merge_key_tallies_sums_exactly() -> None:
    one = {"a": KeyTally(acknowledged=10**30, ambiguous_up=1, ambiguous_down=0)}
    two = {
        "a": KeyTally(acknowledged=1, ambiguous_up=0, ambiguous_down=-2),
        "b": KeyTally(acknowledged=3, ambiguous_up=0, ambiguous_down=0),
    }
    assert merge_key_tallies([one, two]) == {
        "a": KeyTally(acknowledged=10**30 + 1, ambiguous_up=1, ambiguous_down=-2),
        "b": KeyTally(acknowledged=3, ambiguous_up=0, ambiguous_down=0),
    }


def _tick(recorder: WorkerRecorder, acknowledged: int, latency: float) -> object:
    for _ in range(acknowledged):
        recorder.on_settled("k", 1, Outcome.ACKNOWLEDGED, latency)
        recorder.record_latency(latency)
    return recorder.tick(1.0)


def test_timeline_waits_for_every_worker_then_merges() -> None:
    timeline = Timeline(workers=2, interval=1.0)
    first, second = WorkerRecorder(), WorkerRecorder()
    timeline.add(0, _tick(first, 30, 0.001))  # type: ignore[arg-type]
    assert timeline.rows == []  # worker 1 has not reported interval 0 yet
    timeline.add(1, _tick(second, 10, 0.1))  # type: ignore[arg-type]
    assert len(timeline.rows) == 1
    row = timeline.rows[0]
    assert row["acknowledged"] == 40 and row["rate"] == 40.0
    assert row["p50_ms"] < 2 and 99 < row["max_ms"] < 101
    timeline.add(0, _tick(first, 5, 0.001))  # type: ignore[arg-type]
    assert len(timeline.rows) == 1
    timeline.finish(1)  # worker 1 is done: interval 1 is complete with worker 0 alone
    assert [r["acknowledged"] for r in timeline.rows] == [40, 5]
    assert timeline.totals["acknowledged"] == 45


def test_ledger_chunks_stay_small_and_round_trip() -> None:
    tallies = {
        f"bench:run:{i:05d}": KeyTally(acknowledged=i * 10**20, ambiguous_down=-i, ambiguous_up=i)
        for i in range(3000)
    }
    chunks = chunk_tallies(tallies, limit=20_000)
    assert len(chunks) > 1
    assert all(len(chunk) <= 20_000 for chunk in chunks)
    merged: dict[str, KeyTally] = {}
    for chunk in chunks:
        json.loads(chunk)
        merged.update(parse_tallies(chunk))
    assert merged == tallies
    assert chunk_tallies({}) == ["{}"]


def test_key_choosers_follow_their_distribution() -> None:
    keys = [f"k{i}" for i in range(10)]
    for distribution, top_share in (("uniform", 0.1), ("zipf", 0.34), ("hot", 0.55)):
        choose = key_chooser(keys, distribution, random.Random(1), hot_share=0.5)
        draws = [choose() for _ in range(20_000)]
        assert set(draws) == set(keys)
        share = draws.count("k0") / len(draws)
        assert abs(share - top_share) < 0.02, (distribution, share)


def test_operation_source_is_seeded_and_mixes_decrements() -> None:
    workload = Workload(keys=5, amount_min=2, amount_max=4, decrement_share=0.25)
    keys = workload.key_names()
    first = OperationSource(workload, keys, seed=7)
    again = OperationSource(workload, keys, seed=7)
    ops = [first() for _ in range(4000)]
    assert ops == [again() for _ in range(4000)]
    negatives = sum(delta < 0 for _, delta in ops)
    assert 0.2 < negatives / len(ops) < 0.3
    assert {abs(delta) for _, delta in ops} == {2, 3, 4}
