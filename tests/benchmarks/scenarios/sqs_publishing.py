"""d: SQS (moto server), 20,000 messages: this project's batched publishing (the engine and
SQSMessageChannel) vs one SendMessage per message."""

from __future__ import annotations

import json
import time
from typing import Any

from tests.benchmarks import data
from tests.benchmarks.common import STORE, describe, log
from tests.benchmarks.context import Context
from tests.benchmarks.table import Row

NAME = "d"
TITLE = "SQS (moto) batched publishing vs one SendMessage each"
FULL = {"d": (20_000, 2_000)}
QUICK = {"d": (2_000, 200)}
USES_AWS = True


def run(ctx: Context) -> None:
    events, aggregates = ctx.sizes[NAME]
    out: dict[str, Any] = ctx.results.setdefault(NAME, {})
    client = ctx.aws_client("sqs")
    dataset = data.generate(ctx.args.seed, [(STORE, events, aggregates)], tag="sqs")
    details = [event for _, event in data.event_details(dataset)]
    out["single"] = _one_by_one(client, details)
    try:
        out["ours"] = _batched(client, details, events)
    except Exception as error:
        out["ours_error"] = describe(error)
        log(f"d: this project's publishing failed: {out['ours_error']}")
    measure = f"{events // 1000}k SQS messages/s vs 1 SendMessage each"
    ours = out.get("ours", {}).get("rate")
    note = out.get("ours_error", "")
    ctx.rows.append(Row(NAME, measure, ours, out["single"]["rate"], "msg/s", ">= 5", note))


def _queued(client: Any, url: str) -> int:
    attributes = client.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
    )
    return int(attributes["Attributes"]["ApproximateNumberOfMessages"])


def _one_by_one(client: Any, details: list[dict[str, Any]]) -> dict[str, Any]:
    """The baseline: one SendMessage per message, as Castore's single-message path sends it."""
    url = client.create_queue(QueueName="castore-bench-single")["QueueUrl"]
    started = time.perf_counter()
    for event in details:
        message = {"eventStoreId": STORE, "event": event}
        client.send_message(
            QueueUrl=url,
            MessageBody=json.dumps(message, separators=(",", ":"), ensure_ascii=False),
            MessageAttributes={
                "messageId": {
                    "DataType": "String",
                    "StringValue": f"{STORE}#{event['aggregateId']}#{event['version']}",
                },
                "replay": {"DataType": "Number", "StringValue": "1"},
            },
        )
    seconds = time.perf_counter() - started
    rate = len(details) / seconds
    single = {
        "counted": len(details),
        "seconds": seconds,
        "rate": rate,
        "queued": _queued(client, url),
    }
    log(f"d: {len(details):,} SendMessage calls in {seconds:.2f}s ({rate:,.0f}/s)")
    return single


def _batched(client: Any, details: list[dict[str, Any]], events: int) -> dict[str, Any]:
    from airflow_provider_castore_dam.channels.sqs import SQSMessageChannel
    from airflow_provider_castore_dam.dam import pour_event_store_events
    from airflow_provider_castore_dam.stores import InMemoryScanningEventStore

    store = InMemoryScanningEventStore(STORE, details)
    url = client.create_queue(QueueName="castore-bench-batched")["QueueUrl"]
    channel = SQSMessageChannel(url, client=client)
    started = time.perf_counter()
    result = pour_event_store_events(store, channel)
    seconds = time.perf_counter() - started
    count = result["poured_event_count"]
    queued = _queued(client, url)
    log(
        f"d: this project published {count:,} messages in {seconds:.2f}s "
        f"({count / seconds:,.0f}/s); the queue holds {queued:,}"
    )
    if queued != events:
        log(f"WARNING: d: the queue holds {queued:,} messages, expected {events:,}")
    return {"counted": count, "seconds": seconds, "rate": count / seconds, "queued": queued}
