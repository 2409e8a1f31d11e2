"""The merge path: events of any stores in pour order, from listings and per-aggregate reads.

Aggregates are listed by initial event timestamp; an aggregate is opened when the pour
reaches its initial timestamp, and a heap keyed on each open aggregate's next event picks
what comes next. Each open aggregate holds at most one page of events, and all of them
together at most ``max_buffered_events`` (pages over the cap are dropped and fetched again
when needed). Stores that can fetch ahead (:class:`PrefetchingEventStore`) are told the first
pages of the next ``prefetch_ahead`` listed aggregates, which they fetch concurrently.
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from collections.abc import Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from airflow_provider_castore_dam.dam.inputs import ListAggregateIdsOptions, TimeRange
from airflow_provider_castore_dam.dam.reading import EVENTS_PAGE_SIZE, iter_aggregate_ids
from airflow_provider_castore_dam.dam.results import ScanInfos, empty_scan_infos, record_scanned
from airflow_provider_castore_dam.protocols import (
    EventDetail,
    EventStore,
    PrefetchingEventStore,
    ScannedAggregate,
    ScanPosition,
)
from airflow_provider_castore_dam.selection import Selection

MAX_BUFFERED_EVENTS = 10_000
"""Events held in memory across all open aggregates by the merge path."""

PREFETCH_AHEAD = 64
"""Aggregates whose first page a :class:`PrefetchingEventStore` fetches ahead of the merge."""

PourKey = tuple[str, str, str, int]
"""(pour timestamp, event store id, aggregate id, version): the pour order."""


@dataclass(eq=False)
class _OpenAggregate:
    """An aggregate the merge has reached: its next unread version and a page of its events."""

    store: EventStore
    aggregate_id: str
    floor: str
    """Latest timestamp poured so far for this aggregate; a lower bound of what comes next."""
    next_version: int = 1
    buffer: deque[EventDetail] = field(default_factory=deque)
    exhausted: bool = False

    def key(self) -> PourKey:
        store_id = self.store.event_store_id
        if self.buffer:
            head = self.buffer[0]
            return (
                max(self.floor, head["timestamp"]),
                store_id,
                self.aggregate_id,
                head["version"],
            )
        return (self.floor, store_id, self.aggregate_id, self.next_version)

    def fetch(self, page_size: int) -> int:
        page = self.store.get_events(
            self.aggregate_id, min_version=self.next_version, limit=page_size
        )
        self.buffer.extend(page)
        self.exhausted = len(page) < page_size
        return len(page)

    def take(self) -> EventDetail:
        event = self.buffer.popleft()
        self.floor = max(self.floor, event["timestamp"])
        self.next_version = event["version"] + 1
        return event

    def drop_buffer(self) -> int:
        dropped = len(self.buffer)
        self.buffer.clear()
        self.exhausted = False
        return dropped


@dataclass(eq=False)
class EventMerge:
    """Merge path: pour order over stores that can only list aggregates and get events."""

    stores: Sequence[EventStore]
    time_range: TimeRange
    after: Mapping[str, ScanPosition] = field(default_factory=dict)
    """Per store id: skip events up to this place in the pour order (a checkpoint's)."""
    page_size: int = EVENTS_PAGE_SIZE
    max_buffered_events: int = MAX_BUFFERED_EVENTS
    prefetch_ahead: int = PREFETCH_AHEAD
    selection: Selection | None = None
    """Only the events of this selection (types left out once placed: they still move
    their aggregate's pour timestamp)."""
    scans: dict[str, ScanInfos] = field(init=False)
    buffered_events: int = field(init=False, default=0)
    """Events currently held in memory; never above ``max_buffered_events + page_size``."""

    def __post_init__(self) -> None:
        self.scans = {store.event_store_id: empty_scan_infos() for store in self.stores}

    def _listing(self) -> Iterator[tuple[EventStore, ScannedAggregate]]:
        options = ListAggregateIdsOptions(initial_event_before=self.time_range.end)

        def listing(store: EventStore) -> Iterator[tuple[EventStore, ScannedAggregate]]:
            for aggregate in iter_aggregate_ids(store, options):
                if self.selection is None or self.selection.contains(aggregate["aggregate_id"]):
                    yield store, aggregate

        return heapq.merge(
            *(listing(store) for store in self.stores),
            key=lambda item: item[1]["initial_event_timestamp"],
        )

    def _read_ahead(
        self, listing: Iterator[tuple[EventStore, ScannedAggregate]]
    ) -> Iterator[tuple[EventStore, ScannedAggregate]]:
        """The listing, telling prefetching stores which first pages will be asked for next.

        Every listed aggregate is opened and its first page fetched with exactly these
        arguments, so nothing prefetched is wasted."""
        ahead: deque[tuple[EventStore, ScannedAggregate]] = deque()
        exhausted = False
        while True:
            upcoming: dict[int, tuple[PrefetchingEventStore, list[str]]] = {}
            while not exhausted and len(ahead) <= self.prefetch_ahead:
                item = next(listing, None)
                if item is None:
                    exhausted = True
                    break
                ahead.append(item)
                store, aggregate = item
                if isinstance(store, PrefetchingEventStore):
                    upcoming.setdefault(id(store), (store, []))[1].append(aggregate["aggregate_id"])
            for store, aggregate_ids in upcoming.values():
                store.prefetch_events(aggregate_ids, min_version=1, limit=self.page_size)
            if not ahead:
                return
            yield ahead.popleft()

    def __iter__(self) -> Iterator[tuple[str, str, EventDetail]]:
        return self.events()

    def events(self) -> Generator[tuple[str, str, EventDetail]]:
        """(pour timestamp, event store id, event) in pour order."""
        listing = self._read_ahead(self._listing())
        upcoming = next(listing, None)
        heap: list[tuple[PourKey, int, _OpenAggregate]] = []
        order = itertools.count()
        while True:
            while upcoming is not None and (
                not heap or upcoming[1]["initial_event_timestamp"] <= heap[0][0][0]
            ):
                store, aggregate = upcoming
                record_scanned(self.scans[store.event_store_id], aggregate)
                opened = _OpenAggregate(
                    store, aggregate["aggregate_id"], floor=aggregate["initial_event_timestamp"]
                )
                heapq.heappush(heap, (opened.key(), next(order), opened))
                upcoming = next(listing, None)
            if not heap:
                return
            key, rank, current = heap[0]
            if self.time_range.end is not None and key[0] > self.time_range.end:
                return
            if not current.buffer:
                fetched = current.fetch(self.page_size)
                self.buffered_events += fetched
                if not fetched:
                    heapq.heappop(heap)
                elif current.key() != key:
                    heapq.heapreplace(heap, (current.key(), rank, current))
                excess = self.buffered_events - self.max_buffered_events // 2
                if self.buffered_events > self.max_buffered_events:
                    self.buffered_events -= self._drop_buffers(heap, excess)
                continue
            event = current.take()
            self.buffered_events -= 1
            store_id = current.store.event_store_id
            if self._pours(current, event, self.after.get(store_id)):
                yield current.floor, store_id, event
            if current.buffer or not current.exhausted:
                heapq.heapreplace(heap, (current.key(), rank, current))
            else:
                heapq.heappop(heap)

    def _pours(
        self, current: _OpenAggregate, event: EventDetail, after: ScanPosition | None
    ) -> bool:
        """Whether the event just taken is poured: placed in the time range, after the
        resumed position, of a selected type."""
        return (
            (self.time_range.start is None or current.floor >= self.time_range.start)
            and (after is None or (current.floor, current.aggregate_id, event["version"]) > after)
            and (self.selection is None or self.selection.keeps_type(event["type"]))
        )

    @staticmethod
    def _drop_buffers(heap: list[tuple[PourKey, int, _OpenAggregate]], target: int) -> int:
        """Drop pages of the aggregates needed last (the heap's tail) until ``target`` events
        are freed; the heap keys stay exact, so order is unchanged."""
        dropped = 0
        for _, _, aggregate in reversed(heap[1:]):
            if dropped >= target:
                break
            dropped += aggregate.drop_buffer()
        return dropped
