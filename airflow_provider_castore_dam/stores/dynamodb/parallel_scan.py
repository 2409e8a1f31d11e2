"""The parallel ``Scan`` of a store's table: one thread per segment, each page decoded as it
comes; and the external sort that puts the scanned items in order with bounded memory."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from airflow_provider_castore_dam.external_sort import RUN_ITEMS, external_sort
from airflow_provider_castore_dam.selection import Selection
from airflow_provider_castore_dam.stores.dynamodb.raw_items import raw_items
from airflow_provider_castore_dam.stores.dynamodb.store_table import StoreTable

T = TypeVar("T")
Item = Mapping[str, Any]
PageDecoder = Callable[[list[Item]], list[T]]

DEFAULT_SCAN_SEGMENTS = 4
DEFAULT_SCAN_PAGE_ITEMS = 1000

_SEGMENT_DONE = object()

MAX_IN_VALUES = 100
"""The most values DynamoDB takes in one ``IN`` of a condition."""


@dataclass(frozen=True)
class ScanSettings:
    """``segments`` parallel scan segments (one thread each), ``page_items`` items per ``Scan``
    request, ``run_items`` items sorted in memory before spilling to ``spill_directory``."""

    segments: int = DEFAULT_SCAN_SEGMENTS
    page_items: int = DEFAULT_SCAN_PAGE_ITEMS
    run_items: int = RUN_ITEMS
    spill_directory: str | None = None

    def sorted(self, items: Iterable[T], key: Callable[[T], Any]) -> Iterator[T]:
        return external_sort(items, key, run_items=self.run_items, directory=self.spill_directory)


def scan_items(
    store: StoreTable,
    settings: ScanSettings,
    decode_page: PageDecoder[T],
    selection: Selection | None = None,
) -> Iterator[T]:
    """What ``decode_page`` makes of the pages of the store's items (those with its prefix, in
    the single-table layout), in no particular order: pages of the segments as they come.
    ``selection``'s aggregate ids go into the scan's ``FilterExpression`` (when they are at
    most 100: DynamoDB's bound for ``IN``), so that fewer items come back; ``decode_page``
    must still apply the whole selection. Event types do not: an event of a type left out
    may hold its aggregate's latest timestamp, which places the events after it.

    Segment threads hand decoded pages over a bounded queue, so a slow consumer holds them
    back; closing this iterator stops them."""
    pages: queue.Queue[Any] = queue.Queue(maxsize=settings.segments)
    stopped = threading.Event()

    def hand_over(item: Any) -> bool:
        while not stopped.is_set():
            try:
                pages.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def scan_segment(segment: int) -> None:
        try:
            for page in _segment_pages(store, settings, segment, selection):
                if not hand_over(decode_page(page)):
                    return
        except BaseException as error:
            hand_over(error)
            return
        hand_over(_SEGMENT_DONE)

    pool = ThreadPoolExecutor(settings.segments, thread_name_prefix="castore-dynamodb-scan")
    try:
        for segment in range(settings.segments):
            pool.submit(scan_segment, segment)
        running = settings.segments
        while running:
            item = pages.get()
            if item is _SEGMENT_DONE:
                running -= 1
            elif isinstance(item, BaseException):
                raise item
            else:
                yield from item
    finally:
        stopped.set()
        pool.shutdown(wait=True, cancel_futures=True)


def _segment_pages(
    store: StoreTable, settings: ScanSettings, segment: int, selection: Selection | None
) -> Iterator[list[Item]]:
    table = store.table
    request: dict[str, Any] = {
        "TableName": table.name,
        "Segment": segment,
        "TotalSegments": settings.segments,
        "Limit": settings.page_items,
        "ConsistentRead": table.consistent_read,
        **scan_filter(store.keys.prefix, selection),
    }
    while True:
        with raw_items(table.client):
            response = table.call("Scan", request)
        yield response.get("Items", [])
        if not response.get("LastEvaluatedKey"):
            return
        request["ExclusiveStartKey"] = response["LastEvaluatedKey"]


def scan_filter(prefix: str, selection: Selection | None) -> dict[str, Any]:
    """The ``FilterExpression`` (and its names and values) that keeps the store's items
    (``prefix``) and, where it can, only the aggregates ``selection`` selects; empty for
    none."""
    conditions: list[str] = []
    names: dict[str, str] = {}
    values: dict[str, Any] = {}

    if prefix:
        conditions.append("begins_with(#id, :prefix)")
        names["#id"] = "aggregateId"
        values[":prefix"] = {"S": prefix}
    if selection is not None:
        ids = selection.aggregate_ids
        if ids is not None and len(ids) <= MAX_IN_VALUES:
            keys = [f":id{index}" for index in range(len(ids))]
            names["#id"] = "aggregateId"
            values.update(
                (key, {"S": prefix + aggregate_id})
                for key, aggregate_id in zip(keys, sorted(ids), strict=True)
            )
            conditions.append(f"#id IN ({', '.join(keys)})")
    if not conditions:
        return {}
    return {
        "FilterExpression": " AND ".join(conditions),
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
    }
