"""k: a DynamoDB store of 20,000 events / 2,000 aggregates in Castore's legacy layout (moto)
migrated to the single-table layout: this project's pour (table scan) into a
DynamoDBEventStoreDestination (conflict policy ``fail``: every event checked, then written)
vs a plain loop: the legacy table read with ``Scan`` pages, then one ``PutItem`` per event
(the item as the single-table adapter writes it), one after the other.

Each side writes into a new empty table; one run each (the loop takes minutes)."""

from __future__ import annotations

import time
from typing import Any

from tests.benchmarks import data
from tests.benchmarks.common import STORE, describe, log
from tests.benchmarks.context import Context
from tests.benchmarks.table import Row

NAME = "k"
TITLE = "DynamoDB legacy to single-table migration vs one PutItem per event"
FULL = {"k": (20_000, 2_000)}
QUICK = {"k": (2_000, 200)}
USES_AWS = True
LEGACY, OURS, LOOP = "bench-legacy", "bench-single-ours", "bench-single-loop"


def run(ctx: Context) -> None:
    events, aggregates = ctx.sizes[NAME]
    out: dict[str, Any] = ctx.results.setdefault(NAME, {})
    client = ctx.aws_client("dynamodb")
    dataset = data.generate(ctx.args.seed, [(STORE, events, aggregates)], tag="migration")
    data.create_single_table(client, LEGACY, layout="legacy")
    data.load_dynamodb(client, LEGACY, dataset, layout="legacy")
    for table in (OURS, LOOP):
        data.create_single_table(client, table)
    try:
        out["ours_seconds"] = _migrate(client, events)
        out["loop_seconds"] = _put_item_loop(client, events)
    except Exception as error:
        out["error"] = describe(error)
        log(f"k: {out['error']}")
    ours = events / out["ours_seconds"] if "ours_seconds" in out else None
    loop = events / out["loop_seconds"] if "loop_seconds" in out else None
    log(f"k: migration {ours or 0:,.0f} ev/s, PutItem loop {loop or 0:,.0f} ev/s")
    measure = f"{events // 1000}k DynamoDB legacy -> single-table ev/s vs PutItem loop"
    ctx.rows.append(Row(NAME, measure, ours, loop, "ev/s", ">= 4", out.get("error", "")))


def _migrate(client: Any, events: int) -> float:
    from airflow_provider_castore_dam.dam import pour_event_store_events
    from airflow_provider_castore_dam.stores.dynamodb import DynamoDBTableScanEventStore
    from airflow_provider_castore_dam.stores.dynamodb.destination import (
        DynamoDBEventStoreDestination,
    )

    store = DynamoDBTableScanEventStore(STORE, LEGACY, layout="legacy", client=client)
    started = time.perf_counter()
    result = pour_event_store_events(store, DynamoDBEventStoreDestination(OURS, client=client))
    seconds = time.perf_counter() - started
    if result["poured_event_count"] != events:
        raise RuntimeError(f"migrated {result['poured_event_count']:,} of {events:,} events")
    return seconds


def _put_item_loop(client: Any, events: int) -> float:
    started = time.perf_counter()
    written, request = 0, {"TableName": LEGACY}
    while True:
        page = client.scan(**request)
        for item in page["Items"]:
            moved = {**item, "aggregateId": {"S": f"{STORE}#{item['aggregateId']['S']}"}}
            if moved.pop("isInitialEvent", None) is not None:
                moved["eventStoreId"] = {"S": STORE}
            client.put_item(TableName=LOOP, Item=moved)
            written += 1
        if "LastEvaluatedKey" not in page:
            break
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    if written != events:
        raise RuntimeError(f"the loop wrote {written:,} of {events:,} events")
    return time.perf_counter() - started
