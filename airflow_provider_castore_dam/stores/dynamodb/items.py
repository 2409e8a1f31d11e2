"""Castore events from DynamoDB items: attribute values as JSON values, items checked against
the shape Castore writes, and errors that name the item and its table."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from airflow_provider_castore_dam.errors import EventStoreError, InvalidPourInputError
from airflow_provider_castore_dam.protocols import EventDetail, ScannedAggregate
from airflow_provider_castore_dam.stores.dynamodb.layout import StoreKeys
from airflow_provider_castore_dam.stores.dynamodb.table import Table
from airflow_provider_castore_dam.timestamps import normalize_timestamp

CASTORE_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")


def _number(text: str) -> int | float:
    """A DynamoDB number as JSON reads it: ``int`` when integral, else ``float``."""
    try:
        return int(text)
    except ValueError:
        pass
    number = Decimal(text)
    if number.is_finite() and number == number.to_integral_value():
        return int(number)
    return float(number)


def positive_integer(text: Any) -> int | None:
    """The value of a DynamoDB number's text if it is a positive integer, else None."""
    try:
        number = _number(text)
    except (ValueError, TypeError, InvalidOperation):
        return None
    return number if isinstance(number, int) and number >= 1 else None


def _binary(raw: Any) -> str:
    """Base64 text of a binary value: botocore gives bytes, the raw response JSON
    (:mod:`.raw_items`) already base64 text."""
    if isinstance(raw, str):
        return raw
    return base64.b64encode(bytes(raw)).decode("ascii")


def _json_value(attribute: Mapping[str, Any]) -> Any:
    """A low-level DynamoDB attribute value (``{"S": ...}``, ``{"M": ...}``...) as a JSON value.

    Castore never writes sets or binaries; should a table hold some, sets come back as sorted
    lists and binaries as base64 strings, so events stay JSON.
    """
    if len(attribute) != 1:
        raise ValueError(f"not a DynamoDB attribute value: {attribute!r}")
    ((tag, raw),) = attribute.items()
    if tag == "S":
        return raw
    if tag == "N":
        return _number(raw)
    if tag == "BOOL":
        return bool(raw)
    if tag == "NULL":
        return None
    if tag == "M":
        return {key: _json_value(value) for key, value in raw.items()}
    if tag == "L":
        return [_json_value(value) for value in raw]
    if tag == "SS":
        return sorted(raw)
    if tag == "NS":
        return sorted(_number(value) for value in raw)
    if tag == "B":
        return _binary(raw)
    if tag == "BS":
        return sorted(_binary(value) for value in raw)
    raise ValueError(f"unknown DynamoDB attribute type {tag!r}")


def _castore_timestamp(value: str, where: str) -> str:
    if CASTORE_TIMESTAMP.fullmatch(value):
        return value
    try:
        return normalize_timestamp(value, where)
    except InvalidPourInputError as error:
        raise EventStoreError(f"{where} is not a Castore timestamp: {error}") from error


class EventItems:
    """Reads the items of one event store in its table (event or index items)."""

    def __init__(self, table: Table, keys: StoreKeys) -> None:
        self._table = table
        self._keys = keys

    def event(self, item: Mapping[str, Any]) -> EventDetail:
        stored_id = self.attribute(item, "aggregateId", "S")
        version = self._version(item)
        timestamp = self.attribute(item, "timestamp", "S")
        event: EventDetail = {
            "aggregateId": self._unprefixed(stored_id, item),
            "version": version,
            "type": self.attribute(item, "type", "S"),
            "timestamp": self._timestamp(timestamp, item),
        }
        for name in ("payload", "metadata"):
            if name in item:
                try:
                    event[name] = _json_value(item[name])
                except (ValueError, TypeError, AttributeError, InvalidOperation) as error:
                    raise EventStoreError(
                        f"item {self._key(item)} of {self._table.where()} has an unreadable "
                        f"{name}: {error}"
                    ) from error
        return event

    def scanned_aggregate(self, item: Mapping[str, Any]) -> ScannedAggregate:
        stored_id = self.attribute(item, "aggregateId", "S")
        timestamp = self.attribute(item, "timestamp", "S")
        return ScannedAggregate(
            aggregate_id=self._unprefixed(stored_id, item),
            initial_event_timestamp=self._timestamp(timestamp, item),
        )

    def attribute(self, item: Mapping[str, Any], name: str, tag: str) -> Any:
        value = item.get(name)
        if not isinstance(value, Mapping) or tag not in value:
            found = "absent" if value is None else f"{value!r}"
            raise EventStoreError(
                f"item {self._key(item)} of {self._table.where()} is not a Castore event: "
                f"attribute {name!r} should be of type {tag}, found {found}"
            )
        return value[tag]

    def _version(self, item: Mapping[str, Any]) -> int:
        raw = self.attribute(item, "version", "N")
        version = positive_integer(raw)
        if version is None:
            raise EventStoreError(
                f"item {self._key(item)} of {self._table.where()} has version {raw!r}, "
                "not a positive integer"
            )
        return version

    def _timestamp(self, timestamp: str, item: Mapping[str, Any]) -> str:
        return _castore_timestamp(
            timestamp, f"timestamp of item {self._key(item)} of {self._table.where()}"
        )

    def _unprefixed(self, stored: str, item: Mapping[str, Any]) -> str:
        prefix = self._keys.prefix
        if prefix and stored.startswith(prefix):
            return stored[len(prefix) :]
        if prefix:
            raise EventStoreError(
                f"item {self._key(item)} of {self._table.where()} has no {prefix!r} "
                f"prefix: not an item of event store {self._keys.event_store_id!r}"
            )
        return stored

    def _key(self, item: Mapping[str, Any]) -> str:
        key = {name: item.get(name) for name in ("aggregateId", "version")}
        return json.dumps(key, default=str, ensure_ascii=False)
