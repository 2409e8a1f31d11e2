"""A DynamoDB table as a pour's destination: items written as Castore's DynamoDB adapters
write them (see :mod:`airflow_provider_castore_dam.stores.destination`).

Each event becomes the item Castore's ``pushEvent`` puts: ``aggregateId`` (``S``, prefixed
``<eventStoreId>#`` in the single-table layout), ``version`` (``N``), ``type`` and
``timestamp`` (``S``), ``payload`` and ``metadata`` marshalled as Castore marshals them (no
attribute when the event has none; JSON ``null`` is ``NULL``, empty strings stay), and, on
version 1 only, the ``initialEvents`` index key: ``eventStoreId`` (single-table) or
``isInitialEvent`` = 1 (legacy).

A call checks which of its events are already there (``BatchGetItem``, consistent reads),
settles those with the conflict policy, then writes the rest with ``BatchWriteItem`` (25
items a request); unprocessed keys and items are sent again with backoff, within the retry
policy. ``overwrite`` writes without reading, as Castore's ``force`` puts without a
condition. BatchWriteItem cannot be conditional: the check and the write are two steps, so
nothing else may write the destination's events during a migration.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from airflow_provider_castore_dam.errors import (
    EventStoreError,
    InvalidPourInputError,
    MessageChannelError,
)
from airflow_provider_castore_dam.retry import (
    Failure,
    RetryPolicy,
    call_with_retries,
    classify_aws_error,
    gave_up_note,
)
from airflow_provider_castore_dam.stores.destination import (
    EventStoreDestination,
    Written,
    settle_conflict,
)
from airflow_provider_castore_dam.stores.dynamodb.layout import LAYOUTS, Layout, StoreKeys
from airflow_provider_castore_dam.stores.dynamodb.table import make_client

WRITE_BATCH = 25
READ_BATCH = 100
DEFAULT_MAX_IN_FLIGHT = 8
Item = dict[str, Any]


def attribute(value: Any) -> dict[str, Any]:
    """A JSON value as a DynamoDB attribute value, as Castore's marshall writes it."""
    if value is None:
        return {"NULL": True}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, (int, float)):
        return {"N": str(value) if isinstance(value, int) else repr(value)}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, list):
        return {"L": [attribute(item) for item in value]}
    if isinstance(value, dict):
        return {"M": {str(key): attribute(item) for key, item in value.items()}}
    raise InvalidPourInputError(f"{type(value).__name__} {value!r} is not a JSON value")


def event_item(written: Written, keys: StoreKeys) -> Item:
    event = written.event
    item: Item = {
        "aggregateId": {"S": keys.prefix + event["aggregateId"]},
        "version": {"N": str(event["version"])},
        "type": {"S": event["type"]},
        "timestamp": {"S": event["timestamp"]},
    }
    for name in ("payload", "metadata"):
        if name in event:
            item[name] = attribute(event[name])
    if event["version"] == 1:
        item[keys.index_partition_name] = keys.index_partition_value
    return item


def same_item(stored: Any, written: Any) -> bool:
    """Whether two attribute values are equal, numbers compared as numbers."""
    if isinstance(stored, dict) and isinstance(written, dict):
        if set(stored) != set(written):
            return False
        if set(stored) == {"N"}:
            return Decimal(stored["N"]) == Decimal(written["N"])
        return all(same_item(stored[key], written[key]) for key in stored)
    if isinstance(stored, list) and isinstance(written, list):
        return len(stored) == len(written) and all(map(same_item, stored, written))
    return bool(stored == written)


class _Unprocessed(Exception):
    """Some keys or items came back unprocessed: send them again after a backoff."""


def _classify(error: BaseException) -> Failure:
    if isinstance(error, _Unprocessed):
        return Failure("Unprocessed", str(error), True)
    return classify_aws_error(error)


