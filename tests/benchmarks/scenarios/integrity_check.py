"""i: the integrity check vs a dry run of pour_event_store_events on the same store: PostgreSQL
(200,000 events / 20,000 aggregates) and DynamoDB single-table on moto (20,000 / 2,000).

Both sides run in this process, one after the other, in rounds (after a warm-up of each);
each side's figure is its fastest run, as for a (see docs/performance.md). Events/s is the
store's events divided by the time of the call alone."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from tests.benchmarks import data
from tests.benchmarks.common import STORE, log
from tests.benchmarks.context import Context
from tests.benchmarks.postgres import load_table
from tests.benchmarks.table import Row

NAME = "i"
TITLE = "integrity check vs a dry run pour of the same store"
FULL = {"i": (200_000, 20_000), "i_dynamodb": (20_000, 2_000)}
QUICK = {"i": (20_000, 2_000), "i_dynamodb": (2_000, 200)}
USES_AWS = True
TABLE = "event_i"
DYNAMODB_TABLE = "castore-bench-integrity"


def run(ctx: Context) -> None:
    from airflow_provider_castore_dam.stores.dynamodb import DynamoDBTableScanEventStore
    from airflow_provider_castore_dam.stores.postgres import PostgresEventStore

    out: dict[str, Any] = ctx.results.setdefault(NAME, {})
    events, aggregates = ctx.sizes[NAME]
    out["load"] = load_table(ctx.pg, TABLE, ctx.args.seed, [(STORE, events, aggregates)])
    with PostgresEventStore(STORE, ctx.pg.dsn, table=TABLE) as store:
        out["postgres"] = _side_by_side(ctx, "PostgreSQL", store, events)
    _rows(ctx, out["postgres"], f"{events // 1000}k PostgreSQL events/s, check vs dry run")

    events, aggregates = ctx.sizes["i_dynamodb"]
    client = ctx.aws_client("dynamodb")
    dataset = data.generate(ctx.args.seed, [(STORE, events, aggregates)], tag="integrity")
    data.create_single_table(client, DYNAMODB_TABLE)
    data.load_dynamodb(client, DYNAMODB_TABLE, dataset)
    with DynamoDBTableScanEventStore(
        STORE, DYNAMODB_TABLE, layout="single-table", client=client
    ) as store:
        out["dynamodb"] = _side_by_side(ctx, "DynamoDB", store, events)
    _rows(ctx, out["dynamodb"], f"{events // 1000}k DynamoDB events/s, check vs dry run")


def _side_by_side(ctx: Context, label: str, store: Any, events: int) -> dict[str, Any]:
    from airflow_provider_castore_dam.channels.dry_run import DryRunMessageChannel
    from airflow_provider_castore_dam.dam import pour_event_store_events
    from airflow_provider_castore_dam.dam.integrity import check_event_store_integrity

    def dry_run() -> int:
        return int(pour_event_store_events(store, DryRunMessageChannel())["poured_event_count"])

    def check() -> int:
        report = check_event_store_integrity(store)
        if report["defect_count"]:
            log(f"WARNING: i: {label}: {report['defect_count']} defects in generated data")
        return int(report["event_count"])

    timings: dict[str, list[float]] = {"dry_run": [], "check": []}
    counts: dict[str, int] = {}
    for round_index in range(ctx.args.runs + 1):  # the first round warms both up
        for name, call in (("dry_run", dry_run), ("check", check)):
            seconds, counts[name] = _timed(call)
            if round_index:
                timings[name].append(seconds)
    result: dict[str, Any] = {"runs": timings, "counts": counts}
    for name in timings:
        fastest = min(timings[name])
        result[name] = {"seconds": fastest, "rate": counts[name] / fastest}
        if counts[name] != events:
            log(f"WARNING: i: {label} {name} counted {counts[name]:,}, expected {events:,}")
    log(
        f"i: {label}: dry run {result['dry_run']['rate']:,.0f} ev/s, integrity check "
        f"{result['check']['rate']:,.0f} ev/s (fastest of {ctx.args.runs})"
    )
    return result


def _timed(call: Callable[[], int]) -> tuple[float, int]:
    started = time.perf_counter()
    count = call()
    return time.perf_counter() - started, count


def _rows(ctx: Context, result: dict[str, Any], measure: str) -> None:
    ctx.rows.append(
        Row(NAME, measure, result["check"]["rate"], result["dry_run"]["rate"], "ev/s", ">= 0.5")
    )
