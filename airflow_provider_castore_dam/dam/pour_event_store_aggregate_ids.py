from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, replace
from typing import Any

from airflow_provider_castore_dam.dam.checkpoints import (
    Checkpoint,
    aggregate_position,
    aggregates_after,
    resumed_result,
    start_pour,
)
from airflow_provider_castore_dam.dam.collector import fewer_collections
from airflow_provider_castore_dam.dam.digest import pour_digest
from airflow_provider_castore_dam.dam.filters import AGGREGATE_IDS_KEYS, parse_pour_filters
from airflow_provider_castore_dam.dam.inputs import (
    parse_event_store,
    parse_list_aggregate_ids_options,
)
from airflow_provider_castore_dam.dam.interruption import interrupted_by_channel
from airflow_provider_castore_dam.dam.messages import aggregate_exists_message
from airflow_provider_castore_dam.dam.progress import PourProgress
from airflow_provider_castore_dam.dam.reading import iter_aggregate_ids
from airflow_provider_castore_dam.dam.results import (
    AggregateIdsPourResult,
    empty_scan_infos,
    record_scanned,
)
from airflow_provider_castore_dam.protocols import EventStore, MessageChannel

UTILITY = "pour_event_store_aggregate_ids"


def pour_event_store_aggregate_ids(
    event_store: EventStore,
    message_channel: MessageChannel,
    options: Mapping[str, Any] | None = None,
    rate_limit: float | None = None,
    *,
    progress: PourProgress | None = None,
    checkpoint: Mapping[str, Any] | None = None,
    on_checkpoint: Callable[[Checkpoint], None] | None = None,
    filters: Mapping[str, Any] | None = None,
) -> AggregateIdsPourResult:
    """Publish an aggregate-exists message for every aggregate of ``event_store``.

    Aggregates come in the store's listing order: initial event timestamp, ascending unless
    ``options["reverse"]``. ``options``: ``limit`` (page size), ``initial_event_after``,
    ``initial_event_before`` (inclusive), ``reverse``. ``filters``: ``aggregate_ids`` only
    (see :mod:`.filters`), matched against the listing. ``checkpoint`` and ``on_checkpoint``
    as in :func:`.pour_event_store_events`.
    """
    event_store = parse_event_store(event_store)
    list_options = parse_list_aggregate_ids_options(options)
    store_id = event_store.event_store_id
    pour_filters = parse_pour_filters(filters, AGGREGATE_IDS_KEYS)
    selection = pour_filters.selection()
    inputs: dict[str, Any] = {"event_store_id": store_id, "options": asdict(list_options)}
    if selection is not None:
        inputs["filters"] = {"aggregate_ids": pour_filters.aggregate_ids_json}
    pourer, resumed, ledger, _ = start_pour(
        UTILITY,
        inputs,
        message_channel,
        rate_limit,
        progress,
        checkpoint,
        on_checkpoint,
        lambda: result(),
    )
    scan_infos = empty_scan_infos()
    if resumed is not None:
        scan_infos["first_scanned_aggregate"] = resumed_result(resumed, "first_scanned_aggregate")
    saved = None if resumed is None else resumed["positions"].get(store_id)
    position = None if saved is None else aggregate_position(saved, store_id)
    if position is not None and list_options.reverse:
        list_options = replace(list_options, initial_event_before=position[0])
    elif position is not None:
        list_options = replace(list_options, initial_event_after=position[0])

    def result() -> AggregateIdsPourResult:
        return {
            "poured_aggregate_id_count": pourer.poured_count,
            **scan_infos,
            "digest": pour_digest(UTILITY, inputs, pourer.digest),
        }

    with interrupted_by_channel(result), fewer_collections(), pourer:
        aggregates = iter_aggregate_ids(event_store, list_options)
        for aggregate in aggregates_after(aggregates, position):
            if selection is not None and not selection.contains(aggregate["aggregate_id"]):
                continue
            record_scanned(scan_infos, aggregate)
            message = aggregate_exists_message(store_id, aggregate)
            if ledger is not None:
                ledger.add([message])
            pourer.pour(message)
        pourer.flush()
    return result()
