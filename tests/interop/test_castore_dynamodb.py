"""Conformance: DynamoDBEventStore reads what Castore 2.4.2 itself wrote and read back.

``write_stores.mjs`` writes the same events through Castore's DynamoDB adapters (single-table
and legacy layouts) into the test moto server, then prints what Castore's own
``listAggregateIds`` and ``getEvents`` return for every option set. Our store must return
exactly the same, except where we differ on purpose (docs/stores-dynamodb.md):

- ``getEvents`` ``limit``: Castore ignores it on DynamoDB (it follows LastEvaluatedKey to the
  end); we honour it. Both behaviours are asserted.
- timestamps: Castore returns DynamoDB timestamps as stored, we normalise them. Castore writes
  ``toISOString()`` timestamps, already in normal form, so the outputs agree (asserted).
- a listing whose last page is exactly full: Castore may answer one more, empty page; ours never
  returns an empty page with a token. Pages are compared without empty ones.
"""

from __future__ import annotations

import json
import re
import uuid

import pytest

from airflow_provider_castore_dam.channels import InMemoryMessageChannel
from airflow_provider_castore_dam.dam import (
    pour_event_store_aggregate_ids,
    pour_event_store_collection_events,
    pour_event_store_events,
)
from airflow_provider_castore_dam.stores import InMemoryEventStore
from airflow_provider_castore_dam.stores.dynamodb import DynamoDBEventStore
from tests.interop.node import run_castore
from tests.stores.dynamodb_tables import delete_tables

BACKENDS = {"dynamodb_single_table": "single-table", "dynamodb_legacy": "legacy"}
STORE_IDS = ["POKEMONS", "TRAINERS"]
CASTORE_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")
LIST_OPTIONS = {
    "limit": "limit",
    "pageToken": "page_token",
    "initialEventAfter": "initial_event_after",
    "initialEventBefore": "initial_event_before",
    "reverse": "reverse",
}
GET_OPTIONS = {
    "minVersion": "min_version",
    "maxVersion": "max_version",
    "limit": "limit",
    "reverse": "reverse",
}


@pytest.fixture(scope="module")
def castore(moto_server):
    """Castore's output, and our stores over the tables it wrote (node runs once)."""
    run = uuid.uuid4().hex[:8]
    single_table = f"castore-interop-{run}"
    legacy_prefix = f"castore-interop-legacy-{run}-"
    output = run_castore(
        "write_stores.mjs",
        env={
            "BACKENDS": ",".join(BACKENDS),
            "DYNAMODB_ENDPOINT": moto_server.endpoint_url,
            "DDB_SINGLE_TABLE": single_table,
            "DDB_LEGACY_TABLE_PREFIX": legacy_prefix,
            "AWS_REGION": moto_server.region,
            "AWS_ACCESS_KEY_ID": moto_server.access_key_id,
            "AWS_SECRET_ACCESS_KEY": moto_server.secret_access_key,
        },
    )
    client = moto_server.client("dynamodb")
    tables = {
        "dynamodb_single_table": dict.fromkeys(STORE_IDS, single_table),
        "dynamodb_legacy": {store_id: legacy_prefix + store_id for store_id in STORE_IDS},
    }
    stores = {
        backend: {
            store_id: DynamoDBEventStore(
                store_id, tables[backend][store_id], layout=layout, client=client
            )
            for store_id in STORE_IDS
        }
        for backend, layout in BACKENDS.items()
    }
    yield output, stores
    delete_tables(client, {single_table, *tables["dynamodb_legacy"].values()})


def snake(options: dict, names: dict[str, str]) -> dict:
    unknown = set(options) - set(names)
    assert not unknown, f"option(s) {unknown} unknown to this test"
    return {names[key]: value for key, value in options.items()}


