"""DynamoDBEventStore on a real moto server, both Castore layouts (single-table and legacy).

Every store here is compared with an InMemoryEventStore of the same events. The listing order
of tied initial timestamps is the index's own order; moto orders ties by the table key, which
for one event store is the aggregate id, as the in-memory store does, so listings compare
exactly. The properties that hold on any DynamoDB (stable ties, exact reverse, nothing skipped
or repeated, full pages) are checked on their own.
"""

from __future__ import annotations

import base64
import http.server
import json
import logging
import os
import random
import socket
import threading
import time
from collections import Counter
from decimal import Decimal
from typing import Any

import boto3
import botocore.session
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from airflow_provider_castore_dam.channels import InMemoryMessageChannel
from airflow_provider_castore_dam.dam import (
    pour_aggregate_events,
    pour_event_store_aggregate_ids,
    pour_event_store_collection_events,
    pour_event_store_events,
)
from airflow_provider_castore_dam.errors import CastoreDamError, EventStoreError
from airflow_provider_castore_dam.protocols import PrefetchingEventStore, TimeOrderedEventStore
from airflow_provider_castore_dam.stores import InMemoryEventStore
from airflow_provider_castore_dam.stores.dynamodb import DynamoDBEventStore
from tests.engine.helpers import published
from tests.stores.dynamodb_tables import (
    Tables,
    put_items,
    unique_table_name,
)

LAYOUTS = ["single-table", "legacy"]
LOGGER = "airflow_provider_castore_dam.stores.dynamodb"
TIE = "2022-01-02T10:00:00.123Z"
STAMPS = ["2022-01-01T00:00:00.000Z", TIE, "2022-01-03T00:00:00.500Z", "2022-01-04T23:59:59.999Z"]


def event(aggregate_id: str, version: int, timestamp: str, **extra: Any) -> dict[str, Any]:
    return {
        "aggregateId": aggregate_id,
        "version": version,
        "type": extra.pop("type", "HAPPENED"),
        "timestamp": timestamp,
        **extra,
    }


def medium_stores() -> dict[str, list[dict[str, Any]]]:
    """Two stores whose initial timestamps tie heavily (4 distinct values for 50 aggregates),
    with clock skew, equal timestamps within an aggregate, unicode ids and varied payloads."""
    rnd = random.Random(20220102)
    stores: dict[str, list[dict[str, Any]]] = {"POKEMONS": [], "TRAINERS": []}
    for store_id, count in (("POKEMONS", 40), ("TRAINERS", 10)):
        for i in range(count):
            aggregate_id = f"ポケモン-{i:03d}" if i % 7 == 3 else f"{store_id.lower()}-{i:03d}"
            stamp = rnd.choice(STAMPS)
            for version in range(1, rnd.randint(1, 5) + 1):
                if version > 1:
                    choice = rnd.random()
                    if choice < 0.15:  # clock skew: earlier than the previous version
                        stamp = f"2022-01-0{rnd.randint(1, 3)}T08:00:00.000Z"
                    elif choice > 0.3:  # else the same millisecond as the previous version
                        stamp = f"2022-01-0{rnd.randint(4, 8)}T{rnd.randint(0, 23):02d}:00:00.000Z"
                extra: dict[str, Any] = {}
                if rnd.random() < 0.8:
                    extra["payload"] = {"n": i, "version": version, "ratio": i / 8, "tag": "é✓"}
                if rnd.random() < 0.3:
                    extra["metadata"] = {"source": "import", "batch": [i, None, True]}
                stores[store_id].append(event(aggregate_id, version, stamp, **extra))
    return stores


MEDIUM = medium_stores()


@pytest.fixture(scope="module", params=LAYOUTS)
def medium(request, ddb):
    """(DynamoDB stores, in-memory stores) of MEDIUM, in one layout."""
    layout = request.param
    made = Tables(ddb)
    request.addfinalizer(made.close)
    tables = made.castore(MEDIUM, layout)
    dynamodb = {
        store_id: DynamoDBEventStore(store_id, tables[store_id], layout=layout, client=ddb)
        for store_id in MEDIUM
    }
    memory = {store_id: InMemoryEventStore(store_id, events) for store_id, events in MEDIUM.items()}
    yield dynamodb, memory
    for store in dynamodb.values():
        store.close()


def listing_pages(store, **options):
    pages, token = [], None
    while True:
        page = store.list_aggregate_ids(page_token=token, **options)
        pages.append(page.aggregate_ids)
        token = page.next_page_token
        if token is None:
            return pages
        assert len(pages) < 10_000


