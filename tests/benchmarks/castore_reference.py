"""Castore's own pour (``@castore/lib-dam`` 2.4.2 in node, ``reference/pour.mjs``) of a
PostgreSQL table, into a channel that only counts."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tests.benchmarks.common import STORE, describe, log
from tests.benchmarks.postgres import Postgres
from tests.benchmarks.processes import run_measured

if TYPE_CHECKING:
    from tests.benchmarks.context import Context

REFERENCE = Path(__file__).resolve().parent / "reference"


def reference_available() -> str | None:
    """None when Castore's lib-dam is ready to run, else why not. Runs ``npm ci`` if needed."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        return "node and npm are not on the PATH"
    modules = REFERENCE / "node_modules"
    stamp = modules / ".package-lock.json"
    lock = REFERENCE / "package-lock.json"
    if not (modules / "@castore" / "lib-dam").is_dir() or (
        stamp.exists() and stamp.stat().st_mtime < lock.stat().st_mtime
    ):
        log("reference: npm ci in tests/benchmarks/reference")
        done = subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=REFERENCE,
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            return f"npm ci failed: {done.stderr.strip()[-500:]}"
    return None


def stop_leftover_queries(pg: Postgres) -> None:
    """Node exits at the cap with its last query still running in PostgreSQL (a count of the
    whole table, seconds long): end it, so it does not slow down what is measured next."""
    import psycopg

    with psycopg.connect(pg.dsn, autocommit=True) as conn:
        stopped = conn.execute(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchone()
    log(f"stopped {stopped[0] if stopped else 0} query(ies) left running by the capped run")


def measure_reference(
    pg: Postgres, table: str, store: str, events: int, cap: float | None
) -> dict[str, Any]:
    env = {**os.environ, "PG_URL": pg.url, "PG_TABLE": table, "EVENT_STORE_ID": store}
    if cap is not None:
        env["TIME_CAP_S"] = str(cap)
    document = run_measured(
        ["node", str(REFERENCE / "pour.mjs")], env=env, timeout=(cap or 3600) + 120
    )
    document["rate"] = document["counted"] / document["seconds"] if document["seconds"] else None
    document["expected"] = events
    if document["capped"]:
        stop_leftover_queries(pg)
    state = "stopped at the cap, partial" if document["capped"] else "complete"
    log(
        f"{table}: Castore lib-dam 2.4.2 poured {document['counted']:,} events in "
        f"{document['seconds']:.1f}s ({document['rate']:,.0f}/s, {state})"
    )
    if not document["capped"] and document["counted"] != events:
        log(f"NOTE: {table}: Castore poured {document['counted']:,} of {events:,} events")
    return document


def pour_reference(
    ctx: Context, out: dict[str, Any], table: str, events: int, cap: float
) -> str | None:
    """Castore's pour of ``table`` into ``out["reference"]``; returns why it did not run or
    failed (also in ``out["reference_error"]``), else None."""
    problem = ctx.reference_problem()
    if problem is None:
        try:
            out["reference"] = measure_reference(ctx.pg, table, STORE, events, cap)
        except Exception as error:
            problem = out["reference_error"] = describe(error)
    return problem
