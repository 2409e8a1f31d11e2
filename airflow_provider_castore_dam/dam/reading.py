"""Page-by-page reads of an event store: aggregate listings and one aggregate's events."""

from __future__ import annotations

from collections.abc import Iterator

from airflow_provider_castore_dam.dam.inputs import GetEventsOptions, ListAggregateIdsOptions
from airflow_provider_castore_dam.protocols import EventDetail, EventStore, ScannedAggregate

EVENTS_PAGE_SIZE = 100
"""Events fetched per ``get_events`` call, so one aggregate never has to fit in memory."""


def iter_aggregate_ids(
    store: EventStore, options: ListAggregateIdsOptions
) -> Iterator[ScannedAggregate]:
    page_token: str | None = None
    while True:
        page = store.list_aggregate_ids(
            limit=options.limit,
            page_token=page_token,
            initial_event_after=options.initial_event_after,
            initial_event_before=options.initial_event_before,
            reverse=options.reverse,
        )
        yield from page.aggregate_ids
        if page.next_page_token is None:
            return
        page_token = page.next_page_token


def iter_aggregate_events(
    store: EventStore,
    aggregate_id: str,
    options: GetEventsOptions,
    page_size: int = EVENTS_PAGE_SIZE,
) -> Iterator[EventDetail]:
    """The events ``get_events(aggregate_id, options)`` would return, fetched a page at a time."""
    low, high = options.min_version, options.max_version
    remaining = options.limit
    while remaining is None or remaining > 0:
        size = page_size if remaining is None else min(page_size, remaining)
        page = store.get_events(
            aggregate_id, min_version=low, max_version=high, limit=size, reverse=options.reverse
        )
        yield from page
        if len(page) < size:
            return
        if remaining is not None:
            remaining -= len(page)
        if options.reverse:
            high = page[-1]["version"] - 1
            if high < (low or 1):
                return
        else:
            low = page[-1]["version"] + 1
