"""The public PostgreSQL event store: checks its arguments, owns the connections, and hands
each read to the module that does it."""

from __future__ import annotations

import threading
from collections.abc import Generator, Hashable, Iterator, Sequence
from contextlib import closing
from dataclasses import replace
from types import TracebackType
from typing import Any, cast

import psycopg
from psycopg import sql

from airflow_provider_castore_dam.errors import EventStoreError
from airflow_provider_castore_dam.protocols import (
    AggregateIdsPage,
    EventDetail,
    JointlyScannableEventStore,
    JointScanBatch,
    ScannedBatch,
    ScannedEvent,
    StoredEvent,
)
from airflow_provider_castore_dam.retry import RetryPolicy
from airflow_provider_castore_dam.selection import Selection
from airflow_provider_castore_dam.stores.postgres.aggregate import aggregate_events
from airflow_provider_castore_dam.stores.postgres.audit import audit
from airflow_provider_castore_dam.stores.postgres.connection import Connections, build_conninfo
from airflow_provider_castore_dam.stores.postgres.event_table import EventTable
from airflow_provider_castore_dam.stores.postgres.joint_scan import joint_scan
from airflow_provider_castore_dam.stores.postgres.layout import (
    TableLayout,
    inspect_table,
    split_table,
    warn_if_empty,
)
from airflow_provider_castore_dam.stores.postgres.listing import (
    INT64_MAX,
    decode_page_token,
    list_aggregates,
)
from airflow_provider_castore_dam.stores.postgres.scan import scan
from airflow_provider_castore_dam.timestamps import normalize_timestamp

DEFAULT_TABLE = "event"
DEFAULT_PAGE_SIZE = 1000
"""Aggregates per ``list_aggregate_ids`` page when the caller gives no ``limit``."""
DEFAULT_SCAN_BATCH_SIZE = 500
"""Rows the scan receives and converts at a time."""


