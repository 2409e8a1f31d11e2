"""Castore event stores kept in DynamoDB, in the layouts of Castore's two DynamoDB adapters.

- ``layout="single-table"`` (``DynamoDBSingleTableEventStorageAdapter``): one table for several
  event stores. Partition key ``aggregateId`` = ``<eventStoreId>#<aggregateId>``, sort key
  ``version`` (N); version-1 items carry ``eventStoreId`` (S), the partition key of the global
  secondary index ``initialEvents`` whose sort key is ``timestamp`` (S).
- ``layout="legacy"`` (``LegacyDynamoDBEventStorageAdapter``): one table per event store,
  unprefixed ``aggregateId``; version-1 items carry ``isInitialEvent`` = 1 (N), the partition key
  of the ``initialEvents`` index.

Reads follow Castore's adapters, except where they are wrong or loose (see
``docs/stores-dynamodb.md``): ``get_events`` honours ``limit``, numbers come back as ``int`` or
``float`` (never ``Decimal``), timestamps are normalised to ``YYYY-MM-DDTHH:MM:SS.mmmZ``, and a
listing page is never empty while a next page token is returned.

The store has no time-ordered scan (DynamoDB cannot stream a table in timestamp order), so the
engine pours it through its merge path. For that path the store can fetch several aggregates'
events concurrently: :meth:`DynamoDBEventStore.prefetch_events`, the optional hook described by
:class:`~airflow_provider_castore_dam.protocols.PrefetchingEventStore`.
:class:`DynamoDBTableScanEventStore` adds a time-ordered scan, from a parallel scan of the table.
Both read every item as stored for the integrity check (``audit_events``, :mod:`.audit`).

Modules: :mod:`.store` (the public store), :mod:`.scan` (the table scan store),
:mod:`.parallel_scan` (the parallel ``Scan`` and its sort), :mod:`.audit`, :mod:`.table`
(requests, retries and error wording), :mod:`.layout` (Castore's layouts and the table check),
:mod:`.store_table` (one event store within its table), :mod:`.listing` (aggregates from the
index), :mod:`.page_tokens`, :mod:`.events` (one aggregate's events, prefetching), :mod:`.items`
(items as events), :mod:`.raw_items` (items without botocore's parser), :mod:`.arguments`.
"""

# Every module of the package needs boto3 and botocore; the package runs this before any of them.
try:
    import boto3  # noqa: F401
except ImportError as _missing:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "DynamoDBEventStore needs boto3: pip install 'airflow-provider-castore-dam[aws]'"
    ) from _missing

from airflow_provider_castore_dam.stores.dynamodb.layout import DEFAULT_GSI_NAME, LAYOUTS, Layout
from airflow_provider_castore_dam.stores.dynamodb.parallel_scan import (
    DEFAULT_SCAN_PAGE_ITEMS,
    DEFAULT_SCAN_SEGMENTS,
)
from airflow_provider_castore_dam.stores.dynamodb.scan import (
    DEFAULT_SCAN_BATCH_SIZE,
    DynamoDBTableScanEventStore,
)
from airflow_provider_castore_dam.stores.dynamodb.store import (
    DEFAULT_MAX_WORKERS,
    DEFAULT_PAGE_SIZE,
    DEFAULT_PREFETCH_CAPACITY,
    DynamoDBEventStore,
)

__all__ = [
    "DEFAULT_GSI_NAME",
    "DEFAULT_MAX_WORKERS",
    "DEFAULT_PAGE_SIZE",
    "DEFAULT_PREFETCH_CAPACITY",
    "DEFAULT_SCAN_BATCH_SIZE",
    "DEFAULT_SCAN_PAGE_ITEMS",
    "DEFAULT_SCAN_SEGMENTS",
    "LAYOUTS",
    "DynamoDBEventStore",
    "DynamoDBTableScanEventStore",
    "Layout",
]
