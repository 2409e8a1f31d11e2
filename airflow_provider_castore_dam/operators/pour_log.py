"""What a pour writes to its task log: progress lines, each message (opt in), a summary."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow_provider_castore_dam.dam import ProgressReport
from airflow_provider_castore_dam.operators.log_table import text_table


def duration(seconds: float) -> str:
    """``42 s``, ``3 min 05 s``, ``2 h 07 min``."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def progress_line(report: ProgressReport) -> str:
    """``Poured 1,200 of 5,000 messages (24.0 %) in 12 s, 100.0 messages/s, about 38 s left``;
    without a known total, the count, time and rate only."""
    if report.percent is None or report.eta_seconds is None:
        return (
            f"Poured {report.poured_count:,} messages in {duration(report.elapsed_seconds)}, "
            f"{report.rate:,.1f} messages/s"
        )
    return (
        f"Poured {report.poured_count:,} of {report.total:,} messages ({report.percent:.1f} %) "
        f"in {duration(report.elapsed_seconds)}, {report.rate:,.1f} messages/s, "
        f"about {duration(report.eta_seconds)} left"
    )


def summary_table(result: Mapping[str, Any], report: ProgressReport) -> str:
    """Per event store, the messages the channel confirmed (the digest's counts), and the
    total with the time and rate of the pour."""
    stores = result.get("digest", {}).get("event_stores", {})
    counts = {store_id: int(digest["count"]) for store_id, digest in stores.items()}
    rows: list[list[object]] = [[store_id, count] for store_id, count in counts.items()]
    rows.append(["(all)", sum(counts.values())])
    table = text_table(["event store", "messages poured"], rows)
    return f"{table}\nin {duration(report.elapsed_seconds)}, {report.rate:,.1f} messages/s"
