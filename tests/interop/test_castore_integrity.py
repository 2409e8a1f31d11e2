"""The integrity check finds nothing wrong in stores written by Castore 2.4.2's own PostgreSQL
and DynamoDB adapters, and counts exactly what Castore wrote.

The stores are those of ``test_castore_postgres`` and ``test_castore_dynamodb`` (their
fixtures, imported under other names: node writes them once more for this module).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from airflow_provider_castore_dam.dam.integrity import DEFECT_KINDS, check_event_store_integrity
from airflow_provider_castore_dam.stores.postgres import PostgresEventStore
from tests.interop.test_castore_dynamodb import BACKENDS, STORE_IDS
from tests.interop.test_castore_dynamodb import castore as castore_dynamodb  # noqa: F401
from tests.interop.test_castore_postgres import castore as castore_postgres  # noqa: F401


def assert_clean_report(report: dict, output: dict[str, Any], store_id: str) -> None:
    """No defect, and the aggregates, events and event types Castore wrote to ``store_id``."""
    events = [w["event"] for w in output["written"] if w["eventStoreId"] == store_id]
    assert report["defects"] == []
    assert report["defect_counts"] == dict.fromkeys(DEFECT_KINDS, 0)
    assert report["listing_checked"] is True
    assert report["aggregate_count"] == len({e["aggregateId"] for e in events})
    assert report["event_count"] == len(events) > 0
    assert report["by_event_type"] == dict(sorted(Counter(e["type"] for e in events).items()))


def test_castores_postgres_stores_have_no_defect(castore_postgres):  # noqa: F811
    output, dsn = castore_postgres
    assert output["eventStoreIds"] == STORE_IDS
    for store_id in STORE_IDS:
        with PostgresEventStore(store_id, dsn) as store:
            assert_clean_report(check_event_store_integrity(store), output, store_id)


@pytest.mark.parametrize("store_id", STORE_IDS)
@pytest.mark.parametrize("backend", list(BACKENDS))
def test_castores_dynamodb_stores_have_no_defect(castore_dynamodb, backend, store_id):  # noqa: F811
    output, stores = castore_dynamodb
    report = check_event_store_integrity(stores[backend][store_id])
    assert_clean_report(report, output, store_id)
