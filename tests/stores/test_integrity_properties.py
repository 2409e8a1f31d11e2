"""The integrity check on a real PostgreSQL table holding random stores with injected defects:
exactly the injected defects are reported (oracle: tests/engine/defects.py)."""

from __future__ import annotations

from collections import Counter

import psycopg
from hypothesis import HealthCheck, given, settings
from psycopg import sql

from airflow_provider_castore_dam.dam.integrity import check_event_store_integrity
from airflow_provider_castore_dam.protocols import StoredEvent
from tests.engine.defects import defective_stores, expected_counts, found_defects

# A TIMESTAMPTZ column holds no garbled text, only NULL; PostgreSQL has no listing index;
# the copies of a duplicated version come in any order.
POSTGRES_STORES = defective_stores(garbled=(None,), unlisted=False, touch_duplicates=False)


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
