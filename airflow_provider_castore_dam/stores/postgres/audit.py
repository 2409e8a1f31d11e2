"""A store's rows as stored, for the integrity check: one streamed query by aggregate and
version, without the payload and metadata columns."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from psycopg import sql

from airflow_provider_castore_dam.protocols import StoredEvent
from airflow_provider_castore_dam.stores.postgres.cursor import CursorReader
from airflow_provider_castore_dam.stores.postgres.event_table import EventTable
from airflow_provider_castore_dam.stores.postgres.layout import TableLayout

AUDIT_BATCH_SIZE = 2_000


def audit_query(layout: TableLayout, event_store_id: str) -> tuple[sql.Composed, dict[str, Any]]:
    """Aggregate id, version, type (NULL when empty) and Castore timestamp text of the store's
    rows that have an aggregate id and a version, ordered by the column's own order (that of
    Castore's unique index on ``(aggregate_name, aggregate_id, version)``)."""
    query = sql.SQL(
        "SELECT aggregate_id::text, version, NULLIF(type::text, ''), {timestamp} FROM {table}"
        " WHERE aggregate_name = %(store)s AND aggregate_id IS NOT NULL"
        " AND version IS NOT NULL ORDER BY aggregate_id, version"
    ).format(timestamp=layout.text_of(layout.utc_timestamp), table=layout.table)
    return query, {"store": event_store_id}


def audit(table: EventTable) -> Generator[list[StoredEvent], None, None]:
    """The rows of :func:`audit_query` in batches of :data:`AUDIT_BATCH_SIZE`, on one pooled
    connection in one read-only transaction, given back when the iterator ends or is closed."""
    query, params = audit_query(table.layout, table.event_store_id)
    connections = table.connections
    with (
        connections.reading("auditing events", table.layout.table_text),
        connections.pool.connection() as conn,
        conn.transaction(),
    ):
        reader = CursorReader(conn, query, params, AUDIT_BATCH_SIZE)
        batches = reader.batches()
        try:
            for rows in batches:
                yield [StoredEvent(*row) for row in rows]
        finally:
            batches.close()
        reader.close()
