"""Test helpers over Castore-layout PostgreSQL tables (creation and loading live in
:mod:`airflow_provider_castore_dam.stores.postgres_layout`)."""

from __future__ import annotations

from collections.abc import Sequence

import psycopg
from psycopg import sql

from airflow_provider_castore_dam.stores.postgres_layout import (
    copy_events,
    create_castore_table,
    table_identifier,
)

__all__ = ["copy_events", "create_castore_table", "row_ids", "truncate"]


def truncate(dsn: str, tables: Sequence[str] = ("event",)) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            sql.SQL("TRUNCATE {} RESTART IDENTITY").format(
                sql.SQL(", ").join(table_identifier(table) for table in tables)
            )
        )


def row_ids(dsn: str, table: str = "event") -> dict[tuple[str, str, int], int]:
    """``{(event store id, aggregate id, version): id}`` of every row."""
    with psycopg.connect(dsn) as conn:
        cursor = conn.execute(
            sql.SQL("SELECT aggregate_name, aggregate_id::text, version, id FROM {}").format(
                table_identifier(table)
            )
        )
        return {(name, aggregate, version): id_ for name, aggregate, version, id_ in cursor}
