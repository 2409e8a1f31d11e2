"""Validation of every pour argument, done before anything is read or published.

Each function returns the argument in the engine's normalised form or raises
:class:`InvalidPourInputError` naming the bad value.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from airflow_provider_castore_dam.errors import InvalidPourInputError
from airflow_provider_castore_dam.protocols import EventStore, MessageChannel, check_max_in_flight
from airflow_provider_castore_dam.timestamps import normalize_timestamp

MIN_RATE_LIMIT = 0.001
"""The smallest rate limit, one message every 1,000 s: below it a pour would sleep for ages
(or overflow the clock) after its first batch."""
_SHOWN_CHARS = 100


@dataclass(frozen=True)
class TimeRange:
    """Inclusive bounds in Castore's timestamp form; ``None`` is unbounded."""

    start: str | None = None
    end: str | None = None

    def contains(self, timestamp: str) -> bool:
        return (self.start is None or self.start <= timestamp) and (
            self.end is None or timestamp <= self.end
        )

    def as_json(self) -> dict[str, str | None]:
        return {"from": self.start, "to": self.end}


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


def _shown(value: object) -> str:
    """``repr(value)``, cut short for error messages."""
    text = repr(value)
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 3] + "..."


def _mapping(value: object, name: str, allowed: Sequence[str]) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidPourInputError(
            f"{name} must be a mapping, not {type(value).__name__} {_shown(value)}"
        )
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
    if rate_limit < MIN_RATE_LIMIT:
        raise InvalidPourInputError(
            f"rate_limit {rate_limit!r} is below {MIN_RATE_LIMIT} messages per second "
            "(one every 1,000 s); give a larger one, or None for no limit"
        )
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


def parse_event_store(event_store: object, name: str = "event_store") -> EventStore:
    """An object with a non-empty string ``event_store_id`` (e.g. not the id itself)."""
    event_store_id = getattr(event_store, "event_store_id", None)
    if not isinstance(event_store_id, str) or not event_store_id:
        raise InvalidPourInputError(
            f"{name} must be an event store (with a non-empty event_store_id), "
            f"not {type(event_store).__name__} {_shown(event_store)}"
        )
    return cast(EventStore, event_store)


def parse_message_channel(channel: object) -> MessageChannel:
    """An object with ``publish_messages``, a positive integer ``max_batch_size`` and, when
    it has one, a valid ``max_in_flight``."""
    size = getattr(channel, "max_batch_size", None)
    if not callable(getattr(channel, "publish_messages", None)):
        raise InvalidPourInputError(
            f"message_channel must be a message channel (with publish_messages), "
            f"not {type(channel).__name__} {_shown(channel)}"
        )
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise InvalidPourInputError(
            f"the max_batch_size of message channel {_shown(channel)} must be a positive "
            f"integer, not {size!r}"
        )
    in_flight = getattr(channel, "max_in_flight", 1)
    check_max_in_flight(in_flight, f"the max_in_flight of message channel {_shown(channel)}")
    return cast(MessageChannel, channel)


def parse_event_stores(event_stores: object) -> list[EventStore]:
    """A non-empty collection of stores with distinct event store ids."""
    if isinstance(event_stores, (str, bytes, Mapping)) or not isinstance(event_stores, Sequence):
        raise InvalidPourInputError(
            f"event_stores must be a list of event stores, not {type(event_stores).__name__} "
            f"{_shown(event_stores)}"
        )
    if not event_stores:
        raise InvalidPourInputError("event_stores is empty; give at least one event store")
    seen: set[str] = set()
    for index, item in enumerate(event_stores):
        store = parse_event_store(item, f"event_stores[{index}]")
        if store.event_store_id in seen:
            raise InvalidPourInputError(
                f"event store id {store.event_store_id!r} appears twice in event_stores"
            )
        seen.add(store.event_store_id)
    return list(event_stores)
