"""One query that scans several stores of one table together, in pour order across them."""

from __future__ import annotations

from collections.abc import Generator, Iterator
from typing import Any

import psycopg
from psycopg_pool import PoolTimeout

from airflow_provider_castore_dam.protocols import JointScanBatch, ScanHandover, ScannedBatch
from airflow_provider_castore_dam.stores.postgres.clock_skew import VersionTracker
from airflow_provider_castore_dam.stores.postgres.connection import one_line
from airflow_provider_castore_dam.stores.postgres.cursor import CursorReader
from airflow_provider_castore_dam.stores.postgres.event_table import EventTable
from airflow_provider_castore_dam.stores.postgres.rows import (
    AGGREGATE_ID,
    STORE_ID,
    VERSION,
    scanned,
)
from airflow_provider_castore_dam.stores.postgres.scan_queries import scan_query


def joint_scan(
    table: EventTable, store_ids: list[str], end: str | None
) -> Generator[JointScanBatch, None, None]:
    """The events of ``store_ids`` up to ``end``, in pour order, on one of ``table``'s
    connections; :class:`ScanHandover` at any error (see
    :meth:`PostgresEventStore.scan_jointly`)."""
    try:
        with table.connections.pool.connection() as conn, conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            query, params = scan_query(
                table.layout, table.event_store_id, None, end, store_ids, table.selection
            )
            reader = CursorReader(conn, query, params, table.scan_batch_size)
            batches = reader.batches()
            try:
                yield from _joint_batches(batches, table.check_clock_skew)
            finally:
                batches.close()
            reader.close()
    except (psycopg.Error, PoolTimeout) as error:
        raise ScanHandover(
            f"joint scan of {table.layout.table_text} at {table.connections.where} failed: "
            f"{one_line(error)}"
        ) from error


def _joint_batches(
    batches: Iterator[list[tuple[Any, ...]]], check_clock_skew: bool
) -> Iterator[JointScanBatch]:
    """Rows of the joint query as batches, each up to the last complete millisecond read
    when clock skew is checked (an event of that millisecond may need to be held back)."""
    tracker = VersionTracker() if check_clock_skew else None
    held = JointScanBatch([], ScannedBatch())
    for rows in batches:
        store_ids = list(map(STORE_ID, rows))
        batch = scanned([row[:6] for row in rows])
        held.event_store_ids.extend(store_ids)
        held.scanned.extend(batch)
        if tracker is None:
            yield held
            held = JointScanBatch([], ScannedBatch())
            continue
        found = tracker.first_out_of_order(
            zip(store_ids, map(AGGREGATE_ID, rows), strict=True), map(VERSION, rows)
        )
        cut_at = batch.pour_timestamps[found[0] if found else -1]
        cut = held.scanned.count_before(cut_at)
        if cut:
            yield JointScanBatch(held.event_store_ids[:cut], held.scanned[:cut])
        if found is not None:
            raise ScanHandover("an event does not follow the last version seen of its aggregate")
        held = JointScanBatch(held.event_store_ids[cut:], held.scanned[cut:])
    if held.scanned:
        yield held
