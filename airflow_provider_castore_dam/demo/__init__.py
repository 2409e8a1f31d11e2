"""Demo data told the way Castore's docs tell it, and the embedded demo pour.

Run ``python -m airflow_provider_castore_dam.demo`` to pour the demo stores into an in-memory
channel with each of the four utilities and print what was published.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from airflow_provider_castore_dam.channels import InMemoryMessageChannel
from airflow_provider_castore_dam.dam import (
    pour_aggregate_events,
    pour_event_store_aggregate_ids,
    pour_event_store_collection_events,
    pour_event_store_events,
)
from airflow_provider_castore_dam.protocols import EventDetail
from airflow_provider_castore_dam.stores import InMemoryEventStore


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


def demo_event_stores() -> list[InMemoryEventStore]:
    return [InMemoryEventStore(store_id, events) for store_id, events in DEMO_EVENTS.items()]


def main() -> None:
    pokemons, trainers = demo_event_stores()
    runs: dict[str, Callable[[InMemoryMessageChannel], Mapping[str, Any]]] = {
        "pour_event_store_aggregate_ids(POKEMONS)": lambda channel: pour_event_store_aggregate_ids(
            pokemons, channel
        ),
        "pour_aggregate_events(POKEMONS, pikachu1)": lambda channel: pour_aggregate_events(
            pokemons, channel, "pikachu1"
        ),
        "pour_event_store_events(TRAINERS, from 2021-06)": lambda channel: pour_event_store_events(
            trainers, channel, filters={"from": "2021-06-01T00:00:00Z"}
        ),
        "pour_event_store_collection_events(POKEMONS, TRAINERS)": (
            lambda channel: pour_event_store_collection_events([pokemons, trainers], channel)
        ),
    }
    for title, pour in runs.items():
        channel = InMemoryMessageChannel()
        result = pour(channel)
        print(f"== {title}")
        for published in channel.messages:
            print(f"  published (replay={published.replay}): {json.dumps(published.message)}")
        print(f"  result: {json.dumps(result)}")


if __name__ == "__main__":
    main()
