"""Validation of every pour argument, done before anything is read or published.

Each function returns the argument in the engine's normalised form or raises
:class:`InvalidPourInputError` naming the bad value.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from airflow_provider_castore_dam.dam.timestamps import normalize_timestamp
from airflow_provider_castore_dam.errors import InvalidPourInputError
from airflow_provider_castore_dam.protocols import EventStore


@dataclass(frozen=True)
class TimeRange:
    """Inclusive bounds in Castore's timestamp form; ``None`` is unbounded."""

    start: str | None = None
    end: str | None = None

    def contains(self, timestamp: str) -> bool:
        return (self.start is None or self.start <= timestamp) and (
            self.end is None or timestamp <= self.end
        )


@dataclass(frozen=True)
class ListAggregateIdsOptions:
    limit: int | None = None
    initial_event_after: str | None = None
    initial_event_before: str | None = None
    reverse: bool = False


@dataclass(frozen=True)
class GetEventsOptions:
    min_version: int | None = None
    max_version: int | None = None
    limit: int | None = None
    reverse: bool = False


def _mapping(value: object, name: str, allowed: Sequence[str]) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidPourInputError(f"{name} must be a mapping, not {type(value).__name__}")
    unknown = sorted(set(value) - set(allowed))
    if unknown:
        raise InvalidPourInputError(
            f"unknown {name} key(s) {unknown}; allowed: {', '.join(allowed)}"
        )
    return {key: item for key, item in value.items() if item is not None}


def _positive_int(value: object, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise InvalidPourInputError(f"{name} must be a positive integer, not {value!r}")
    return value


def _bool(value: object, name: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidPourInputError(f"{name} must be true or false, not {value!r}")
    return value


def _ordered(start: str | None, end: str | None, names: tuple[str, str]) -> None:
    if start is not None and end is not None and start > end:
        raise InvalidPourInputError(f"{names[0]} {start} is after {names[1]} {end}")


def parse_filters(filters: object) -> TimeRange:
    """``{"from": iso, "to": iso}``, both optional and inclusive."""
    values = _mapping(filters, "filters", ("from", "to"))
    start = values.get("from")
    end = values.get("to")
    time_range = TimeRange(
        start=None if start is None else normalize_timestamp(start, "filters.from", round_up=True),
        end=None if end is None else normalize_timestamp(end, "filters.to"),
    )
    _ordered(time_range.start, time_range.end, ("filters.from", "filters.to"))
    return time_range


def parse_rate_limit(rate_limit: object) -> float | None:
    """Messages per second, a positive finite number, or ``None`` for no limit."""
    if rate_limit is None:
        return None
    if isinstance(rate_limit, bool) or not isinstance(rate_limit, (int, float)):
        raise InvalidPourInputError(
            f"rate_limit must be a number of messages per second, not {rate_limit!r}"
        )
    if not math.isfinite(rate_limit) or rate_limit <= 0:
        raise InvalidPourInputError(f"rate_limit must be positive and finite, not {rate_limit!r}")
    return float(rate_limit)


def parse_list_aggregate_ids_options(options: object) -> ListAggregateIdsOptions:
    """Castore's listAggregateIds options in snake_case, without the page token."""
    values = _mapping(
        options,
        "options",
        ("limit", "initial_event_after", "initial_event_before", "reverse"),
    )
    after = values.get("initial_event_after")
    before = values.get("initial_event_before")
    parsed = ListAggregateIdsOptions(
        limit=_positive_int(values.get("limit"), "options.limit"),
        initial_event_after=None
        if after is None
        else normalize_timestamp(after, "options.initial_event_after", round_up=True),
        initial_event_before=None
        if before is None
        else normalize_timestamp(before, "options.initial_event_before"),
        reverse=_bool(values.get("reverse", False), "options.reverse"),
    )
    _ordered(
        parsed.initial_event_after,
        parsed.initial_event_before,
        ("options.initial_event_after", "options.initial_event_before"),
    )
    return parsed


def parse_get_events_options(options: object) -> GetEventsOptions:
    """Castore's getEvents options in snake_case."""
    values = _mapping(options, "options", ("min_version", "max_version", "limit", "reverse"))
    parsed = GetEventsOptions(
        min_version=_positive_int(values.get("min_version"), "options.min_version"),
        max_version=_positive_int(values.get("max_version"), "options.max_version"),
        limit=_positive_int(values.get("limit"), "options.limit"),
        reverse=_bool(values.get("reverse", False), "options.reverse"),
    )
    if (
        parsed.min_version is not None
        and parsed.max_version is not None
        and parsed.min_version > parsed.max_version
    ):
        raise InvalidPourInputError(
            f"options.min_version {parsed.min_version} is above "
            f"options.max_version {parsed.max_version}"
        )
    return parsed


def parse_aggregate_id(aggregate_id: object) -> str:
    if not isinstance(aggregate_id, str) or not aggregate_id:
        raise InvalidPourInputError(
            f"aggregate_id must be a non-empty string, not {aggregate_id!r}"
        )
    return aggregate_id


def parse_event_stores(event_stores: object) -> list[EventStore]:
    """A non-empty collection of stores with distinct event store ids."""
    if isinstance(event_stores, (str, bytes, Mapping)) or not isinstance(event_stores, Sequence):
        raise InvalidPourInputError(
            f"event_stores must be a list of event stores, not {type(event_stores).__name__}"
        )
    if not event_stores:
        raise InvalidPourInputError("event_stores is empty; give at least one event store")
    seen: set[str] = set()
    for store in event_stores:
        if store.event_store_id in seen:
            raise InvalidPourInputError(
                f"event store id {store.event_store_id!r} appears twice in event_stores"
            )
        seen.add(store.event_store_id)
    return list(event_stores)
