from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow_provider_castore_dam.dam.inputs import (
    parse_aggregate_id,
    parse_filters,
    parse_get_events_options,
    parse_rate_limit,
)
from airflow_provider_castore_dam.dam.interruption import interrupted_by_channel
from airflow_provider_castore_dam.dam.messages import notification_message
from airflow_provider_castore_dam.dam.pourer import MessagePourer
from airflow_provider_castore_dam.dam.progress import PourProgress
from airflow_provider_castore_dam.dam.reading import iter_aggregate_events
from airflow_provider_castore_dam.dam.results import AggregateEventsPourResult
from airflow_provider_castore_dam.protocols import EventStore, MessageChannel


def pour_aggregate_events(
    event_store: EventStore,
    message_channel: MessageChannel,
    aggregate_id: str,
    options: Mapping[str, Any] | None = None,
    filters: Mapping[str, Any] | None = None,
    rate_limit: float | None = None,
    *,
    progress: PourProgress | None = None,
) -> AggregateEventsPourResult:
    """Publish the events of one aggregate, in version order (descending with ``reverse``).

    ``options`` select events as Castore's getEvents does (``min_version``, ``max_version``,
    ``limit``, ``reverse``); ``filters`` (``from``, ``to``, inclusive) then keep those whose
    timestamp is in range. An unknown aggregate pours nothing.
    """
    aggregate_id = parse_aggregate_id(aggregate_id)
    events_options = parse_get_events_options(options)
    time_range = parse_filters(filters)
    pourer = MessagePourer(message_channel, parse_rate_limit(rate_limit), progress)

    def result() -> AggregateEventsPourResult:
        first, last = pourer.first_poured, pourer.last_poured
        return {
            "poured_event_count": pourer.poured_count,
            "first_poured_event": None if first is None else first["event"],
            "last_poured_event": None if last is None else last["event"],
        }

    with interrupted_by_channel(result):
        for event in iter_aggregate_events(event_store, aggregate_id, events_options):
            if time_range.contains(event["timestamp"]):
                pourer.pour(notification_message(event_store.event_store_id, event))
        pourer.flush()
    return result()
