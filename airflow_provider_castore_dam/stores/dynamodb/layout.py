"""Castore's two DynamoDB layouts: where an event store's items are in a table, and the check
that a table has the layout's key schema and ``initialEvents`` index."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from botocore.exceptions import ClientError

from airflow_provider_castore_dam.errors import EventStoreError
from airflow_provider_castore_dam.stores.dynamodb.table import Table, error_code

# The package's logger, so the store logs under one name as it did as a single module.
log = logging.getLogger(__package__)

Layout = Literal["single-table", "legacy"]
LAYOUTS: tuple[Layout, ...] = ("single-table", "legacy")
DEFAULT_GSI_NAME = "initialEvents"

_KEY_SCHEMA = (("aggregateId", "HASH", "S"), ("version", "RANGE", "N"))
_INDEX_KEY_SCHEMAS: dict[Layout, tuple[tuple[str, str, str], ...]] = {
    "single-table": (("eventStoreId", "HASH", "S"), ("timestamp", "RANGE", "S")),
    "legacy": (("isInitialEvent", "HASH", "N"), ("timestamp", "RANGE", "S")),
}


@dataclass(frozen=True)
class StoreKeys:
    """How one event store's items are keyed in its table."""

    event_store_id: str
    layout: Layout
    prefix: str
    """Of every stored ``aggregateId`` (none in the legacy layout)."""
    index_partition_name: str
    index_partition_value: dict[str, str]
    """Name and value of the partition key of the store's items in the ``initialEvents`` index."""

    @classmethod
    def of(cls, event_store_id: str, layout: Layout) -> StoreKeys:
        if layout == "single-table":
            return cls(
                event_store_id, layout, f"{event_store_id}#", "eventStoreId", {"S": event_store_id}
            )
        return cls(event_store_id, layout, "", "isInitialEvent", {"N": "1"})


class LayoutCheck:
    """Once per store: the table exists with Castore's key schema and index (DescribeTable).

    Without permission to describe the table, the check is skipped with a warning; the
    queries then report a missing table or index themselves.
    """

    def __init__(self, table: Table, layout: Layout) -> None:
        self._table = table
        self._layout = layout
        self._lock = threading.Lock()
        self._checked = False

    def ensure(self) -> None:
        if self._checked:
            return
        with self._lock:
            if self._checked:
                return
            try:
                response = self._table.call("DescribeTable", {"TableName": self._table.name})
            except EventStoreError as error:
                cause = error.__cause__
                if isinstance(cause, ClientError) and error_code(cause) in {
                    "AccessDeniedException",
                    "AccessDenied",
                }:
                    log.warning(
                        "cannot describe %s to check its layout (%s); reading it anyway",
                        self._table.where(),
                        error_code(cause),
                    )
                    self._checked = True
                    return
                raise
            self._check_description(response.get("Table", {}))
            self._checked = True

    def _check_description(self, table: Mapping[str, Any]) -> None:
        types = {
            definition["AttributeName"]: definition["AttributeType"]
            for definition in table.get("AttributeDefinitions", [])
        }
        found = _key_schema(table.get("KeySchema", []), types)
        if found != _KEY_SCHEMA:
            raise EventStoreError(
                f"{self._table.where()} is not in Castore's layout: its primary key should be "
                f"{_schema_text(_KEY_SCHEMA)}, found {_schema_text(found) or 'none'}"
            )
        indexes = {
            index["IndexName"]: _key_schema(index.get("KeySchema", []), types)
            for index in table.get("GlobalSecondaryIndexes", []) or []
        }
        self._check_index(indexes)

    def _check_index(self, indexes: Mapping[str, tuple[Any, ...]]) -> None:
        gsi_name = self._table.gsi_name
        expected = _INDEX_KEY_SCHEMAS[self._layout]
        other: Layout = "legacy" if self._layout == "single-table" else "single-table"
        if gsi_name not in indexes:
            names = ", ".join(repr(name) for name in indexes) or "none"
            raise EventStoreError(
                f"{self._table.where()} has no global secondary index {gsi_name!r} "
                f"(its indexes: {names}); Castore's {self._layout} layout needs one keyed "
                f"{_schema_text(expected)}"
            )
        index = indexes[gsi_name]
        if index != expected:
            hint = (
                f"; that is the {other} layout: pass layout={other!r}"
                if index == _INDEX_KEY_SCHEMAS[other]
                else ""
            )
            raise EventStoreError(
                f"{self._table.where()} is not in Castore's {self._layout} layout: index "
                f"{gsi_name!r} should be keyed {_schema_text(expected)}, found "
                f"{_schema_text(index) or 'none'}{hint}"
            )


def _schema_text(schema: Iterable[tuple[str, str, str]]) -> str:
    return ", ".join(f"{name} ({key_type}, {attr_type})" for name, key_type, attr_type in schema)


def _key_schema(key_schema: list[dict[str, Any]], types: Mapping[str, str]) -> tuple[Any, ...]:
    return tuple(
        (key["AttributeName"], key["KeyType"], types.get(key["AttributeName"], "?"))
        for key in key_schema
    )
