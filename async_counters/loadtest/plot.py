"""``--plot PATH``: throughput and latency percentiles over time, as a PNG (matplotlib, Agg).

Made to be read at a glance: plain numbers on both axes (``20``, ``50``, ``100`` ms, not
``2x10^1``), the legends beside the panels where they cover nothing, and no point for the run's
last, partial interval (a few answers in a fraction of a second would draw a cliff).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

__all__ = ["figure_of", "plot_timeline", "plotted_rows"]


def plotted_rows(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows worth a point: all but a partial last one (unless it is the only one)."""
    shown = list(rows)
    if len(shown) > 1 and shown[-1].get("partial"):
        shown.pop()
    return shown


def _plain(value: float, _position: object = None) -> str:
    """A tick label: ``0.5``, ``20``, ``1,000``."""
    return f"{value:,.0f}" if value >= 10 else f"{value:g}"


def plot_timeline(
    rows: Sequence[dict[str, Any]], path: str | os.PathLike[str], *, title: str = ""
) -> None:
    """Two panels sharing the time axis: acknowledged operations/s, and p50/p90/p99/max in ms."""
    from matplotlib import pyplot

    figure = figure_of(rows, title=title)
    try:
        figure.savefig(os.fspath(path), dpi=100)
    finally:
        pyplot.close(figure)


def figure_of(rows: Sequence[dict[str, Any]], *, title: str = "") -> Any:
    """The plot's matplotlib figure, laid out (the caller closes it with ``pyplot.close``)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    rows = plotted_rows(rows)
    times = [row["t"] for row in rows]
    figure, (rate, latency) = pyplot.subplots(2, 1, sharex=True, figsize=(11, 6.5))
    try:
        rate.plot(
            times,
            [row["rate"] for row in rows],
            color="tab:blue",
            label="acknowledged/s",
            marker=".",
            markersize=3,
        )
        throttled = [row["throttles"] / row["seconds"] if row["seconds"] else 0 for row in rows]
        if any(throttled):
            rate.plot(times, throttled, color="tab:red", label="throttled responses/s")
        rate.set_ylabel("operations / s")
        rate.set_ylim(bottom=0)
        rate.yaxis.set_major_formatter(FuncFormatter(_plain))
        rate.grid(alpha=0.3)
        # Beside the panel, not on it: a legend inside may hide the very line it names.
        rate.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
        shown: list[float] = []
        for name, color in (
            ("p50", "tab:green"),
            ("p90", "tab:olive"),
            ("p99", "tab:orange"),
            ("max", "tab:red"),
        ):
            values = [max(row[f"{name}_ms"], 1e-3) for row in rows]
            shown += values
            latency.plot(times, values, color=color, label=name, marker=".", markersize=3)
        latency.set_yscale("log")
        # 1-2-5 per decade; within less than a decade that leaves a label or two, so denser.
        narrow = bool(shown) and max(shown) < 10 * min(shown)
        subs = (1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 7.0) if narrow else (1.0, 2.0, 5.0)
        latency.yaxis.set_major_locator(LogLocator(base=10, subs=subs))
        latency.yaxis.set_major_formatter(FuncFormatter(_plain))
        latency.yaxis.set_minor_formatter(NullFormatter())
        latency.set_ylabel("latency (ms)")
        latency.set_xlabel("seconds since start")
        latency.grid(alpha=0.3, which="major")
        latency.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
        if title:
            figure.suptitle(title, fontsize=9)
        figure.tight_layout()
    except BaseException:
        pyplot.close(figure)
        raise
    return figure
