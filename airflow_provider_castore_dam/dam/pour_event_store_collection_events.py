from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import closing
from typing import Any

from airflow_provider_castore_dam.dam.checkpoints import (
    Checkpoint,
    event_positions,
    start_pour,
)
from airflow_provider_castore_dam.dam.collector import fewer_collections
from airflow_provider_castore_dam.dam.digest import pour_digest
from airflow_provider_castore_dam.dam.filters import parse_pour_filters
from airflow_provider_castore_dam.dam.inputs import (
    parse_event_stores,
)
from airflow_provider_castore_dam.dam.interruption import interrupted_by_channel
from airflow_provider_castore_dam.dam.ordering import messages_in_pour_order, pour_batches
from airflow_provider_castore_dam.dam.progress import PourProgress
from airflow_provider_castore_dam.dam.results import CollectionEventsPourResult
from airflow_provider_castore_dam.dam.transforms import parse_transforms
from airflow_provider_castore_dam.partitions import parse_partition
from airflow_provider_castore_dam.protocols import EventDetail, EventStore, MessageChannel

UTILITY = "pour_event_store_collection_events"


def pour_event_store_collection_events(
    event_stores: Sequence[EventStore],
    message_channel: MessageChannel,
    filters: Mapping[str, Any] | None = None,
    rate_limit: float | None = None,
    *,
    progress: PourProgress | None = None,
    checkpoint: Mapping[str, Any] | None = None,
    on_checkpoint: Callable[[Checkpoint], None] | None = None,
    partition: tuple[int, int] | None = None,
    transform: Callable[[str, EventDetail], Any] | str | None = None,
    rename_event_stores: Mapping[str, str] | None = None,
) -> CollectionEventsPourResult:
    """Publish the events of several stores merged in one pour order (see :mod:`.ordering`);
    equal pour timestamps are broken by event store id. ``checkpoint``, ``on_checkpoint`` and
    ``partition`` (the same partition of every store) as in :func:`.pour_event_store_events`."""
    stores = parse_event_stores(event_stores)
    pour_filters = parse_pour_filters(filters)
    time_range = pour_filters.time_range
    in_partition = parse_partition(partition)
    inputs: dict[str, Any] = {
        "event_store_ids": [store.event_store_id for store in stores],
        "filters": pour_filters.as_json(),
    }
    if in_partition is not None:
        inputs["partition"] = in_partition.as_json()
    inputs.update(parse_transforms(transform, rename_event_stores))
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
    batches, scans = messages_in_pour_order(
        stores, time_range, event_positions(resumed), pour_filters.selection(in_partition)
    )

    def result() -> CollectionEventsPourResult:
        return {
            "poured_event_count": pourer.poured_count,
            "scans": scans,
            "digest": pour_digest(UTILITY, inputs, pourer.digest),
        }

    with interrupted_by_channel(result), fewer_collections(), closing(batches):
        pour_batches(batches, pourer, ledger, transformer)
    return result()