def _check_positive(value: object, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= INT64_MAX:
        raise EventStoreError(f"{name} must be a positive integer, not {value!r}")
    return value


class PostgresEventStore:
    """A Castore event store in a PostgreSQL table written by Castore's PostgreSQL adapter.

    Connection: ``conninfo`` (a libpq DSN ``"host=... dbname=..."`` or URL
    ``"postgresql://..."``) and/or keyword parts (``host``, ``port``, ``dbname``, ``user``,
    ``password`` and any other libpq parameter such as ``sslmode``); parts override the DSN.

    ``table`` is ``"event"``, ``"schema.table"`` or a ``(schema, table)`` tuple, exactly as the
    names are stored (no folding to lower case). ``event_store_id`` selects the rows whose
    ``aggregate_name`` equals it.

    ``check_clock_skew=False`` skips the check that finds events earlier than a previous
    version of their aggregate (a second pass over the store, run beside the scan): only for
    tables whose timestamps never go back within an aggregate, else such events are poured at
    their own timestamp, out of version order.

    Nothing is read until first use, which checks the server, the table and its columns and
    raises :class:`EventStoreError` naming what is wrong; :meth:`validate` does it on demand.
    Connections come from a ``psycopg_pool.ConnectionPool`` (``min_pool_size`` to
    ``max_pool_size``; a scan uses two at once). Close the store with :meth:`close`, or use it
    as a context manager.

    Transient errors are retried within ``retry_policy`` (default ``RetryPolicy()``: 8 attempts
    and 60 s per operation, or per scan batch); see the package docstring.
    """

    def __init__(
        self,
        event_store_id: str,
        conninfo: str | None = None,
        *,
        table: str | tuple[str, str] = DEFAULT_TABLE,
        host: str | None = None,
        port: int | str | None = None,
        dbname: str | None = None,
        user: str | None = None,
        password: str | None = None,
        connect_timeout: int | None = None,
        min_pool_size: int = 1,
        max_pool_size: int = 4,
        pool_timeout: float = 30.0,
        default_page_size: int = DEFAULT_PAGE_SIZE,
        scan_batch_size: int = DEFAULT_SCAN_BATCH_SIZE,
        check_clock_skew: bool = True,
        retry_policy: RetryPolicy | None = None,
        **connection_params: Any,
    ) -> None:
        if not isinstance(event_store_id, str) or not event_store_id:
            raise EventStoreError(
                f"event_store_id must be a non-empty string, not {event_store_id!r}"
            )
        self._event_store_id = event_store_id
        self._table_parts = split_table(table)
        self._table_text = ".".join(
            sql.Identifier(part).as_string(None) for part in self._table_parts
        )
        for name, value in (
            ("min_pool_size", min_pool_size),
            ("max_pool_size", max_pool_size),
            ("default_page_size", default_page_size),
            ("scan_batch_size", scan_batch_size),
        ):
            _check_positive(value, name)
        if min_pool_size > max_pool_size:
            raise EventStoreError(
                f"min_pool_size {min_pool_size} is above max_pool_size {max_pool_size}"
            )
        self._default_page_size = default_page_size
        self._scan_batch_size = scan_batch_size
        if not isinstance(check_clock_skew, bool):
            raise EventStoreError(
                f"check_clock_skew must be true or false, not {check_clock_skew!r}"
            )
        self._check_clock_skew = check_clock_skew
        if retry_policy is not None and not isinstance(retry_policy, RetryPolicy):
            raise EventStoreError(f"retry_policy must be a RetryPolicy, not {retry_policy!r}")
        conninfo = build_conninfo(
            conninfo,
            connect_timeout,
            host=host,
            port=port,
            dbname=dbname,
            user=user,
            password=password,
            **connection_params,
        )
        self._connections = Connections(
            conninfo,
            name=f"castore-dam-{event_store_id}",
            min_size=min_pool_size,
            max_size=max_pool_size,
            timeout=pool_timeout,
            retry_policy=retry_policy or RetryPolicy(),
        )
        self._event_table: EventTable | None = None
        self._lock = threading.Lock()
        self._closed = False

    # ------------------------------------------------------------------ lifecycle

    @property
    def event_store_id(self) -> str:
        return self._event_store_id

    @property
    def table(self) -> str:
        """The table, quoted as in the SQL the store runs."""
        return self._table_text

    def __repr__(self) -> str:
        return (
            f"PostgresEventStore({self._event_store_id!r}, table={self._table_text!r}, "
            f"at {self._connections.where!r})"
        )

    def close(self) -> None:
        """Close the pool's connections; the store cannot be used afterwards."""
        self._closed = True
        self._connections.close()

    def __enter__(self) -> PostgresEventStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def validate(self) -> None:
        """Connect, check the table and its columns, warn when the store has no rows.

        Runs once (the first call of any read does it); raises :class:`EventStoreError`.
        """
        self._ready()

    def _ready(self) -> EventTable:
        if self._closed:
            raise EventStoreError(f"{self!r} is closed")
        event_table = self._event_table
        if event_table is not None:
            return event_table
        with self._lock:
            if self._event_table is None:
                layout = self._connections.open(self._check_table, self._table_text)
                self._event_table = EventTable(
                    self._connections,
                    layout,
                    self._event_store_id,
                    self._scan_batch_size,
                    self._check_clock_skew,
                )
            return self._event_table

    def _check_table(self, conn: psycopg.Connection[Any]) -> TableLayout:
        where = self._connections.where
        layout = inspect_table(conn, self._table_parts, where)
        warn_if_empty(conn, layout, self._event_store_id, where)
        return layout

    # ------------------------------------------------------------------ reads

    def list_aggregate_ids(
        self,
        *,
        limit: int | None = None,
        page_token: str | None = None,
        initial_event_after: str | None = None,
        initial_event_before: str | None = None,
        reverse: bool = False,
    ) -> AggregateIdsPage:
        """One page of aggregates ordered by initial event ``(timestamp, id)``; see
        :meth:`EventStore.list_aggregate_ids`. Bounds are inclusive, at millisecond
        precision. Page size: ``limit`` or ``default_page_size``."""
        size = _check_positive(limit, "limit") or self._default_page_size
        after = (
            None
            if initial_event_after is None
            else normalize_timestamp(initial_event_after, "initial_event_after", round_up=True)
        )
        before = (
            None
            if initial_event_before is None
            else normalize_timestamp(initial_event_before, "initial_event_before")
        )
        last = None if page_token is None else decode_page_token(page_token, reverse)
        return list_aggregates(
            self._ready(), size=size, after=after, before=before, last=last, reverse=reverse
        )

    def get_events(
        self,
        aggregate_id: str,
        *,
        min_version: int | None = None,
        max_version: int | None = None,
        limit: int | None = None,
        reverse: bool = False,
    ) -> list[EventDetail]:
        """Events of one aggregate in version order (descending with ``reverse``); an
        unknown aggregate id, or one that cannot be a value of the column, gives ``[]``."""
        if not isinstance(aggregate_id, str):
            raise EventStoreError(f"aggregate_id must be a string, not {aggregate_id!r}")
        min_version = _check_positive(min_version, "min_version")
        max_version = _check_positive(max_version, "max_version")
        limit = _check_positive(limit, "limit")
        return aggregate_events(
            self._ready(),
            aggregate_id,
            min_version=min_version,
            max_version=max_version,
            limit=limit,
            reverse=reverse,
        )

    def scan_events(
        self, *, from_timestamp: str | None = None, to_timestamp: str | None = None
    ) -> Iterator[ScannedEvent]:
        """:meth:`scan_event_batches`, an event at a time."""
        batches = self.scan_event_batches(from_timestamp=from_timestamp, to_timestamp=to_timestamp)
        with closing(batches):
            for batch in batches:
                yield from batch.scanned_events()

    def scan_event_batches(
        self,
        *,
        from_timestamp: str | None = None,
        to_timestamp: str | None = None,
        selection: Selection | None = None,
    ) -> Generator[ScannedBatch, None, None]:
        """Every event whose pour timestamp is within the inclusive bounds, in
        ``(pour_timestamp, aggregate_id, version)`` order, streamed by one query in batches
        of ``scan_batch_size``; with ``selection``, only its aggregates' events.

        The store is checked before this returns; reading starts at the first ``next()``.
        The scan holds one connection and one read-only transaction (REPEATABLE READ) until
        it is exhausted or closed.
        """
        start = (
            None
            if from_timestamp is None
            else normalize_timestamp(from_timestamp, "from_timestamp", round_up=True)
        )
        end = None if to_timestamp is None else normalize_timestamp(to_timestamp, "to_timestamp")
        return scan(replace(self._ready(), selection=selection), start, end)

    def audit_events(self) -> Generator[list[StoredEvent], None, None]:
        """Every row of the store as stored, for the integrity check (see
        :class:`~airflow_provider_castore_dam.protocols.AuditableEventStore`), by aggregate
        and version, streamed by one query; rows without an aggregate id or a version are
        left out. An empty or NULL ``type`` is None, a NULL timestamp None.

        The store is checked before this returns; the read holds one connection until it is
        exhausted or closed. It is not retried: a transient error fails it."""
        return audit(self._ready())

    @property
    def lists_beside_scans(self) -> bool:
        """Whether a listing can run while a scan holds a connection: the pool has another."""
        return self._connections.has_second

    @property
    def joint_scan_key(self) -> Hashable:
        """Stores with equal keys read one table of one server with the same scan settings:
        :meth:`scan_jointly` reads them all with one query."""
        return (
            self._connections.conninfo,
            self._table_parts,
            self._check_clock_skew,
            self._scan_batch_size,
        )

    def scan_jointly(
        self,
        stores: Sequence[JointlyScannableEventStore],
        *,
        to_timestamp: str | None = None,
        selection: Selection | None = None,
    ) -> Generator[JointScanBatch, None, None]:
        """The events of ``stores`` (this one among them or not; all with this store's
        :attr:`joint_scan_key`) up to ``to_timestamp``, in pour order across the stores,
        streamed by one query on one of this store's connections. Every store is checked
        before this returns.

        One query sorts and sends the rows of every store at once, where separate scans would
        each read the table. It covers the usual case only: while every event pours at its
        own timestamp. At the first event that might not (it does not follow the last
        version seen of its aggregate), and at any error, it raises :class:`ScanHandover`
        once it has yielded every event of the earlier milliseconds; the stores' own scans
        go on from there.
        """
        if any(store.joint_scan_key != self.joint_scan_key for store in stores):
            raise ValueError("scan_jointly: every store must have this store's joint_scan_key")
        end = None if to_timestamp is None else normalize_timestamp(to_timestamp, "to_timestamp")
        table = replace(self._ready(), selection=selection)
        for store in stores:
            cast(PostgresEventStore, store)._ready()
        return joint_scan(table, sorted({store.event_store_id for store in stores}), end)
