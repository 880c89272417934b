"""What the bench shows while it runs: a rich live display on a terminal, plain lines elsewhere.

Both show, once per interval: done/total, the rate now, p99 now, throttles, retries, errors.
"""

from __future__ import annotations

from collections import Counter
from typing import IO, Any

from .config import RunConfig

__all__ = ["PlainView", "QuietView", "RichView", "choose_view", "progress_line", "rate_text"]


def rate_text(rate: float) -> str:
    """``1,000,000/s``, ``12.5/s``: a rate as a person writes it (never ``1e+06/s``)."""
    return f"{rate:,.0f}/s" if rate == int(rate) else f"{rate:,.2f}/s".replace(".00/s", "/s")


def _errors(totals: Counter[str]) -> int:
    return sum(totals[name] for name in ("throttled", "unreachable", "errors", "cancelled"))


def shown_rate(row: dict[str, Any], totals: Counter[str]) -> str:
    """The rate of the last interval; for the run's last, partial one, the average so far
    (a few answers in a fraction of a second are no rate of the run)."""
    if row.get("partial") and row["t"] > 0:
        return f"{totals['acknowledged'] / row['t']:,.0f}/s avg"
    return f"{row['rate']:,.0f}/s"


def progress_line(row: dict[str, Any], totals: Counter[str], planned: int | None) -> str:
    """One plain line: elapsed, done/total, rate now, p99 now and the trouble so far."""
    done = totals["operations"]
    of = f"/{planned:,}" if planned is not None else ""
    dropped = f"  dropped {totals['dropped']:,}" if totals["dropped"] else ""
    return (
        f"[{row['t']:7.1f}s] {done:,}{of} ops  rate {shown_rate(row, totals)}  "
        f"p99 {row['p99_ms']:.1f} ms  throttles {totals['throttles']:,}  "
        f"retries {totals['retries']:,}  errors {_errors(totals):,}  "
        f"ambiguous {totals['ambiguous']:,}{dropped}"
    )


class PlainView:
    """A line per interval on a stream that is not a terminal (logs, CI, pipes)."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream

    def _write(self, text: str) -> None:
        self._stream.write(text + "\n")
        self._stream.flush()

    def starting(self, config: RunConfig, target: str) -> None:
        self._write(f"bench: {describe_workload(config)}")
        self._write(f"bench: target {target}")

    def progress(self, row: dict[str, Any], totals: Counter[str], planned: int | None) -> None:
        self._write(progress_line(row, totals, planned))

    def note(self, text: str) -> None:
        self._write(f"bench: {text}")

    def finished(self) -> None:
        pass


class QuietView(PlainView):
    """Nothing while running (``--quiet``)."""

    def starting(self, config: RunConfig, target: str) -> None:
        pass

    def progress(self, row: dict[str, Any], totals: Counter[str], planned: int | None) -> None:
        pass


class RichView:
    """A live display on a terminal: a progress bar, and the rates and trouble of the run."""

    def __init__(self, console: Any) -> None:
        from rich.console import Group
        from rich.live import Live
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
        from rich.text import Text

        self._console = console
        self._progress = Progress(
            TextColumn("[bold]bench[/]"),
            BarColumn(bar_width=None),
            TextColumn("{task.fields[done]}"),
            TimeElapsedColumn(),
            console=console,
            expand=True,
        )
        self._stats = Text("starting", overflow="fold")
        self._live = Live(
            Group(self._progress, self._stats),
            console=console,
            refresh_per_second=4,
            transient=False,
        )
        self._task: Any = None
        self._by_time = False
        self._first = True

    def starting(self, config: RunConfig, target: str) -> None:
        self._console.print(f"[bold]bench[/]: {describe_workload(config)}", highlight=False)
        self._console.print(f"[bold]bench[/]: target {target}", highlight=False)
        workload = config.workload
        planned = workload.operations(workload.rate)
        # A run bounded by time shows its progress in time; one bounded by count, in operations.
        self._by_time = planned is None
        self._task = self._progress.add_task(
            "bench", total=workload.stop_after if planned is None else planned, done=""
        )
        self._live.start()

    def progress(self, row: dict[str, Any], totals: Counter[str], planned: int | None) -> None:
        from rich.text import Text

        if self._task is None:
            return
        if self._first:
            self._first = False
            self._progress.reset(self._task)  # elapsed counts from the start of the load
        done = totals["operations"]
        self._progress.update(
            self._task,
            completed=row["t"] if self._by_time else done,
            done=f"{done:,} ops" if planned is None else f"{done:,}/{planned:,} ops",
        )
        errors = _errors(totals)
        stats = Text.assemble(
            "rate now ",
            (shown_rate(row, totals), "cyan"),
            "  p99 now ",
            (f"{row['p99_ms']:.1f} ms", "cyan"),
            f"  throttles {totals['throttles']:,}  retries {totals['retries']:,}  errors ",
            (f"{errors:,}", "red" if errors else ""),
            "  ambiguous ",
            (f"{totals['ambiguous']:,}", "yellow" if totals["ambiguous"] else ""),
            *((f"  dropped {totals['dropped']:,}", "red"),) if totals["dropped"] else (),
        )
        self._stats.truncate(0)
        self._stats.append_text(stats)

    def note(self, text: str) -> None:
        self._console.print(f"[yellow]bench[/]: {text}")

    def finished(self) -> None:
        if self._live.is_started:
            self._live.stop()


def describe_workload(config: RunConfig) -> str:
    workload = config.workload
    if workload.increments is not None and workload.duration is not None:
        amount = f"{workload.increments:,} operations or {workload.duration:g}s"
    elif workload.increments is not None:
        amount = f"{workload.increments:,} operations"
    else:
        amount = f"{workload.duration:g}s"
    if workload.rate is not None:
        shape = f"open loop at {rate_text(workload.rate)}"
    else:
        shape = f"closed loop, {workload.concurrency} in flight"
    distribution: str = workload.distribution
    if distribution == "zipf":
        distribution = f"zipf(s={workload.zipf_exponent:g})"
    elif distribution == "hot":
        distribution = f"hot ({workload.hot_share:.0%} on one key)"
    amounts = (
        str(workload.amount_min)
        if workload.amount_min == workload.amount_max
        else f"{workload.amount_min}..{workload.amount_max}"
    )
    decrements = (
        f", {workload.decrement_share:.0%} decrements floored at {workload.floor}"
        if workload.decrement_share
        else ""
    )
    processes = f", {config.processes} processes" if config.processes > 1 else ""
    return (
        f"{amount}, {shape}{processes}, {workload.keys} keys {distribution}, amount {amounts}"
        f"{decrements}, {config.loop}"
    )


def choose_view(stream: IO[str], *, quiet: bool = False) -> PlainView | RichView:
    if quiet:
        return QuietView(stream)
    if stream.isatty():
        from rich.console import Console

        return RichView(Console(file=stream))
    return PlainView(stream)
