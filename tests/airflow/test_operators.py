from __future__ import annotations

import json

import pytest

from airflow_provider_castore_dam.errors import InvalidPourInputError, PourInterruptedError
from airflow_provider_castore_dam.operators import (
    PourAggregateEventsOperator,
    PourEventStoreAggregateIdsOperator,
    PourEventStoreCollectionEventsOperator,
    PourEventStoreEventsOperator,
)
from airflow_provider_castore_dam.stores.demo import DEMO_EVENTS
from tests.airflow.connections import (
    event_store_connection,
    message_channel_connection,
    set_connection,
)
from tests.engine import oracle


@pytest.fixture
def demo_connections(monkeypatch):
    set_connection(
        monkeypatch, "castore_event_store_default", **event_store_connection("in-memory-demo")
    )
    set_connection(
        monkeypatch, "castore_message_channel_default", **message_channel_connection("in-memory")
    )


@pytest.fixture
def published(monkeypatch):
    """Every message the operators' in-memory channels received."""
    from airflow_provider_castore_dam.channels import InMemoryMessageChannel
    from airflow_provider_castore_dam.hooks.message_channel import CastoreMessageChannelHook

    channels: list[InMemoryMessageChannel] = []
    original = CastoreMessageChannelHook.get_message_channel

    def recording(self):
        channel = original(self)
        channels.append(channel)
        return channel

    monkeypatch.setattr(CastoreMessageChannelHook, "get_message_channel", recording)
    return lambda: [m.message for channel in channels for m in channel.messages]


def test_event_store_events_operator_returns_the_engine_result(demo_connections, published):
    operator = PourEventStoreEventsOperator(task_id="pour", event_store_id="POKEMONS")

    result = operator.execute({})

    order = oracle.pour_order({"POKEMONS": DEMO_EVENTS["POKEMONS"]})
    assert result == {
        "poured_event_count": 6,
        **oracle.scan_infos(DEMO_EVENTS["POKEMONS"]),
        "digest": oracle.digest(
            "pour_event_store_events",
            {"event_store_ids": ["POKEMONS"], "filters": {"from": None, "to": None}},
            oracle.event_keys("POKEMONS", [e for _, e in order]),
        ),
    }
    assert json.loads(json.dumps(result)) == result
    assert [m["event"] for m in published()] == [
        e for _, e in oracle.pour_order({"POKEMONS": DEMO_EVENTS["POKEMONS"]})
    ]


def test_aggregate_ids_operator(demo_connections, published):
    operator = PourEventStoreAggregateIdsOperator(
        task_id="pour", event_store_id="TRAINERS", options={"reverse": True}
    )

    result = operator.execute({})

    assert result["poured_aggregate_id_count"] == 2
    assert [m["aggregateId"] for m in published()] == ["garyOak", "ashKetchum"]


def test_aggregate_events_operator_with_rendered_string_values(demo_connections, published):
    operator = PourAggregateEventsOperator(
        task_id="pour",
        event_store_id="POKEMONS",
        aggregate_id="pikachu1",
        options={"min_version": 2},
        filters={"to": "2023-01-01 00:00:00+00:00"},
        rate_limit="50",
        dry_run="False",
    )

    result = operator.execute({})

    assert result["poured_event_count"] == 1
    assert result["first_poured_event"]["type"] == "CAUGHT_BY_TRAINER"
    assert [m["event"]["version"] for m in published()] == [2]


def test_collection_operator_accepts_comma_separated_ids(demo_connections, published):
    operator = PourEventStoreCollectionEventsOperator(
        task_id="pour", event_store_ids="POKEMONS, TRAINERS"
    )

    result = operator.execute({})

    assert result["poured_event_count"] == 10
    assert set(result["scans"]) == {"POKEMONS", "TRAINERS"}
    assert [(m["eventStoreId"], m["event"]["aggregateId"]) for m in published()] == [
        (store_id, e["aggregateId"]) for store_id, e in oracle.pour_order(DEMO_EVENTS)
    ]


def test_dry_run_counts_and_publishes_nothing(demo_connections, published):
    operator = PourEventStoreCollectionEventsOperator(
        task_id="pour", event_store_ids=["POKEMONS", "TRAINERS"], dry_run=True, rate_limit=1
    )

    result = operator.execute({})

    assert published() == []
    assert result["poured_event_count"] == 10
    assert result["dry_run"]["POKEMONS"]["by_event_type"] == {
        "APPEARED": 3,
        "CAUGHT_BY_TRAINER": 2,
        "LEVELLED_UP": 1,
    }
    assert result["dry_run"]["TRAINERS"]["first_timestamp"] == "2021-01-01T00:00:00.000Z"
    assert result["dry_run"]["TRAINERS"]["last_timestamp"] == "2024-01-01T00:00:00.000Z"


