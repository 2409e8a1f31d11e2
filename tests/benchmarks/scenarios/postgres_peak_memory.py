"""b: scenario a's pour at 1,000,000 events / 100,000 aggregates: this project's peak RSS,
against 200 MB and against a's 200,000-event run; Castore's partial rate under a time cap."""

from __future__ import annotations

from typing import Any

from tests.benchmarks.castore_reference import pour_reference
from tests.benchmarks.common import STORE, describe, log
from tests.benchmarks.context import Context
from tests.benchmarks.copy_limit import copy_row, pour_one_store
from tests.benchmarks.postgres import load_table, measure_ours_pg
from tests.benchmarks.scenarios import postgres_events
from tests.benchmarks.table import Row

NAME = "b"
TITLE = "PostgreSQL peak RSS at five times a's size"
FULL = {"b": (1_000_000, 100_000), "reference_cap_b": 60.0}
QUICK = {"b": (100_000, 10_000), "reference_cap_b": 15.0}
"""Castore's pour grows quadratically and cannot finish at this size: it stops at the cap
(``--reference-cap`` overrides it) and its partial rate is for information."""
USES_AWS = False
TABLE = "event_b"


def run(ctx: Context) -> None:
    out = ctx.results[NAME] = pour_one_store(ctx, NAME, TABLE)
    events = ctx.sizes[NAME][0]
    small = ctx.results.get(postgres_events.NAME, {}).get("ours")
    if small is None:
        small = _measure_small(ctx, out)
    out["small"] = small
    ours = out.get("ours")
    peak = ours["peak_rss_mb"] if ours else None
    small_peak = small["peak_rss_mb"] if small else None
    cap = ctx.sizes["reference_cap_b"]
    problem = pour_reference(ctx, out, TABLE, events, cap)
    error = out.get("ours_error", "")
    small_error = error or out.get("small_error", "")
    label, small_label = f"{events // 1000}k", f"{ctx.sizes[postgres_events.NAME][0] // 1000}k"
    ctx.rows.append(Row(NAME, f"{label} peak RSS vs 200 MB", peak, 200.0, "MB", "<= 1.0", error))
    measure = f"{label} peak RSS vs {small_label} run's"
    ctx.rows.append(Row(NAME, measure, peak, small_peak, "MB", "<= 1.2", small_error))
    ctx.rows.append(copy_row(NAME, f"{label} events/s vs psql \\copy", out, "-"))
    measure = f"{label} events/s vs lib-dam (partial, {cap:.0f}s cap)"
    reference = out.get("reference", {}).get("rate")
    ctx.rows.append(
        Row(NAME, measure, ours and ours["rate"], reference, "ev/s", "-", problem or error)
    )


def _measure_small(ctx: Context, out: dict[str, Any]) -> dict[str, Any] | None:
    """a's pour, for its peak RSS, when a was not run (``out["small_error"]`` if it fails)."""
    log("b: measuring the 200k run's peak RSS (scenario a not run)")
    events, aggregates = ctx.sizes[postgres_events.NAME]
    load_table(ctx.pg, postgres_events.TABLE, ctx.args.seed, [(STORE, events, aggregates)])
    try:
        return measure_ours_pg(ctx.pg, postgres_events.TABLE, [STORE], events)
    except Exception as error:
        out["small_error"] = describe(error)
        return None
