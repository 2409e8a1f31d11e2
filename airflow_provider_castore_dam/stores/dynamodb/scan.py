"""A DynamoDB event store that streams its events in pour order by scanning its table.

The merge path reads a DynamoDB store with at least one ``Query`` per aggregate: thousands of
small requests, each charged at least half a read unit. A parallel ``Scan``
(:mod:`.parallel_scan`) reads the same items with one request per ``scan_page_items`` items
(``scan_segments`` requests in flight), which is what DynamoDB serves fastest and cheapest.
Scanned items come in no useful order, so they are sorted twice with bounded memory
(:mod:`~airflow_provider_castore_dam.external_sort`): by aggregate and version, to give
each event its pour timestamp (the latest timestamp of its aggregate so far, for clock skew),
then in pour order.

A scan reads the whole table: every event store of a single table. When the store to pour is
a small share of a shared table, the merge path (:class:`DynamoDBEventStore`) reads less.

Memory, in events: ``run_events + FAN_IN * CHUNK_ITEMS`` for each sort (one sort's merge
feeds the other's runs), plus ``2 * scan_segments * scan_page_items`` scanned and queued, plus
one batch. Events beyond a run are spilled to temporary files (about the size of the data).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

from airflow_provider_castore_dam.external_sort import RUN_ITEMS
from airflow_provider_castore_dam.protocols import EventDetail, ScannedBatch, ScannedEvent
from airflow_provider_castore_dam.selection import Selection
from airflow_provider_castore_dam.stores.dynamodb.arguments import check_positive, timestamp_bound
from airflow_provider_castore_dam.stores.dynamodb.parallel_scan import (
    DEFAULT_SCAN_PAGE_ITEMS,
    DEFAULT_SCAN_SEGMENTS,
    PageDecoder,
    ScanSettings,
    scan_items,
)
from airflow_provider_castore_dam.stores.dynamodb.store import DynamoDBEventStore

DEFAULT_SCAN_BATCH_SIZE = 500


class DynamoDBTableScanEventStore(DynamoDBEventStore):
    """A :class:`DynamoDBEventStore` that also streams all its events in pour order
    (:meth:`scan_event_batches`), from a parallel scan of its table.

    Takes :class:`DynamoDBEventStore`'s arguments, and: ``scan_segments`` (parallel scan
    segments, one thread each), ``scan_page_items`` (items per ``Scan`` request),
    ``run_events`` (events sorted in memory before spilling to ``spill_directory``).
    """

    lists_beside_scans = True
    """A scan holds no connection: listings can run while it reads."""

    def __init__(
        self,
        event_store_id: str,
        table_name: str,
        *,
        scan_segments: int = DEFAULT_SCAN_SEGMENTS,
        scan_page_items: int = DEFAULT_SCAN_PAGE_ITEMS,
        scan_batch_size: int = DEFAULT_SCAN_BATCH_SIZE,
        run_events: int = RUN_ITEMS,
        spill_directory: str | None = None,
        **options: Any,
    ) -> None:
        check_positive(
            scan_segments=scan_segments,
            scan_page_items=scan_page_items,
            scan_batch_size=scan_batch_size,
            run_events=run_events,
        )
        super().__init__(event_store_id, table_name, **options)
        self._scan_settings = ScanSettings(
            scan_segments, scan_page_items, run_events, spill_directory
        )
        self._scan_batch_size = scan_batch_size

    def __repr__(self) -> str:
        return (
            f"DynamoDBTableScanEventStore({self.event_store_id!r}, {self.table_name!r}, "
            f"layout={self.layout!r})"
        )

    def scan_event_batches(
        self,
        *,
        from_timestamp: str | None = None,
        to_timestamp: str | None = None,
        selection: Selection | None = None,
    ) -> Iterator[ScannedBatch]:
        """Every event whose pour timestamp lies within the inclusive bounds, in
        ``(pour_timestamp, aggregate_id, version)`` order, ``scan_batch_size`` at a time.
        With ``selection``, the scan still reads the whole table (DynamoDB's own scan
        segments do not follow the partition hash; a ``FilterExpression`` only saves what
        comes back) and keeps only the selected aggregates; event types are left out once every
        event has its pour timestamp."""
        start = timestamp_bound(from_timestamp, "from_timestamp", round_up=True)
        end = timestamp_bound(to_timestamp, "to_timestamp")
        self._store_table.layout_check.ensure()
        settings = self._scan_settings
        scanned_events = scan_items(
            self._store_table, settings, self._decoder(selection), selection
        )
        by_version = settings.sorted(scanned_events, key=_version_key)
        keeps_type = _every_type if selection is None else selection.keeps_type
        in_range = (
            scanned
            for scanned in _with_pour_timestamps(by_version)
            if (start is None or scanned.pour_timestamp >= start)
            and (end is None or scanned.pour_timestamp <= end)
            and keeps_type(scanned.event["type"])
        )
        in_order = settings.sorted(in_range, key=_pour_key)
        while batch := ScannedBatch.of(itertools.islice(in_order, self._scan_batch_size)):
            yield batch

    def _decoder(self, selection: Selection | None) -> PageDecoder[EventDetail]:
        event = self._store_table.items.event
        if selection is None:
            return lambda items: [event(item) for item in items]
        contains = selection.contains
        return lambda items: [e for e in map(event, items) if contains(e["aggregateId"])]


def _every_type(_: object) -> bool:
    return True


def _version_key(event: EventDetail) -> tuple[str, int]:
    return event["aggregateId"], event["version"]


def _pour_key(scanned: ScannedEvent) -> tuple[str, str, int]:
    return scanned.pour_timestamp, scanned.event["aggregateId"], scanned.event["version"]


def _with_pour_timestamps(events: Iterator[EventDetail]) -> Iterator[ScannedEvent]:
    """Events sorted by aggregate and version, each with its pour timestamp."""
    aggregate_id: str | None = None
    floor = ""
    for event in events:
        if event["aggregateId"] != aggregate_id:
            aggregate_id, floor = event["aggregateId"], event["timestamp"]
        floor = max(floor, event["timestamp"])
        yield ScannedEvent(floor, event)
