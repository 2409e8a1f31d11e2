"""The hooks build real stores and channels from connections, and test_connection() tells."""

from __future__ import annotations

import pytest

from airflow_provider_castore_dam.errors import ConnectionConfigError
from airflow_provider_castore_dam.hooks.event_store import CastoreEventStoreHook
from airflow_provider_castore_dam.hooks.message_channel import CastoreMessageChannelHook
from airflow_provider_castore_dam.protocols import TimeOrderedEventStore
from airflow_provider_castore_dam.stores.postgres.tables import create_castore_table
from tests.airflow.connections import (
    event_store_connection,
    message_channel_connection,
    postgres_store_connection,
    set_connection,
)
from tests.stores.dynamodb_tables import create_table


def test_postgres_event_store_connection(monkeypatch, postgres_database):
    create_castore_table(postgres_database, "castore.event")
    set_connection(
        monkeypatch, "good", **postgres_store_connection(postgres_database, "castore.event")
    )
    set_connection(
        monkeypatch, "missing", **postgres_store_connection(postgres_database, "nowhere")
    )

    assert CastoreEventStoreHook("good").test_connection() == (
        True,
        "postgres event store connection works",
    )
    ok, message = CastoreEventStoreHook("missing").test_connection()
    assert not ok
    assert "nowhere" in message and "EventStoreError" in message
    store = CastoreEventStoreHook("good").get_event_store("POKEMONS")
    assert store.event_store_id == "POKEMONS"
    assert store.list_aggregate_ids().aggregate_ids == []


def test_dynamodb_event_store_connections(monkeypatch, aws):
    client = aws.client("dynamodb")
    create_table(client, "events", "single-table")
    create_table(client, "legacy-POKEMONS", "legacy")
    set_connection(
        monkeypatch, "single", **event_store_connection("dynamodb-single-table", table="events")
    )
    set_connection(
        monkeypatch,
        "legacy",
        **event_store_connection("dynamodb-legacy", table="legacy-{event_store_id}"),
    )
    set_connection(
        monkeypatch, "missing", **event_store_connection("dynamodb-single-table", table="gone")
    )

    assert CastoreEventStoreHook("single").test_connection()[0] is True
    legacy_store = CastoreEventStoreHook("legacy").get_event_store("POKEMONS")
    assert legacy_store.table_name == "legacy-POKEMONS"
    assert legacy_store.list_aggregate_ids().aggregate_ids == []
    ok, message = CastoreEventStoreHook("missing").test_connection()
    assert not ok and "gone" in message


def test_dynamodb_read_mode_chooses_the_store(monkeypatch, aws):
    for conn_id, read in (("default", None), ("scan", "scan"), ("query", "query")):
        extra = {} if read is None else {"dynamodb_read": read}
        set_connection(
            monkeypatch,
            conn_id,
            **event_store_connection("dynamodb-single-table", table="events", **extra),
        )
    stores = {
        conn_id: CastoreEventStoreHook(conn_id).get_event_store("POKEMONS")
        for conn_id in ("default", "scan", "query")
    }
    assert isinstance(stores["default"], TimeOrderedEventStore)
    assert isinstance(stores["scan"], TimeOrderedEventStore)
    assert not isinstance(stores["query"], TimeOrderedEventStore)
    set_connection(
        monkeypatch,
        "bad",
        **event_store_connection("dynamodb-single-table", table="events", dynamodb_read="fast"),
    )
    with pytest.raises(ConnectionConfigError, match="dynamodb_read 'fast'; expected one of scan"):
        CastoreEventStoreHook("bad").get_event_store("POKEMONS")


def test_in_memory_demo_store(monkeypatch):
    set_connection(monkeypatch, "demo", **event_store_connection("in-memory-demo"))

    store = CastoreEventStoreHook("demo").get_event_store("TRAINERS")

    assert [a["aggregate_id"] for a in store.list_aggregate_ids().aggregate_ids] == [
        "ashKetchum",
        "garyOak",
    ]


def test_message_channel_connections(monkeypatch, aws):
    queue_url = aws.client("sqs").create_queue(
        QueueName="replays.fifo", Attributes={"FifoQueue": "true"}
    )["QueueUrl"]
    aws.client("events").create_event_bus(Name="castore-bus")
    aws.client("s3").create_bucket(Bucket="offload")
    set_connection(
        monkeypatch,
        "sqs",
        **message_channel_connection(
            "sqs", queue_url=queue_url, fifo_deduplication="run", s3_offload_bucket="offload"
        ),
    )
    set_connection(
        monkeypatch,
        "bus",
        **message_channel_connection("eventbridge", event_bus_name="castore-bus"),
    )
    set_connection(
        monkeypatch, "no_bus", **message_channel_connection("eventbridge", event_bus_name="nope")
    )
    set_connection(
        monkeypatch,
        "no_bucket",
        **message_channel_connection(
            "sqs", queue_url=queue_url, s3_offload_bucket="missing-bucket"
        ),
    )

    assert CastoreMessageChannelHook("sqs").test_connection() == (
        True,
        "sqs message channel connection works",
    )
    assert CastoreMessageChannelHook("bus").test_connection()[0] is True
    assert CastoreMessageChannelHook("no_bus").test_connection()[0] is False
    assert CastoreMessageChannelHook("no_bucket").test_connection()[0] is False
    channel = CastoreMessageChannelHook("sqs").get_message_channel()
    assert channel.fifo and channel.max_batch_size == 10
    channel.publish_messages(
        [
            {
                "eventStoreId": "S",
                "aggregateId": "a",
                "initialEventTimestamp": "2021-01-01T00:00:00.000Z",
            }
        ],
        replay=True,
    )
    received = aws.client("sqs").receive_message(QueueUrl=queue_url, AttributeNames=["All"])[
        "Messages"
    ]
    assert received[0]["Attributes"]["MessageDeduplicationId"].startswith("S#a#")
