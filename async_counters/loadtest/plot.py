"""``--plot PATH``: throughput and latency percentiles over time, as a PNG (matplotlib, Agg)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

__all__ = ["plot_timeline"]


def plot_timeline(
    rows: Sequence[dict[str, Any]], path: str | os.PathLike[str], *, title: str = ""
) -> None:
    """Two panels sharing the time axis: acknowledged operations/s, and p50/p90/p99/max in ms."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    times = [row["t"] for row in rows]
    figure, (rate, latency) = pyplot.subplots(2, 1, sharex=True, figsize=(10, 6.5))
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
        rate.grid(alpha=0.3)
        rate.legend(loc="lower right")
        for name, color in (
            ("p50", "tab:green"),
            ("p90", "tab:olive"),
            ("p99", "tab:orange"),
            ("max", "tab:red"),
        ):
            values = [max(row[f"{name}_ms"], 1e-3) for row in rows]
            latency.plot(times, values, color=color, label=name, marker=".", markersize=3)
        latency.set_yscale("log")
        latency.set_ylabel("latency (ms)")
        latency.set_xlabel("seconds since start")
        latency.grid(alpha=0.3, which="both")
        latency.legend(loc="upper right")
        if title:
            figure.suptitle(title, fontsize=9)
        figure.tight_layout()
        figure.savefig(os.fspath(path), dpi=100)
    finally:
        pyplot.close(figure)