def typed(value) -> str:
    """JSON text that tells 1 from 1.0."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def our_pages(store, **options):
    pages, token = [], None
    while True:
        page = store.list_aggregate_ids(page_token=token, **options)
        pages.append(
            [
                {
                    "aggregateId": a["aggregate_id"],
                    "initialEventTimestamp": a["initial_event_timestamp"],
                }
                for a in page.aggregate_ids
            ]
        )
        token = page.next_page_token
        if token is None:
            return pages


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_castore_ran_without_errors(castore, backend):
    output, _ = castore
    assert output["castoreVersion"] == "2.4.2"
    assert "error" not in output[backend], output[backend]


@pytest.mark.parametrize("store_id", STORE_IDS)
@pytest.mark.parametrize("backend", list(BACKENDS))
def test_list_aggregate_ids_as_castore(castore, backend, store_id):
    output, stores = castore
    store = stores[backend][store_id]
    for name, options in output["listAggregateIdsOptionSets"].items():
        theirs = output[backend][store_id]["listAggregateIds"][name]
        assert "error" not in theirs, (name, theirs)
        pages = our_pages(store, **snake(options, LIST_OPTIONS))
        assert [a for page in pages for a in page] == theirs["aggregateIds"], name
        assert pages == [p["aggregateIds"] for p in theirs["pages"] if p["aggregateIds"]], name


@pytest.mark.parametrize("store_id", STORE_IDS)
@pytest.mark.parametrize("backend", list(BACKENDS))
def test_get_events_as_castore(castore, backend, store_id):
    output, stores = castore
    store = stores[backend][store_id]
    by_aggregate = output[backend][store_id]["getEvents"]
    assert by_aggregate
    for aggregate_id, option_sets in by_aggregate.items():
        for name, options in output["getEventsOptionSets"].items():
            theirs = option_sets[name]
            assert "error" not in theirs, (aggregate_id, name, theirs)
            ours = store.get_events(aggregate_id, **snake(options, GET_OPTIONS))
            if "limit" in options:
                # Castore ignores limit on DynamoDB: it returns what no limit returns...
                unlimited = {k: v for k, v in options.items() if k != "limit"}
                assert theirs == store.get_events(aggregate_id, **snake(unlimited, GET_OPTIONS))
                # ...and we return the first `limit` of those.
                assert ours == theirs[: options["limit"]], (aggregate_id, name)
                assert len(ours) == min(options["limit"], len(theirs))
            else:
                assert ours == theirs, (aggregate_id, name)
                assert typed(ours) == typed(theirs), (aggregate_id, name)


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_timestamps_and_values_agree_with_what_was_written(castore, backend):
    output, stores = castore
    for written in output["written"]:
        event = written["event"]
        # Castore returns timestamps as stored; these were written normalised, so they agree.
        assert CASTORE_TIMESTAMP.fullmatch(event["timestamp"])
        theirs = output[backend][written["eventStoreId"]]["getEvents"][event["aggregateId"]]
        ours = stores[backend][written["eventStoreId"]].get_events(event["aggregateId"])
        assert event in theirs["all"] and event in ours
        assert typed(ours[[e["version"] for e in ours].index(event["version"])]) == typed(event)


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_pours_over_castore_tables(castore, backend):
    """The pours over Castore-written tables equal those over in-memory copies of Castore's
    own reads."""
    output, stores = castore
    memory = {
        store_id: InMemoryEventStore(
            store_id,
            [
                e
                for events in output[backend][store_id]["getEvents"].values()
                for e in events["all"]
            ],
        )
        for store_id in STORE_IDS
    }
    for pour, args in (
        (pour_event_store_aggregate_ids, lambda s: (s["POKEMONS"],)),
        (pour_event_store_events, lambda s: (s["TRAINERS"],)),
        (pour_event_store_collection_events, lambda s: ([s["POKEMONS"], s["TRAINERS"]],)),
    ):
        ours, expected = InMemoryMessageChannel(), InMemoryMessageChannel()
        assert pour(*args(stores[backend]), ours) == pour(*args(memory), expected)
        assert [m.message for m in ours.messages] == [m.message for m in expected.messages]
        assert ours.messages
