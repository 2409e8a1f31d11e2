"""The table: its name as given, the check that it is in Castore's layout, and the SQL
fragments that depend on its column types."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from airflow_provider_castore_dam.errors import EventStoreError
from airflow_provider_castore_dam.selection import Selection

log = logging.getLogger(__name__)

CASTORE_COLUMNS = (
    "id",
    "aggregate_name",
    "aggregate_id",
    "version",
    "type",
    "data",
    "metadata",
    "timestamp",
)
EVENT_COLUMNS = ("timestamp", "aggregate_id", "version", "type", "data", "metadata")
"""The columns :attr:`TableLayout.event_columns` formats, in its order."""
CASTORE_TIMESTAMP = 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'
EXACT_TIMESTAMP = 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'
_INTEGER_TYPES = {"smallint", "integer", "bigint"}
_TIMESTAMP_TYPES = {"timestamp with time zone", "timestamp without time zone"}
_JSON_TYPES = {"jsonb", "json"}
_TEXT_TYPES = {"text", "character varying"}
_RELATION_KINDS = ("r", "p", "v", "m", "f")


def split_table(table: str | tuple[str, str]) -> tuple[str, ...]:
    """``("table",)`` or ``("schema", "table")`` from a name as the user gave it."""
    if isinstance(table, tuple):
        parts: tuple[str, ...] = table
    elif isinstance(table, str):
        parts = tuple(table.split("."))
    else:
        raise EventStoreError(f"table must be 'table' or 'schema.table', not {table!r}")
    if not 1 <= len(parts) <= 2 or not all(isinstance(part, str) and part for part in parts):
        raise EventStoreError(
            f"table {table!r} is not 'table' or 'schema.table'; for names that contain a dot, "
            "pass a (schema, table) tuple"
        )
    return parts


@dataclass(frozen=True)
class TableLayout:
    """What validation learned about the table; the SQL fragments depend on column types."""

    table: sql.Composable
    table_text: str
    aggregate_id_type: str
    timestamp_type: str
    json_types: tuple[str, str]

    @property
    def utc_timestamp(self) -> sql.Composable:
        """The ``timestamp`` column as a UTC ``timestamp without time zone``."""
        return self.utc(sql.Identifier("timestamp"))

    def utc(self, value: sql.Composable) -> sql.Composable:
        """A value of the column's type as a UTC ``timestamp without time zone``."""
        if self.timestamp_type == "timestamp with time zone":
            return sql.SQL("({} AT TIME ZONE 'UTC')").format(value)
        return value  # stored without a zone: taken as UTC

    def bound(self, placeholder: str) -> sql.Composable:
        """A timestamp parameter (an ISO string with a zone) comparable to the column."""
        if self.timestamp_type == "timestamp with time zone":
            return sql.SQL("{}::timestamptz").format(sql.Placeholder(placeholder))
        return millis_bound(placeholder)

    def within(
        self, start: str | None, end: str | None, params: dict[str, Any]
    ) -> list[sql.Composable]:
        """Conditions on the ``timestamp`` column for inclusive bounds at millisecond
        precision (the whole millisecond of ``end``); the bounds go into ``params``."""
        timestamp = sql.Identifier("timestamp")
        conditions: list[sql.Composable] = []
        if start is not None:
            conditions.append(sql.SQL("{} >= {}").format(timestamp, self.bound("start")))
            params["start"] = start
        if end is not None:
            conditions.append(
                sql.SQL("{} < {} + interval '1 millisecond'").format(timestamp, self.bound("end"))
            )
            params["end"] = end
        return conditions

    @staticmethod
    def selected_aggregates(
        selection: Selection | None, params: dict[str, Any]
    ) -> list[sql.Composable]:
        """The conditions that keep the aggregates ``selection`` selects (none for the whole
        store): the partition's hash of :mod:`airflow_provider_castore_dam.partitions` in SQL,
        the aggregate ids."""
        if selection is None:
            return []
        conditions: list[sql.Composable] = []
        if selection.partition is not None:
            partition = selection.partition
            params["partition_index"], params["partition_count"] = partition.index, partition.count
            conditions.append(
                sql.SQL(
                    "('x' || substr(md5(aggregate_id::text), 1, 8))::bit(32)::bigint"
                    " %% %(partition_count)s = %(partition_index)s"
                )
            )
        if selection.aggregate_ids is not None:
            params["aggregate_ids"] = sorted(selection.aggregate_ids)
            conditions.append(sql.SQL("aggregate_id::text = ANY(%(aggregate_ids)s)"))
        return conditions

    @staticmethod
    def selected_types(selection: Selection | None, params: dict[str, Any]) -> list[sql.Composable]:
        """The conditions that keep the event types ``selection`` selects (none for all)."""
        conditions: list[sql.Composable] = []
        if selection is None:
            return conditions
        if selection.event_types is not None:
            params["event_types"] = sorted(selection.event_types)
            conditions.append(sql.SQL("type::text = ANY(%(event_types)s)"))
        if selection.excluded_event_types:
            params["excluded_event_types"] = sorted(selection.excluded_event_types)
            conditions.append(sql.SQL("type::text <> ALL(%(excluded_event_types)s)"))
        return conditions

    @property
    def millis(self) -> sql.Composable:
        """The UTC timestamp truncated to the millisecond, as Castore's form keeps it."""
        return sql.SQL("date_trunc('milliseconds', {})").format(self.utc_timestamp)

    @staticmethod
    def text_of(moment: sql.Composable, form: str = CASTORE_TIMESTAMP) -> sql.Composable:
        return sql.SQL("to_char({}, {})").format(moment, sql.Literal(form))

    @property
    def aggregate_order(self) -> sql.Composable:
        """Aggregate ids in Unicode code point order (byte order of UTF-8; UUIDs compare
        byte-wise, which is the order of their lower-case text)."""
        column = sql.Identifier("aggregate_id")
        if self.aggregate_id_type == "uuid":
            return column
        if self.aggregate_id_type in _TEXT_TYPES:
            return sql.SQL('{} COLLATE "C"').format(column)
        return sql.SQL('{}::text COLLATE "C"').format(column)

    def aggregate_match(self, placeholder: str) -> sql.Composable:
        column = sql.Identifier("aggregate_id")
        if self.aggregate_id_type == "uuid":
            return sql.SQL("{} = {}::uuid").format(column, sql.Placeholder(placeholder))
        if self.aggregate_id_type in _TEXT_TYPES:
            return sql.SQL("{} = {}").format(column, sql.Placeholder(placeholder))
        return sql.SQL("{}::text = {}").format(column, sql.Placeholder(placeholder))

    def json_text(self, column: str) -> sql.Composable:
        """A JSON column as compact text (``json`` is normalised through ``jsonb``)."""
        kind = self.json_types[0 if column == "data" else 1]
        if kind == "jsonb":
            return sql.SQL("{}::text").format(sql.Identifier(column))
        return sql.SQL("{}::jsonb::text").format(sql.Identifier(column))

    @property
    def event_columns(self) -> sql.Composable:
        """timestamp text, aggregate id, version, type, payload text, metadata text."""
        return sql.SQL(", ").join(
            [
                self.text_of(self.utc_timestamp),
                sql.SQL("{}::text").format(sql.Identifier("aggregate_id")),
                sql.Identifier("version"),
                sql.SQL("{}::text").format(sql.Identifier("type")),
                self.json_text("data"),
                self.json_text("metadata"),
            ]
        )