class DynamoDBEventStoreDestination(EventStoreDestination):
    """Writes poured events into DynamoDB tables in Castore's ``layout``: ``table_name`` is
    the single table, or (legacy, one table per event store) a mapping of event store id to
    table, or a name in which ``{event_store_id}`` stands for each store's id, or one table
    when one store is poured. ``conflict``: ``fail``, ``skip_identical`` or ``overwrite``.
    Client options as for the DynamoDB stores."""

    max_batch_size = WRITE_BATCH

    def __init__(
        self,
        table_name: str | Mapping[str, str],
        *,
        layout: str = "single-table",
        conflict: str = "fail",
        client: Any = None,
        session: Any = None,
        region_name: str | None = None,
        endpoint_url: str | None = None,
        client_config: Any = None,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        retry_policy: RetryPolicy | None = None,
    ) -> None:
        if layout not in LAYOUTS:
            raise InvalidPourInputError(
                f"layout must be one of {', '.join(LAYOUTS)}, not {layout!r}"
            )
        super().__init__(conflict, max_in_flight, retry_policy)
        self._layout: Layout = layout
        self._tables = _tables(table_name, self._layout)
        if client is None:
            try:
                client = make_client(session, region_name, endpoint_url, client_config, 3.0, 30.0)
            except EventStoreError as error:
                raise InvalidPourInputError(str(error)) from error
        self._client = client

    def __repr__(self) -> str:
        return (
            f"DynamoDBEventStoreDestination({self._tables!r}, layout={self._layout!r}, "
            f"conflict={self._conflict!r})"
        )

    def _write_events(self, events: list[Written], repeats_allowed: bool) -> None:
        by_table: dict[str, list[tuple[Written, Item]]] = {}
        for written in events:
            table = self._table_of(written.event_store_id)
            keys = StoreKeys.of(written.event_store_id, self._layout)
            by_table.setdefault(table, []).append((written, event_item(written, keys)))
        for table, items in by_table.items():
            if self._conflict != "overwrite":
                items = self._settled(table, items, repeats_allowed)
            self._write(table, [item for _, item in items])

    def _table_of(self, event_store_id: str) -> str:
        table = self._tables.get(event_store_id) or self._tables.get("")
        if table is not None and self._layout == "legacy":
            table = table.replace("{event_store_id}", event_store_id)
        if table is None:
            raise InvalidPourInputError(
                f"no destination table for event store {event_store_id!r} (legacy layout: one "
                f"table per store; tables given: {self._tables})"
            )
        return table

    def _settled(
        self, table: str, items: list[tuple[Written, Item]], repeats_allowed: bool
    ) -> list[tuple[Written, Item]]:
        """The items to write: those not already there, or those the policy lets through."""
        stored = self._stored(table, [item for _, item in items])
        kept = []
        for written, item in items:
            existing = stored.get((item["aggregateId"]["S"], item["version"]["N"]))
            if existing is None:
                kept.append((written, item))
            else:
                settle_conflict(written, same_item(existing, item), self._conflict, repeats_allowed)
        return kept

    def _stored(self, table: str, items: list[Item]) -> dict[tuple[str, str], Item]:
        found: dict[tuple[str, str], Item] = {}
        for start in range(0, len(items), READ_BATCH):
            pending = [
                {"aggregateId": item["aggregateId"], "version": item["version"]}
                for item in items[start : start + READ_BATCH]
            ]

            def read() -> None:
                nonlocal pending
                response = self._client.batch_get_item(
                    RequestItems={table: {"Keys": pending, "ConsistentRead": True}}
                )
                for item in response.get("Responses", {}).get(table, []):
                    found[item["aggregateId"]["S"], item["version"]["N"]] = item
                pending = response.get("UnprocessedKeys", {}).get(table, {}).get("Keys", [])
                if pending:
                    raise _Unprocessed(f"{len(pending)} keys unprocessed")

            self._retrying(read, f"reading {len(pending)} events of DynamoDB table {table!r}")
        return found

    def _write(self, table: str, items: list[Item]) -> None:
        for start in range(0, len(items), WRITE_BATCH):
            pending = [
                {"PutRequest": {"Item": item}} for item in items[start : start + WRITE_BATCH]
            ]

            def write() -> None:
                nonlocal pending
                response = self._client.batch_write_item(RequestItems={table: pending})
                pending = response.get("UnprocessedItems", {}).get(table, [])
                if pending:
                    raise _Unprocessed(f"{len(pending)} items unprocessed")

            self._retrying(write, f"writing {len(pending)} events to DynamoDB table {table!r}")

    def _retrying(self, call: Any, what: str) -> None:
        try:
            call_with_retries(call, policy=self._retry_policy, what=what, classify=_classify)
        except Exception as error:
            raise MessageChannelError(f"{what} failed: {error}{gave_up_note(error)}") from error


def _tables(table_name: object, layout: Layout) -> dict[str, str]:
    """Destination table per event store id ("" for every store)."""
    if isinstance(table_name, str) and table_name:
        return {"": table_name}
    if (
        layout == "legacy"
        and isinstance(table_name, Mapping)
        and table_name
        and all(
            isinstance(k, str) and isinstance(v, str) and k and v for k, v in table_name.items()
        )
    ):
        return dict(table_name)
    raise InvalidPourInputError(
        "table_name must be a table name (or, legacy layout, a mapping of event store id to "
        f"table name), not {table_name!r}"
    )
