"""Finding clock skew: events earlier than a previous version of their aggregate.

A scan from the store's first event sees skew by itself (:class:`VersionTracker`); a scan
from a timestamp runs the skew query beside it (:class:`SkewCheck`), on a second connection
that shares its snapshot, or before it when there is no second one.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Hashable, Iterable, Mapping, Sequence
from contextlib import suppress
from typing import Any

import psycopg
from psycopg import sql
from psycopg_pool import ConnectionPool

from airflow_provider_castore_dam.stores.postgres.connection import one_line
from airflow_provider_castore_dam.stores.postgres.event_table import EventTable
from airflow_provider_castore_dam.stores.postgres.scan_queries import skew_query

log = logging.getLogger(__name__)

TRACKED_AGGREGATES = 32_768
"""Aggregates whose last version a scan from the first event remembers, to see clock skew by
itself (about 3 MB); the least recently seen are forgotten beyond that. When one comes back,
the rest of the scan is checked by the clock-skew query instead (from that point on, on a
second connection), or goes down the skew-safe tail query when there is no second one."""
SEQUENTIAL_PASS = "SET LOCAL enable_indexscan = off"
"""For the clock-skew check, a full pass over the store: read the heap in order and sort,
rather than walk the unique index and fetch every row at random."""


class VersionTracker:
    """The last version seen of recently seen aggregates: of every aggregate among the last
    ``TRACKED_AGGREGATES // 2`` distinct ones seen, and of at most ``TRACKED_AGGREGATES``.

    Two generations of a plain dict each (the newer one is started afresh, and the older
    one forgotten, when the newer one is full): cheaper per event than keeping one dict in
    recency order."""

    def __init__(self) -> None:
        self._generation = max(1, TRACKED_AGGREGATES // 2)
        self._recent: dict[Hashable, int] = {}
        self._older: dict[Hashable, int] = {}
        self.forgot_any = False

    def first_out_of_order(
        self, keys: Iterable[Hashable], versions: Iterable[int]
    ) -> tuple[int, bool] | None:
        """Index of the first event (of aggregate ``keys[i]``, version ``versions[i]``) that
        does not follow the last version seen of its aggregate, and whether that may only be
        because the aggregate was forgotten.

        Otherwise it comes before its previous version (clock skew) or after a gap in the
        versions, which is handled the same, safe way."""
        recent, older = self._recent, self._older
        for index, (key, version) in enumerate(zip(keys, versions, strict=True)):
            previous = recent.get(key)
            if previous is None:
                previous = older.get(key)
                if len(recent) >= self._generation:
                    self.forgot_any = self.forgot_any or bool(older)
                    self._older = older = recent
                    self._recent = recent = {}
            if (previous or 0) != version - 1:
                return index, previous is None and self.forgot_any
            recent[key] = version
        return None


class NoSnapshot(Exception):
    """The scan's snapshot could not be exported (its transaction is then rolled back)."""


class SkewCheck:
    """The clock-skew check, run on its own pooled connection in a thread, or already done."""

    def __init__(self) -> None:
        self._result: str | None = None
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._conn: psycopg.Connection[Any] | None = None
        self._done = threading.Event()

    @classmethod
    def done(cls, row: Sequence[Any] | None) -> SkewCheck:
        check = cls()
        check._result = None if row is None else row[0]
        check._done.set()
        return check

    @classmethod
    def in_background(
        cls,
        pool: ConnectionPool[psycopg.Connection[Any]],
        conn: psycopg.Connection[Any],
        snapshot: str,
        query: sql.Composed,
        params: Mapping[str, Any],
    ) -> SkewCheck:
        """Run ``query`` on ``conn`` (taken from ``pool``, given back at the end) in a
        transaction that imports ``snapshot``."""
        check = cls()
        check._conn = conn

        def run() -> None:
            try:
                with conn.transaction():
                    conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                    conn.execute(
                        sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(snapshot))
                    )
                    conn.execute(SEQUENTIAL_PASS)
                    row = conn.execute(query, params).fetchone()
                    check._result = None if row is None else row[0]
            except BaseException as error:  # handed to the scanning thread
                check._error = error
            finally:
                check._done.set()
                pool.putconn(conn)

        check._thread = threading.Thread(target=run, name="castore-dam-skew-check", daemon=True)
        check._thread.start()
        return check

    @property
    def finished(self) -> bool:
        return self._done.is_set()

    def result(self) -> str | None:
        self._done.wait()
        if self._error is not None:
            raise self._error
        return self._result

    def stop(self) -> None:
        """Cancel the check if it still runs (the scan was closed early) and wait for it."""
        if self._thread is None:
            return
        if not self._done.is_set() and self._conn is not None:
            with suppress(psycopg.Error):
                self._conn.cancel_safe()
        self._thread.join()


def export_snapshot(table: EventTable, conn: psycopg.Connection[Any]) -> str | None:
    """This transaction's snapshot, for a clock-skew check started later, or None."""
    connections = table.connections
    if not connections.can_export_snapshots or not connections.has_second:
        return None
    # Asked first: a refused export would abort the scan's transaction (and a savepoint
    # cannot export).
    allowed = conn.execute(
        "SELECT has_function_privilege('pg_catalog.pg_export_snapshot()', 'EXECUTE')"
    ).fetchone()
    if not (allowed and allowed[0]):
        log.info("cannot share a snapshot (no EXECUTE on pg_export_snapshot)")
        connections.can_export_snapshots = False
        return None
    row = conn.execute("SELECT pg_catalog.pg_export_snapshot()").fetchone()
    return None if row is None else str(row[0])


def check_from(table: EventTable, snapshot: str | None, since: str) -> SkewCheck | None:
    """The clock-skew check of the events from ``since`` on, on a second connection in
    ``snapshot``, or None when there is none to be had."""
    if snapshot is None:
        return None
    second = table.connections.second_connection()
    if second is None:
        return None
    log.debug("clock-skew check from %s on a second connection", since)
    return SkewCheck.in_background(
        table.connections.pool,
        second,
        snapshot,
        skew_query(table.layout, since=True),
        {"store": table.event_store_id, "since": since},
    )


def start_skew_check(table: EventTable, conn: psycopg.Connection[Any], export: bool) -> SkewCheck:
    """Run the clock-skew check on a second connection that shares this transaction's
    snapshot, or here and now when that is not possible (pool of one, no free
    connection, a server that cannot export snapshots)."""
    if not table.check_clock_skew:
        return SkewCheck.done(None)
    query = skew_query(table.layout)
    params = {"store": table.event_store_id}
    if export:
        try:
            row = conn.execute("SELECT pg_catalog.pg_export_snapshot()").fetchone()
        except psycopg.Error as error:
            raise NoSnapshot(one_line(error)) from error
        second = table.connections.second_connection()
        if second is None:
            log.debug("no second connection free: checking clock skew before the scan")
        else:
            assert row is not None
            log.debug("clock-skew check on a second connection, snapshot %s", row[0])
            return SkewCheck.in_background(
                table.connections.pool, second, str(row[0]), query, params
            )
    conn.execute(SEQUENTIAL_PASS)
    return SkewCheck.done(conn.execute(query, params).fetchone())
