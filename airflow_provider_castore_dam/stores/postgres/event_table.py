"""One event store's rows in a checked table, with what every read of them needs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from psycopg import sql

from airflow_provider_castore_dam.selection import Selection
from airflow_provider_castore_dam.stores.postgres.connection import Connections
from airflow_provider_castore_dam.stores.postgres.layout import TableLayout


@dataclass(frozen=True)
class EventTable:
    """The rows whose ``aggregate_name`` is ``event_store_id``, and how to read them:
    the connections, the table's layout and the scan settings."""

    connections: Connections
    layout: TableLayout
    event_store_id: str
    scan_batch_size: int
    check_clock_skew: bool
    selection: Selection | None = None
    """Scans read only this selection's aggregates."""

    def describe(self, what: str) -> str:
        """``what`` (a read) with the table and the server, for retry logs."""
        return f"{what} from table {self.layout.table_text} at {self.connections.where}"

    def fetch_all(
        self, what: str, query: sql.Composed, params: Mapping[str, Any]
    ) -> list[tuple[Any, ...]]:
        """All rows of one query on a pooled connection, retried; errors name the table."""
        pool = self.connections.pool

        def fetch() -> list[tuple[Any, ...]]:
            with pool.connection() as conn:
                return conn.execute(query, params).fetchall()

        with self.connections.reading(what, self.layout.table_text):
            return self.connections.retrying(fetch, self.describe(what))