def listing(store, **options):
    return [aggregate for page in listing_pages(store, **options) for aggregate in page]


def has_decimal(value: Any) -> bool:
    if isinstance(value, Decimal):
        return True
    if isinstance(value, dict):
        return any(has_decimal(item) for item in value.values())
    if isinstance(value, list):
        return any(has_decimal(item) for item in value)
    return False


def typed(value: Any) -> str:
    """JSON text that tells 1 from 1.0 (``==`` does not)."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


# --------------------------------------------------------------------------- construction


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"layout": "single_table"}, "layout must be 'single-table'"),
        ({"layout": "v2"}, "not 'v2'"),
        ({"page_size": 0}, "page_size must be a positive integer"),
        ({"max_workers": -1}, "max_workers"),
        ({"endpoint_url": "http://127.0.0.1:1"}, "either client or"),
    ],
)
def test_constructor_refuses_bad_arguments(ddb, kwargs, fragment):
    with pytest.raises(EventStoreError, match=fragment):
        DynamoDBEventStore("POKEMONS", "table", client=ddb, **kwargs)


@pytest.mark.parametrize(("event_store_id", "table"), [("", "t"), ("P", ""), ("P", None)])
def test_constructor_refuses_empty_names(ddb, event_store_id, table):
    with pytest.raises(EventStoreError, match="must be a non-empty string"):
        DynamoDBEventStore(event_store_id, table, client=ddb)


def test_store_kind(ddb):
    store = DynamoDBEventStore("POKEMONS", "table", client=ddb)
    assert not isinstance(store, TimeOrderedEventStore)  # the engine merges it
    assert isinstance(store, PrefetchingEventStore)
    assert store.event_store_id == "POKEMONS"
    assert store.layout == "single-table"


def test_store_made_from_session_and_endpoint(moto_server, ddb, tables):
    table = tables.castore({"P": [event("a", 1, STAMPS[0])]})["P"]
    store = DynamoDBEventStore(
        "P",
        table,
        session=moto_server.session(),
        endpoint_url=moto_server.endpoint_url,
        client_config=Config(proxies={}),
    )
    assert listing(store) == [{"aggregate_id": "a", "initial_event_timestamp": STAMPS[0]}]
    assert store.client.meta.region_name == moto_server.region


# --------------------------------------------------------------------------- listing

BOUNDS = {
    "none": {},
    "after_tie": {"initial_event_after": TIE},
    "before_tie": {"initial_event_before": TIE},
    "between": {"initial_event_after": TIE, "initial_event_before": STAMPS[2]},
    "empty": {"initial_event_after": STAMPS[3], "initial_event_before": STAMPS[0]},
}


@pytest.mark.parametrize("bounds", list(BOUNDS))
@pytest.mark.parametrize("limit", [2, 7, None])  # page size 1: see the next test
@pytest.mark.parametrize("reverse", [False, True])
def test_listing_matches_in_memory(medium, bounds, limit, reverse):
    dynamodb, memory = medium
    for store_id, store in dynamodb.items():
        options = {**BOUNDS[bounds], "limit": limit, "reverse": reverse}
        pages = listing_pages(store, **options)
        assert [a for page in pages for a in page] == listing(memory[store_id], **options)
        # Full pages, never an empty page with a token, no token after the last aggregate.
        size = limit or 1000
        assert all(len(page) == size for page in pages[:-1])
        assert pages[-1] or len(pages) == 1
        assert 0 < len(pages[-1]) <= size or bounds == "empty"


@pytest.mark.parametrize("limit", [1, 3, 1000])
def test_listing_ties_are_stable_and_reverse_is_exact(medium, limit):
    dynamodb, _ = medium
    store = dynamodb["POKEMONS"]
    forward = listing(store, limit=limit)
    assert forward == listing(store, limit=limit)  # stable
    assert forward == listing(store, limit=7)  # whatever the page size
    assert listing(store, limit=limit, reverse=True) == forward[::-1]
    ids = [aggregate["aggregate_id"] for aggregate in forward]
    assert sorted(ids) == sorted({e["aggregateId"] for e in MEDIUM["POKEMONS"]})  # each once
    stamps = [aggregate["initial_event_timestamp"] for aggregate in forward]
    assert stamps == sorted(stamps)
    assert Counter(stamps).most_common(1)[0][1] > 5  # ties do cross page boundaries


def test_listing_bounds_are_inclusive(medium):
    dynamodb, _ = medium
    store = dynamodb["POKEMONS"]
    at_tie = listing(store, initial_event_after=TIE, initial_event_before=TIE, limit=2)
    assert at_tie and {a["initial_event_timestamp"] for a in at_tie} == {TIE}
    # Castore-form bounds are used as is; other ISO 8601 forms are normalised first.
    assert listing(store, initial_event_after="2022-01-02T11:00:00.123+01:00") == listing(
        store, initial_event_after=TIE
    )


class ChoppyClient:
    """A real client whose Query answers come back cut to one item, and every other one
    empty with a LastEvaluatedKey, as DynamoDB may answer (1 MB cap, ends of Limit)."""

    def __init__(self, client):
        self._client = client
        self.meta = client.meta
        self.calls = 0

    def describe_table(self, **request):
        return self._client.describe_table(**request)

    def query(self, **request):
        self.calls += 1
        start = request.get("ExclusiveStartKey")
        if start is not None and self.calls % 2 == 0:
            return {"Items": [], "Count": 0, "ScannedCount": 0, "LastEvaluatedKey": start}
        return self._client.query(**{**request, "Limit": 1})


@pytest.mark.parametrize("limit", [3, None])  # every answer is cut to 1 item anyway
def test_listing_survives_short_and_empty_pages(medium, ddb, limit):
    dynamodb, memory = medium
    for store_id, store in dynamodb.items():
        choppy = ChoppyClient(ddb)
        chopped = DynamoDBEventStore(store_id, store.table_name, layout=store.layout, client=choppy)
        for reverse in (False, True):
            pages = listing_pages(chopped, limit=limit, reverse=reverse)
            assert [a for page in pages for a in page] == listing(
                memory[store_id], limit=limit, reverse=reverse
            )
            assert all(pages) and all(len(page) == (limit or 1000) for page in pages[:-1])
        assert choppy.calls > len(MEDIUM[store_id]) // 5


@pytest.mark.parametrize(
    "token",
    [
        "not base64 !",
        base64.urlsafe_b64encode(b"[1, 2]").decode(),
        base64.urlsafe_b64encode(b'{"aggregateId": "x"}').decode(),
        base64.urlsafe_b64encode(
            b'{"aggregateId": "TRAINERS#a", "version": "1", "timestamp": "t"}'
        ).decode(),
        base64.urlsafe_b64encode(
            b'{"aggregateId": "POKEMONS#a", "version": "one", "timestamp": "t"}'
        ).decode(),
    ],
)
def test_malformed_page_token(ddb, token, tables):
    table = tables.castore({"POKEMONS": [event("a", 1, STAMPS[0])]})["POKEMONS"]
    store = DynamoDBEventStore("POKEMONS", table, client=ddb)
    with pytest.raises(EventStoreError, match=r"page token .* is not one that"):
        store.list_aggregate_ids(page_token=token)


# --------------------------------------------------------------------------- get_events

GET_EVENTS_OPTIONS = [
    {},
    {"reverse": True},
    {"min_version": 2},
    {"max_version": 2},
    {"min_version": 2, "max_version": 3},
    {"min_version": 3, "max_version": 2},
    {"limit": 2},
    {"limit": 1, "reverse": True},
    {"min_version": 2, "reverse": True},
    {"min_version": 2, "limit": 1},
    {"max_version": 4, "limit": 2, "reverse": True},
]


def test_get_events_matches_in_memory(medium):
    dynamodb, memory = medium
    for store_id, store in dynamodb.items():
        counts = Counter(e["aggregateId"] for e in MEDIUM[store_id])
        aggregate_ids = [*sorted(counts, key=lambda a: (-counts[a], a))[:10], "unknown"]
        for aggregate_id in aggregate_ids:
            for options in GET_EVENTS_OPTIONS:
                got = store.get_events(aggregate_id, **options)
                assert got == memory[store_id].get_events(aggregate_id, **options), options


@pytest.mark.parametrize("layout", LAYOUTS)
def test_get_events_follows_pages_and_honours_limit(ddb, layout, tables):
    # ~300 KB items: moto (like DynamoDB) stops a Query page at 1 MB, so 3 items a page.
    big = "x" * 300_000
    events = [
        event("big", v, f"2022-01-01T00:00:0{v}.000Z", payload={"blob": big, "v": v})
        for v in range(1, 8)
    ]
    table = tables.castore({"P": events}, layout)["P"]
    store = DynamoDBEventStore("P", table, layout=layout, client=ddb)
    page = ddb.query(
        TableName=table,
        KeyConditionExpression="aggregateId = :a",
        ExpressionAttributeValues={":a": {"S": "P#big" if layout == "single-table" else "big"}},
    )
    assert 0 < len(page["Items"]) < 7 and "LastEvaluatedKey" in page
    versions = lambda found: [e["version"] for e in found]  # noqa: E731
    assert versions(store.get_events("big")) == [1, 2, 3, 4, 5, 6, 7]
    assert versions(store.get_events("big", reverse=True)) == [7, 6, 5, 4, 3, 2, 1]
    assert versions(store.get_events("big", limit=5)) == [1, 2, 3, 4, 5]  # Castore: all 7
    assert versions(store.get_events("big", limit=4, reverse=True, min_version=2)) == [7, 6, 5, 4]
    assert store.get_events("big", min_version=6)[0]["payload"] == {"blob": big, "v": 6}
    choppy = DynamoDBEventStore("P", table, layout=layout, client=ChoppyClient(ddb))
    assert versions(choppy.get_events("big", min_version=2, limit=4)) == [2, 3, 4, 5]


# --------------------------------------------------------------------------- values

VALUES_EVENTS = [
    event(
        "numbers",
        1,
        "2022-01-01T00:00:00.000Z",
        payload={
            "int": 5,
            "negative": -42,
            "zero": 0,
            "float": 6.1,
            "negativeFloat": -273.15,
            "tiny": 1.5e-7,
            "ratio": 0.125,
            "maxSafe": 9007199254740991,
            "beyondSafe": 2**60,
            "nested": {"a": {"b": {"c": [1, [2.5, [3, None]]]}}},
            "list": [1, 2.25, -3],
        },
        metadata={"count": 3, "weight": 1.75},
    ),
    event("numbers", 2, "2022-01-01T00:00:01.000Z", payload=0, metadata=False),
    event("numbers", 3, "2022-01-01T00:00:02.000Z", payload="", metadata=[]),
    event("numbers", 4, "2022-01-01T00:00:03.000Z", payload={}, metadata=None),
    event("numbers", 5, "2022-01-01T00:00:04.000Z", payload=None),
    event("numbers", 6, "2022-01-01T00:00:05.000Z"),
    event(
        "ユニコード-🐢",
        1,
        "2022-01-02T00:00:00.000Z",
        type="ÉVÉNEMENT_✓",
        payload={"name": "杰尼龟 🐢", "clé_ü_日本": "valeur ✓", "emoji": "🦊✨", "rtl": "שלום"},
        metadata={"note": "trop de Pokémon"},
    ),
]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_numbers_and_unicode(ddb, layout, tables):
    table = tables.castore({"VALUES": VALUES_EVENTS}, layout)["VALUES"]
    store = DynamoDBEventStore("VALUES", table, layout=layout, client=ddb)
    for aggregate_id in ("numbers", "ユニコード-🐢"):
        expected = [e for e in VALUES_EVENTS if e["aggregateId"] == aggregate_id]
        got = store.get_events(aggregate_id)
        assert got == expected
        assert typed(got) == typed(expected)  # ints stay ints, floats floats
        assert not has_decimal(got)
    got = store.get_events("numbers")
    assert type(got[0]["payload"]["beyondSafe"]) is int  # exact, where Castore makes a BigInt
    assert "payload" not in got[5] and "metadata" not in got[5]
    assert got[4]["payload"] is None and "metadata" not in got[4]  # explicit null kept
    assert got[3]["metadata"] is None


def test_integral_numbers_come_back_as_int_like_castore(ddb, tables):
    # JSON (and Castore's unmarshall) has one number type: 1.0 stored as "1.0" reads as 1.
    table = tables.create()
    items = [
        {
            "aggregateId": {"S": "P#a"},
            "version": {"N": "1"},
            "eventStoreId": {"S": "P"},
            "type": {"S": "T"},
            "timestamp": {"S": "2022-01-01T00:00:00.000Z"},
            "payload": {
                "M": {
                    "one": {"N": "1.0"},
                    "hundred": {"N": "1E+2"},
                    "tiny": {"N": "1.5e-7"},
                    "exp": {"N": "-2.5E3"},
                    "ss": {"SS": ["b", "a"]},
                    "ns": {"NS": ["2", "1.5"]},
                    "b": {"B": b"\x00\xff"},
                }
            },
        }
    ]
    put_items(ddb, table, items)
    payload = DynamoDBEventStore("P", table, client=ddb).get_events("a")[0]["payload"]
    assert typed(payload) == typed(
        {
            "one": 1,
            "hundred": 100,
            "tiny": 1.5e-7,
            "exp": -2500,
            "ss": ["a", "b"],
            "ns": [1.5, 2],
            "b": base64.b64encode(b"\x00\xff").decode(),
        }
    )


@pytest.mark.parametrize("layout", LAYOUTS)
def test_timestamps_are_normalised(ddb, layout, tables):
    # Castore returns DynamoDB timestamps as stored; this store normalises them.
    events = [
        event("a", 1, "2022-01-01T00:00:00.123456Z"),
        event("a", 2, "2022-01-01T01:30:00.000+01:00"),
        event("a", 3, "2022-01-01T00:31:00Z"),
    ]
    table = tables.castore({"P": events}, layout)["P"]
    store = DynamoDBEventStore("P", table, layout=layout, client=ddb)
    assert [e["timestamp"] for e in store.get_events("a")] == [
        "2022-01-01T00:00:00.123Z",
        "2022-01-01T00:30:00.000Z",
        "2022-01-01T00:31:00.000Z",
    ]
    assert listing(store) == [
        {"aggregate_id": "a", "initial_event_timestamp": "2022-01-01T00:00:00.123Z"}
    ]


def test_unreadable_timestamp_is_an_error(ddb, tables):
    table = tables.castore({"P": [event("a", 1, "yesterday")]})["P"]
    store = DynamoDBEventStore("P", table, client=ddb)
    with pytest.raises(EventStoreError, match="'yesterday'"):
        store.get_events("a")


# --------------------------------------------------------------------------- the four pours

AGGREGATE_IDS_OPTIONS = [
    None,
    {"limit": 3},
    {"limit": 2, "reverse": True},
    {"limit": 1, "initial_event_after": TIE, "initial_event_before": STAMPS[2]},
    {"initial_event_before": "2022-01-02T10:00:00.123Z", "reverse": True},
]
FILTERS = [
    None,
    {"from": TIE},
    {"to": "2022-01-04T00:00:00Z"},
    {"from": "2022-01-01T09:00:00Z", "to": "2022-01-05T12:00:00Z"},
]


def both_pours(pour, dynamodb_args, memory_args, **kwargs):
    """Pour through the DynamoDB stores and the in-memory ones; return both (result, messages)."""
    outcomes = []
    for args in (dynamodb_args, memory_args):
        channel = InMemoryMessageChannel()
        result = pour(*args[:1], channel, *args[1:], **kwargs)
        outcomes.append((result, published(channel)))
    return outcomes


@pytest.mark.parametrize("options", AGGREGATE_IDS_OPTIONS)
def test_pour_event_store_aggregate_ids(medium, options):
    dynamodb, memory = medium
    for store_id in MEDIUM:
        got, expected = both_pours(
            pour_event_store_aggregate_ids,
            (dynamodb[store_id],),
            (memory[store_id],),
            options=options,
        )
        assert got == expected
        assert got[0]["poured_aggregate_id_count"] > 0


@pytest.mark.parametrize("filters", FILTERS)
def test_pour_aggregate_events(medium, filters):
    dynamodb, memory = medium
    for store_id in MEDIUM:
        for aggregate_id in sorted({e["aggregateId"] for e in MEDIUM[store_id]})[:8]:
            for options in (
                {},
                {"reverse": True, "limit": 2},
                {"min_version": 2, "max_version": 3},
            ):
                got, expected = both_pours(
                    pour_aggregate_events,
                    (dynamodb[store_id], aggregate_id),
                    (memory[store_id], aggregate_id),
                    options=options,
                    filters=filters,
                )
                assert got == expected


@pytest.mark.parametrize("filters", FILTERS)
def test_pour_event_store_events(medium, filters):
    dynamodb, memory = medium
    for store_id in MEDIUM:
        got, expected = both_pours(
            pour_event_store_events, (dynamodb[store_id],), (memory[store_id],), filters=filters
        )
        assert got == expected
    assert got[0]["poured_event_count"] > 0


@pytest.mark.parametrize("filters", FILTERS)
def test_pour_event_store_collection_events(medium, filters):
    dynamodb, memory = medium
    got, expected = both_pours(
        pour_event_store_collection_events,
        ([dynamodb["POKEMONS"], dynamodb["TRAINERS"]],),
        ([memory["POKEMONS"], memory["TRAINERS"]],),
        filters=filters,
    )
    assert got == expected
    assert {m["eventStoreId"] for m in got[1]} == set(MEDIUM) or filters is not None


def test_collection_of_dynamodb_and_another_store(medium):
    dynamodb, memory = medium
    got, expected = both_pours(
        pour_event_store_collection_events,
        ([dynamodb["POKEMONS"], memory["TRAINERS"]],),
        ([memory["POKEMONS"], memory["TRAINERS"]],),
    )
    assert got == expected
    assert got[0]["poured_event_count"] == sum(len(events) for events in MEDIUM.values())
    keys = [(m["event"]["timestamp"], m["eventStoreId"]) for m in got[1]]
    assert [m["eventStoreId"] for m in got[1][:3]] != ["POKEMONS"] * 3 or len(set(keys)) > 1


# --------------------------------------------------------------------------- 1,000 aggregates


def thousand_tied_aggregates() -> list[dict[str, Any]]:
    """1,050 aggregates whose initial events fall on 5 milliseconds (~210 per millisecond)."""
    rnd = random.Random(1000)
    stamps = [f"2023-05-0{day}T12:00:00.000Z" for day in range(1, 6)]
    events = []
    for i in range(1050):
        # Written in id order: moto sorts a table's items on every Query, fastest when sorted.
        aggregate_id = f"agg-{i:05d}"
        events.append(event(aggregate_id, 1, rnd.choice(stamps), payload={"i": i}))
        if i % 10 == 0:
            events.append(event(aggregate_id, 2, rnd.choice(stamps), payload={"i": -i}))
    return events


@pytest.mark.slow  # ~15 s: moto sorts the whole table on every Query
def test_thousand_tied_aggregates_poured_exactly_once(ddb, tables):
    events = thousand_tied_aggregates()
    table = tables.castore({"BULK": events})["BULK"]
    store = DynamoDBEventStore("BULK", table, client=ddb)
    memory = InMemoryEventStore("BULK", events)
    aggregate_ids = {e["aggregateId"] for e in events}
    assert len(aggregate_ids) >= 1000

    for options in ({"limit": 97}, {"limit": 250, "reverse": True}):
        channel = InMemoryMessageChannel()
        result = pour_event_store_aggregate_ids(store, channel, options)
        poured = [m["aggregateId"] for m in published(channel)]
        assert Counter(poured) == Counter(aggregate_ids)  # each exactly once
        expected_channel = InMemoryMessageChannel()
        assert result == pour_event_store_aggregate_ids(memory, expected_channel, options)
        assert published(channel) == published(expected_channel)

    channel = InMemoryMessageChannel()
    result = pour_event_store_events(store, channel)
    poured = [(m["event"]["aggregateId"], m["event"]["version"]) for m in published(channel)]
    assert Counter(poured) == Counter((e["aggregateId"], e["version"]) for e in events)
    assert result["poured_event_count"] == len(events)
    expected_channel = InMemoryMessageChannel()
    assert result == pour_event_store_events(memory, expected_channel)
    assert published(channel) == published(expected_channel)


# --------------------------------------------------------------------------- prefetch


class CountingClient:
    """A real client that counts Query calls in flight (each held 20 ms)."""

    def __init__(self, client):
        self._client = client
        self.meta = client.meta
        self._lock = threading.Lock()
        self.in_flight = 0
        self.most_in_flight = 0
        self.queries = 0

    def describe_table(self, **request):
        return self._client.describe_table(**request)

    def query(self, **request):
        with self._lock:
            self.queries += 1
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            time.sleep(0.02)
            return self._client.query(**request)
        finally:
            with self._lock:
                self.in_flight -= 1


def test_prefetch_fetches_concurrently_and_bounded(medium, ddb):
    dynamodb, memory = medium
    base = dynamodb["POKEMONS"]
    counting = CountingClient(ddb)
    ids = sorted({e["aggregateId"] for e in MEDIUM["POKEMONS"]})
    with DynamoDBEventStore(
        "POKEMONS", base.table_name, layout=base.layout, client=counting, max_workers=4
    ) as store:
        store.prefetch_events(ids[:20], min_version=1, limit=100)
        for aggregate_id in ids[:20]:
            got = store.get_events(aggregate_id, min_version=1, limit=100)
            assert got == memory["POKEMONS"].get_events(aggregate_id)
        assert 1 < counting.most_in_flight <= 4
        assert counting.queries == 20  # served from the prefetch, not fetched again
        # Other arguments are never served from the prefetch.
        store.prefetch_events(ids[:2], min_version=1, limit=100)
        assert store.get_events(ids[0], min_version=2) == memory["POKEMONS"].get_events(
            ids[0], min_version=2
        )


def test_prefetch_holds_at_most_its_capacity(medium):
    dynamodb, memory = medium
    base = dynamodb["POKEMONS"]
    ids = sorted({e["aggregateId"] for e in MEDIUM["POKEMONS"]})
    with DynamoDBEventStore(
        "POKEMONS", base.table_name, layout=base.layout, client=base.client, prefetch_capacity=3
    ) as store:
        store.prefetch_events(ids, limit=2, reverse=True)
        assert len(store._events._prefetched) <= 3
        for aggregate_id in ids:  # evicted ones are fetched again, all correct
            assert store.get_events(aggregate_id, limit=2, reverse=True) == memory[
                "POKEMONS"
            ].get_events(aggregate_id, limit=2, reverse=True)


def test_prefetch_errors_surface_in_get_events(ddb):
    with DynamoDBEventStore("P", unique_table_name("missing"), client=ddb) as store:
        store.prefetch_events(["a", "b"])
        with pytest.raises(EventStoreError, match="does not exist"):
            store.get_events("a")


# --------------------------------------------------------------------------- bad input


def pours(store, channel):
    other = InMemoryEventStore("OTHER", [event("o", 1, STAMPS[0])])
    return {
        "aggregate_ids": lambda: pour_event_store_aggregate_ids(store, channel),
        "aggregate_events": lambda: pour_aggregate_events(store, channel, "a"),
        "store_events": lambda: pour_event_store_events(store, channel),
        "collection": lambda: pour_event_store_collection_events([other, store], channel),
    }


UTILITIES = ["aggregate_ids", "aggregate_events", "store_events", "collection"]


def assert_refused(store, utility, *fragments):
    channel = InMemoryMessageChannel()
    with pytest.raises(EventStoreError) as raised:
        pours(store, channel)[utility]()
    assert isinstance(raised.value, CastoreDamError)
    for fragment in fragments:
        assert fragment in str(raised.value)
    assert channel.messages == []


@pytest.mark.parametrize("utility", UTILITIES)
def test_missing_table(ddb, utility):
    name = unique_table_name("missing")
    store = DynamoDBEventStore("P", name, client=ddb)
    assert_refused(store, utility, f"DynamoDB table {name!r}", "does not exist", "us-east-1")


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("utility", UTILITIES)
def test_missing_index(ddb, layout, utility, tables):
    table = tables.create(layout, gsi=False)
    store = DynamoDBEventStore("P", table, layout=layout, client=ddb)
    assert_refused(store, utility, "has no global secondary index 'initialEvents'", "none")


@pytest.mark.parametrize("utility", UTILITIES)
def test_table_not_in_castore_layout(ddb, utility, tables):
    table = tables.create(key_schema=[("pk", "HASH", "S"), ("sk", "RANGE", "S")])
    store = DynamoDBEventStore("P", table, client=ddb)
    assert_refused(
        store,
        utility,
        "is not in Castore's layout",
        "aggregateId (HASH, S), version (RANGE, N)",
        "found pk (HASH, S), sk (RANGE, S)",
    )


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("utility", UTILITIES)
def test_table_of_the_other_layout(ddb, layout, utility, tables):
    other = "legacy" if layout == "single-table" else "single-table"
    table = tables.create(other)
    store = DynamoDBEventStore("P", table, layout=layout, client=ddb)
    assert_refused(store, utility, f"not in Castore's {layout} layout", f"layout={other!r}")


def test_gsi_name_is_configurable(ddb, tables):
    table = tables.create()
    store = DynamoDBEventStore("P", table, client=ddb, gsi_name="byTimestamp")
    assert_refused(
        store, "aggregate_ids", "no global secondary index 'byTimestamp'", "'initialEvents'"
    )


class NoDescribeClient:
    """A real client without the right to DescribeTable (as some IAM policies grant)."""

    def __init__(self, client):
        self._client = client
        self.meta = client.meta

    def describe_table(self, **request):
        error = {"Code": "AccessDeniedException", "Message": "not authorized: DescribeTable"}
        raise ClientError({"Error": error}, "DescribeTable")

    def query(self, **request):
        return self._client.query(**request)


def test_without_describe_permission_reads_anyway(medium, ddb, caplog):
    dynamodb, memory = medium
    base = dynamodb["POKEMONS"]
    store = DynamoDBEventStore(
        "POKEMONS", base.table_name, layout=base.layout, client=NoDescribeClient(ddb)
    )
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert listing(store) == listing(memory["POKEMONS"])
    assert "cannot describe" in caplog.text


@pytest.mark.parametrize("utility", ["aggregate_ids", "store_events", "collection"])
def test_missing_index_without_describe_permission(ddb, utility, tables):
    table = tables.create(gsi=False)
    store = DynamoDBEventStore("P", table, client=NoDescribeClient(ddb))
    assert_refused(store, utility, "has no usable global secondary index 'initialEvents'")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("utility", UTILITIES)
def test_unreachable_endpoint(moto_server, utility):
    endpoint = f"http://127.0.0.1:{free_port()}"
    store = DynamoDBEventStore(
        "P",
        "events",
        session=moto_server.session(),
        endpoint_url=endpoint,
        client_config=Config(proxies={}),
        connect_timeout=1,
        max_attempts=1,
    )
    started = time.monotonic()
    assert_refused(store, utility, "cannot reach DynamoDB", endpoint)
    assert time.monotonic() - started < 10


class RejectingHandler(http.server.BaseHTTPRequestHandler):
    """Answers every request as DynamoDB answers one signed with unknown credentials."""

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = json.dumps(
            {
                "__type": "com.amazon.coral.service#UnrecognizedClientException",
                "message": "The security token included in the request is invalid.",
            }
        ).encode()
        self.send_response(400)
        self.send_header("Content-Type", "application/x-amz-json-1.0")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def rejecting_endpoint():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RejectingHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("utility", UTILITIES)
def test_bad_credentials(moto_server, rejecting_endpoint, utility):
    store = DynamoDBEventStore(
        "P",
        "events",
        session=moto_server.session(),
        endpoint_url=rejecting_endpoint,
        client_config=Config(proxies={}),
        max_attempts=1,
    )
    assert_refused(store, utility, "refused the AWS credentials", "UnrecognizedClientException")


@pytest.mark.parametrize("utility", UTILITIES)
def test_no_credentials(moto_server, monkeypatch, tmp_path, utility):
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    session = boto3.session.Session(
        region_name="us-east-1", botocore_session=botocore.session.Session()
    )
    store = DynamoDBEventStore(
        "P",
        "events",
        session=session,
        endpoint_url=moto_server.endpoint_url,
        client_config=Config(proxies={}),
        max_attempts=1,
    )
    assert_refused(store, utility, "no usable AWS credentials", "AWS_ACCESS_KEY_ID")


def test_no_region(monkeypatch, tmp_path):
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    session = boto3.session.Session(botocore_session=botocore.session.Session())
    with pytest.raises(EventStoreError, match="no AWS region"):
        DynamoDBEventStore("P", "events", session=session)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_wrong_event_store_id_pours_nothing_and_warns_once(medium, layout, ddb, caplog, tables):
    if layout == "single-table":
        table = tables.castore({"POKEMONS": MEDIUM["POKEMONS"]})["POKEMONS"]
    else:
        table = tables.create("legacy")  # the wrong (empty) table
    store = DynamoDBEventStore("POKEMON", table, layout=layout, client=ddb)
    channel = InMemoryMessageChannel()
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert pour_event_store_aggregate_ids(store, channel)["poured_aggregate_id_count"] == 0
        assert (
            pour_event_store_events(store, channel, filters={"to": TIE})["poured_event_count"] == 0
        )
        assert pour_event_store_events(store, channel)["poured_event_count"] == 0
    assert channel.messages == []
    warnings = [r for r in caplog.records if r.name == LOGGER]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING
    assert "'POKEMON'" in warnings[0].getMessage() and table in warnings[0].getMessage()


def test_bounded_empty_listing_of_a_real_store_does_not_warn(medium, caplog):
    dynamodb, _ = medium
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        store = dynamodb["POKEMONS"]
        fresh = DynamoDBEventStore(
            "POKEMONS", store.table_name, layout=store.layout, client=store.client
        )
        assert listing(fresh, initial_event_before="2000-01-01T00:00:00.000Z") == []
    assert not [r for r in caplog.records if r.name == LOGGER]


def test_prefix_is_stripped_once(ddb, tables):
    # Single-table keys are "<eventStoreId>#<aggregateId>"; ids may hold "#" themselves.
    events = [event("x#y", 1, STAMPS[0]), event("P#z", 1, STAMPS[1])]
    table = tables.castore({"P": events})["P"]
    store = DynamoDBEventStore("P", table, client=ddb)
    assert [a["aggregate_id"] for a in listing(store)] == ["x#y", "P#z"]
    assert store.get_events("x#y")[0]["aggregateId"] == "x#y"
    assert store.get_events("P#z")[0]["aggregateId"] == "P#z"


def test_bad_limit(medium):
    dynamodb, _ = medium
    with pytest.raises(EventStoreError, match="limit must be a positive integer"):
        dynamodb["POKEMONS"].list_aggregate_ids(limit=0)
    with pytest.raises(EventStoreError, match="limit must be a positive integer"):
        dynamodb["POKEMONS"].get_events("a", limit=0)
