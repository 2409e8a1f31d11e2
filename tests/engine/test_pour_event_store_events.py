from __future__ import annotations

import pytest

from airflow_provider_castore_dam.dam import (
    pour_event_store_collection_events,
    pour_event_store_events,
)
from airflow_provider_castore_dam.stores import InMemoryEventStore, InMemoryScanningEventStore
from airflow_provider_castore_dam.stores.demo import DEMO_EVENTS
from tests.engine import oracle
from tests.engine.helpers import event, published

STORE_CLASSES = [InMemoryEventStore, InMemoryScanningEventStore]


def keys(channel) -> list[tuple[str, str, int]]:
    return [
        (m["eventStoreId"], m["event"]["aggregateId"], m["event"]["version"])
        for m in published(channel)
    ]


@pytest.mark.parametrize("store_class", STORE_CLASSES)
def test_pours_every_event_in_timestamp_order(store_class, channel):
    store = store_class("POKEMONS", DEMO_EVENTS["POKEMONS"])

    result = pour_event_store_events(store, channel)

    assert keys(channel) == [
        ("POKEMONS", "pikachu1", 1),
        ("POKEMONS", "charizard1", 1),
        ("POKEMONS", "pikachu1", 2),
        ("POKEMONS", "arcanine1", 1),
        ("POKEMONS", "pikachu1", 3),
        ("POKEMONS", "arcanine1", 2),
    ]
    assert result == {
        "poured_event_count": 6,
        "first_scanned_aggregate": {
            "aggregate_id": "pikachu1",
            "initial_event_timestamp": "2020-12-01T00:00:00.000Z",
        },
        "last_scanned_aggregate": {
            "aggregate_id": "arcanine1",
            "initial_event_timestamp": "2022-03-01T00:00:00.000Z",
        },
        "digest": oracle.digest(
            "pour_event_store_events",
            {"event_store_ids": ["POKEMONS"], "filters": {"from": None, "to": None}},
            keys(channel),
        ),
    }


@pytest.mark.parametrize("store_class", STORE_CLASSES)
def test_filters_bound_events_and_scanned_aggregates(store_class, channel):
    store = store_class("POKEMONS", DEMO_EVENTS["POKEMONS"])

    result = pour_event_store_events(
        store,
        channel,
        filters={"from": "2021-06-01T00:00:00.000Z", "to": "2022-03-01T00:00:00.000Z"},
    )

    assert keys(channel) == [
        ("POKEMONS", "charizard1", 1),
        ("POKEMONS", "pikachu1", 2),
        ("POKEMONS", "arcanine1", 1),
    ]
    assert result["poured_event_count"] == 3
    assert result["first_scanned_aggregate"]["aggregate_id"] == "pikachu1"
    assert result["last_scanned_aggregate"]["aggregate_id"] == "arcanine1"


@pytest.mark.parametrize("store_class", STORE_CLASSES)
def test_ties_are_broken_by_aggregate_id_then_version(store_class, channel):
    # Castore's own PostgreSQL pour published 20 of these 90 events.
    tied = [event(f"agg{i:02d}", v, "2021-01-01T00:00:00.000Z") for i in range(45) for v in (1, 2)]
    store = store_class("TIES", tied[::-1], default_page_size=20)

    result = pour_event_store_events(store, channel)

    assert keys(channel) == [("TIES", f"agg{i:02d}", v) for i in range(45) for v in (1, 2)]
    assert result["poured_event_count"] == 90


@pytest.mark.parametrize("store_class", STORE_CLASSES)
def test_an_aggregate_stays_in_version_order_when_its_clock_went_back(store_class, channel):
    events = [
        event("skewed", 1, "2021-01-01T00:00:00.000Z"),
        event("skewed", 2, "2021-01-05T00:00:00.000Z"),
        event("skewed", 3, "2021-01-03T00:00:00.000Z"),
        event("other", 1, "2021-01-04T00:00:00.000Z"),
    ]
    store = store_class("SKEW", events)

    pour_event_store_events(store, channel)

    assert keys(channel) == [
        ("SKEW", "skewed", 1),
        ("SKEW", "other", 1),
        ("SKEW", "skewed", 2),
        ("SKEW", "skewed", 3),
    ]


@pytest.mark.parametrize("store_class", STORE_CLASSES)
def test_collection_merges_stores_in_one_timestamp_order(store_class, channel):
    stores = [store_class(store_id, events) for store_id, events in DEMO_EVENTS.items()]

    result = pour_event_store_collection_events(stores, channel)

    assert keys(channel) == [
        (s, e["aggregateId"], e["version"]) for s, e in oracle.pour_order(DEMO_EVENTS)
    ]
    assert keys(channel)[:4] == [
        ("POKEMONS", "pikachu1", 1),
        ("TRAINERS", "ashKetchum", 1),
        ("POKEMONS", "charizard1", 1),
        ("TRAINERS", "garyOak", 1),
    ]
    # 2022-01-01 and 2024-01-01 each hold one event of each store: the store id breaks the tie.
    assert keys(channel)[4:6] == [("POKEMONS", "pikachu1", 2), ("TRAINERS", "ashKetchum", 2)]
    assert keys(channel)[-2:] == [("POKEMONS", "arcanine1", 2), ("TRAINERS", "garyOak", 2)]
    assert result["poured_event_count"] == 10
    assert result["scans"] == {
        store_id: oracle.scan_infos(events) for store_id, events in DEMO_EVENTS.items()
    }


def test_collection_mixing_scanning_and_listing_stores_uses_the_merge(channel):
    stores = [
        InMemoryScanningEventStore("POKEMONS", DEMO_EVENTS["POKEMONS"]),
        InMemoryEventStore("TRAINERS", DEMO_EVENTS["TRAINERS"]),
    ]

    result = pour_event_store_collection_events(
        stores, channel, filters={"to": "2022-01-01T00:00:00.000Z"}
    )

    expected = oracle.pour_order(DEMO_EVENTS, end="2022-01-01T00:00:00.000Z")
    assert keys(channel) == [(s, e["aggregateId"], e["version"]) for s, e in expected]
    assert result["poured_event_count"] == len(expected) == 6
