"""Stores written by Castore 1.25.3's DynamoDB adapters (the ``@castore/dam`` version this
project started from; ``tests/interop_castore_1``): the pours read them, and a migration of
its legacy tables to a single table is read back by both 1.25.3's and 2.4.2's adapters.

What differs from 2.4.2 (docs/migrations.md): 1.25.3's ``listAggregateIds`` returns id
strings (no ``initialEventTimestamp``), and its aggregate-exists messages have no
``initialEventTimestamp`` either; the item layouts are the same, which these tests show.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from airflow_provider_castore_dam.channels import InMemoryMessageChannel
from airflow_provider_castore_dam.dam import (
    pour_event_store_aggregate_ids,
    pour_event_store_collection_events,
    pour_event_store_events,
)
from airflow_provider_castore_dam.stores import InMemoryEventStore
from airflow_provider_castore_dam.stores.dynamodb import (
    DynamoDBEventStore,
    DynamoDBTableScanEventStore,
)
from airflow_provider_castore_dam.stores.dynamodb.destination import (
    DynamoDBEventStoreDestination,
)
from tests.interop.node import CASTORE_1, run_castore
from tests.interop.test_castore_migrations import castore_read, dynamodb_env
from tests.stores.dynamodb_tables import create_table, delete_tables

STORES = {
    "POKEMONS": [
        {
            "aggregateId": "pika",
            "version": 1,
            "type": "APPEARED",
            "timestamp": "2021-01-01T00:00:00.000Z",
            "payload": {"name": "Pikachu", "level": 3.5},
        },
        {
            "aggregateId": "pika",
            "version": 2,
            "type": "CAUGHT",
            "timestamp": "2021-01-02T00:00:00.000Z",
            "payload": 0,
            "metadata": {"by": "ash"},
        },
        {
            "aggregateId": "char",
            "version": 1,
            "type": "APPEARED",
            "timestamp": "2021-01-01T00:00:00.000Z",
            "payload": "",
        },
        {
            "aggregateId": "pika",
            "version": 3,
            "type": "LEVELLED_UP",
            "timestamp": "2021-01-01T12:00:00.000Z",
            "payload": [1, None, True],
        },
        {
            "aggregateId": "bulb",
            "version": 1,
            "type": "APPEARED",
            "timestamp": "2021-03-01T00:00:00.000Z",
        },
    ],
    "TRAINERS": [
        {
            "aggregateId": "ash",
            "version": 1,
            "type": "CREATED",
            "timestamp": "2021-01-01T00:00:00.000Z",
            "metadata": False,
        },
        {
            "aggregateId": "ash",
            "version": 2,
            "type": "CAUGHT",
            "timestamp": "2021-01-02T00:00:00.000Z",
        },
    ],
}


def castore_1(moto_server, mode: str, layout: str, tables: dict[str, str], stores=None) -> Any:
    env = dynamodb_env(moto_server, tables, "")
    stdin = {"mode": mode, "layout": layout, "tables": tables, "stores": stores or {}}
    return run_castore("castore_1.mjs", env=env, stdin=stdin, folder=CASTORE_1)


@pytest.fixture(scope="module")
def written(moto_server):
    """The stores written by Castore 1.25.3 in both layouts, and what it reads back."""
    client = moto_server.client("dynamodb")
    run = uuid.uuid4().hex[:8]
    legacy = {s: create_table(client, f"v1-legacy-{s}-{run}", "legacy") for s in STORES}
    single = create_table(client, f"v1-single-{run}", "single-table")
    tables = {"legacy": legacy, "single-table": dict.fromkeys(STORES, single)}
    read = {
        layout: castore_1(moto_server, "write", layout, by_store, STORES)
        for layout, by_store in tables.items()
    }
    yield client, tables, read
    delete_tables(client, [*legacy.values(), single])


@pytest.mark.parametrize("layout", ["legacy", "single-table"])
def test_castore_1_reads_back_what_it_wrote(written, layout):
    _, _, read = written
    for store_id, events in STORES.items():
        by_id: dict[str, list] = {}
        for event in events:
            by_id.setdefault(event["aggregateId"], []).append(event)
        assert sorted(read[layout][store_id]["aggregateIds"]) == sorted(by_id)  # plain strings
        for aggregate_id, aggregate in by_id.items():
            expected = sorted(aggregate, key=lambda e: e["version"])
            assert json.dumps(read[layout][store_id]["events"][aggregate_id], sort_keys=True) == (
                json.dumps(expected, sort_keys=True)
            )


@pytest.mark.parametrize("store_class", [DynamoDBTableScanEventStore, DynamoDBEventStore])
@pytest.mark.parametrize("layout", ["legacy", "single-table"])
def test_the_pours_read_castore_1_stores(written, layout, store_class):
    client, tables, _ = written
    for store_id, events in STORES.items():
        store = store_class(store_id, tables[layout][store_id], layout=layout, client=client)
        reference = InMemoryEventStore(store_id, events)
        for pour in (pour_event_store_events, pour_event_store_aggregate_ids):
            ours, expected = InMemoryMessageChannel(), InMemoryMessageChannel()
            pour(store, ours)
            pour(reference, expected)
            assert [m.message for m in ours.messages] == [m.message for m in expected.messages]


def test_a_migration_of_castore_1_legacy_tables_reads_the_same_in_1_and_2(written, moto_server):
    client, tables, read = written
    target = create_table(client, f"v2-single-{uuid.uuid4().hex[:8]}", "single-table")
    try:
        sources = [
            DynamoDBTableScanEventStore(s, tables["legacy"][s], layout="legacy", client=client)
            for s in STORES
        ]
        pour_event_store_collection_events(
            sources, DynamoDBEventStoreDestination(target, client=client)
        )

        by_castore_1 = castore_1(moto_server, "read", "single-table", dict.fromkeys(STORES, target))
        by_castore_2 = castore_read(
            dynamodb_env(moto_server, dict.fromkeys(STORES, target), "dynamodb_single_table")
        )
        for store_id in STORES:
            source = read["legacy"][store_id]  # as 1.25.3 read the source
            assert by_castore_1[store_id]["events"] == source["events"]
            assert sorted(by_castore_1[store_id]["aggregateIds"]) == sorted(source["aggregateIds"])
            assert sorted(by_castore_1[store_id]["aggregateIds"]) == sorted(
                a["aggregateId"] for a in by_castore_2[store_id]["aggregateIds"]
            )
            assert by_castore_2[store_id]["events"] == by_castore_1[store_id]["events"]
    finally:
        delete_tables(client, [target])
