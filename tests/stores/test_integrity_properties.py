"""The integrity check on a real PostgreSQL table, and on DynamoDB tables of both layouts on the
moto server, holding random stores with injected defects: exactly the injected defects are
reported (oracle: tests/engine/defects.py)."""

from __future__ import annotations

from collections import Counter

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from psycopg import sql

from airflow_provider_castore_dam.dam.integrity import check_event_store_integrity
from airflow_provider_castore_dam.protocols import StoredEvent
from airflow_provider_castore_dam.stores.dynamodb import DynamoDBEventStore
from tests.engine.defects import defective_stores, expected_counts, found_defects
from tests.stores.dynamodb_tables import Tables, item, put_items

# A TIMESTAMPTZ column holds no garbled text, only NULL; PostgreSQL has no listing index;
# the copies of a duplicated version come in any order.
POSTGRES_STORES = defective_stores(garbled=(None,), unlisted=False, touch_duplicates=False)
# (aggregateId, version) is DynamoDB's key: no version twice. A version 1 without a timestamp
# would also be unlisted (the index needs it), so garbled timestamps are text here.
DYNAMODB_STORES = defective_stores(
    garbled=("not a time", "2024-13-01T00:00:00.000Z"), duplicates=False
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(store=POSTGRES_STORES)
def test_exactly_the_injected_defects_are_reported(
    loose_table, store: tuple[list[StoredEvent], Counter]
) -> None:
    events, expected = store
    loose_table.execute(sql.SQL("TRUNCATE {}").format(sql.Identifier(loose_table.name)))
    with psycopg.connect(loose_table.dsn) as conn, conn.cursor() as cursor:
        statement = sql.SQL(
            "COPY {} (aggregate_name, aggregate_id, version, type, timestamp) FROM STDIN"
        ).format(sql.Identifier(loose_table.name))
        with cursor.copy(statement) as copy:
            for event in events:
                copy.write_row(("STORE", *event[:4]))
            copy.write_row(("OTHER", "agg-00", 7, None, None))  # another store's defect

    report = check_event_store_integrity(loose_table.store("STORE"), max_reported_defects=1000)

    assert found_defects(report) == expected
    assert report["defect_count"] == sum(expected.values())
    assert {key: report[key] for key in expected_counts(events)} == expected_counts(events)


def dynamodb_item(event: StoredEvent, layout: str) -> dict:
    """The item Castore would write, then damaged as ``event`` says."""
    written = item(
        "STORE",
        {
            "aggregateId": event.aggregate_id,
            "version": event.version,
            "type": "A",
            "timestamp": "2024-01-01T00:00:00.000Z",
        },
        layout,
    )
    for name, value in (("type", event.type), ("timestamp", event.timestamp)):
        if value is None:
            del written[name]
        else:
            written[name] = {"S": value}
    if not event.listed:
        written.pop("eventStoreId" if layout == "single-table" else "isInitialEvent")
    return written


@pytest.fixture(scope="module")
def dynamodb_tables(moto_server):
    made = Tables(moto_server.client("dynamodb"))
    yield made
    made.close()


@pytest.mark.parametrize("layout", ["single-table", "legacy"])
@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(store=DYNAMODB_STORES)
def test_exactly_the_injected_defects_are_reported_on_dynamodb(
    dynamodb_tables, layout, store: tuple[list[StoredEvent], Counter]
) -> None:
    events, expected = store
    table = dynamodb_tables.create(layout)
    put_items(dynamodb_tables.client, table, [dynamodb_item(e, layout) for e in events])
    if layout == "single-table":  # another store's defect in the same table
        other = item(
            "OTHER", {"aggregateId": "agg-00", "version": 7, "type": "", "timestamp": "never"}
        )
        put_items(dynamodb_tables.client, table, [other])
    store_ = DynamoDBEventStore("STORE", table, layout=layout, client=dynamodb_tables.client)

    report = check_event_store_integrity(store_, max_reported_defects=1000)

    assert found_defects(report) == expected
    assert report["defect_count"] == sum(expected.values())
    assert {key: report[key] for key in expected_counts(events)} == expected_counts(events)
