"""PostgreSQL tables in the layout Castore's PostgreSQL adapter creates, filled with COPY.

The layout is the one ``PostgresEventStorageAdapter.createEventTable`` makes with its defaults:
a ``BIGSERIAL`` id, ``aggregate_name``, ``aggregate_id`` (UUID by default, or ``VARCHAR(n)``),
``version``, ``type``, nullable JSONB ``data``/``metadata`` and a ``TIMESTAMPTZ`` timestamp.
Used by the demo (seeding its embedded PostgreSQL), the tests and the benchmarks.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import psycopg
from psycopg import sql

Event = dict[str, Any]
Row = tuple[str, Event]
"""(event store id, Castore event detail)."""

COLUMNS = ("aggregate_name", "aggregate_id", "version", "type", "data", "metadata", "timestamp")


def table_identifier(table: str) -> sql.Composable:
    """``schema.table`` or ``table``, each part quoted."""
    return sql.Identifier(*table.split(".", 1)) if "." in table else sql.Identifier(table)


def create_castore_table(
    dsn: str,
    table: str = "event",
    *,
    aggregate_id_type: str = "UUID",
    id_type: str = "BIGSERIAL",
    version_type: str = "BIGINT",
    timestamp_type: str = "TIMESTAMPTZ",
    aggregate_id_collation: str | None = None,
    indexes: bool = True,
) -> None:
    """Create ``table`` (optionally ``schema.table``; the schema is created too) in Castore's
    layout. ``aggregate_id_type`` is ``UUID`` or ``VARCHAR(n)`` (Castore also offers ``ULID``,
    which needs an extension); ``aggregate_id_collation`` e.g. ``und-x-icu``. With
    ``indexes=False`` the unique constraint and indexes are left for
    :func:`add_castore_indexes`, which is faster after a bulk load."""
    name = table_identifier(table)
    types = {
        "aggregate_id": aggregate_id_type,
        "id": id_type,
        "version": version_type,
        "timestamp": timestamp_type,
    }
    collation = (
        sql.SQL("")
        if aggregate_id_collation is None
        else sql.SQL(" COLLATE {}").format(sql.Identifier(aggregate_id_collation))
    )
    with psycopg.connect(dsn, autocommit=True) as conn:
        if "." in table:
            conn.execute(
                sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(
                    sql.Identifier(table.split(".", 1)[0])
                )
            )
        conn.execute(
            sql.SQL(
                """
                CREATE TABLE {name} (
                  id {id} PRIMARY KEY,
                  aggregate_name VARCHAR(32) NOT NULL,
                  aggregate_id {aggregate_id}{collation} NOT NULL,
                  version {version} NOT NULL,
                  type VARCHAR(64) NOT NULL,
                  data JSONB,
                  metadata JSONB,
                  timestamp {timestamp} NOT NULL DEFAULT (CURRENT_TIMESTAMP(3))
                )
                """
            ).format(
                name=name,
                collation=collation,
                **{key: sql.SQL(value) for key, value in types.items()},
            )
        )
    if indexes:
        add_castore_indexes(dsn, table)


def add_castore_indexes(dsn: str, table: str = "event") -> None:
    """Castore's ``UNIQUE (aggregate_name, aggregate_id, version)`` and its three indexes
    (Castore names them ``idx_event_*`` whatever the table; here they are named after the
    table, so that several tables can live in one schema)."""
    name = table_identifier(table)
    base = table.replace(".", "_")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            sql.SQL("ALTER TABLE {} ADD UNIQUE (aggregate_name, aggregate_id, version)").format(
                name
            )
        )
        for suffix, columns in (
            ("aggregate_name", ["aggregate_name"]),
            ("version", ["version"]),
            ("aggregate_lookup", ["aggregate_name", "aggregate_id"]),
        ):
            conn.execute(
                sql.SQL("CREATE INDEX {} ON {} ({})").format(
                    sql.Identifier(f"idx_{base}_{suffix}"),
                    name,
                    sql.SQL(", ").join(map(sql.Identifier, columns)),
                )
            )


def _json_or_null(event: Event, key: str) -> str | None:
    return json.dumps(event[key]) if key in event else None


def copy_events(dsn: str, rows: Iterable[Row], table: str = "event") -> int:
    """COPY ``rows`` into ``table`` in the given order (so ``id`` follows it); absent
    payload/metadata become SQL NULL, present ones (even ``None``) JSON. Returns the count."""
    count = 0
    with psycopg.connect(dsn) as conn, conn.cursor() as cursor:
        statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
            table_identifier(table), sql.SQL(", ").join(map(sql.Identifier, COLUMNS))
        )
        with cursor.copy(statement) as copy:
            for event_store_id, event in rows:
                copy.write_row(
                    (
                        event_store_id,
                        event["aggregateId"],
                        event["version"],
                        event["type"],
                        _json_or_null(event, "payload"),
                        _json_or_null(event, "metadata"),
                        event["timestamp"],
                    )
                )
                count += 1
    return count
