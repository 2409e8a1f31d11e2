"""Test helpers over Castore-layout PostgreSQL tables (creation and loading live in
:mod:`airflow_provider_castore_dam.stores.postgres.tables`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import sql

from airflow_provider_castore_dam.stores.postgres import PostgresEventStore
from airflow_provider_castore_dam.stores.postgres.tables import (
    copy_events,
    create_castore_table,
    table_identifier,
)

__all__ = ["Table", "copy_events", "create_castore_table", "row_ids", "truncate"]


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


class Table:
    """A Castore-layout table in the session database, and the stores opened on it."""

    def __init__(self, dsn: str, name: str, **layout: Any) -> None:
        self.dsn = dsn
        self.name = name
        self.stores: list[PostgresEventStore] = []
        create_castore_table(dsn, name, **layout)

    def load(self, rows: list[tuple[str, dict]]) -> None:
        copy_events(self.dsn, rows, self.name)

    def store(self, event_store_id: str = "POKEMONS", **options: Any) -> PostgresEventStore:
        store = PostgresEventStore(event_store_id, self.dsn, table=self.name, **options)
        self.stores.append(store)
        return store

    def execute(self, query: Any, params: Any = None) -> list[tuple]:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            cursor = conn.execute(query, params)
            return cursor.fetchall() if cursor.description else []

    def close(self) -> None:
        for store in self.stores:
            store.close()
        self.execute(sql.SQL("DROP TABLE IF EXISTS {} CASCADE").format(sql.Identifier(self.name)))