def millis_bound(placeholder: str) -> sql.Composable:
    """A bound as a UTC ``timestamp without time zone``, comparable to ``date_trunc`` of the
    UTC column."""
    return sql.SQL("({}::timestamptz AT TIME ZONE 'UTC')").format(sql.Placeholder(placeholder))


def inspect_table(conn: psycopg.Connection[Any], parts: tuple[str, ...], where: str) -> TableLayout:
    """Find the table, check it has Castore's columns with usable types."""
    if len(parts) == 2:
        condition = sql.SQL("n.nspname = %(schema)s AND c.relname = %(name)s")
        params = {"schema": parts[0], "name": parts[1]}
    else:
        condition = sql.SQL("c.relname = %(name)s AND pg_catalog.pg_table_is_visible(c.oid)")
        params = {"name": parts[0]}
    query = sql.SQL(
        "SELECT c.oid, n.nspname, c.relname, "
        "pg_catalog.has_table_privilege(c.oid, 'SELECT'), current_user "
        "FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
        "WHERE {} AND c.relkind = ANY(%(kinds)s)"
    ).format(condition)
    found = conn.execute(query, {**params, "kinds": list(_RELATION_KINDS)}).fetchone()
    if found is None:
        raise EventStoreError(_missing_table_message(conn, parts, where))
    oid, schema, name, can_select, current_user = found
    qualified = sql.Identifier(schema, name)
    table_text = qualified.as_string(conn)
    if not can_select:
        raise EventStoreError(
            f"user {current_user!r} may not SELECT from table {table_text} at {where}"
        )
    columns = dict(
        conn.execute(
            "SELECT attname, pg_catalog.format_type(atttypid, NULL)"
            " FROM pg_catalog.pg_attribute"
            " WHERE attrelid = %s AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
            (oid,),
        ).fetchall()
    )
    _check_columns(table_text, columns)
    return TableLayout(
        table=qualified,
        table_text=table_text,
        aggregate_id_type=columns["aggregate_id"],
        timestamp_type=columns["timestamp"],
        json_types=(columns["data"], columns["metadata"]),
    )


