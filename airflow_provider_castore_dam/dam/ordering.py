"""Events of one or several stores in pour order, read page by page.

Pour order: ascending *pour timestamp*, then event store id, then aggregate id, then version.
An event's pour timestamp is its own timestamp, or the latest timestamp of the earlier
versions of its aggregate when that is later (clock skew), so that one aggregate's events are
always poured in version order. For stores written by Castore it is simply the timestamp.
Timestamp filters apply to the pour timestamp. Ids compare by Unicode code point.

Two ways to produce it:
- ``EventMerge`` (:mod:`.event_merge`): works on any store, from listings and per-aggregate
  reads.
- ``merge_scans``: when every store streams its own events in pour order
  (:class:`TimeOrderedEventStore`), their streams are merged as they come. Stores that can
  be read together (:class:`JointlyScannableEventStore` with one key: PostgreSQL stores in one
  table) are first read by one joint scan, until it hands over to their own scans.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Generator, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import NamedTuple, cast

from airflow_provider_castore_dam.dam.checkpoints import CheckpointLedger
from airflow_provider_castore_dam.dam.event_merge import EventMerge
from airflow_provider_castore_dam.dam.inputs import ListAggregateIdsOptions, TimeRange
from airflow_provider_castore_dam.dam.messages import notification_message
from airflow_provider_castore_dam.dam.pourer import MessagePourer
from airflow_provider_castore_dam.dam.reading import iter_aggregate_ids
from airflow_provider_castore_dam.dam.results import ScanInfos, empty_scan_infos
from airflow_provider_castore_dam.dam.transforms import Transformer, TransformError
from airflow_provider_castore_dam.protocols import (
    EventDetail,
    EventStore,
    JointlyScannableEventStore,
    JointScanBatch,
    Message,
    ScanHandover,
    ScannedAggregate,
    ScannedBatch,
    ScanPosition,
    TimeOrderedEventStore,
    resume_scan,
)
from airflow_provider_castore_dam.selection import Selection

log = logging.getLogger(__name__)

MESSAGES_PER_BATCH = 500
"""Messages the engine hands the pourer at a time."""

EDGE_PAGE_SIZE = 100
"""Aggregates listed per page to find a selection's first and last (one in ``count`` is)."""


class PourBatch(NamedTuple):
    """Messages in pour order, each with its pour timestamp."""

    messages: list[Message]
    pour_timestamps: list[str]


def pour_batches(
    batches: Iterable[PourBatch],
    pourer: MessagePourer,
    ledger: CheckpointLedger | None,
    transformer: Transformer | None = None,
) -> None:
    """Publish every batch in order (transformed, with a transformer), telling the
    checkpoint ledger what is in flight."""
    with pourer:
        for batch in batches:
            pour_batch(batch.messages, batch.pour_timestamps, pourer, ledger, transformer)
        pourer.flush()


def pour_batch(
    messages: Sequence[Message],
    pour_timestamps: Sequence[str] | None,
    pourer: MessagePourer,
    ledger: CheckpointLedger | None,
    transformer: Transformer | None,
) -> None:
    """Publish messages in pour order (transformed, with a transformer), telling the
    checkpoint ledger what is in flight. When the transform fails on an event, what came
    before it is published, then the error is raised."""
    if transformer is None:
        if ledger is not None:
            ledger.add(messages, pour_timestamps)
        pourer.pour_many(messages)
        return
    failed = None
    try:
        outputs, entries = transformer.apply(messages, pour_timestamps or [None] * len(messages))
    except TransformError as error:
        (outputs, entries), failed = error.before, error
    if ledger is not None:
        ledger.add_entries(entries)
    pourer.pour_many(outputs)
    if failed is not None:
        pourer.flush()
        raise failed


def _notification_batches(
    events: Generator[tuple[str, str, EventDetail]],
) -> Generator[PourBatch]:
    try:
        while batch := list(itertools.islice(events, MESSAGES_PER_BATCH)):
            yield PourBatch(
                [notification_message(store_id, event) for _, store_id, event in batch],
                [pour_timestamp for pour_timestamp, _, _ in batch],
            )
    finally:
        events.close()


