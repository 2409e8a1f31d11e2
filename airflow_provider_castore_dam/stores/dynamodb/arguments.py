"""Checks of the stores' numeric and timestamp arguments."""

from __future__ import annotations

from airflow_provider_castore_dam.errors import EventStoreError
from airflow_provider_castore_dam.stores.dynamodb.items import CASTORE_TIMESTAMP
from airflow_provider_castore_dam.timestamps import normalize_timestamp


def positive(value: int | None, name: str) -> int | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise EventStoreError(f"{name} must be a positive integer or None, not {value!r}")
    return value


def check_positive(**numbers: int | None) -> None:
    """:func:`positive` on each argument, in order."""
    for name, number in numbers.items():
        positive(number, name)


def timestamp_bound(value: str | None, name: str, *, round_up: bool = False) -> str | None:
    if value is None or CASTORE_TIMESTAMP.fullmatch(value):
        return value
    return normalize_timestamp(value, name, round_up=round_up)
