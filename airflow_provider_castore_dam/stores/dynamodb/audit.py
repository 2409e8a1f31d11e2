"""A store's items as stored, for the integrity check: a parallel scan of the table, each item
read without the checks of :mod:`.items`, then sorted by aggregate and version."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from functools import partial
from operator import itemgetter
from typing import Any

from airflow_provider_castore_dam.protocols import StoredEvent
from airflow_provider_castore_dam.stores.dynamodb.items import positive_integer
from airflow_provider_castore_dam.stores.dynamodb.layout import StoreKeys
from airflow_provider_castore_dam.stores.dynamodb.parallel_scan import (
    Item,
    ScanSettings,
    scan_items,
)
from airflow_provider_castore_dam.stores.dynamodb.store_table import StoreTable

AUDIT_BATCH_SIZE = 2_000
_BY_VERSION = itemgetter(0, 1)
"""(aggregate id, version) of a :class:`StoredEvent`."""


def audit(store: StoreTable, settings: ScanSettings) -> Iterator[list[StoredEvent]]:
    """The store's events, aggregate after aggregate in version order, in batches of
    :data:`AUDIT_BATCH_SIZE`; items without a text ``aggregateId`` or a positive integer
    ``version`` are left out."""
    store.layout_check.ensure()
    scanned = scan_items(store, settings, partial(_stored_events, store.keys))
    in_order = settings.sorted(scanned, key=_BY_VERSION)
    while batch := list(itertools.islice(in_order, AUDIT_BATCH_SIZE)):
        yield batch


def _stored_events(keys: StoreKeys, items: list[Item]) -> list[StoredEvent]:
    events = []
    for item in items:
        stored_id = _text(item, "aggregateId")
        version = positive_integer(_attribute(item, "version", "N"))
        if stored_id is None or version is None:
            continue
        timestamp = _text(item, "timestamp")
        # The index is sparse: an item is in it only with both its key attributes, and the
        # listing reads the store's own partition of it.
        listed = version != 1 or (
            timestamp is not None
            and item.get(keys.index_partition_name) == keys.index_partition_value
        )
        aggregate_id = stored_id[len(keys.prefix) :]  # the scan keeps only prefixed ids
        events.append(StoredEvent(aggregate_id, version, _text(item, "type"), timestamp, listed))
    return events


def _attribute(item: Item, name: str, tag: str) -> Any:
    value = item.get(name)
    return value.get(tag) if isinstance(value, Mapping) else None


def _text(item: Item, name: str) -> str | None:
    value = _attribute(item, name, "S")
    return value if isinstance(value, str) else None
