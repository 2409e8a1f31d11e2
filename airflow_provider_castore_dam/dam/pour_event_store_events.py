from __future__ import annotations

from collections.abc import Mapping
from contextlib import closing
from typing import Any

from airflow_provider_castore_dam.dam.inputs import parse_filters, parse_rate_limit
from airflow_provider_castore_dam.dam.interruption import interrupted_by_channel
from airflow_provider_castore_dam.dam.ordering import messages_in_pour_order
from airflow_provider_castore_dam.dam.pourer import MessagePourer
from airflow_provider_castore_dam.dam.progress import PourProgress
from airflow_provider_castore_dam.dam.results import EventStoreEventsPourResult
from airflow_provider_castore_dam.protocols import EventStore, MessageChannel


def pour_event_store_events(
    event_store: EventStore,
    message_channel: MessageChannel,
    filters: Mapping[str, Any] | None = None,
    rate_limit: float | None = None,
    *,
    progress: PourProgress | None = None,
) -> EventStoreEventsPourResult:
    """Publish every event of ``event_store`` in pour order (see :mod:`.ordering`).

    ``filters``: ``from`` and ``to``, inclusive. Scanned aggregates are those whose initial
    event is not after ``to``.
    """
    time_range = parse_filters(filters)
    pourer = MessagePourer(message_channel, parse_rate_limit(rate_limit), progress)
    batches, scans = messages_in_pour_order([event_store], time_range)
    scan_infos = scans[event_store.event_store_id]

    def result() -> EventStoreEventsPourResult:
        return {"poured_event_count": pourer.poured_count, **scan_infos}

    with interrupted_by_channel(result), closing(batches):
        for messages in batches:
            pourer.pour_many(messages)
        pourer.flush()
    return result()
