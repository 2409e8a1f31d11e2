"""e: a collection pour over two PostgreSQL stores of 100,000 events each, in one table (one
joint query), vs psql \\copy of both stores' rows in timestamp order."""

from __future__ import annotations

from typing import Any

from tests.benchmarks.common import STORE
from tests.benchmarks.context import Context
from tests.benchmarks.copy_limit import copy_row, side_by_side
from tests.benchmarks.postgres import load_table

NAME = "e"
TITLE = "PostgreSQL collection pour of two stores vs psql \\copy"
FULL = {"e": (100_000, 10_000)}  # per store
QUICK = {"e": (10_000, 1_000)}
USES_AWS = False
TABLE = "event_e"
STORES = [STORE, "TRAINERS"]


def run(ctx: Context) -> None:
    events, aggregates = ctx.sizes[NAME]
    out: dict[str, Any] = ctx.results.setdefault(NAME, {})
    out["load"] = load_table(
        ctx.pg, TABLE, ctx.args.seed, [(store, events, aggregates) for store in STORES]
    )
    side_by_side(ctx, out, NAME, TABLE, STORES, len(STORES) * events)
    measure = f"2 x {events // 1000}k collection events/s vs psql \\copy"
    ctx.rows.append(copy_row(NAME, measure, out, ">= 0.4"))
