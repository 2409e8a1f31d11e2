"""The physical limit of a PostgreSQL pour, psql ``\\copy`` of the same rows in timestamp
order, measured side by side with this project's pour (see docs/performance.md)."""

from __future__ import annotations

import shutil
import statistics
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tests.benchmarks.common import STORE, describe, log
from tests.benchmarks.postgres import Postgres, load_table, measure_ours_pg, print_profile
from tests.benchmarks.table import Row

if TYPE_CHECKING:
    from tests.benchmarks.context import Context

PSQL_COPY = "psql \\copy"


def copy_query(table: str, stores: Sequence[str]) -> str:
    names = ", ".join(f"'{store}'" for store in stores)
    return (
        "SELECT aggregate_name, aggregate_id, version, type, data, metadata, timestamp "
        f"FROM {table} WHERE aggregate_name IN ({names}) ORDER BY timestamp"
    )


def copy_runner(pg: Postgres, table: str, stores: Sequence[str]) -> tuple[str, Callable[[], float]]:
    """The physical limit's method and a function timing one run of it: psql \\copy of the
    rows in timestamp order to /dev/null (process start included), or psycopg COPY TO STDOUT
    without psql."""
    query = copy_query(table, stores)
    psql = shutil.which("psql") or ("/usr/bin/psql" if Path("/usr/bin/psql").exists() else None)

    def once() -> float:
        started = time.perf_counter()
        if psql:
            copy = f"\\copy ({query}) TO '/dev/null'"
            cmd = [psql, pg.dsn, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", copy]
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        else:
            import psycopg

            with (
                psycopg.connect(pg.dsn) as conn,
                conn.cursor() as cursor,
                cursor.copy(f"COPY ({query}) TO STDOUT") as copy_out,
            ):
                for _ in copy_out:
                    pass
        return time.perf_counter() - started

    method = PSQL_COPY if psql else "psycopg COPY TO STDOUT (psql not found)"
    return method, once


def copy_row(name: str, measure: str, out: dict[str, Any], target: str) -> Row:
    """The table's row of a side by side: its note is the pour's error, or the median round's
    ratio and how the limit was measured when psql was missing."""
    copy = out["copy"]
    notes = [f"median round {copy['median_round']['ratio']:.2f}x"] if "median_round" in copy else []
    if copy["method"] != PSQL_COPY:
        notes.append(f"limit measured with {copy['method']}")
    note = out.get("ours_error", "") or "; ".join(notes)
    ours = out.get("ours", {}).get("rate")
    return Row(name, measure, ours, copy["rate"], "ev/s", target, note)


def pour_one_store(ctx: Context, name: str, table: str) -> dict[str, Any]:
    """Scenario ``name``'s store loaded into ``table``, then measured side by side."""
    events, aggregates = ctx.sizes[name]
    out: dict[str, Any] = {
        "load": load_table(ctx.pg, table, ctx.args.seed, [(STORE, events, aggregates)])
    }
    side_by_side(ctx, out, name, table, [STORE], events)
    return out


def side_by_side(
    ctx: Context, out: dict[str, Any], name: str, table: str, stores: list[str], events: int
) -> None:
    """The physical limit and this project's pour of the same rows, side by side: one warm-up
    of each, then ``--runs`` rounds of one \\copy followed by one pour. Each side's figure is
    its fastest run: the machine's noise only ever adds time, and not evenly to the two sides
    (see docs/performance.md). The round whose ratio (pour rate / \\copy rate) is the median
    one is kept too, as are all runs; the pour's peak RSS is the highest of all. Sets
    ``out["copy"]``, and ``out["ours"]`` or ``out["ours_error"]``."""
    pg = ctx.pg
    method, copy_once = copy_runner(pg, table, stores)
    copy_once()
    try:
        warm_up = measure_ours_pg(pg, table, stores, events)
        runs = range(ctx.args.runs)
        rounds = [(copy_once(), measure_ours_pg(pg, table, stores, events)) for _ in runs]
    except Exception as failure:
        error = describe(failure)
        log(f"{name}: this project's pour failed: {error}")
        seconds = copy_once()
        out["copy"] = {
            "method": method,
            "seconds": seconds,
            "runs": [seconds],
            "rate": events / seconds,
        }
        out["ours_error"] = error
        return
    out["copy"], out["ours"] = _fastest(method, events, warm_up, rounds)
    _log_rounds(table, method, out["copy"], out["ours"])
    if ctx.args.profile is not None:
        measure_ours_pg(pg, table, stores, events, ctx.args.profile / f"{name}.prof")
        print_profile(ctx.args.profile / f"{name}.prof", name)


def _fastest(
    method: str,
    events: int,
    warm_up: dict[str, Any],
    rounds: list[tuple[float, dict[str, Any]]],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The \\copy and pour figures of the rounds: each side's fastest run, its median, all its
    runs, and the round of median ratio."""
    by_ratio = sorted(rounds, key=lambda pair: pair[0] / pair[1]["seconds"])
    median_copy, median_pour = by_ratio[len(by_ratio) // 2]
    copy_runs = [copy_seconds for copy_seconds, _ in rounds]
    pour_runs = [pour["seconds"] for _, pour in rounds]
    fastest = min((pour for _, pour in rounds), key=lambda pour: pour["seconds"])
    copy = {
        "method": method,
        "seconds": min(copy_runs),
        "runs": copy_runs,
        "rate": events / min(copy_runs),
        "median_seconds": statistics.median(copy_runs),
        "median_round": {
            "copy_seconds": median_copy,
            "pour_seconds": median_pour["seconds"],
            "ratio": median_copy / median_pour["seconds"],
        },
    }
    ours = {
        **fastest,
        "runs": pour_runs,
        "median_seconds": statistics.median(pour_runs),
        "warm_up_seconds": warm_up["seconds"],
        "peak_rss_mb": max(run["peak_rss_mb"] for run in [warm_up, *(p for _, p in rounds)]),
    }
    return copy, ours


def _log_rounds(table: str, method: str, copy: dict[str, Any], ours: dict[str, Any]) -> None:
    median = copy["median_round"]
    pairs = [(round(c, 2), round(p, 2)) for c, p in zip(copy["runs"], ours["runs"], strict=True)]
    log(
        f"{table}: {len(pairs)} rounds of {method} then this project's pour, seconds: "
        f"{pairs}; fastest {copy['seconds']:.2f}s / {ours['seconds']:.2f}s (ratio "
        f"{copy['seconds'] / ours['seconds']:.2f}); median round {median['copy_seconds']:.2f}s / "
        f"{median['pour_seconds']:.2f}s (ratio {median['ratio']:.2f}); medians of "
        f"each side {copy['median_seconds']:.2f}s / {ours['median_seconds']:.2f}s (ratio "
        f"{copy['median_seconds'] / ours['median_seconds']:.2f}); peak RSS "
        f"{ours['peak_rss_mb']:.1f} MB"
    )
