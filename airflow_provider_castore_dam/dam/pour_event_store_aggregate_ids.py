from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow_provider_castore_dam.dam.inputs import (
    parse_list_aggregate_ids_options,
    parse_rate_limit,
)
from airflow_provider_castore_dam.dam.interruption import interrupted_by_channel
from airflow_provider_castore_dam.dam.messages import aggregate_exists_message
from airflow_provider_castore_dam.dam.pourer import MessagePourer
from airflow_provider_castore_dam.dam.progress import PourProgress
from airflow_provider_castore_dam.dam.reading import iter_aggregate_ids
from airflow_provider_castore_dam.dam.results import (
    AggregateIdsPourResult,
    empty_scan_infos,
    record_scanned,
)
from airflow_provider_castore_dam.protocols import EventStore, MessageChannel


def pour_event_store_aggregate_ids(
    event_store: EventStore,
    message_channel: MessageChannel,
    options: Mapping[str, Any] | None = None,
    rate_limit: float | None = None,
    *,
    progress: PourProgress | None = None,
) -> AggregateIdsPourResult:
    """Publish an aggregate-exists message for every aggregate of ``event_store``.

    Aggregates come in the store's listing order: initial event timestamp, ascending unless
    ``options["reverse"]``. ``options``: ``limit`` (page size), ``initial_event_after``,
    ``initial_event_before`` (inclusive), ``reverse``.
    """
    list_options = parse_list_aggregate_ids_options(options)
    pourer = MessagePourer(message_channel, parse_rate_limit(rate_limit), progress)
    scan_infos = empty_scan_infos()

    def result() -> AggregateIdsPourResult:
        return {"poured_aggregate_id_count": pourer.poured_count, **scan_infos}

    with interrupted_by_channel(result):
        for aggregate in iter_aggregate_ids(event_store, list_options):
            record_scanned(scan_infos, aggregate)
            pourer.pour(aggregate_exists_message(event_store.event_store_id, aggregate))
        pourer.flush()
    return result()
