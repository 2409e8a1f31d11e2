""":class:`DynamoDBEventStore`: the public store, its arguments checked, composing the table,
its layout check, the aggregate listing and the event reads."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from airflow_provider_castore_dam.errors import EventStoreError
from airflow_provider_castore_dam.protocols import AggregateIdsPage, EventDetail, StoredEvent
from airflow_provider_castore_dam.retry import RetryPolicy
from airflow_provider_castore_dam.stores.dynamodb.arguments import (
    check_positive,
    positive,
    timestamp_bound,
)
from airflow_provider_castore_dam.stores.dynamodb.audit import audit
from airflow_provider_castore_dam.stores.dynamodb.events import AggregateEvents, EventsRequest
from airflow_provider_castore_dam.stores.dynamodb.layout import DEFAULT_GSI_NAME, LAYOUTS, Layout
from airflow_provider_castore_dam.stores.dynamodb.listing import AggregateListing
from airflow_provider_castore_dam.stores.dynamodb.page_tokens import decode_page_token
from airflow_provider_castore_dam.stores.dynamodb.parallel_scan import ScanSettings
from airflow_provider_castore_dam.stores.dynamodb.store_table import StoreTable
from airflow_provider_castore_dam.stores.dynamodb.table import Table, make_client

DEFAULT_PAGE_SIZE = 1000
"""Aggregates per listing page when no ``limit`` is given (index items are ~100 bytes)."""
DEFAULT_MAX_WORKERS = 16
DEFAULT_PREFETCH_CAPACITY = 128


class DynamoDBEventStore:
    """Read side of a Castore event store kept in DynamoDB (single-table or legacy layout).

    Give either ``client`` (a boto3 DynamoDB client, used as is) or any of ``session``,
    ``region_name``, ``endpoint_url``, ``client_config`` (a client is then made with boto3's
    standard credential chain, a short connect timeout and botocore's retries off). Nothing is
    sent until the first read, which first checks the table's layout once (``DescribeTable``).

    Every request is retried on transient errors (throttling such as
    ``ProvisionedThroughputExceededException``, ``ThrottlingException``,
    ``RequestLimitExceeded``; ``InternalServerError`` and other 5xx; dropped connections and
    timeouts) within ``retry_policy`` (default ``RetryPolicy()``: 8 attempts, 60 s);
    ``max_attempts`` is a shorthand for ``retry_policy=RetryPolicy(max_attempts=...)``. Other
    errors are raised at once. See :mod:`airflow_provider_castore_dam.retry`.

    Safe to share between threads (boto3 clients are). ``close()`` stops the prefetch threads.
    """

    def __init__(
        self,
        event_store_id: str,
        table_name: str,
        *,
        layout: str = "single-table",
        client: Any = None,
        session: Any = None,
        region_name: str | None = None,
        endpoint_url: str | None = None,
        client_config: Any = None,
        gsi_name: str = DEFAULT_GSI_NAME,
        page_size: int = DEFAULT_PAGE_SIZE,
        consistent_read: bool = True,
        max_workers: int = DEFAULT_MAX_WORKERS,
        prefetch_capacity: int = DEFAULT_PREFETCH_CAPACITY,
        connect_timeout: float = 3.0,
        read_timeout: float = 30.0,
        max_attempts: int | None = None,
        retry_policy: RetryPolicy | None = None,
    ) -> None:
        for name, text in (
            ("event_store_id", event_store_id),
            ("table_name", table_name),
            ("gsi_name", gsi_name),
        ):
            if not isinstance(text, str) or not text:
                raise EventStoreError(f"{name} must be a non-empty string, not {text!r}")
        checked_layout = _checked_layout(layout)
        check_positive(
            page_size=page_size,
            max_workers=max_workers,
            prefetch_capacity=prefetch_capacity,
            max_attempts=max_attempts,
        )
        policy = _retry_policy(max_attempts, retry_policy)
        if client is None:
            client = make_client(
                session, region_name, endpoint_url, client_config, connect_timeout, read_timeout
            )
        elif any(
            option is not None for option in (session, region_name, endpoint_url, client_config)
        ):
            raise EventStoreError(
                "give either client or session/region_name/endpoint_url/client_config, not both"
            )
        self._page_size = page_size
        table = Table(client, table_name, gsi_name, consistent_read, policy)
        self._store_table = StoreTable.of(table, event_store_id, checked_layout)
        self._listing = AggregateListing(self._store_table)
        self._events = AggregateEvents(
            self._store_table, max_workers=max_workers, prefetch_capacity=prefetch_capacity
        )
        self._scan_settings = ScanSettings()

    @property
    def event_store_id(self) -> str:
        return self._store_table.keys.event_store_id

    @property
    def table_name(self) -> str:
        return self._store_table.table.name

    @property
    def layout(self) -> Layout:
        return self._store_table.keys.layout

    @property
    def client(self) -> Any:
        return self._store_table.table.client

    def __repr__(self) -> str:
        return (
            f"DynamoDBEventStore({self.event_store_id!r}, {self.table_name!r}, "
            f"layout={self.layout!r})"
        )

    def list_aggregate_ids(
        self,
        *,
        limit: int | None = None,
        page_token: str | None = None,
        initial_event_after: str | None = None,
        initial_event_before: str | None = None,
        reverse: bool = False,
    ) -> AggregateIdsPage:
        """One page of aggregates by initial event timestamp, from the ``initialEvents`` index.

        Bounds are inclusive. Ties keep the index's own order (stable, and exactly reversed by
        ``reverse``). A page holds ``limit`` aggregates (``page_size`` without a limit) unless
        it is the last; ``next_page_token`` is set only when another aggregate follows.
        """
        size = positive(limit, "limit") or self._page_size
        after = timestamp_bound(initial_event_after, "initial_event_after", round_up=True)
        before = timestamp_bound(initial_event_before, "initial_event_before")
        start_key = (
            None
            if page_token is None
            else decode_page_token(page_token, self._store_table.keys, self)
        )
        return self._listing.page(
            size, after, before, start_key, reverse=reverse, first=page_token is None
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
        """Events of one aggregate in version order (descending with ``reverse``), at most
        ``limit`` of them (Castore's DynamoDB adapters ignore ``limit``; this store does not)."""
        request: EventsRequest = (aggregate_id, min_version, max_version, limit, reverse)
        return self._events.get(request)

    def prefetch_events(
        self,
        aggregate_ids: Iterable[str],
        *,
        min_version: int | None = None,
        max_version: int | None = None,
        limit: int | None = None,
        reverse: bool = False,
    ) -> None:
        """Start fetching ``get_events(aggregate_id, **options)`` for each id on a bounded
        thread pool (``max_workers``); the matching ``get_events`` call then returns the result
        (or raises the error). At most ``prefetch_capacity`` results are held, the oldest
        dropped first, so memory stays bounded by ``prefetch_capacity`` pages."""
        positive(limit, "limit")
        self._events.prefetch(
            (aggregate_id, min_version, max_version, limit, reverse)
            for aggregate_id in aggregate_ids
        )

    def audit_events(self) -> Iterator[list[StoredEvent]]:
        """Every item of the store as stored, for the integrity check (see
        :class:`~airflow_provider_castore_dam.protocols.AuditableEventStore`): a parallel
        scan of the table, sorted by aggregate and version with bounded memory (the scan
        settings of :class:`DynamoDBTableScanEventStore`, its defaults here).

        ``type`` and ``timestamp`` are the items' ``S`` values (None when absent or of
        another type), timestamps as stored; a version-1 item is ``listed`` when it has the
        keys of the store's partition of the ``initialEvents`` index."""
        return audit(self._store_table, self._scan_settings)

    def close(self) -> None:
        """Stop the prefetch threads and forget prefetched results (the client stays usable)."""
        self._events.close()

    def __enter__(self) -> DynamoDBEventStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _checked_layout(layout: str) -> Layout:
    if layout not in LAYOUTS:
        raise EventStoreError(
            f"layout must be 'single-table' (DynamoDBSingleTableEventStorageAdapter) or "
            f"'legacy' (LegacyDynamoDBEventStorageAdapter, one table per event store), "
            f"not {layout!r}"
        )
    return "legacy" if layout == "legacy" else "single-table"


def _retry_policy(max_attempts: int | None, retry_policy: RetryPolicy | None) -> RetryPolicy:
    if retry_policy is not None and not isinstance(retry_policy, RetryPolicy):
        raise EventStoreError(f"retry_policy must be a RetryPolicy, not {retry_policy!r}")
    if retry_policy is not None and max_attempts is not None:
        raise EventStoreError("give either max_attempts or retry_policy, not both")
    return retry_policy or (
        RetryPolicy() if max_attempts is None else RetryPolicy(max_attempts=max_attempts)
    )
