"""An event store held in this process, seeded from Castore event details.

Same semantics as the stores over real tables: listing ordered by initial event timestamp
then aggregate id, inclusive bounds, tie-safe page tokens.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Iterable, Iterator
from copy import deepcopy

from airflow_provider_castore_dam.errors import EventStoreError
from airflow_provider_castore_dam.protocols import (
    AggregateIdsPage,
    EventDetail,
    ScannedAggregate,
    ScannedBatch,
    StoredEvent,
)
from airflow_provider_castore_dam.selection import Selection
from airflow_provider_castore_dam.timestamps import normalize_timestamp

DEFAULT_PAGE_SIZE = 100
_REQUIRED_KEYS = ("aggregateId", "version", "type", "timestamp")


def _checked(event: EventDetail, position: int) -> EventDetail:
    missing = [key for key in _REQUIRED_KEYS if key not in event]
    if missing:
        raise EventStoreError(f"event #{position} lacks {missing}: {event!r}")
    version = event["version"]
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise EventStoreError(f"event #{position} has version {version!r}, not a positive integer")
    checked = deepcopy(event)
    checked["timestamp"] = normalize_timestamp(event["timestamp"], f"event #{position} timestamp")
    return checked


class InMemoryEventStore:
    """Castore's in-memory adapter, for tests, the demo and dry runs."""

    def __init__(
        self,
        event_store_id: str,
        events: Iterable[EventDetail],
        *,
        default_page_size: int = DEFAULT_PAGE_SIZE,
    ) -> None:
        self._event_store_id = event_store_id
        self._default_page_size = default_page_size
        self._events: dict[str, list[EventDetail]] = {}
        for position, raw in enumerate(events):
            event = _checked(raw, position)
            self._events.setdefault(event["aggregateId"], []).append(event)
        for aggregate_id, aggregate_events in self._events.items():
            aggregate_events.sort(key=lambda event: event["version"])
            versions = [event["version"] for event in aggregate_events]
            if len(set(versions)) != len(versions):
                raise EventStoreError(f"aggregate {aggregate_id!r} has a version twice: {versions}")
        self._initial = sorted(
            (aggregate_events[0]["timestamp"], aggregate_id)
            for aggregate_id, aggregate_events in self._events.items()
        )

    @property
    def event_store_id(self) -> str:
        return self._event_store_id

    def list_aggregate_ids(
        self,
        *,
        limit: int | None = None,
        page_token: str | None = None,
        initial_event_after: str | None = None,
        initial_event_before: str | None = None,
        reverse: bool = False,
    ) -> AggregateIdsPage:
        low = (
            0
            if initial_event_after is None
            else bisect.bisect_left(self._initial, (initial_event_after, ""))
        )
        high = (
            len(self._initial)
            if initial_event_before is None
            else bisect.bisect_left(self._initial, (initial_event_before + "\x00", ""))
        )
        if page_token is not None:
            last = tuple(json.loads(page_token))
            if reverse:
                high = min(high, bisect.bisect_left(self._initial, last))
            else:
                low = max(low, bisect.bisect_right(self._initial, last))
        size = limit or self._default_page_size
        selected = (
            self._initial[max(low, high - size) : high][::-1]
            if reverse
            else self._initial[low : min(high, low + size)]
        )
        remaining = high - low - len(selected)
        return AggregateIdsPage(
            aggregate_ids=[
                ScannedAggregate(aggregate_id=aggregate_id, initial_event_timestamp=timestamp)
                for timestamp, aggregate_id in selected
            ],
            next_page_token=json.dumps(selected[-1]) if remaining > 0 else None,
        )

    def get_events(
        self,
        aggregate_id: str,
        *,
        min_version: int | None = None,
        max_version: int | None = None,
        limit: int | None = None,
        reverse: bool = False,
    ) -> list[EventDetail]:
        events = [
            event
            for event in self._events.get(aggregate_id, [])
            if (min_version is None or event["version"] >= min_version)
            and (max_version is None or event["version"] <= max_version)
        ]
        if reverse:
            events.reverse()
        return deepcopy(events[:limit])

    def audit_events(self) -> Iterator[list[StoredEvent]]:
        """Every event by aggregate id and version, ``default_page_size`` at a time; every
        aggregate is listed."""
        stored = [
            StoredEvent(
                aggregate_id,
                event["version"],
                event["type"] if isinstance(event["type"], str) else None,
                event["timestamp"],
            )
            for aggregate_id in sorted(self._events)
            for event in self._events[aggregate_id]
        ]
        for start in range(0, len(stored), self._default_page_size):
            yield stored[start : start + self._default_page_size]


class InMemoryScanningEventStore(InMemoryEventStore):
    """An in-memory store that also offers the native time-ordered scan."""

    def scan_event_batches(
        self,
        *,
        from_timestamp: str | None = None,
        to_timestamp: str | None = None,
        selection: Selection | None = None,
    ) -> Iterator[ScannedBatch]:
        scanned: list[tuple[str, str, int, EventDetail]] = []
        for aggregate_id, events in self._events.items():
            if selection is not None and not selection.contains(aggregate_id):
                continue
            floor = ""
            for event in events:
                floor = max(floor, event["timestamp"])
                if selection is not None and not selection.keeps_type(event["type"]):
                    continue
                if (from_timestamp is None or floor >= from_timestamp) and (
                    to_timestamp is None or floor <= to_timestamp
                ):
                    scanned.append((floor, aggregate_id, event["version"], event))
        scanned.sort(key=lambda item: item[:3])
        for start in range(0, len(scanned), self._default_page_size):
            page = scanned[start : start + self._default_page_size]
            yield ScannedBatch(
                [pour_timestamp for pour_timestamp, _, _, _ in page],
                [deepcopy(event) for _, _, _, event in page],
            )
