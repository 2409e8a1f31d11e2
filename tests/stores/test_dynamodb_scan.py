"""DynamoDBTableScanEventStore on a real moto server: the parallel scan sorted in pour order.

Compared with the in-memory stores of the same events (``MEDIUM``: ties, clock skew, unicode
ids, two event stores sharing the single table), with and without spilling to disk.
"""

from __future__ import annotations

import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_provider_castore_dam.channels import InMemoryMessageChannel
from airflow_provider_castore_dam.dam import (
    pour_event_store_collection_events,
    pour_event_store_events,
)
from airflow_provider_castore_dam.errors import EventStoreError
from airflow_provider_castore_dam.external_sort import external_sort
from airflow_provider_castore_dam.protocols import TimeOrderedEventStore
from airflow_provider_castore_dam.stores import InMemoryEventStore
from airflow_provider_castore_dam.stores.dynamodb import DynamoDBTableScanEventStore
from airflow_provider_castore_dam.stores.in_memory import InMemoryScanningEventStore
from tests.stores.dynamodb_tables import Tables, put_items
from tests.stores.test_dynamodb_store import FILTERS, LAYOUTS, MEDIUM, both_pours, event

SPILLING = {"run_events": 7, "scan_page_items": 5, "scan_segments": 3, "scan_batch_size": 4}


@pytest.fixture(scope="module", params=LAYOUTS)
def scanned(request, ddb):
    """(layout, table per store id) of MEDIUM on moto."""
    made = Tables(ddb)
    request.addfinalizer(made.close)
    return request.param, made.castore(MEDIUM, request.param)


def scan_stores(ddb, scanned, **options):
    layout, tables = scanned
    return {
        store_id: DynamoDBTableScanEventStore(
            store_id, tables[store_id], layout=layout, client=ddb, **options
        )
        for store_id in MEDIUM
    }


MEMORY = {store_id: InMemoryEventStore(store_id, events) for store_id, events in MEDIUM.items()}


def test_scan_store_streams_in_pour_order(ddb, scanned):
    stores = scan_stores(ddb, scanned)
    for store_id, store in stores.items():
        assert isinstance(store, TimeOrderedEventStore)
        oracle = InMemoryScanningEventStore(store_id, MEDIUM[store_id])
        expected = [e for batch in oracle.scan_event_batches() for e in batch.scanned_events()]
        got = [e for batch in store.scan_event_batches() for e in batch.scanned_events()]
        assert got == expected
        assert len(got) == len(MEDIUM[store_id])
        skewed = [item for item in got if item.pour_timestamp != item.event["timestamp"]]
        assert skewed, "MEDIUM has clock skew: some pour timestamps are an earlier version's"


@pytest.mark.parametrize("options", [{}, SPILLING], ids=["in-memory", "spilling"])
@pytest.mark.parametrize("filters", FILTERS)
def test_scan_pours_match_in_memory(ddb, scanned, filters, options):
    stores = scan_stores(ddb, scanned, **options)
    for store_id in MEDIUM:
        got, expected = both_pours(
            pour_event_store_events, (stores[store_id],), (MEMORY[store_id],), filters=filters
        )
        assert got == expected
        assert got[0]["poured_event_count"] > 0
    got, expected = both_pours(
        pour_event_store_collection_events,
        (list(stores.values()),),
        (list(MEMORY.values()),),
        filters=filters,
    )
    assert got == expected


def test_scan_batches_have_the_batch_size(ddb, scanned):
    store = scan_stores(ddb, scanned, **SPILLING)["POKEMONS"]
    sizes = [len(batch) for batch in store.scan_event_batches()]
    assert sum(sizes) == len(MEDIUM["POKEMONS"])
    assert set(sizes[:-1]) == {4} and 1 <= sizes[-1] <= 4


def scan_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("castore-dynamodb-scan")]


def test_closing_the_scan_stops_its_threads(ddb, scanned):
    store = scan_stores(ddb, scanned, scan_page_items=2, scan_segments=3)["POKEMONS"]
    scan = store.scan_event_batches()
    first = next(scan)
    assert first
    scan.close()
    assert scan_threads() == []


