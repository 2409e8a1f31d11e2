"""f: a PostgreSQL store (200,000 events / 20,000 aggregates, a's kind of data) poured into an
SQS standard queue on moto by ``SQSMessageChannel`` with its default ``max_in_flight`` vs
``max_in_flight=1`` (capped at 60 s: a partial rate); the default pour's queue checked (each
aggregate's versions accepted in increasing order, every event exactly once); and, for
information, what bare ``SendMessageBatch`` calls from 16 threads reach against one thread."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tests.benchmarks import data
from tests.benchmarks.common import STORE, describe, log
from tests.benchmarks.context import Context
from tests.benchmarks.moto_server import sqs_messages
from tests.benchmarks.postgres import load_table
from tests.benchmarks.sqs_pours import (
    RecordingClient,
    check_note,
    check_queue,
    expected_ids,
    pour_into_sqs,
    queue_name,
)
from tests.benchmarks.table import Row
from tests.benchmarks.worker import postgres_store

NAME = "f"
TITLE = "PostgreSQL -> SQS standard (moto) with max_in_flight default vs 1"
FULL = {"f": (200_000, 20_000), "serial_cap_f": 60.0, "ceiling_messages_f": 20_000}
QUICK = {"f": (20_000, 2_000), "serial_cap_f": 10.0, "ceiling_messages_f": 2_000}
USES_AWS = True
TABLE = "event_f"
CEILING_THREADS = 16


def run(ctx: Context) -> None:
    from airflow_provider_castore_dam.channels import DEFAULT_MAX_IN_FLIGHT

    events, aggregates = ctx.sizes[NAME]
    out: dict[str, Any] = ctx.results.setdefault(NAME, {})
    out["load"] = load_table(ctx.pg, TABLE, ctx.args.seed, [(STORE, events, aggregates)])
    client = ctx.aws_client("sqs")
    cap = ctx.sizes["serial_cap_f"]
    out["max_in_flight"] = DEFAULT_MAX_IN_FLIGHT
    default = _attempt(out, "default", lambda: _pour(ctx, client, DEFAULT_MAX_IN_FLIGHT, None))
    serial = _attempt(out, "serial", lambda: _pour(ctx, client, 1, cap))
    notes = [out.get(f"{key}_error", "") for key in ("default", "serial")]
    if default:
        notes.append(f"{default['in_flight']['mean']:.1f} calls in flight on average")
    if serial and serial["capped"]:
        notes.append(f"max_in_flight=1 stopped at its {cap:.0f}s cap: partial rate")
    measure = f"{events // 1000}k PG -> SQS msg/s, max_in_flight {DEFAULT_MAX_IN_FLIGHT} vs 1"
    rates = [pour and pour["rate"] for pour in (default, serial)]
    note = "; ".join(note for note in notes if note)
    ctx.rows.append(Row(NAME, measure, *rates, "msg/s", ">= 6", note))
    check = default and default["check"]
    good, target = (check["good"], check["target"]) if check else (None, events)
    note = check_note(check) if check else out.get("default_error", "")
    measure = "  queue: each aggregate in order, every event once"
    ctx.rows.append(Row(NAME, measure, good, target, "msg", ">= 1", note))
    messages = ctx.sizes["ceiling_messages_f"]
    out["ceiling"] = {
        threads: _ceiling(client, threads, messages) for threads in (CEILING_THREADS, 1)
    }
    measure = f"  ceiling: {CEILING_THREADS} threads of bare SendMessageBatch vs 1"
    rates = [out["ceiling"][threads]["rate"] for threads in (CEILING_THREADS, 1)]
    note = "what this machine and moto allow any client (10 prebuilt entries a call)"
    ctx.rows.append(Row(NAME, measure, *rates, "msg/s", "-", note))


def _attempt(out: dict[str, Any], key: str, measure: Callable[[], Any]) -> Any:
    try:
        out[key] = measure()
    except Exception as error:
        out[f"{key}_error"] = describe(error)
        log(f"{NAME}: the {key} pour failed: {out[f'{key}_error']}")
        return None
    return out[key]


def _pour(ctx: Context, client: Any, in_flight: int, cap: float | None) -> dict[str, Any]:
    from airflow_provider_castore_dam.channels.sqs import SQSMessageChannel

    url = client.create_queue(QueueName=f"castore-bench-f-{in_flight}")["QueueUrl"]
    recorder = RecordingClient(client)
    channel = SQSMessageChannel(url, client=recorder, max_in_flight=in_flight)
    store = postgres_store(ctx.pg.dsn, TABLE, STORE)
    try:
        label = f"{NAME}: max_in_flight={in_flight}"
        pour = pour_into_sqs(store, channel, cap, label=label)
    finally:
        store.close()
    pour["in_flight"] = recorder.in_flight()
    log(
        f"{label}: poured {pour['counted']:,} messages in {pour['seconds']:.1f}s "
        f"({pour['rate']:,.0f}/s{', capped' if pour['capped'] else ''}); calls in flight "
        f"{pour['in_flight']}"
    )
    if cap is None:
        messages = sqs_messages(ctx.moto.endpoint_url, queue_name(url))
        pour["check"] = check_queue(messages, expected_ids(ctx.pg.dsn, TABLE, STORE))
        log(f"{label}: queue check {pour['check']}")
    client.delete_queue(QueueUrl=url)  # moto keeps every message in memory
    return pour


def _entries() -> list[dict[str, Any]]:
    """Ten SendMessageBatch entries as SQSMessageChannel writes them."""
    dataset = data.generate(0, [(STORE, 10, 10)], tag="ceiling")
    entries = []
    for index, (store, event) in enumerate(data.event_details(dataset)):
        message_id = f"{store}#{event['aggregateId']}#{event['version']}"
        body = json.dumps({"eventStoreId": store, "event": event}, separators=(",", ":"))
        attributes = {
            "messageId": {"DataType": "String", "StringValue": message_id},
            "replay": {"DataType": "Number", "StringValue": "1"},
        }
        entries.append({"Id": str(index), "MessageBody": body, "MessageAttributes": attributes})
    return entries


def _ceiling(client: Any, threads: int, messages: int) -> dict[str, Any]:
    entries = _entries()
    url = client.create_queue(QueueName=f"castore-bench-f-ceiling-{threads}")["QueueUrl"]

    def send(_: int) -> None:
        client.send_message_batch(QueueUrl=url, Entries=entries)

    calls = messages // len(entries)
    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(send, range(calls)))
    seconds = time.perf_counter() - started
    client.delete_queue(QueueUrl=url)
    rate = calls * len(entries) / seconds
    log(f"{NAME}: {calls:,} bare SendMessageBatch calls from {threads} thread(s): {rate:,.0f}/s")
    return {"counted": calls * len(entries), "seconds": seconds, "rate": rate}
