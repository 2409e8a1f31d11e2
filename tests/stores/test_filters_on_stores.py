"""Filters on the real stores: PostgreSQL (scan, clock-skew tail, joint scan) and DynamoDB on
the moto server (table scan and merge path, both layouts) pour exactly what the in-memory
stores pour with the same filters (those follow the oracle: tests/engine/test_filters.py),
and put the filters in their queries."""

from __future__ import annotations

import random

import pytest

from airflow_provider_castore_dam.channels import InMemoryMessageChannel
from airflow_provider_castore_dam.dam import (
    pour_event_store_collection_events,
    pour_event_store_events,
)
from airflow_provider_castore_dam.stores import InMemoryEventStore
from airflow_provider_castore_dam.stores.dynamodb import (
    DynamoDBEventStore,
    DynamoDBTableScanEventStore,
)
from tests.stores.test_dynamodb_audit import count_calls
from tests.stores.test_postgres_joint_scan import STORES, monotonic_rows, skew
from tests.stores.test_postgres_partitions import queries  # noqa: F401
from tests.stores.test_postgres_store import canon, messages


def typed(rows: list[tuple[str, dict]]) -> list[tuple[str, dict]]:
    """Types A, B, C at random; the skewed aggregate's second version (its latest timestamp)
    is a B, so that pouring only A and C still places its third version at that timestamp."""
    rnd = random.Random(5)
    typed_rows = []
    for store_id, event in rows:
        kind = "B" if event["aggregateId"] == "skewed" and event["version"] == 2 else None
        typed_rows.append((store_id, {**event, "type": kind or rnd.choice("ABC")}))
    return typed_rows


def ids_of(rows: list[tuple[str, dict]], store_id: str) -> list[str]:
    return sorted({e["aggregateId"] for s, e in rows if s == store_id})


def filter_cases(rows: list[tuple[str, dict]]) -> dict[str, dict]:
    some_ids = [*ids_of(rows, "A")[::3], "skewed"]
    return {
        "include": {"event_types": ["A", "C"]},
        "exclude": {"event_types": {"exclude": ["B"]}},
        "both": {"event_types": {"include": ["A", "B"], "exclude": ["A"]}},
        "ids": {"aggregate_ids": some_ids},
        "ids-and-types": {"aggregate_ids": some_ids, "event_types": ["A"]},
        "from-and-types": {"from": "2021-01-01T00:00:00.003Z", "event_types": ["A", "C"]},
    }


def poured(pour, stores, filters=None, **kwargs) -> list[str]:
    channel = InMemoryMessageChannel()
    pour(stores, channel, filters, **kwargs)
    return list(map(canon, messages(channel)))


def memory(rows: list[tuple[str, dict]], store_id: str) -> InMemoryEventStore:
    return InMemoryEventStore(store_id, [e for s, e in rows if s == store_id])


ROWS = typed(skew(monotonic_rows(seed=7), "A"))
CASES = filter_cases(ROWS)


@pytest.mark.parametrize("case", list(CASES))
def test_postgres_filters_in_the_query(table, queries, case):  # noqa: F811
    table.load(ROWS)
    filters = CASES[case]
    store = table.store("A", scan_batch_size=7)

    got = poured(pour_event_store_events, store, filters)

    assert got == poured(pour_event_store_events, memory(ROWS, "A"), filters)
    assert got  # something to compare
    assert queries
    if "event_types" in filters:  # in the scan's query (the skew queries read every type)
        assert any(
            "type::text = ANY(" in query or "type::text <> ALL(" in query for query in queries
        )
    if "aggregate_ids" in filters:
        assert all("aggregate_id::text = ANY(" in query for query in queries)
    whole = poured(pour_event_store_events, store)
    assert set(got) < set(whole)
    skewed_third = [m for m in got if '"aggregateId": "skewed"' in m and '"version": 3' in m]
    if case == "include":  # placed at its second version's timestamp, which is left out
        assert skewed_third and whole.index(skewed_third[0]) > whole.index(
            next(m for m in whole if '"aggregateId": "skewed"' in m and '"version": 2' in m)
        )


@pytest.mark.parametrize("case", ["include", "ids-and-types"])
def test_postgres_joint_scan_filters_every_store(table, queries, case):  # noqa: F811
    table.load(ROWS)
    filters = dict(CASES[case])
    if "aggregate_ids" in filters:
        filters["aggregate_ids"] = [*filters["aggregate_ids"], *ids_of(ROWS, "B")[:4]]
    stores = [table.store(s, scan_batch_size=5) for s in STORES]

    got = poured(pour_event_store_collection_events, stores, filters, partition=(0, 2))

    expected = poured(
        pour_event_store_collection_events,
        [memory(ROWS, s) for s in STORES],
        filters,
        partition=(0, 2),
    )
    assert got == expected and got
    assert queries and "type::text = ANY(" in queries[0]


LAYOUTS = ["single-table", "legacy"]


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("store_class", [DynamoDBTableScanEventStore, DynamoDBEventStore])
def test_dynamodb_filters(moto_server, tables, case, layout, store_class):
    filters = CASES[case]
    events = [e for s, e in ROWS if s == "A"]
    table = tables.castore({"A": events, "B": [e for s, e in ROWS if s == "B"]}, layout)["A"]
    client = moto_server.client("dynamodb")
    scans = count_calls(client, "Scan")
    store = store_class("A", table, layout=layout, client=client)

    got = poured(pour_event_store_events, store, filters)

    assert got == poured(pour_event_store_events, memory(ROWS, "A"), filters)
    if store_class is DynamoDBTableScanEventStore and "aggregate_ids" in filters:
        assert scans and all("#id IN (" in str(scan) for scan in scans)  # the request body
