"""A PostgreSQL event table as a pour's destination: events written as Castore's PostgreSQL
adapter writes them (see :mod:`airflow_provider_castore_dam.stores.destination`).

Each call is one transaction on one connection:

1. ``COPY`` the call's events into a temporary table shaped like the destination's columns;
2. ``INSERT ... SELECT`` them in the call's order, ``ON CONFLICT DO NOTHING``, which also
   tells the events already in the table (``overwrite``: ``ON CONFLICT ... DO UPDATE`` of
   type, data, metadata and timestamp, as Castore's ``force``);
3. settle those with the conflict policy: the transaction is rolled back when it does not
   let one through.

Columns are Castore's: ``aggregate_name`` (the message's event store id), ``aggregate_id``,
``version``, ``type``, ``data`` and ``metadata`` (JSONB, NULL when the event has none) and
``timestamp``. A transient error (a dropped connection, the server restarting) retries the
whole call on a new connection, within the retry policy; a retry takes identical events
already in the table as its own writes (the commit may have happened before the connection
was lost).
"""

from __future__ import annotations

import json
import queue
from typing import Any

import psycopg
from psycopg import sql

from airflow_provider_castore_dam.errors import (
    InvalidPourInputError,
    MessageChannelError,
)
from airflow_provider_castore_dam.retry import RetryPolicy, call_with_retries, gave_up_note
from airflow_provider_castore_dam.stores.destination import (
    EventStoreDestination,
    Written,
    settle_conflict,
)
from airflow_provider_castore_dam.stores.postgres.connection import (
    build_conninfo,
    describe_conninfo,
    one_line,
    postgres_failure,
)
from airflow_provider_castore_dam.stores.postgres.layout import split_table

DEFAULT_BATCH_SIZE = 2_000
DEFAULT_MAX_IN_FLIGHT = 4
APPLICATION_NAME = "airflow-provider-castore-dam-destination"
COLUMNS = ("aggregate_name", "aggregate_id", "version", "type", "data", "metadata", "timestamp")
_BATCH = sql.Identifier("castore_dam_batch")
_SAME_KEY = sql.SQL(
    "e.aggregate_name = b.aggregate_name AND e.aggregate_id = b.aggregate_id"
    " AND e.version = b.version"
)
_IDENTICAL = sql.SQL(
    "e.type = b.type AND e.data IS NOT DISTINCT FROM b.data"
    " AND e.metadata IS NOT DISTINCT FROM b.metadata"
    " AND date_trunc('milliseconds', e.timestamp) = date_trunc('milliseconds', b.timestamp)"
)


try:  # msgspec comes with Apache Airflow 3; its encoder is several times faster.
    from msgspec.json import Encoder as _FastJsonEncoder
except ImportError:  # pragma: no cover - the stdlib encoder does the same, slower
    _fast_encode = None
else:
    _fast_encode = _FastJsonEncoder().encode


def _json(event: dict[str, Any], key: str) -> str | None:
    """The JSONB text of the event's payload or metadata; None (SQL NULL) when absent."""
    if key not in event:
        return None
    value = event[key]
    if _fast_encode is not None:
        try:
            return _fast_encode(value).decode("utf-8")
        except (TypeError, OverflowError, ValueError):  # what msgspec refuses, json may take
            pass
    return json.dumps(value, ensure_ascii=False)


