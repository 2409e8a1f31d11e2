"""DynamoDB tables in the layouts Castore's DynamoDB adapters use, filled with BatchWriteItem.

Same key schema and ``initialEvents`` index as ``tests/interop/write_stores.mjs`` creates (see
``/work/shared/docs/castore-formats.md``), written the way Castore's adapters write items:

- single-table: ``aggregateId`` = ``<eventStoreId>#<aggregateId>``, ``eventStoreId`` on
  version 1 only, several event stores per table;
- legacy: one table per event store, unprefixed ``aggregateId``, ``isInitialEvent`` = 1 on
  version 1 only.

Timestamps are stored exactly as given (Castore does not normalise them either); numbers are
written in their shortest decimal form. DynamoDB only: nothing here is meant for other stores.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

Event = dict[str, Any]

INDEX_PARTITION = {"single-table": ("eventStoreId", "S"), "legacy": ("isInitialEvent", "N")}


def unique_table_name(prefix: str = "castore-test") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def attribute(value: Any) -> dict[str, Any]:
    """A JSON value as a low-level DynamoDB attribute value (what Castore's marshall writes)."""
    if value is None:
        return {"NULL": True}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, int):
        return {"N": str(value)}
    if isinstance(value, float):
        return {"N": repr(value)}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, dict):
        return {"M": {key: attribute(item) for key, item in value.items()}}
    if isinstance(value, (list, tuple)):
        return {"L": [attribute(item) for item in value]}
    raise TypeError(f"not a JSON value: {value!r}")


def create_table(
    client: Any,
    table_name: str,
    layout: str = "single-table",
    *,
    gsi: bool = True,
    key_schema: Sequence[tuple[str, str, str]] = (
        ("aggregateId", "HASH", "S"),
        ("version", "RANGE", "N"),
    ),
) -> str:
    """Create ``table_name`` in Castore's ``layout`` (or another key schema / no index to test
    bad tables) and wait until it is ACTIVE."""
    partition, partition_type = INDEX_PARTITION[layout]
    definitions = {name: attr_type for name, _, attr_type in key_schema}
    request: dict[str, Any] = {
        "TableName": table_name,
        "BillingMode": "PAY_PER_REQUEST",
        "KeySchema": [{"AttributeName": name, "KeyType": kind} for name, kind, _ in key_schema],
    }
    if gsi:
        definitions.update({partition: partition_type, "timestamp": "S"})
        request["GlobalSecondaryIndexes"] = [
            {
                "IndexName": "initialEvents",
                "KeySchema": [
                    {"AttributeName": partition, "KeyType": "HASH"},
                    {"AttributeName": "timestamp", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            }
        ]
    request["AttributeDefinitions"] = [
        {"AttributeName": name, "AttributeType": attr_type}
        for name, attr_type in definitions.items()
    ]
    client.create_table(**request)
    for _ in range(100):
        if client.describe_table(TableName=table_name)["Table"]["TableStatus"] == "ACTIVE":
            return table_name
        time.sleep(0.05)
    raise RuntimeError(f"table {table_name} did not become ACTIVE")


def item(event_store_id: str, event: Event, layout: str = "single-table") -> dict[str, Any]:
    """The item Castore's adapter of ``layout`` writes for ``event``."""
    aggregate_id = event["aggregateId"]
    written: dict[str, Any] = {
        "aggregateId": {
            "S": f"{event_store_id}#{aggregate_id}" if layout == "single-table" else aggregate_id
        },
        "version": {"N": str(event["version"])},
        "type": {"S": event["type"]},
        "timestamp": {"S": event["timestamp"]},
    }
    for name in ("payload", "metadata"):
        if name in event:
            written[name] = attribute(event[name])
    if event["version"] == 1:
        if layout == "single-table":
            written["eventStoreId"] = {"S": event_store_id}
        else:
            written["isInitialEvent"] = {"N": "1"}
    return written


def put_items(client: Any, table_name: str, items: Iterable[dict[str, Any]]) -> int:
    """BatchWriteItem, 25 items a request, unprocessed items sent again. Returns the count."""
    pending = [{"PutRequest": {"Item": written}} for written in items]
    count = len(pending)
    while pending:
        batch, pending = pending[:25], pending[25:]
        while batch:
            response = client.batch_write_item(RequestItems={table_name: batch})
            batch = response.get("UnprocessedItems", {}).get(table_name, [])
    return count


def put_events(
    client: Any,
    table_name: str,
    event_store_id: str,
    events: Iterable[Event],
    layout: str = "single-table",
) -> int:
    return put_items(client, table_name, (item(event_store_id, event, layout) for event in events))


def castore_tables(
    client: Any, stores: dict[str, Sequence[Event]], layout: str = "single-table"
) -> dict[str, str]:
    """Create the tables of ``layout`` holding ``stores`` (event store id -> events) and return
    each event store's table name: one shared table (single-table) or one per store (legacy)."""
    if layout == "single-table":
        table = create_table(client, unique_table_name("castore-single"), layout)
        for event_store_id, events in stores.items():
            put_events(client, table, event_store_id, events, layout)
        return dict.fromkeys(stores, table)
    tables = {}
    for event_store_id, events in stores.items():
        table = create_table(client, unique_table_name(f"castore-legacy-{event_store_id}"), layout)
        put_events(client, table, event_store_id, events, layout)
        tables[event_store_id] = table
    return tables


def delete_tables(client: Any, table_names: Iterable[str]) -> None:
    """Delete the tables (those already gone are skipped), so a long-lived moto server stays
    small: moto's queries take time in proportion to the items it holds."""
    for table_name in table_names:
        with contextlib.suppress(client.exceptions.ResourceNotFoundException):
            client.delete_table(TableName=table_name)


class Tables:
    """Creates Castore-layout tables and deletes all of them on ``close()``."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.names: list[str] = []

    def castore(
        self, stores: dict[str, Sequence[Event]], layout: str = "single-table"
    ) -> dict[str, str]:
        created = castore_tables(self.client, stores, layout)
        self.names.extend(dict.fromkeys(created.values()))
        return created

    def create(self, layout: str = "single-table", **kwargs: Any) -> str:
        name = unique_table_name()
        self.names.append(name)
        return create_table(self.client, name, layout, **kwargs)

    def close(self) -> None:
        delete_tables(self.client, self.names)
        self.names.clear()
