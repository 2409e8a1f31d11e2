from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import closing
from typing import Any

from airflow_provider_castore_dam.dam.inputs import (
    parse_event_stores,
    parse_filters,
    parse_rate_limit,
)
from airflow_provider_castore_dam.dam.interruption import interrupted_by_channel
from airflow_provider_castore_dam.dam.ordering import messages_in_pour_order
from airflow_provider_castore_dam.dam.pourer import MessagePourer
from airflow_provider_castore_dam.dam.progress import PourProgress
from airflow_provider_castore_dam.dam.results import CollectionEventsPourResult
from airflow_provider_castore_dam.protocols import EventStore, MessageChannel


def pour_event_store_collection_events(
    event_stores: Sequence[EventStore],
    message_channel: MessageChannel,
    filters: Mapping[str, Any] | None = None,
    rate_limit: float | None = None,
    *,
    progress: PourProgress | None = None,
) -> CollectionEventsPourResult:
    """Publish the events of several stores merged in one pour order (see :mod:`.ordering`);
    equal pour timestamps are broken by event store id."""
    stores = parse_event_stores(event_stores)
    time_range = parse_filters(filters)
    pourer = MessagePourer(message_channel, parse_rate_limit(rate_limit), progress)
    batches, scans = messages_in_pour_order(stores, time_range)

    def result() -> CollectionEventsPourResult:
        return {"poured_event_count": pourer.poured_count, "scans": scans}

    with interrupted_by_channel(result), closing(batches):
        for messages in batches:
            pourer.pour_many(messages)
        pourer.flush()
    return result()
