"""The benchmark's PostgreSQL database, its tables, and this project's pours of them, each in
its own process (``tests/benchmarks/worker.py``)."""

from __future__ import annotations

import contextlib
import io
import pstats
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from tests.benchmarks import data
from tests.benchmarks.common import log
from tests.benchmarks.processes import run_measured


@dataclass
class Postgres:
    dsn: str
    url: str
    origin: str
    loaded: dict[str, int] = field(default_factory=dict)
    """table -> events loaded."""


@contextlib.contextmanager
def temporary_database() -> Iterator[Postgres]:
    from tests.infra import select_postgres_server

    with select_postgres_server() as server, server.temporary_database("castore_bench") as dsn:
        url, dbname = _url(dsn)
        log(f"PostgreSQL: {server.origin} at {server.host}:{server.port}, database {dbname}")
        yield Postgres(dsn, url, server.origin)
    log("dropped the benchmark database")


def _url(dsn: str) -> tuple[str, str]:
    """The URL form of ``dsn`` (what node's ``postgres`` takes) and its database name."""
    from psycopg.conninfo import conninfo_to_dict

    params = conninfo_to_dict(dsn)
    auth = quote(str(params.get("user", "postgres")), safe="")
    if params.get("password"):
        auth += ":" + quote(str(params["password"]), safe="")
    where = f"{params.get('host', '127.0.0.1')}:{params.get('port', 5432)}"
    url = f"postgresql://{auth}@{where}/{params['dbname']}"
    if params.get("sslmode"):
        url += f"?sslmode={params['sslmode']}"
    return url, str(params["dbname"])


def load_table(
    pg: Postgres, table: str, seed: int, stores: Sequence[tuple[str, int, int]]
) -> dict[str, Any]:
    if table in pg.loaded:
        return {"table": table, "events": pg.loaded[table], "reused": True}
    started = time.perf_counter()
    dataset = data.generate(seed, stores, tag=table)
    generated = time.perf_counter()
    data.load_postgres(pg.dsn, table, dataset)
    loaded = time.perf_counter()
    pg.loaded[table] = dataset.event_count
    log(
        f"{table}: {dataset.event_count:,} events over {len(dataset.aggregates):,} aggregates "
        f"generated in {generated - started:.1f}s, loaded (COPY + constraint + indexes + "
        f"VACUUM ANALYZE) in {loaded - generated:.1f}s"
    )
    return {
        "table": table,
        "events": dataset.event_count,
        "aggregates": len(dataset.aggregates),
        "generate_seconds": generated - started,
        "load_seconds": loaded - generated,
    }


def measure_ours_pg(
    pg: Postgres,
    table: str,
    stores: Sequence[str],
    events: int,
    profile: Path | None = None,
) -> dict[str, Any]:
    """One pour in its own process (under cProfile into ``profile``, if given)."""
    cmd = [sys.executable, "-m", "tests.benchmarks.worker", "--dsn", pg.dsn, "--table", table]
    cmd += ["--stores", ",".join(stores)]
    if profile is not None:
        profile.parent.mkdir(parents=True, exist_ok=True)
        cmd += ["--profile", str(profile)]
    document = run_measured(cmd, timeout=1800)
    document["rate"] = document["counted"] / document["seconds"]
    # VmHWM: the worker's peak resident set since exec (imports, pool threads and all),
    # read by the worker just before it exits. wait4's ru_maxrss would include this
    # process's RSS at fork time.
    peak_kb = document.get("vmhwm_kb") or document["child_maxrss_kb"]
    document["peak_rss_mb"] = peak_kb / 1024
    document["expected"] = events
    log(
        f"{table}: this project poured {document['counted']:,} events in "
        f"{document['seconds']:.2f}s ({document['rate']:,.0f}/s), peak RSS "
        f"{document['peak_rss_mb']:.1f} MB (VmHWM; wait4 ru_maxrss, which counts the parent at "
        f"fork: {document['child_maxrss_kb'] / 1024:.1f} MB)"
    )
    if document["counted"] != events:
        log(f"WARNING: {table}: poured {document['counted']:,}, expected {events:,}")
    return document


def print_profile(path: Path, name: str, top: int = 25) -> None:
    for sort in ("tottime", "cumulative"):
        buffer = io.StringIO()
        pstats.Stats(str(path), stream=buffer).sort_stats(sort).print_stats(top)
        sys.stderr.write(f"\n----- profile of {name} by {sort} ({path}) -----\n{buffer.getvalue()}")
