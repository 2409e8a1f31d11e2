"""a: a PostgreSQL store in Castore's layout, 200,000 events / 20,000 aggregates over three
years: this project's pour_event_store_events vs Castore's pourEventStoreEvents (node,
@castore/lib-dam 2.4.2) vs psql \\copy of the same rows in timestamp order."""

from __future__ import annotations

from tests.benchmarks.castore_reference import pour_reference
from tests.benchmarks.context import Context
from tests.benchmarks.copy_limit import copy_row, pour_one_store
from tests.benchmarks.table import Row

NAME = "a"
TITLE = "PostgreSQL events/s vs Castore lib-dam and psql \\copy"
FULL = {"a": (200_000, 20_000), "reference_timeout_a": 600.0}
QUICK = {"a": (20_000, 2_000), "reference_timeout_a": 120.0}
USES_AWS = False
TABLE = "event_a"


def run(ctx: Context) -> None:
    out = ctx.results[NAME] = pour_one_store(ctx, NAME, TABLE)
    events = ctx.sizes[NAME][0]
    timeout = ctx.sizes["reference_timeout_a"]
    problem = pour_reference(ctx, out, TABLE, events, timeout)
    ours = out.get("ours", {}).get("rate")
    reference = out.get("reference", {})
    note = problem or out.get("ours_error", "")
    if reference.get("capped"):
        note = f"reference stopped at {timeout:.0f}s: partial rate"
    label = f"{events // 1000}k"
    measure = f"{label} events/s vs Castore lib-dam"
    ctx.rows.append(Row(NAME, measure, ours, reference.get("rate"), "ev/s", ">= 20", note))
    ctx.rows.append(copy_row(NAME, f"{label} events/s vs psql \\copy", out, ">= 0.5"))
