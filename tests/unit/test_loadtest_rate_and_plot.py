"""An open loop that cannot hold its rate, in virtual time; what the last, partial interval of a
run shows; and the plot read as a person reads it (tick labels, legends, the last point)."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest

from async_counters.loadtest.drivers import LATE_START_GRACE, Stop, open_loop
from async_counters.loadtest.live import progress_line, rate_text
from async_counters.loadtest.metrics import WorkerRecorder
from async_counters.loadtest.plot import figure_of, plotted_rows
from tests.unit.test_loadtest_drivers import FakeCounters, VirtualTime, ones


class SlowCounters(FakeCounters):
    """Every call takes ``seconds`` of virtual time: with a bound on what is outstanding, it
    serves at most ``bound / seconds`` operations a second."""

    def __init__(self, time: VirtualTime, seconds: float) -> None:
        super().__init__(time)
        self.seconds = seconds

    async def _apply(self, key: str, delta: int) -> int:
        self.calls += 1
        await self.time.sleep(self.seconds)
        return 0


async def run_open_loop(pool: FakeCounters, time: VirtualTime, **options: Any) -> WorkerRecorder:
    recorder = WorkerRecorder()
    await time.run(
        open_loop(pool, recorder, ones(), floor=0, clock=time.clock, sleep=time.sleep, **options)
    )
    recorder.tick(1.0)
    return recorder


async def test_an_open_loop_that_cannot_keep_up_drops_what_is_due_at_its_end() -> None:
    # 1,000/s asked for 5 s; 10 outstanding at most, each taking 0.1 s: 100/s can start.
    time = VirtualTime()
    pool = SlowCounters(time, 0.1)
    stop = Stop(None, deadline=5.0, deadline_is_limit=False)
    recorder = await run_open_loop(
        pool, time, rate=1000.0, start=0.0, stop=stop, max_outstanding=10
    )
    totals = recorder.totals
    assert totals["started"] + totals["dropped"] == 5000  # everything due before the end
    # Late operations kept starting until the end's grace, then the rest was dropped.
    assert totals["started"] == pool.calls == recorder.histogram.count  # all of them finished
    assert round((5.0 + LATE_START_GRACE) / 0.1 * 10) - 10 <= totals["started"] <= 600 + 10
    assert totals["dropped"] > 4000
    # Ended: no operation started after the end plus the grace, and all finished by then + 0.1.
    assert time.now <= 5.0 + LATE_START_GRACE + 0.1 + 1e-9


async def test_an_open_loop_that_keeps_up_drops_nothing() -> None:
    time = VirtualTime()
    pool = SlowCounters(time, 0.01)
    stop = Stop(None, deadline=2.0, deadline_is_limit=False)
    recorder = await run_open_loop(pool, time, rate=100.0, start=0.0, stop=stop, max_outstanding=10)
    assert recorder.totals["started"] == 200 and recorder.totals["dropped"] == 0


async def test_a_count_limited_open_loop_drops_no_more_than_its_count() -> None:
    time = VirtualTime()
    pool = SlowCounters(time, 1.0)
    stop = Stop(50, deadline=1.0, deadline_is_limit=False)
    recorder = await run_open_loop(pool, time, rate=100.0, start=0.0, stop=stop, max_outstanding=5)
    assert recorder.totals["started"] + recorder.totals["dropped"] == 50


async def test_an_interrupted_open_loop_counts_nothing_as_dropped() -> None:
    time = VirtualTime()
    pool = SlowCounters(time, 0.5)
    stop = Stop(None, deadline=10.0, deadline_is_limit=False)

    async def interrupt() -> None:
        await time.sleep(1.0)
        stop.requested = True

    asyncio.get_running_loop().create_task(interrupt())
    recorder = await run_open_loop(pool, time, rate=100.0, start=0.0, stop=stop, max_outstanding=5)
    assert recorder.totals["dropped"] == 0 and stop.reason == "interrupted"


def row(t: float, seconds: float, acknowledged: int, **latency: float) -> dict[str, Any]:
    values = {"p50": 2.0, "p90": 5.0, "p99": 20.0, "max": 40.0, **latency}
    return {
        "t": t,
        "seconds": seconds,
        "rate": acknowledged / seconds,
        "partial": seconds < 0.9,
        "acknowledged": acknowledged,
        "throttles": 0,
        **{f"{name}_ms": value for name, value in values.items()},
    }


def test_the_last_progress_line_shows_the_average_rate_not_the_partial_seconds() -> None:
    totals = Counter({"acknowledged": 6040, "operations": 6040})
    last = row(3.1, 0.1, 40)  # the drain: 40 answers in a tenth of a second
    line = progress_line(last, totals, 6040)
    assert f"rate {6040 / 3.1:,.0f}/s avg" in line
    assert "rate 400/s" not in line
    full = row(2.0, 1.0, 2000)
    assert "rate 2,000/s " in progress_line(full, totals, None)


@pytest.mark.parametrize(
    ("rate", "text"), [(1e6, "1,000,000/s"), (200.0, "200/s"), (12.5, "12.50/s")]
)
def test_rates_read_as_numbers(rate: float, text: str) -> None:
    assert rate_text(rate) == text


def test_the_plot_leaves_out_the_partial_last_interval() -> None:
    rows = [row(1.0, 1.0, 2000), row(2.0, 1.0, 2000), row(2.1, 0.1, 20, p50=90.0)]
    assert plotted_rows(rows) == rows[:2]
    assert plotted_rows(rows[2:]) == rows[2:]  # a run shorter than one interval keeps its point


def test_the_plot_reads_at_a_glance() -> None:
    from matplotlib import pyplot

    rows = [row(float(t), 1.0, 2000 + 10 * t, p50=3.0 + t) for t in range(1, 11)]
    rows.append(row(10.2, 0.2, 30, p50=400.0, max=900.0))
    figure = figure_of(rows, title="bench")
    try:
        figure.canvas.draw()
        renderer = figure.canvas.get_renderer()
        rate, latency = figure.axes
        for axes in (rate, latency):
            # No point for the partial last interval, in either panel.
            for line in axes.get_lines():
                assert max(line.get_xdata()) == 10.0
            # The legend sits beside the panel, over none of its data.
            legend = axes.get_legend().get_window_extent(renderer)
            assert legend.x0 >= axes.get_window_extent(renderer).x1
        labels = [label.get_text() for label in latency.get_yticklabels() if label.get_text()]
        assert labels and all(text.replace(",", "").replace(".", "").isdigit() for text in labels)
        assert "20" in labels or "10" in labels  # plain numbers, not 2x10^1 in mathtext
        assert not [label for label in latency.get_yticklabels(minor=True) if label.get_text()]
        rates = [label.get_text() for label in rate.get_yticklabels() if label.get_text()]
        assert "2,000" in rates
    finally:
        pyplot.close(figure)
