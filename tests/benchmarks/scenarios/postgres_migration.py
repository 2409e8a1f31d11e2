"""j: a PostgreSQL store of 200,000 events / 20,000 aggregates migrated into another table of
the same database (Castore's layout, unique constraint and indexes): this project's
pour_event_store_events into a PostgresEventStoreDestination vs psql ``\\copy`` of the same
rows out to a file plus ``\\copy`` of that file into an empty table of the same layout.

Both sides start from an empty destination (TRUNCATE) each round; a warm-up of each, then
``--runs`` rounds, each side's fastest run kept (see a)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg

from tests.benchmarks.common import STORE, describe, log
from tests.benchmarks.context import Context
from tests.benchmarks.copy_limit import copy_query
from tests.benchmarks.postgres import load_table
from tests.benchmarks.table import Row

NAME = "j"
TITLE = "PostgreSQL to PostgreSQL migration vs psql \\copy out + \\copy in"
FULL = {"j": (200_000, 20_000)}
QUICK = {"j": (20_000, 2_000)}
USES_AWS = False
SOURCE, TARGET, COPIED = "event_j", "event_j_migrated", "event_j_copied"
COLUMNS = "aggregate_name, aggregate_id, version, type, data, metadata, timestamp"


def run(ctx: Context) -> None:
    from airflow_provider_castore_dam.stores.postgres.tables import create_castore_table

    events, aggregates = ctx.sizes[NAME]
    out: dict[str, Any] = ctx.results.setdefault(NAME, {})
    out["load"] = load_table(ctx.pg, SOURCE, ctx.args.seed, [(STORE, events, aggregates)])
    for table in (TARGET, COPIED):
        create_castore_table(ctx.pg.dsn, table)
    psql = shutil.which("psql") or "/usr/bin/psql"
    timings: dict[str, list[float]] = {"ours": [], "copy": []}
    try:
        for round_index in range(ctx.args.runs + 1):  # the first round warms both up
            copied = _copy_out_and_in(ctx.pg.dsn, psql)
            ours = _migrate(ctx.pg.dsn, events)
            if round_index:
                timings["copy"].append(copied)
                timings["ours"].append(ours)
    except Exception as error:
        out["error"] = describe(error)
        log(f"j: {out['error']}")
    out["runs"] = timings
    rates = {side: events / min(runs) for side, runs in timings.items() if runs}
    out.update({f"{side}_rate": rate for side, rate in rates.items()})
    ours, copied = rates.get("ours", 0.0), rates.get("copy", 0.0)
    log(f"j: migration {ours:,.0f} ev/s, \\copy out + in {copied:,.0f} ev/s")
    measure = f"{events // 1000}k events/s PG -> PG vs \\copy out + in"
    ctx.rows.append(
        Row(
            NAME,
            measure,
            rates.get("ours"),
            rates.get("copy"),
            "ev/s",
            ">= 0.3",
            out.get("error", ""),
        )
    )


def _truncate(dsn: str, table: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {table} RESTART IDENTITY")


def _copy_out_and_in(dsn: str, psql: str) -> float:
    _truncate(dsn, COPIED)
    with tempfile.TemporaryDirectory() as directory:
        rows = Path(directory) / "rows.tsv"
        started = time.perf_counter()
        out = f"\\copy ({copy_query(SOURCE, [STORE])}) TO '{rows}'"
        into = f"\\copy {COPIED} ({COLUMNS}) FROM '{rows}'"
        for command in (out, into):
            subprocess.run(
                [psql, dsn, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", command], check=True
            )
        return time.perf_counter() - started


def _migrate(dsn: str, events: int) -> float:
    from airflow_provider_castore_dam.dam import pour_event_store_events
    from airflow_provider_castore_dam.stores.postgres import PostgresEventStore
    from airflow_provider_castore_dam.stores.postgres.destination import (
        PostgresEventStoreDestination,
    )

    _truncate(dsn, TARGET)
    with (
        PostgresEventStore(STORE, dsn, table=SOURCE) as store,
        PostgresEventStoreDestination(dsn, table=TARGET) as destination,
    ):
        started = time.perf_counter()
        result = pour_event_store_events(store, destination)
        seconds = time.perf_counter() - started
    if result["poured_event_count"] != events:
        raise RuntimeError(f"migrated {result['poured_event_count']:,} of {events:,} events")
    return seconds
