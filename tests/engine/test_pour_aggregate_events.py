from __future__ import annotations

import pytest

from airflow_provider_castore_dam.dam import pour_aggregate_events
from airflow_provider_castore_dam.stores import InMemoryEventStore
from airflow_provider_castore_dam.stores.demo import DEMO_EVENTS
from tests.engine import oracle
from tests.engine.helpers import event, published

PIKACHU = [e for e in DEMO_EVENTS["POKEMONS"] if e["aggregateId"] == "pikachu1"]
NO_OPTIONS = {"min_version": None, "max_version": None, "limit": None, "reverse": False}
NO_FILTERS = {"from": None, "to": None}


def inputs(aggregate_id: str) -> dict:
    return {
        "event_store_id": "POKEMONS",
        "aggregate_id": aggregate_id,
        "options": NO_OPTIONS,
        "filters": NO_FILTERS,
    }


def test_pours_the_aggregate_events_in_version_order(pokemons, channel):
    result = pour_aggregate_events(pokemons, channel, "pikachu1")

    assert published(channel) == [{"eventStoreId": "POKEMONS", "event": e} for e in PIKACHU]
    assert result == {
        "poured_event_count": 3,
        "first_poured_event": PIKACHU[0],
        "last_poured_event": PIKACHU[2],
        "digest": oracle.digest(
            "pour_aggregate_events", inputs("pikachu1"), oracle.event_keys("POKEMONS", PIKACHU)
        ),
    }


@pytest.mark.parametrize(
    ("options", "versions"),
    [
        ({"min_version": 2}, [2, 3]),
        ({"max_version": 2}, [1, 2]),
        ({"min_version": 2, "max_version": 2}, [2]),
        ({"limit": 2}, [1, 2]),
        ({"reverse": True}, [3, 2, 1]),
        ({"reverse": True, "limit": 2}, [3, 2]),
        ({"reverse": True, "min_version": 2}, [3, 2]),
        ({"reverse": True, "max_version": 2, "limit": 1}, [2]),
    ],
)
def test_get_events_options(pokemons, channel, options, versions):
    result = pour_aggregate_events(pokemons, channel, "pikachu1", options=options)

    assert [m["event"]["version"] for m in published(channel)] == versions
    assert result["poured_event_count"] == len(versions)
    assert result["first_poured_event"]["version"] == versions[0]
    assert result["last_poured_event"]["version"] == versions[-1]


def test_filters_are_inclusive_and_apply_after_options(pokemons, channel):
    result = pour_aggregate_events(
        pokemons,
        channel,
        "pikachu1",
        options={"limit": 2},
        filters={"from": "2022-01-01T00:00:00.000Z", "to": "2023-06-01T00:00:00.000Z"},
    )

    assert [m["event"]["version"] for m in published(channel)] == [2]
    assert result["poured_event_count"] == 1


def test_long_aggregates_are_read_in_pages(channel):
    events = [
        event("long", v, f"2021-01-01T00:{v // 60:02d}:{v % 60:02d}.000Z") for v in range(1, 251)
    ]
    store = InMemoryEventStore("LONG", events)

    result = pour_aggregate_events(store, channel, "long", options={"min_version": 5, "limit": 230})

    assert [m["event"]["version"] for m in published(channel)] == list(range(5, 235))
    assert result["poured_event_count"] == 230


def test_unknown_aggregate_pours_nothing(pokemons, channel):
    result = pour_aggregate_events(pokemons, channel, "mewtwo1")

    assert channel.messages == []
    assert result == {
        "poured_event_count": 0,
        "first_poured_event": None,
        "last_poured_event": None,
        "digest": oracle.digest("pour_aggregate_events", inputs("mewtwo1"), []),
    }


def test_falsy_payloads_are_poured_as_stored(channel):
    events = [
        event("a", v, "2021-01-01T00:00:00.000Z", payload=p)
        for v, p in enumerate([0, False, "", {}, []], 1)
    ]
    store = InMemoryEventStore("FALSY", events)

    pour_aggregate_events(store, channel, "a")

    assert [m["event"]["payload"] for m in published(channel)] == [0, False, "", {}, []]
