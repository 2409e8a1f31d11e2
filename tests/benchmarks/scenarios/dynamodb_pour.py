"""c: DynamoDB single-table layout (moto server), 20,000 events / 2,000 aggregates: this
project's pour (the table scan, the default; the merge path, for information) vs a sequential
one-aggregate-at-a-time read, and what 8 threads of bare partition queries reach."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tests.benchmarks import data
from tests.benchmarks.common import STORE, describe, log
from tests.benchmarks.context import Context
from tests.benchmarks.table import Row
from tests.benchmarks.worker import CountingChannel

NAME = "c"
TITLE = "DynamoDB (moto) pour vs a sequential read"
FULL = {"c": (20_000, 2_000)}
QUICK = {"c": (2_000, 200)}
USES_AWS = True
TABLE = "castore-bench-events"
CEILING_THREADS = 8


def run(ctx: Context) -> None:
    events, aggregates = ctx.sizes[NAME]
    out: dict[str, Any] = ctx.results.setdefault(NAME, {})
    client = ctx.aws_client("dynamodb")
    started = time.perf_counter()
    dataset = data.generate(ctx.args.seed, [(STORE, events, aggregates)], tag="dynamodb")
    data.create_single_table(client, TABLE)
    data.load_dynamodb(client, TABLE, dataset)
    out["load_seconds"] = time.perf_counter() - started
    log(
        f"c: {events:,} events over {aggregates:,} aggregates written to DynamoDB "
        f"in {out['load_seconds']:.1f}s"
    )
    ids, out["sequential"] = _sequential_read(client)
    out["ceiling"] = _ceiling(client, ids)
    _our_pours(ctx, client, out, events)
    measure = f"  ceiling: {CEILING_THREADS} threads of bare Query vs sequential"
    note = "what the server allows any client (no ordering, no decoding)"
    ceiling, sequential = out["ceiling"]["rate"], out["sequential"]["rate"]
    ctx.rows.append(Row(NAME, measure, ceiling, sequential, "ev/s", "-", note))


def _pages(client: Any, query: dict[str, Any]) -> Iterator[dict[str, Any]]:
    while True:
        page = client.query(**query)
        yield page
        if "LastEvaluatedKey" not in page:
            return
        query["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _partition_pages(client: Any, partition: str) -> Iterator[dict[str, Any]]:
    return _pages(
        client,
        {
            "TableName": TABLE,
            "KeyConditionExpression": "aggregateId = :id",
            "ExpressionAttributeValues": {":id": {"S": partition}},
            "ConsistentRead": True,
        },
    )


def _aggregate_ids(client: Any) -> list[str]:
    query = {
        "TableName": TABLE,
        "IndexName": "initialEvents",
        "KeyConditionExpression": "eventStoreId = :store",
        "ExpressionAttributeValues": {":store": {"S": STORE}},
    }
    return [item["aggregateId"]["S"] for page in _pages(client, query) for item in page["Items"]]


def _sequential_read(client: Any) -> tuple[list[str], dict[str, Any]]:
    """The baseline, written plainly: list every aggregate id, read each aggregate, one at a
    time, then sort everything in pour order. Returns the ids and the figures."""
    from boto3.dynamodb.types import TypeDeserializer

    deserializer = TypeDeserializer()
    started = time.perf_counter()
    ids = _aggregate_ids(client)
    read: list[dict[str, Any]] = []
    for partition in ids:
        for page in _partition_pages(client, partition):
            for item in page["Items"]:
                event = {key: deserializer.deserialize(value) for key, value in item.items()}
                event["aggregateId"] = partition.split("#", 1)[1]
                event["version"] = int(event["version"])
                event.pop("eventStoreId", None)
                read.append(event)
    read.sort(key=lambda event: (event["timestamp"], event["aggregateId"], event["version"]))
    seconds = time.perf_counter() - started
    log(
        f"c: sequential read of {len(read):,} events in {seconds:.2f}s "
        f"({len(read) / seconds:,.0f}/s)"
    )
    return ids, {"counted": len(read), "seconds": seconds, "rate": len(read) / seconds}


def _ceiling(client: Any, ids: list[str]) -> dict[str, Any]:
    """What any client could get from this server: the same partition queries, 8 at a time,
    with nothing done to the results (information, no target)."""

    def read_partition(partition: str) -> int:
        return sum(len(page["Items"]) for page in _partition_pages(client, partition))

    started = time.perf_counter()
    with ThreadPoolExecutor(CEILING_THREADS) as pool:
        counted = sum(pool.map(read_partition, ids))
    seconds = time.perf_counter() - started
    log(
        f"c: {CEILING_THREADS} threads of plain partition queries read {counted:,} events in "
        f"{seconds:.2f}s ({counted / seconds:,.0f}/s)"
    )
    return {"counted": counted, "seconds": seconds, "rate": counted / seconds}


def _our_pours(ctx: Context, client: Any, out: dict[str, Any], events: int) -> None:
    from airflow_provider_castore_dam.stores.dynamodb import (
        DynamoDBEventStore,
        DynamoDBTableScanEventStore,
    )

    scan = f"{events // 1000}k DynamoDB events/s (table scan) vs sequential read"
    for key, store_class, measure, target in (
        ("ours", DynamoDBTableScanEventStore, scan, ">= 4"),
        ("merge", DynamoDBEventStore, "  merge path (dynamodb_read=query) vs sequential", "-"),
    ):
        try:
            out[key] = _pour(client, store_class, events)
        except Exception as error:
            out[f"{key}_error"] = describe(error)
            log(f"c: {store_class.__name__}'s pour failed: {out[f'{key}_error']}")
        ours, sequential = out.get(key, {}).get("rate"), out["sequential"]["rate"]
        note = out.get(f"{key}_error", "")
        ctx.rows.append(Row(NAME, measure, ours, sequential, "ev/s", target, note))


def _pour(client: Any, store_class: Any, events: int) -> dict[str, Any]:
    from airflow_provider_castore_dam.dam import pour_event_store_events

    with store_class(STORE, TABLE, layout="single-table", client=client) as store:
        channel = CountingChannel()
        started = time.perf_counter()
        result = pour_event_store_events(store, channel)
        seconds = time.perf_counter() - started
    log(
        f"c: {store_class.__name__} poured {channel.count:,} events in {seconds:.2f}s "
        f"({channel.count / seconds:,.0f}/s)"
    )
    if channel.count != events:
        log(f"WARNING: c: poured {channel.count:,}, expected {events:,}")
    return {
        "counted": channel.count,
        "seconds": seconds,
        "rate": channel.count / seconds,
        "result": result,
    }
