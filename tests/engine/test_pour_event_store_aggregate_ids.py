from __future__ import annotations

import json

import pytest

from airflow_provider_castore_dam.dam import pour_event_store_aggregate_ids
from airflow_provider_castore_dam.stores import InMemoryEventStore
from tests.engine import oracle
from tests.engine.helpers import event, published

ORDER = ["pikachu1", "charizard1", "arcanine1"]
NO_OPTIONS = {
    "limit": None,
    "initial_event_after": None,
    "initial_event_before": None,
    "reverse": False,
}


def test_pours_every_aggregate_in_initial_timestamp_order(pokemons, channel):
    result = pour_event_store_aggregate_ids(pokemons, channel)

    assert published(channel) == [
        {
            "eventStoreId": "POKEMONS",
            "aggregateId": "pikachu1",
            "initialEventTimestamp": "2020-12-01T00:00:00.000Z",
        },
        {
            "eventStoreId": "POKEMONS",
            "aggregateId": "charizard1",
            "initialEventTimestamp": "2021-06-01T00:00:00.000Z",
        },
        {
            "eventStoreId": "POKEMONS",
            "aggregateId": "arcanine1",
            "initialEventTimestamp": "2022-03-01T00:00:00.000Z",
        },
    ]
    assert result == {
        "poured_aggregate_id_count": 3,
        "first_scanned_aggregate": {
            "aggregate_id": "pikachu1",
            "initial_event_timestamp": "2020-12-01T00:00:00.000Z",
        },
        "last_scanned_aggregate": {
            "aggregate_id": "arcanine1",
            "initial_event_timestamp": "2022-03-01T00:00:00.000Z",
        },
        "digest": oracle.digest(
            "pour_event_store_aggregate_ids",
            {"event_store_id": "POKEMONS", "options": NO_OPTIONS},
            [("POKEMONS", a, None) for a in ("pikachu1", "charizard1", "arcanine1")],
        ),
    }
    assert json.loads(json.dumps(result)) == result


@pytest.mark.parametrize("limit", [1, 2, 3, 50])
def test_page_size_does_not_change_what_is_poured(pokemons, channel, limit):
    result = pour_event_store_aggregate_ids(pokemons, channel, options={"limit": limit})

    assert [message["aggregateId"] for message in published(channel)] == ORDER
    assert result["poured_aggregate_id_count"] == 3


def test_reverse_pours_newest_first(pokemons, channel):
    result = pour_event_store_aggregate_ids(
        pokemons, channel, options={"reverse": True, "limit": 2}
    )

    assert [message["aggregateId"] for message in published(channel)] == ORDER[::-1]
    assert result["first_scanned_aggregate"]["aggregate_id"] == "arcanine1"
    assert result["last_scanned_aggregate"]["aggregate_id"] == "pikachu1"


def test_initial_event_bounds_are_inclusive(pokemons, channel):
    pour_event_store_aggregate_ids(
        pokemons,
        channel,
        options={
            "initial_event_after": "2021-06-01T00:00:00.000Z",
            "initial_event_before": "2022-03-01T02:00:00+02:00",
        },
    )

    assert [message["aggregateId"] for message in published(channel)] == ["charizard1", "arcanine1"]


def test_ties_across_page_boundaries_are_neither_lost_nor_repeated(channel):
    tied = [event(f"agg{index:02d}", 1, "2021-01-01T00:00:00.000Z") for index in range(45)]
    store = InMemoryEventStore("TIES", tied)

    result = pour_event_store_aggregate_ids(store, channel, options={"limit": 20})

    assert [message["aggregateId"] for message in published(channel)] == [
        f"agg{index:02d}" for index in range(45)
    ]
    assert result["poured_aggregate_id_count"] == 45


def test_empty_store_pours_nothing(channel):
    result = pour_event_store_aggregate_ids(InMemoryEventStore("EMPTY", []), channel)

    assert channel.messages == []
    assert result == {
        "poured_aggregate_id_count": 0,
        "first_scanned_aggregate": None,
        "last_scanned_aggregate": None,
        "digest": oracle.digest(
            "pour_event_store_aggregate_ids",
            {"event_store_id": "EMPTY", "options": NO_OPTIONS},
            [],
        ),
    }
