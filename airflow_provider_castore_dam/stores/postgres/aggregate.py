"""Reading one aggregate's events in version order."""

from __future__ import annotations

import uuid
from typing import Any

from psycopg import sql

from airflow_provider_castore_dam.protocols import EventDetail
from airflow_provider_castore_dam.stores.postgres.event_table import EventTable
from airflow_provider_castore_dam.stores.postgres.rows import events


def aggregate_events(
    table: EventTable,
    aggregate_id: str,
    *,
    min_version: int | None,
    max_version: int | None,
    limit: int | None,
    reverse: bool,
) -> list[EventDetail]:
    """Events of one aggregate in version order (descending with ``reverse``); an unknown
    aggregate id, or one that cannot be a value of the column, gives ``[]``."""
    layout = table.layout
    if layout.aggregate_id_type == "uuid":
        try:
            aggregate_id = str(uuid.UUID(aggregate_id))
        except ValueError:
            return []  # not a UUID: no such aggregate in a UUID column
    conditions: list[sql.Composable] = [
        sql.SQL("aggregate_name = %(store)s"),
        layout.aggregate_match("aggregate"),
    ]
    params: dict[str, Any] = {"store": table.event_store_id, "aggregate": aggregate_id}
    if min_version is not None:
        conditions.append(sql.SQL("version >= %(min_version)s"))
        params["min_version"] = min_version
    if max_version is not None:
        conditions.append(sql.SQL("version <= %(max_version)s"))
        params["max_version"] = max_version
    query = sql.SQL(
        "SELECT {columns} FROM {table} WHERE {conditions} ORDER BY version {direction}{limit}"
    ).format(
        columns=layout.event_columns,
        table=layout.table,
        conditions=sql.SQL(" AND ").join(conditions),
        direction=sql.SQL("DESC" if reverse else "ASC"),
        limit=sql.SQL("" if limit is None else " LIMIT %(limit)s"),
    )
    if limit is not None:
        params["limit"] = limit
    return events(table.fetch_all(f"reading aggregate {aggregate_id!r}", query, params))