def _merge_scan_batches(scans: dict[str, Iterator[ScannedBatch]]) -> Generator[PourBatch]:
    """Merges sorted scans a batch at a time: everything before the earliest last timestamp
    of the live stores' current batches (the watermark) is sorted in one go. The sort is
    stable and its input is laid out by store id, each store in its own order, so sorting on
    the pour timestamp alone gives the pour order."""
    buffers = {store_id: ScannedBatch() for store_id in sorted(scans)}
    live = set(scans)

    def add(store_id: str, batch: ScannedBatch | None) -> None:
        if batch is None:
            live.discard(store_id)
        else:
            buffers[store_id].extend(batch)

    def read(store_id: str) -> None:
        add(store_id, next(scans[store_id], None))

    for store_id, batch in _first_batches(scans).items():
        add(store_id, batch)
    while True:
        for store_id in buffers:
            while store_id in live and not buffers[store_id]:
                read(store_id)
        if not any(buffers.values()):
            return
        watermark = min((buffers[store_id].pour_timestamps[-1] for store_id in live), default=None)
        cuts = {
            store_id: len(events) if watermark is None else events.count_before(watermark)
            for store_id, events in buffers.items()
        }
        if not any(cuts.values()):
            # Every buffered event is at the watermark: a store whose batch ends there may
            # have more at that timestamp in its next batch; read it before deciding.
            read(
                next(
                    s for s in buffers if s in live and buffers[s].pour_timestamps[-1] == watermark
                )
            )
            continue
        messages: list[Message] = []
        pour_timestamps: list[str] = []
        for store_id, events in buffers.items():
            cut = cuts[store_id]
            messages += [notification_message(store_id, event) for event in events.events[:cut]]
            pour_timestamps += events.pour_timestamps[:cut]
            buffers[store_id] = events[cut:]
        # A stable sort of runs laid out by store id: ties stay in store id order.
        order = sorted(range(len(messages)), key=pour_timestamps.__getitem__)
        yield PourBatch([messages[i] for i in order], [pour_timestamps[i] for i in order])


def _first_batches(
    scans: Mapping[str, Iterator[ScannedBatch]],
) -> dict[str, ScannedBatch | None]:
    """Every scan's first batch, read at the same time, so that the stores' first reads (a
    database sorting a whole store, say) overlap instead of adding up."""
    with ThreadPoolExecutor(len(scans), thread_name_prefix="castore-dam-scan") as pool:
        firsts = {store_id: pool.submit(next, scan, None) for store_id, scan in scans.items()}
        return {store_id: first.result() for store_id, first in firsts.items()}


def _scan_from(
    store: TimeOrderedEventStore, end: str | None, selection: Selection | None, start: str | None
) -> Iterator[ScannedBatch]:
    return store.scan_event_batches(from_timestamp=start, to_timestamp=end, selection=selection)


def open_scans(
    stores: Sequence[TimeOrderedEventStore],
    time_range: TimeRange,
    after: Mapping[str, ScanPosition],
    selection: Selection | None = None,
) -> dict[str, Iterator[ScannedBatch]]:
    """Per store id, its scan within ``time_range`` (of ``selection`` only, when given) from
    just after its ``after`` position. Nothing is read yet; a store that checks itself when
    a scan is asked for (PostgreSQL does) fails here."""
    return {
        store.event_store_id: resume_scan(
            partial(_scan_from, store, time_range.end, selection),
            time_range.start,
            after.get(store.event_store_id),
        )
        for store in stores
    }


def merge_scans(scans: Mapping[str, Iterator[ScannedBatch]]) -> Generator[PourBatch]:
    """Native path: merge the stores' own time-ordered scans (one store's passes through),
    as batches of notification messages.

    Closing this iterator closes the scans, releasing their connections."""
    try:
        if len(scans) == 1:
            ((store_id, scan),) = scans.items()
            for batch in scan:
                yield PourBatch(
                    [notification_message(store_id, event) for event in batch.events],
                    batch.pour_timestamps,
                )
            return
        yield from _merge_scan_batches(dict(scans))
    finally:
        for scan in scans.values():
            close = getattr(scan, "close", None)
            if close is not None:
                close()


def joint_scan(
    stores: Sequence[TimeOrderedEventStore],
    time_range: TimeRange,
    after: Mapping[str, ScanPosition],
    selection: Selection | None = None,
) -> Iterator[JointScanBatch] | None:
    """One scan of all ``stores`` when they can be read together and the pour starts at the
    beginning (no ``from`` filter, no checkpoint), else None."""
    if len(stores) < 2 or after or time_range.start is not None:
        return None
    if not all(isinstance(store, JointlyScannableEventStore) for store in stores):
        return None
    jointly = cast(Sequence[JointlyScannableEventStore], stores)
    key = jointly[0].joint_scan_key
    if key is None or any(store.joint_scan_key != key for store in jointly):
        return None
    return jointly[0].scan_jointly(jointly, to_timestamp=time_range.end, selection=selection)


