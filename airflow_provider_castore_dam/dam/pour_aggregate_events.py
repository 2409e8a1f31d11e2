from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict
from typing import Any

from airflow_provider_castore_dam.dam.checkpoints import (
    Checkpoint,
    resumed_result,
    start_pour,
    version_position,
)
from airflow_provider_castore_dam.dam.collector import fewer_collections
from airflow_provider_castore_dam.dam.digest import pour_digest
from airflow_provider_castore_dam.dam.filters import AGGREGATE_EVENTS_KEYS, parse_pour_filters
from airflow_provider_castore_dam.dam.inputs import (
    parse_aggregate_id,
    parse_event_store,
    parse_get_events_options,
)
from airflow_provider_castore_dam.dam.interruption import interrupted_by_channel
from airflow_provider_castore_dam.dam.messages import notification_message
from airflow_provider_castore_dam.dam.ordering import pour_batch
from airflow_provider_castore_dam.dam.progress import PourProgress
from airflow_provider_castore_dam.dam.reading import iter_aggregate_events
from airflow_provider_castore_dam.dam.results import AggregateEventsPourResult
from airflow_provider_castore_dam.dam.transforms import parse_transforms
from airflow_provider_castore_dam.protocols import EventDetail, EventStore, MessageChannel

UTILITY = "pour_aggregate_events"


def pour_aggregate_events(
    event_store: EventStore,
    message_channel: MessageChannel,
    aggregate_id: str,
    options: Mapping[str, Any] | None = None,
    filters: Mapping[str, Any] | None = None,
    rate_limit: float | None = None,
    *,
    progress: PourProgress | None = None,
    checkpoint: Mapping[str, Any] | None = None,
    on_checkpoint: Callable[[Checkpoint], None] | None = None,
    transform: Callable[[str, EventDetail], Any] | str | None = None,
    rename_event_stores: Mapping[str, str] | None = None,
) -> AggregateEventsPourResult:
    """Publish the events of one aggregate, in version order (descending with ``reverse``).

    ``options`` select events as Castore's getEvents does (``min_version``, ``max_version``,
    ``limit``, ``reverse``); ``filters`` (``from``, ``to``, inclusive) then keep those whose
    timestamp is in range, and ``event_types`` those of the types it keeps (see
    :mod:`.filters`). ``transform`` and ``rename_event_stores``: see :mod:`.transforms`. An
    unknown aggregate pours nothing. ``checkpoint`` and
    ``on_checkpoint`` as in :func:`.pour_event_store_events`.
    """
    event_store = parse_event_store(event_store)
    aggregate_id = parse_aggregate_id(aggregate_id)
    events_options = parse_get_events_options(options)
    pour_filters = parse_pour_filters(filters, AGGREGATE_EVENTS_KEYS)
    time_range = pour_filters.time_range
    selection = pour_filters.selection()
    store_id = event_store.event_store_id
    inputs = {
        "event_store_id": store_id,
        "aggregate_id": aggregate_id,
        "options": asdict(events_options),
        "filters": pour_filters.as_json(),
        **parse_transforms(transform, rename_event_stores),
    }
    pourer, resumed, ledger, transformer = start_pour(
        UTILITY,
        inputs,
        message_channel,
        rate_limit,
        progress,
        checkpoint,
        on_checkpoint,
        lambda: result(),
    )
    saved = None if resumed is None else resumed["positions"].get(store_id)
    done = None if saved is None else version_position(saved, store_id)

    def pending(version: int) -> bool:
        return done is None or (version < done if events_options.reverse else version > done)

    def result() -> AggregateEventsPourResult:
        first, last = pourer.first_poured, pourer.last_poured
        return {
            "poured_event_count": pourer.poured_count,
            "first_poured_event": resumed_result(resumed, "first_poured_event")
            or (None if first is None else first["event"]),
            "last_poured_event": resumed_result(resumed, "last_poured_event")
            if last is None
            else last["event"],
            "digest": pour_digest(UTILITY, inputs, pourer.digest),
        }

    with interrupted_by_channel(result), fewer_collections(), pourer:
        for event in iter_aggregate_events(event_store, aggregate_id, events_options):
            if (
                time_range.contains(event["timestamp"])
                and pending(event["version"])
                and (selection is None or selection.keeps_type(event["type"]))
            ):
                message = notification_message(store_id, event)
                pour_batch([message], None, pourer, ledger, transformer)
        pourer.flush()
    return result()