def test_templated_fields_cover_every_pour_argument():
    assert set(PourEventStoreCollectionEventsOperator.template_fields) >= {
        "event_store_ids",
        "filters",
        "rate_limit",
        "pour_dry_run",
    }
    assert set(PourAggregateEventsOperator.template_fields) >= {
        "event_store_id",
        "aggregate_id",
        "options",
        "filters",
        "rate_limit",
    }
    assert set(PourEventStoreAggregateIdsOperator.template_fields) >= {"event_store_id", "options"}


def test_progress_is_logged_and_on_kill_stops_the_pour(demo_connections, published, caplog, capsys):
    operator = PourEventStoreEventsOperator(
        task_id="pour", event_store_id="POKEMONS", rate_limit=4, progress_interval=0
    )
    from airflow_provider_castore_dam.channels import InMemoryMessageChannel

    original = InMemoryMessageChannel.publish_messages

    def publish_then_kill(self, messages, *, replay):
        original(self, messages, replay=replay)
        operator.on_kill()

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(InMemoryMessageChannel, "publish_messages", publish_then_kill)
        with caplog.at_level("INFO"), pytest.raises(PourInterruptedError) as raised:
            operator.execute({})

    # a rate limit of 4/s publishes batches of 5 (see batch_size_for): one batch, then stop
    assert raised.value.result["poured_event_count"] == len(published()) == 5
    log = caplog.text + capsys.readouterr().out
    assert "Poured 5 messages in" in log
    assert "Stopping the pour" in log


@pytest.fixture
def closed_stores(monkeypatch) -> list[str]:
    """Ids of the stores the operators closed (the in-memory demo store gets a close())."""
    from airflow_provider_castore_dam.hooks.event_store import CastoreEventStoreHook

    closed: list[str] = []
    original = CastoreEventStoreHook.get_event_store

    def opening(self, event_store_id):
        store = original(self, event_store_id)
        store.close = lambda: closed.append(event_store_id)
        return store

    monkeypatch.setattr(CastoreEventStoreHook, "get_event_store", opening)
    return closed


def test_stores_are_closed_when_the_pour_ends(demo_connections, published, closed_stores):
    PourEventStoreCollectionEventsOperator(
        task_id="pour", event_store_ids="POKEMONS, TRAINERS"
    ).execute({})

    assert sorted(closed_stores) == ["POKEMONS", "TRAINERS"]
    assert len(published()) == 10


def test_stores_are_closed_when_the_pour_fails(demo_connections, published, closed_stores):
    operator = PourEventStoreEventsOperator(
        task_id="pour", event_store_id="POKEMONS", filters={"from": "not a timestamp"}
    )

    with pytest.raises(InvalidPourInputError, match="not a timestamp"):
        operator.execute({})

    assert closed_stores == ["POKEMONS"]
    assert published() == []


@pytest.mark.parametrize(
    "event_types",
    [
        ["APPEARED", "LEVELLED_UP"],
        "APPEARED, LEVELLED_UP",  # comma-separated, as a text param renders
        "['APPEARED', 'LEVELLED_UP']",  # a list param without native rendering
        '{"exclude": ["CAUGHT_BY_TRAINER"]}',
    ],
)
def test_filters_rendered_as_text_are_lists_again(demo_connections, published, event_types):
    operator = PourEventStoreCollectionEventsOperator(
        task_id="pour",
        event_store_ids="POKEMONS",
        filters={"event_types": event_types, "aggregate_ids": "pikachu1,arcanine1"},
    )

    result = operator.execute({})

    assert [(m["event"]["aggregateId"], m["event"]["version"]) for m in published()] == [
        ("pikachu1", 1),
        ("arcanine1", 1),
        ("pikachu1", 3),
    ]
    assert result["digest"]["inputs"]["filters"]["aggregate_ids"] == ["arcanine1", "pikachu1"]


def test_aggregate_ids_operator_takes_aggregate_id_filters(demo_connections, published):
    operator = PourEventStoreAggregateIdsOperator(
        task_id="pour", event_store_id="POKEMONS", filters={"aggregate_ids": ["charizard1"]}
    )

    assert operator.execute({})["poured_aggregate_id_count"] == 1
    assert [m["aggregateId"] for m in published()] == ["charizard1"]