class PostgresEventStoreDestination(EventStoreDestination):
    """Writes poured events into ``table`` (``"event"``, ``"schema.table"``) of a PostgreSQL
    database in Castore's layout; ``conflict``: ``fail``, ``skip_identical`` or
    ``overwrite``. Connection as for :class:`~.store.PostgresEventStore` (``conninfo``
    and/or keyword parts). ``max_in_flight`` calls run at once, each on its own connection
    (the pour never puts two of one aggregate in flight), so ``id`` follows the pour order
    within each aggregate. Use it as the message channel of a pour; close it after."""

    def __init__(
        self,
        conninfo: str | None = None,
        *,
        table: str | tuple[str, str] = "event",
        conflict: str = "fail",
        batch_size: int = DEFAULT_BATCH_SIZE,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        connect_timeout: int | None = None,
        retry_policy: RetryPolicy | None = None,
        **parts: Any,
    ) -> None:
        super().__init__(conflict, max_in_flight, retry_policy)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InvalidPourInputError(
                f"batch_size must be a positive integer, not {batch_size!r}"
            )
        self.max_batch_size = batch_size
        self._conninfo = build_conninfo(conninfo, connect_timeout, **parts)
        self._table_parts = split_table(table)
        self._table = sql.Identifier(*self._table_parts)
        self._idle: queue.SimpleQueue[psycopg.Connection[Any]] = queue.SimpleQueue()
        self._opened: list[psycopg.Connection[Any]] = []

    def __repr__(self) -> str:
        return (
            f"PostgresEventStoreDestination(table={'.'.join(self._table_parts)!r}, "
            f"{describe_conninfo(self._conninfo)}, conflict={self._conflict!r})"
        )

    def __enter__(self) -> PostgresEventStoreDestination:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        while self._opened:
            self._opened.pop().close()

    def _write_events(self, events: list[Written], repeats_allowed: bool) -> None:
        attempt = 0

        def write() -> None:
            nonlocal attempt
            attempt += 1
            self._write(events, repeats_allowed or attempt > 1)

        try:
            call_with_retries(
                write,
                policy=self._retry_policy,
                what=f"writing {len(events)} events to {self._where()}",
                classify=postgres_failure,
            )
        except psycopg.Error as error:
            raise MessageChannelError(
                f"writing events to {self._where()} failed: {one_line(error)}{gave_up_note(error)}"
            ) from error

    def _where(self) -> str:
        return f"table {'.'.join(self._table_parts)} at {describe_conninfo(self._conninfo)}"

    def _connection(self) -> psycopg.Connection[Any]:
        """An idle connection, or a new one (one a call in flight, at most)."""
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            pass
        conn = psycopg.connect(self._conninfo, application_name=APPLICATION_NAME)
        try:
            conn.execute("SET TIME ZONE 'UTC'")
            conn.execute(
                sql.SQL(
                    "CREATE TEMP TABLE {batch} ON COMMIT DELETE ROWS AS"
                    " SELECT {columns}, 0 AS position FROM {table} WITH NO DATA"
                ).format(
                    batch=_BATCH,
                    columns=sql.SQL(", ").join(map(sql.Identifier, COLUMNS)),
                    table=self._table,
                )
            )
            conn.commit()
        except BaseException:
            conn.close()
            raise
        self._opened.append(conn)
        return conn

    def _write(self, events: list[Written], repeats_allowed: bool) -> None:
        conn = self._connection()
        try:
            with conn.transaction():
                self._copy(conn, events)
                if self._conflict == "overwrite":
                    self._overwrite(conn)
                    return
                conflicting = self._insert_new(conn)
                if conflicting:
                    self._settle(conn, events, conflicting, repeats_allowed)
        except psycopg.Error:
            conn.close()
            raise
        finally:
            if not conn.closed:
                self._idle.put(conn)

    @staticmethod
    def _copy(conn: psycopg.Connection[Any], events: list[Written]) -> None:
        columns = sql.SQL(", ").join(map(sql.Identifier, (*COLUMNS, "position")))
        with conn.cursor().copy(sql.SQL("COPY {} ({}) FROM STDIN").format(_BATCH, columns)) as copy:
            for written in events:
                event = written.event
                copy.write_row(
                    (
                        written.event_store_id,
                        event["aggregateId"],
                        event["version"],
                        event["type"],
                        _json(event, "payload"),
                        _json(event, "metadata"),
                        event["timestamp"],
                        written.position,
                    )
                )

    def _insert_new(self, conn: psycopg.Connection[Any]) -> list[int]:
        """Insert the events not in the table yet, in the call's order; the positions of
        those that are (one index probe each: no scan of the table)."""
        columns = sql.SQL(", ").join(map(sql.Identifier, COLUMNS))
        rows = conn.execute(
            sql.SQL(
                "WITH inserted AS ("
                " INSERT INTO {table} ({columns}) SELECT {columns} FROM {batch} ORDER BY position"
                " ON CONFLICT (aggregate_name, aggregate_id, version) DO NOTHING"
                " RETURNING aggregate_name, aggregate_id, version)"
                " SELECT b.position FROM {batch} b WHERE NOT EXISTS"
                " (SELECT 1 FROM inserted e WHERE {same_key}) ORDER BY b.position"
            ).format(table=self._table, columns=columns, batch=_BATCH, same_key=_SAME_KEY)
        ).fetchall()
        return [position for (position,) in rows]

    def _settle(
        self,
        conn: psycopg.Connection[Any],
        events: list[Written],
        conflicting: list[int],
        repeats_allowed: bool,
    ) -> None:
        """Raise unless the policy lets every event already in the table stay as it is."""
        rows = conn.execute(
            sql.SQL(
                "SELECT b.position, {identical} FROM {batch} b JOIN {table} e ON {same_key}"
                " WHERE b.position = ANY(%(conflicting)s) ORDER BY b.position"
            ).format(identical=_IDENTICAL, batch=_BATCH, table=self._table, same_key=_SAME_KEY),
            {"conflicting": conflicting},
        ).fetchall()
        by_position = {written.position: written for written in events}
        for position, identical in rows:
            settle_conflict(by_position[position], bool(identical), self._conflict, repeats_allowed)

    def _overwrite(self, conn: psycopg.Connection[Any]) -> None:
        columns = sql.SQL(", ").join(map(sql.Identifier, COLUMNS))
        conn.execute(
            sql.SQL(
                "INSERT INTO {table} ({columns}) SELECT {columns} FROM {batch} ORDER BY position"
                " ON CONFLICT (aggregate_name, aggregate_id, version) DO UPDATE SET"
                " type = EXCLUDED.type, data = EXCLUDED.data, metadata = EXCLUDED.metadata,"
                " timestamp = EXCLUDED.timestamp"
            ).format(table=self._table, columns=columns, batch=_BATCH)
        )
