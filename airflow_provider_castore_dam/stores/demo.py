"""The demo event stores, told the way Castore's docs tell them: POKEMONS and TRAINERS, served
from memory. Connections of kind ``in-memory-demo`` resolve to them; ``./scripts/demo`` also
copies them into a PostgreSQL table."""

from __future__ import annotations

from typing import Any

from airflow_provider_castore_dam.protocols import EventDetail
from airflow_provider_castore_dam.stores.in_memory import InMemoryEventStore


def _event(
    aggregate_id: str, version: int, type_: str, timestamp: str, payload: Any = None
) -> EventDetail:
    event: EventDetail = {
        "aggregateId": aggregate_id,
        "version": version,
        "type": type_,
        "timestamp": timestamp,
    }
    if payload is not None:
        event["payload"] = payload
    return event


DEMO_EVENTS: dict[str, list[EventDetail]] = {
    "POKEMONS": [
        _event(
            "pikachu1", 1, "APPEARED", "2020-12-01T00:00:00.000Z", {"name": "Pikachu", "level": 42}
        ),
        _event(
            "pikachu1",
            2,
            "CAUGHT_BY_TRAINER",
            "2022-01-01T00:00:00.000Z",
            {"trainerId": "ashKetchum"},
        ),
        _event("pikachu1", 3, "LEVELLED_UP", "2023-06-01T00:00:00.000Z"),
        _event(
            "charizard1",
            1,
            "APPEARED",
            "2021-06-01T00:00:00.000Z",
            {"name": "Charizard", "level": 36},
        ),
        _event(
            "arcanine1",
            1,
            "APPEARED",
            "2022-03-01T00:00:00.000Z",
            {"name": "Arcanine", "level": 33},
        ),
        _event(
            "arcanine1",
            2,
            "CAUGHT_BY_TRAINER",
            "2024-01-01T00:00:00.000Z",
            {"trainerId": "garyOak"},
        ),
    ],
    "TRAINERS": [
        _event(
            "ashKetchum", 1, "TRAINER_CREATED", "2021-01-01T00:00:00.000Z", {"name": "Ash Ketchum"}
        ),
        _event(
            "ashKetchum", 2, "POKEMON_CAUGHT", "2022-01-01T00:00:00.000Z", {"pokemonId": "pikachu1"}
        ),
        _event("garyOak", 1, "TRAINER_CREATED", "2021-09-01T00:00:00.000Z", {"name": "Gary Oak"}),
        _event(
            "garyOak", 2, "POKEMON_CAUGHT", "2024-01-01T00:00:00.000Z", {"pokemonId": "arcanine1"}
        ),
    ],
}


def demo_event_store(event_store_id: str) -> InMemoryEventStore | None:
    """The demo store ``event_store_id`` (a new one each time), or None when the demo has no
    such store."""
    events = DEMO_EVENTS.get(event_store_id)
    return None if events is None else InMemoryEventStore(event_store_id, events)