def _last_positions(
    store_ids: list[str], scanned: ScannedBatch, positions: dict[str, ScanPosition], stores: int
) -> None:
    """Record in ``positions`` the last event of each store in a joint scan's batch of
    ``stores`` stores' events."""
    seen: set[str] = set()
    for index in range(len(store_ids) - 1, -1, -1):
        if store_ids[index] not in seen:
            seen.add(store_ids[index])
            positions[store_ids[index]] = scanned.position(index)
            if len(seen) == stores:
                return


def jointly_then_apart(
    joint: Iterator[JointScanBatch],
    stores: Sequence[TimeOrderedEventStore],
    time_range: TimeRange,
    selection: Selection | None = None,
) -> Generator[PourBatch]:
    """The joint scan's batches; if it hands over, each store's own scan from its last
    event on, merged (:func:`merge_scans`)."""
    positions: dict[str, ScanPosition] = {}
    try:
        for store_ids, scanned in joint:
            _last_positions(store_ids, scanned, positions, len(stores))
            messages = map(notification_message, store_ids, scanned.events)
            yield PourBatch(list(messages), scanned.pour_timestamps)
        return
    except ScanHandover as handover:
        log.info("joint scan handed over to each store's own scan: %s", handover)
    finally:
        close = getattr(joint, "close", None)
        if close is not None:
            close()
    yield from merge_scans(open_scans(stores, time_range, positions, selection))


def scanned_aggregates(
    stores: Sequence[EventStore], time_range: TimeRange, selection: Selection | None = None
) -> dict[str, ScanInfos]:
    """Per store id, the first and last aggregate (of ``selection``, when given) a listing
    bounded by ``time_range.end`` would scan. Each answer may take a query that reads every
    initial event of a store, so they are all asked at the same time."""

    def edge(store: EventStore, reverse: bool) -> ScannedAggregate | None:
        if selection is None or not selection.selects_aggregates:
            page = store.list_aggregate_ids(
                limit=1, initial_event_before=time_range.end, reverse=reverse
            )
            return page.aggregate_ids[0] if page.aggregate_ids else None
        options = ListAggregateIdsOptions(
            limit=EDGE_PAGE_SIZE, initial_event_before=time_range.end, reverse=reverse
        )
        listed = iter_aggregate_ids(store, options)
        return next((a for a in listed if selection.contains(a["aggregate_id"])), None)

    with ThreadPoolExecutor(2 * len(stores), thread_name_prefix="castore-dam-list") as pool:
        edges = [(pool.submit(edge, s, False), pool.submit(edge, s, True)) for s in stores]
        return {
            store.event_store_id: {
                "first_scanned_aggregate": first.result(),
                "last_scanned_aggregate": last.result(),
            }
            for store, (first, last) in zip(stores, edges, strict=True)
        }


def _listed_beside(
    batches: Generator[PourBatch],
    stores: Sequence[EventStore],
    time_range: TimeRange,
    selection: Selection | None,
    scans: dict[str, ScanInfos],
) -> Generator[PourBatch]:
    """``batches``, the stores' first and last aggregates being listed (into ``scans``) while
    the first batch is read: they are known before it is given out."""
    try:
        with ThreadPoolExecutor(1, thread_name_prefix="castore-dam-list") as pool:
            listed = pool.submit(scanned_aggregates, stores, time_range, selection)
            first = next(batches, None)
            for store_id, infos in listed.result().items():
                scans[store_id].update(infos)
        if first is not None:
            yield first
            yield from batches
    finally:
        batches.close()


def messages_in_pour_order(
    stores: Sequence[EventStore],
    time_range: TimeRange,
    after: Mapping[str, ScanPosition] | None = None,
    selection: Selection | None = None,
) -> tuple[Generator[PourBatch], dict[str, ScanInfos]]:
    """Notification messages of the events of ``stores`` in pour order, a batch at a time,
    and the stores' scan infos (filled as events are read on the merge path, known before
    the first batch on the native path). ``after``: per store id, pour only what follows
    that place. ``selection``: only the events of its aggregates."""
    scanning = [store for store in stores if isinstance(store, TimeOrderedEventStore)]
    if len(scanning) == len(stores):
        joint = joint_scan(scanning, time_range, after or {}, selection)
        if joint is not None:
            batches = jointly_then_apart(joint, scanning, time_range, selection)
        else:
            batches = merge_scans(open_scans(scanning, time_range, after or {}, selection))
        if all(getattr(store, "lists_beside_scans", False) for store in stores):
            scans = {store.event_store_id: empty_scan_infos() for store in stores}
            return _listed_beside(batches, stores, time_range, selection, scans), scans
        return batches, scanned_aggregates(stores, time_range, selection)
    merge = EventMerge(stores, time_range, after or {}, selection=selection)
    return _notification_batches(merge.events()), merge.scans
