"""The time-ordered scan of one store: one streamed query in pour order, clock skew seen
on the way, and a resume strictly after the last event delivered when a stream is cut."""

from __future__ import annotations

import logging
from collections.abc import Generator, Iterator
from typing import Any

import psycopg

from airflow_provider_castore_dam.protocols import ScannedBatch, ScanPosition, resume_scan
from airflow_provider_castore_dam.stores.postgres.clock_skew import (
    NoSnapshot,
    SkewCheck,
    VersionTracker,
    check_from,
    export_snapshot,
    start_skew_check,
)
from airflow_provider_castore_dam.stores.postgres.cursor import CursorReader
from airflow_provider_castore_dam.stores.postgres.event_table import EventTable
from airflow_provider_castore_dam.stores.postgres.rows import (
    AGGREGATE_ID,
    VERSION,
    scanned,
    scanned_with_pour_timestamps,
)
from airflow_provider_castore_dam.stores.postgres.scan_queries import (
    scan_query,
    skewed_tail_query,
)

log = logging.getLogger(__name__)

MAX_PENDING_EVENTS = 2_000
"""Events the scan reads ahead while the clock-skew check is still running."""

RowBatches = Generator[list[tuple[Any, ...]], None, None]


def scan(
    table: EventTable, start: str | None, end: str | None, after: ScanPosition | None = None
) -> Generator[ScannedBatch, None, None]:
    """The scan within the bounds (strictly after ``after`` when given), retried.

    A transient error while a batch is read (a connection reset mid-stream, a server
    restart...) ends that attempt (its connection is discarded) and, after a backoff,
    re-issues the scan strictly after the last event yielded, on a fresh connection in a new
    transaction: nothing is skipped, nothing is yielded twice. The retry policy applies to
    each batch: failures in a row are bounded, progress starts the count again.
    """
    source: Generator[ScannedBatch, None, None] | None = None

    def next_batch() -> ScannedBatch | None:
        nonlocal source
        if source is None:
            source = resume_scan(lambda since: _attempt(table, since, end), start, after)
        try:
            return next(source, None)
        except BaseException:
            source = None  # a generator that raised is finished (and closed)
            raise

    with table.connections.reading("scanning events", table.layout.table_text):
        try:
            while True:
                batch = table.connections.retrying(next_batch, table.describe("scanning events"))
                if batch is None:
                    return
                after = batch.position(-1)
                yield batch
        finally:
            if source is not None:
                source.close()


def _attempt(
    table: EventTable, start: str | None, end: str | None
) -> Generator[ScannedBatch, None, None]:
    """The scan within the bounds on one pooled connection; psycopg errors are raised as
    they are (:func:`scan` retries them)."""
    connections = table.connections
    with connections.pool.connection() as conn:
        export = (
            table.check_clock_skew and connections.has_second and connections.can_export_snapshots
        )
        try:
            yield from _in_transaction(table, conn, start, end, export)
        except NoSnapshot as error:  # raised before anything was read
            log.info(
                "cannot share a snapshot (%s); scans of %s check clock skew first",
                error,
                table.layout.table_text,
            )
            connections.can_export_snapshots = False
            yield from _in_transaction(table, conn, start, end, export=False)


def _in_transaction(
    table: EventTable,
    conn: psycopg.Connection[Any],
    start: str | None,
    end: str | None,
    export: bool,
) -> Iterator[ScannedBatch]:
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        if table.check_clock_skew and start is None:
            yield from _stream_checking_versions(table, conn, end)
            return
        check = start_skew_check(table, conn, export)
        try:
            reader = _reader(table, conn, start, end)
            yield from _follow_check(
                table, conn, start, end, reader, reader.batches(), ScannedBatch(), check
            )
        finally:
            check.stop()


def _reader(
    table: EventTable, conn: psycopg.Connection[Any], start: str | None, end: str | None
) -> CursorReader:
    query, params = scan_query(
        table.layout, table.event_store_id, start, end, selection=table.selection
    )
    return CursorReader(conn, query, params, table.scan_batch_size)


def _stream_checking_versions(
    table: EventTable, conn: psycopg.Connection[Any], end: str | None
) -> Iterator[ScannedBatch]:
    """A scan from the store's first event, which shows clock skew by itself: an event
    that comes before the previous version of its aggregate (the last versions of recently
    seen aggregates tell: :class:`VersionTracker`). Events before the first such event's
    millisecond pour at their own timestamps; the skewed tail query takes over from that
    millisecond, so the events of the latest millisecond are held back until the next
    batch is checked."""
    snapshot = export_snapshot(table, conn)
    reader = _reader(table, conn, None, end)
    batches = reader.batches()
    tracker = VersionTracker()
    held = ScannedBatch()
    skew_from: str | None = None
    try:
        for rows in batches:
            batch = scanned(rows)
            found = tracker.first_out_of_order(map(AGGREGATE_ID, rows), map(VERSION, rows))
            held.extend(batch)
            events = held
            if found is not None:
                index, maybe_forgotten = found
                suspect = batch.pour_timestamps[index]
                cut = events.count_before(suspect)
                if cut:
                    yield events[:cut]
                check = check_from(table, snapshot, suspect) if maybe_forgotten else None
                if check is None:  # skew, or no second connection: the tail query is safe
                    skew_from = suspect
                    break
                del tracker
                yield from _follow_check(
                    table, conn, None, end, reader, batches, events[cut:], check
                )
                return
            cut = events.count_before(events.pour_timestamps[-1])
            held = events[cut:]
            if cut:
                yield events[:cut]
        else:
            if held:
                yield held
        reader.close()
    finally:
        batches.close()
    if skew_from is not None and (end is None or skew_from <= end):
        yield from _skewed_tail(table, conn, skew_from, None, end)


def _follow_check(
    table: EventTable,
    conn: psycopg.Connection[Any],
    start: str | None,
    end: str | None,
    reader: CursorReader,
    batches: RowBatches,
    pending: ScannedBatch,
    check: SkewCheck,
) -> Iterator[ScannedBatch]:
    """``pending``, then the rest of ``batches``, up to the clock-skew point ``check``
    finds; then the skewed tail query from there."""
    try:
        while not check.finished and len(pending) < MAX_PENDING_EVENTS:
            rows = next(batches, [])  # read ahead while the clock-skew check runs
            if not rows:
                break
            pending.extend(scanned(rows))
        skew_from = check.result()
        events = pending
        while True:
            if skew_from is not None and events and events.pour_timestamps[-1] >= skew_from:
                if cut := events.count_before(skew_from):
                    yield events[:cut]
                break
            if events:
                yield events
            rows = next(batches, [])
            if not rows:
                break
            events = scanned(rows)
        reader.close()
    finally:
        batches.close()
    if skew_from is not None and (end is None or skew_from <= end):
        yield from _skewed_tail(table, conn, skew_from, start, end)


def _skewed_tail(
    table: EventTable,
    conn: psycopg.Connection[Any],
    skew_from: str,
    start: str | None,
    end: str | None,
) -> Iterator[ScannedBatch]:
    query, params = skewed_tail_query(
        table.layout, table.event_store_id, skew_from, start, end, table.selection
    )
    reader = CursorReader(conn, query, params, table.scan_batch_size)
    batches = reader.batches()
    try:
        for rows in batches:
            yield scanned_with_pour_timestamps(rows)
    finally:
        batches.close()
    reader.close()
