from __future__ import annotations

from airflow_provider_castore_dam.channels.dry_run import DryRunMessageChannel
from airflow_provider_castore_dam.dam import (
    pour_event_store_aggregate_ids,
    pour_event_store_collection_events,
)


def test_dry_run_counts_per_store_and_event_type(pokemons, trainers):
    channel = DryRunMessageChannel()

    result = pour_event_store_collection_events(
        [pokemons, trainers], channel, filters={"to": "2023-12-31T00:00:00.000Z"}
    )

    assert result["poured_event_count"] == 8
    assert channel.summary() == {
        "POKEMONS": {
            "message_count": 5,
            "by_event_type": {"APPEARED": 3, "CAUGHT_BY_TRAINER": 1, "LEVELLED_UP": 1},
            "first_timestamp": "2020-12-01T00:00:00.000Z",
            "last_timestamp": "2023-06-01T00:00:00.000Z",
        },
        "TRAINERS": {
            "message_count": 3,
            "by_event_type": {"POKEMON_CAUGHT": 1, "TRAINER_CREATED": 2},
            "first_timestamp": "2021-01-01T00:00:00.000Z",
            "last_timestamp": "2022-01-01T00:00:00.000Z",
        },
    }


def test_dry_run_counts_aggregate_exists_messages(pokemons):
    channel = DryRunMessageChannel()

    pour_event_store_aggregate_ids(pokemons, channel, options={"reverse": True})

    assert channel.summary() == {
        "POKEMONS": {
            "message_count": 3,
            "by_event_type": {"__AGGREGATE_EXISTS__": 3},
            "first_timestamp": "2020-12-01T00:00:00.000Z",
            "last_timestamp": "2022-03-01T00:00:00.000Z",
        }
    }