def test_unreadable_item_fails_the_scan(ddb):
    made = Tables(ddb)
    try:
        table = made.castore({"BROKEN": [event("a", 1, "2022-01-01T00:00:00.000Z")]})["BROKEN"]
        put_items(
            ddb,
            table,
            [{"aggregateId": {"S": "BROKEN#b"}, "version": {"N": "1"}, "type": {"S": "X"}}],
        )
        store = DynamoDBTableScanEventStore("BROKEN", table, client=ddb, scan_segments=2)
        with pytest.raises(EventStoreError, match="'timestamp' should be of type S, found absent"):
            list(store.scan_event_batches())
        assert scan_threads() == []
    finally:
        made.close()


def test_missing_table_fails_before_scanning(ddb):
    store = DynamoDBTableScanEventStore("POKEMONS", "no-such-table", client=ddb)
    channel = InMemoryMessageChannel()
    with pytest.raises(EventStoreError, match=r"'no-such-table' .*does not exist"):
        pour_event_store_events(store, channel)
    assert channel.messages == []


@pytest.mark.parametrize("name", ["scan_segments", "scan_page_items", "run_events"])
@pytest.mark.parametrize("value", [0, -1, 1.5, "4"])
def test_bad_scan_options(ddb, name, value):
    with pytest.raises(EventStoreError, match=f"{name} must be a positive integer"):
        DynamoDBTableScanEventStore("POKEMONS", "table", client=ddb, **{name: value})


@settings(max_examples=60, deadline=None)
@given(
    items=st.lists(st.tuples(st.integers(0, 20), st.integers()), max_size=200),
    run_items=st.integers(1, 30),
    fan_in=st.integers(2, 5),
)
def test_external_sort_matches_sorted(items, run_items, fan_in):
    got = list(external_sort(items, key=lambda item: item[0], run_items=run_items, fan_in=fan_in))
    assert [item[0] for item in got] == sorted(item[0] for item in items)
    assert sorted(got) == sorted(items)


def test_items_read_from_the_response_json_decode_like_botocore(ddb):
    """Binary values (never written by Castore) read the same through the raw-JSON path as
    through botocore; other code sharing the client still gets botocore's bytes."""
    made = Tables(ddb)
    try:
        table = made.castore({"BIN": []})["BIN"]
        put_items(
            ddb,
            table,
            [
                {
                    "aggregateId": {"S": "BIN#a"},
                    "version": {"N": "1"},
                    "type": {"S": "X"},
                    "timestamp": {"S": "2022-01-01T00:00:00.000Z"},
                    "eventStoreId": {"S": "BIN"},
                    "payload": {"M": {"b": {"B": b"\x00\xff"}, "bs": {"BS": [b"z", b"a"]}}},
                }
            ],
        )
        store = DynamoDBTableScanEventStore("BIN", table, client=ddb)
        (batch,) = list(store.scan_event_batches())
        expected = {"b": "AP8=", "bs": ["YQ==", "eg=="]}
        assert batch.events[0]["payload"] == expected
        assert store.get_events("a")[0]["payload"] == expected
        plain = ddb.scan(TableName=table)["Items"][0]["payload"]["M"]["b"]["B"]
        assert plain == b"\x00\xff"
    finally:
        made.close()


@pytest.mark.parametrize("options", [{}, SPILLING], ids=["in-memory", "spilling"])
def test_partitioned_scan_pours_match_in_memory(ddb, scanned, options):
    """Each partition of the table scan equals the in-memory store's partition; the DynamoDB
    merge path (listing, then one query per aggregate) partitions the listing the same way."""
    from airflow_provider_castore_dam.stores.dynamodb import DynamoDBEventStore

    layout, tables = scanned
    stores = scan_stores(ddb, scanned, **options)
    for index in range(3):
        for store_id in MEDIUM:
            merge_store = DynamoDBEventStore(store_id, tables[store_id], layout=layout, client=ddb)
            for store in (stores[store_id], merge_store):
                got, expected = both_pours(
                    pour_event_store_events, (store,), (MEMORY[store_id],), partition=(index, 3)
                )
                assert got == expected
