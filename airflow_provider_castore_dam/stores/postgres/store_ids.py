"""The event store ids a table holds."""

from __future__ import annotations

import psycopg
from psycopg import sql

from airflow_provider_castore_dam.errors import EventStoreError
from airflow_provider_castore_dam.stores.postgres.connection import describe_conninfo, one_line
from airflow_provider_castore_dam.stores.postgres.layout import split_table

# A loose index scan: one index probe per store on the aggregate_name index, not a full read.
_STORE_IDS = """
WITH RECURSIVE names AS (
  SELECT min(aggregate_name) AS name FROM {table}
  UNION ALL
  SELECT (SELECT min(aggregate_name) FROM {table} WHERE aggregate_name > names.name)
  FROM names WHERE names.name IS NOT NULL
)
SELECT name FROM names WHERE name IS NOT NULL
"""


def list_event_store_ids(conninfo: str, table: str = "event") -> list[str]:
    """Every ``aggregate_name`` of ``table``, sorted."""
    query = sql.SQL(_STORE_IDS).format(table=sql.Identifier(*split_table(table)))
    try:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            rows = conn.execute(query).fetchall()
    except psycopg.Error as error:
        raise EventStoreError(
            f"cannot list the event stores of {table!r} at {describe_conninfo(conninfo)}: "
            f"{one_line(error)}"
        ) from error
    return sorted(str(row[0]) for row in rows)
