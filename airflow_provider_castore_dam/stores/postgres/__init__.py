"""An event store over a PostgreSQL table in the layout of Castore's PostgreSQL adapter.

One table (``event`` by default) holds the events of every event store; ``aggregate_name`` is
the event store id. See ``docs/stores-postgres.md`` for how to point the store at a table, the
queries it runs and where it differs from Castore.

- Aggregates are listed by their ``version = 1`` row, ordered by ``(timestamp, id)``, with
  keyset page tokens, so aggregates whose initial events tie are never skipped. Bounds are
  inclusive (:mod:`.listing`).
- :meth:`PostgresEventStore.scan_events` streams every event in pour order with one
  server-side cursor (:mod:`.scan`). Events are read in timestamp order, which is the pour
  order unless some aggregate's timestamps go back in time (clock skew); a concurrent check
  on the same snapshot finds the earliest such event, and the scan switches to a windowed
  query from there on (:mod:`.clock_skew`, :mod:`.scan_queries`). Stores that share a table
  can be scanned by one query (:mod:`.joint_scan`).
- :meth:`PostgresEventStore.audit_events` streams every row as stored, by aggregate and
  version, for the integrity check (:mod:`.audit`).
- Timestamps are formatted by PostgreSQL in UTC, whatever the session time zone; identifiers
  are always quoted; every connection is read-only (:mod:`.layout`, :mod:`.connection`).
- Transient errors (a dropped or refused connection, a server restarting, too many clients,
  serialization failures) are retried within the store's ``retry_policy`` (see
  :mod:`airflow_provider_castore_dam.retry` and :func:`.connection.postgres_failure`):
  connecting, each listing page, each aggregate's events, and each batch of a scan, which
  resumes strictly after the last event it delivered
  (:func:`airflow_provider_castore_dam.protocols.resume_scan`). Other errors (bad
  credentials, a missing database or table, bad SQL) are raised at once.
"""

from airflow_provider_castore_dam.stores.postgres.store import (
    DEFAULT_PAGE_SIZE,
    DEFAULT_SCAN_BATCH_SIZE,
    DEFAULT_TABLE,
    PostgresEventStore,
)

__all__ = ["DEFAULT_PAGE_SIZE", "DEFAULT_SCAN_BATCH_SIZE", "DEFAULT_TABLE", "PostgresEventStore"]