def _check_columns(table_text: str, columns: dict[str, str]) -> None:
    missing = [column for column in CASTORE_COLUMNS if column not in columns]
    if missing:
        raise EventStoreError(
            f"table {table_text} is not in Castore's layout: missing column(s) "
            f"{', '.join(missing)} (it has {', '.join(columns) or 'no columns'})"
        )
    wrong = [
        f"{column} is {columns[column]}, expected {' or '.join(sorted(allowed))}"
        for column, allowed in (
            ("id", _INTEGER_TYPES),
            ("version", _INTEGER_TYPES),
            ("timestamp", _TIMESTAMP_TYPES),
            ("data", _JSON_TYPES),
            ("metadata", _JSON_TYPES),
        )
        if columns[column] not in allowed
    ]
    if wrong:
        raise EventStoreError(
            f"table {table_text} is not in Castore's layout: column {'; column '.join(wrong)}"
        )


def _missing_table_message(
    conn: psycopg.Connection[Any], parts: tuple[str, ...], where: str
) -> str:
    table_text = ".".join(sql.Identifier(part).as_string(None) for part in parts)
    message = f"table {table_text} does not exist at {where}"
    if len(parts) == 1:
        path = conn.execute("SELECT current_setting('search_path')").fetchone()
        message += f" (search_path: {path[0] if path else '?'})"
    lowered = tuple(part.lower() for part in parts)
    if lowered != parts:
        if len(lowered) == 2:
            exists = "SELECT to_regclass(format('%%I.%%I', %s::text, %s::text)) IS NOT NULL"
        else:
            exists = "SELECT to_regclass(format('%%I', %s::text)) IS NOT NULL"
        row = conn.execute(exists, lowered).fetchone()
        if row and row[0]:
            message += (
                f"; {'.'.join(lowered)} exists: Castore splices the table name into its SQL "
                "unquoted, so PostgreSQL folded it to lower case; pass that name"
            )
    return message


def warn_if_empty(
    conn: psycopg.Connection[Any], layout: TableLayout, event_store_id: str, where: str
) -> None:
    """Log a warning naming the event store ids the table has when ``event_store_id`` has
    no row."""
    exists = conn.execute(
        sql.SQL("SELECT EXISTS (SELECT 1 FROM {} WHERE aggregate_name = %s)").format(layout.table),
        (event_store_id,),
    ).fetchone()
    if exists and exists[0]:
        return
    others: list[str] = []
    try:
        with conn.transaction():
            conn.execute("SET LOCAL statement_timeout = '2s'")
            # A loose index scan: one probe of the aggregate_name index per distinct name.
            others = [
                name
                for (name,) in conn.execute(
                    sql.SQL(
                        "WITH RECURSIVE names(name) AS ("
                        " (SELECT min(aggregate_name)::text FROM {table})"
                        " UNION ALL SELECT (SELECT min(aggregate_name)::text FROM {table}"
                        " WHERE aggregate_name > names.name) FROM names"
                        " WHERE names.name IS NOT NULL)"
                        " SELECT name FROM names WHERE name IS NOT NULL LIMIT 10"
                    ).format(table=layout.table)
                )
            ]
    except psycopg.Error:
        others = []
    log.warning(
        "event store %r has no aggregates: no row of table %s at %s has aggregate_name = %r; "
        "its pours will publish nothing. Event store ids found in the table: %s",
        event_store_id,
        layout.table_text,
        where,
        event_store_id,
        ", ".join(others) if others else "none",
    )
