"""The pacing grid's own reading of its lines (`tests/pacing_grid.py`): what misses a target and
what moved against a saved run, and a trace that accounts for every request of its case."""

from __future__ import annotations

import pytest

from tests import pacing_grid
from tests.unit.partition_sim import Timeline, load
from tests.unit.virtual_loop import run_virtual

LINE = (
    "{case:30s} good {good}% steady {steady}% req/ack {per_ack} steady 1.010 failed {failed} "
    "p50 1589 p99 1687 max 1930 ms drain 1.55 thr 42"
)


def line(
    case: str, good: int = 100, steady: int = 100, per_ack: str = "1.050", failed: int = 0
) -> str:
    return LINE.format(case=case, good=good, steady=steady, per_ack=per_ack, failed=failed)


def test_a_case_misses_on_any_of_its_targets() -> None:
    rows = pacing_grid.parse_rows(
        [
            line("a"),
            line("b", good=94),
            line("c", steady=94),
            line("d", per_ack="1.101"),
            line("e", failed=1),
            "not a line of a run",
        ]
    )
    assert sorted(rows) == ["a", "b", "c", "d", "e"]
    assert [case for case, row in rows.items() if row.misses] == ["b", "c", "d", "e"]
    assert pacing_grid.summary(rows).startswith("4 of 5 cases miss a target")


def test_a_comparison_names_what_moved_and_not_what_stayed() -> None:
    before = pacing_grid.parse_rows([line("a"), line("b"), line("c"), line("d", per_ack="1.101")])
    after = pacing_grid.parse_rows(
        [line("a", per_ack="1.060"), line("b", per_ack="1.090"), line("c", steady=97), line("d")]
    )
    report = pacing_grid.compare(before, after)
    assert [r.split()[0] for r in report[:-1]] == ["b", "c", "d"]
    assert report[0].endswith("worse") and report[1].endswith("worse")
    assert report[2].endswith("better")
    assert report[-1] == (
        "against the saved run: 2 worse, 1 better of 4; it missed a target in 1 of 4"
    )


def test_the_grid_is_the_one_the_readme_cites() -> None:
    cases = list(pacing_grid.cases())
    assert len(cases) == len(set(cases)) == 196
    for case in cases:
        pacing_grid.parse_case(case)


def test_the_table_grid_shares_one_cap_among_its_keys() -> None:
    cases = list(pacing_grid.table_cases())
    assert len(cases) == len(set(cases)) == 144
    parsed = [pacing_grid.parse_case(case) for case in cases]
    assert {(c.scope, c.shards) for c in parsed} == {("table", 1)}
    assert {c.keys for c in parsed} == {1, 32}
    assert not set(cases) & set(pacing_grid.cases())  # apart from the grid the README cites
    one = pacing_grid.parse_case("20:1:64:30:10:8:gcra:1")
    assert (one.scope, one.shards, one.keys) == ("partition", 8, 1)


def test_a_table_case_caps_its_keys_together() -> None:
    """The cap of a ``tN`` case is the table's: its keys share it, where each key of a
    partition case has its own."""
    case = pacing_grid.parse_case("20:0.05:64:3:1:t4:gcra:1")
    result = case.run()
    assert result.value == result.acks_total  # exact, read back over every key
    assert result.requests > result.acks_total  # it was throttled
    # 4 keys of 20/s each would take 240 in 3 s: the table's 20/s (and a token of burst) bind
    # them, and the 64 calls pending at the end drain after it.
    assert result.acks_total <= 20.0 * 3.0 + 1 + 64, result.line()


@pytest.mark.parametrize(
    "case",
    [
        "10:x:16:30:10:1:gcra:2",
        "10:1:16:30:10:1:gcra",
        "10:1:16:30:10:1:fifo:1",
        "10:1:16:30:10:tx:gcra:1",
        "10:1:16:30:10:t0:gcra:1",
    ],
)
def test_a_case_written_wrong_is_one_line_that_says_the_form(case: str) -> None:
    with pytest.raises(SystemExit, match=r"pacing_grid: .* is not cap:burst:callers"):
        pacing_grid.parse_case(case)


def test_a_trace_counts_every_request_of_its_case_once() -> None:
    timeline = Timeline(pacing_grid.EDGES)
    result = run_virtual(
        load(
            shape="gcra",
            rate=100.0,
            burst=1.0,
            callers=16,
            seconds=3.0,
            warmup=1.0,
            timeline=timeline,
        )
    )
    assert sum(timeline.requests) == result.requests
    assert sum(timeline.throttled) == result.requests - result.acks_total
    assert timeline.throttled[0] == 0  # the bucket starts full: its first writes pass


def test_a_sharded_run_repeats_exactly() -> None:
    """The pool picks among equally ready shards at random: the simulator seeds that too, so a
    change to the pacer is read against the same runs, and a test of shards cannot flake."""

    def run() -> tuple[int, int, float, float]:
        result = run_virtual(
            load(shape="gcra", rate=20.0, burst=0.05, callers=64, seconds=3.0, warmup=1.0, shards=8)
        )
        return result.requests, result.acks_total, result.latency.max, result.drain

    assert run() == run()
