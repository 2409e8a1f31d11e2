"""Bad connections, and stores or targets that are not there, run through a pour operator: the
task fails with an error naming the connection and the bad value, and the queue (or the queue
behind the bus) receives nothing."""

from __future__ import annotations

import pytest
from psycopg.conninfo import conninfo_to_dict

from airflow_provider_castore_dam.errors import (
    ConnectionConfigError,
    EventStoreError,
    InvalidPourInputError,
    MessageChannelError,
    PourInterruptedError,
)
from airflow_provider_castore_dam.operators import (
    PourEventStoreCollectionEventsOperator,
    PourEventStoreEventsOperator,
)
from airflow_provider_castore_dam.stores.demo import DEMO_EVENTS
from airflow_provider_castore_dam.stores.postgres.tables import copy_events, create_castore_table
from tests.airflow.connections import (
    event_store_connection,
    message_channel_connection,
    set_connection,
)
from tests.bad_input.conftest import EVENT_STORE_CONN, MESSAGE_CHANNEL_CONN
from tests.channels.aws import create_bus_to_queue, receive_all
from tests.stores.dynamodb_tables import create_table, put_events

SSL_MODES = "disable, allow, prefer, require, verify-ca, verify-full"


def pour_pokemons():
    return PourEventStoreEventsOperator(task_id="pour", event_store_id="POKEMONS").execute({})


def postgres_connection(dsn: str, table: str = "event", **extra) -> dict:
    params = conninfo_to_dict(dsn)
    return {
        "conn_type": "castore_event_store",
        "host": params["host"],
        "port": int(params.get("port", 5432)),
        "login": params.get("user"),
        "schema": params["dbname"],
        "extra": {"kind": "postgres", "table": table, **extra},
    }


@pytest.fixture
def pokemons_table(postgres_database):
    """The demo POKEMONS store in a Castore table ``event``; returns the DSN."""
    create_castore_table(postgres_database, "event", aggregate_id_type="VARCHAR(64)")
    copy_events(postgres_database, [("POKEMONS", event) for event in DEMO_EVENTS["POKEMONS"]])
    return postgres_database


def row_count(dsn: str) -> int:
    import psycopg

    with psycopg.connect(dsn) as connection:
        row = connection.execute('SELECT count(*) FROM "event"').fetchone()
    return int(row[0]) if row else -1


LOOPBACK_POSTGRES = {"conn_type": "castore_event_store", "host": "127.0.0.1"}


@pytest.mark.parametrize(
    ("connection", "fragment"),
    [
        ({"conn_type": "castore_event_store", "extra": {"kind": "cassandra"}}, "kind 'cassandra'"),
        ({"conn_type": "castore_event_store", "extra": {}}, "has kind None; expected one of"),
        ({"conn_type": "castore_event_store", "extra": "{not json"}, "extra of connection"),
        (
            {"conn_type": "castore_event_store", "extra": "[1, 2]"},
            "must be a JSON object, not list",
        ),
        (
            {"conn_type": "postgres", "extra": {"kind": "postgres"}},
            "has type 'postgres'; expected 'castore_event_store'",
        ),
        (
            {"conn_type": "castore_event_store", "extra": {"kind": "dynamodb-legacy"}},
            "needs 'table' (the DynamoDB table name)",
        ),
        ({"conn_type": "castore_event_store", "extra": {"kind": "postgres"}}, "needs a host"),
        (
            {**LOOPBACK_POSTGRES, "extra": {"kind": "postgres", "table": 42}},
            "has table 42; expected a string",
        ),
        (
            {**LOOPBACK_POSTGRES, "extra": {"kind": "postgres", "sslmode": "bogus"}},
            f"has sslmode 'bogus'; expected one of {SSL_MODES}",
        ),
        (
            {**LOOPBACK_POSTGRES, "extra": {"kind": "postgres", "connect_timeout": "soon"}},
            "has connect_timeout 'soon'; expected a whole number",
        ),
        (
            event_store_connection("dynamodb-single-table", table=["events"]),
            "has table ['events']; expected a string",
        ),
        (
            event_store_connection("dynamodb-single-table", table="events", region_name=5),
            "has region_name 5; expected a string",
        ),
        (
            event_store_connection("dynamodb-single-table", table="events", aws_conn_id="aws_prod"),
            "has aws_conn_id 'aws_prod', which is not an Airflow connection",
        ),
    ],
)
def test_misconfigured_event_store_connection(monkeypatch, queue, connection, fragment):
    set_connection(monkeypatch, EVENT_STORE_CONN, **connection)

    with pytest.raises(ConnectionConfigError) as raised:
        pour_pokemons()

    assert f"connection {EVENT_STORE_CONN!r}" in str(raised.value)
    assert fragment in str(raised.value)
    assert queue.received() == []


def sqs(**extra):
    return lambda url: message_channel_connection("sqs", **{"queue_url": url, **extra})


@pytest.mark.parametrize(
    ("connection", "fragment"),
    [
        (lambda _: message_channel_connection("kafka"), "has kind 'kafka'; expected one of"),
        (lambda _: message_channel_connection("sqs"), "needs 'queue_url' (the SQS queue URL)"),
        (
            lambda _: message_channel_connection("eventbridge"),
            "needs 'event_bus_name' (the EventBridge bus name)",
        ),
        (lambda _: {"conn_type": "castore_message_channel", "extra": "nope"}, "not valid JSON"),
        (
            lambda url: {"conn_type": "aws", "extra": {"kind": "sqs", "queue_url": url}},
            "has type 'aws'; expected 'castore_message_channel'",
        ),
        (sqs(fifo_deduplication="x"), "has fifo_deduplication 'x'; expected one of castore, run"),
        (
            sqs(fifo_deduplication="run"),
            "fifo_deduplication='run' needs a FIFO queue (URL ending in .fifo)",
        ),
        (lambda _: message_channel_connection("sqs", queue_url=123), "has queue_url 123"),
        (
            lambda _: message_channel_connection("sqs", queue_url="replays"),
            "queue_url 'replays' is not an SQS queue URL: it is not an http(s) URL",
        ),
        (
            lambda url: message_channel_connection("sqs", queue_url=f"{url}?Action=PurgeQueue"),
            "?Action=PurgeQueue' is not an SQS queue URL: it has a query string",
        ),
        (
            lambda url: message_channel_connection("sqs", queue_url=f"{url}/../../other"),
            "/../../other' is not an SQS queue URL: its path is not /<account id>/<queue name>",
        ),
        (
            lambda _: message_channel_connection("eventbridge", event_bus_name="castore bus"),
            "event_bus_name 'castore bus' is not an EventBridge bus name",
        ),
        (
            lambda _: message_channel_connection(
                "eventbridge", event_bus_name='castore","Source":"evil'
            ),
            'event_bus_name \'castore","Source":"evil\' is not an EventBridge bus name',
        ),
        (sqs(s3_offload_bucket=7), "has s3_offload_bucket 7; expected a string"),
        (
            sqs(s3_offload_bucket="offload", s3_url_expiry_seconds="soon"),
            "has s3_url_expiry_seconds 'soon'; expected a whole number",
        ),
        (
            sqs(s3_offload_bucket="offload", s3_url_expiry_seconds=0),
            "url_expiry_seconds must be an integer from 1 to 604800, not 0",
        ),
        (sqs(aws_conn_id="aws_prod"), "has aws_conn_id 'aws_prod', which is not an Airflow conn"),
    ],
)
def test_misconfigured_message_channel_connection(
    monkeypatch, queue, demo_store, connection, fragment
):
    set_connection(monkeypatch, MESSAGE_CHANNEL_CONN, **connection(queue.url))

    with pytest.raises(ConnectionConfigError) as raised:
        pour_pokemons()

    assert f"connection {MESSAGE_CHANNEL_CONN!r}" in str(raised.value)
    assert fragment in str(raised.value)
    assert queue.received() == []


def test_queue_url_with_credentials_is_refused_without_repeating_them(
    monkeypatch, queue, demo_store
):
    url = queue.url.replace("://", "://reader:hunter22@")
    set_connection(
        monkeypatch, MESSAGE_CHANNEL_CONN, **message_channel_connection("sqs", queue_url=url)
    )

    with pytest.raises(ConnectionConfigError) as raised:
        pour_pokemons()

    assert "queue_url must not carry credentials (user:password@)" in str(raised.value)
    assert "hunter22" not in str(raised.value)
    assert queue.received() == []


def test_unknown_demo_store_id(queue, demo_store):
    with pytest.raises(InvalidPourInputError) as raised:
        PourEventStoreEventsOperator(task_id="pour", event_store_id="POKEMON").execute({})

    assert str(raised.value) == (
        "event store id 'POKEMON' is not a store of the in-memory-demo connection "
        "'castore_event_store_default'; it has POKEMONS, TRAINERS"
    )
    assert queue.received() == []


def test_unknown_postgres_store_id_pours_nothing_and_says_which_ids_exist(
    monkeypatch, queue, pokemons_table, caplog
):
    """A store without events cannot be told from a misspelt one: by design this is a warning
    naming the id and the ids the table holds, not an error."""
    set_connection(monkeypatch, EVENT_STORE_CONN, **postgres_connection(pokemons_table))

    with caplog.at_level("WARNING", logger="airflow_provider_castore_dam"):
        result = PourEventStoreEventsOperator(task_id="pour", event_store_id="POKEMON").execute({})

    assert result["poured_event_count"] == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any(
        "event store 'POKEMON' has no aggregates" in text
        and "Event store ids found in the table: POKEMONS" in text
        for text in warnings
    )
    assert queue.received() == []


@pytest.mark.parametrize(
    ("table", "fragment"),
    [
        ("nowhere", 'table "nowhere" does not exist'),
        ('event"; DROP TABLE event; --', 'table "event""; DROP TABLE event; --" does not exist'),
        (
            "public.event; DELETE FROM event",
            'table "public"."event; DELETE FROM event" does not exist',
        ),
        ("public.event.x", "table 'public.event.x' is not 'table' or 'schema.table'"),
    ],
)
def test_missing_or_injected_postgres_table(monkeypatch, queue, pokemons_table, table, fragment):
    set_connection(monkeypatch, EVENT_STORE_CONN, **postgres_connection(pokemons_table, table))

    with pytest.raises(EventStoreError) as raised:
        pour_pokemons()

    assert fragment in str(raised.value)
    assert row_count(pokemons_table) == len(DEMO_EVENTS["POKEMONS"])  # nothing dropped
    assert queue.received() == []


@pytest.mark.parametrize("read", ["scan", "query"])
def test_collection_with_a_missing_dynamodb_table_publishes_nothing(monkeypatch, queue, aws, read):
    """POKEMONS's table is there and full: the pour still fails before its first message."""
    dynamodb = aws.client("dynamodb")
    create_table(dynamodb, "legacy-POKEMONS", "legacy")
    put_events(dynamodb, "legacy-POKEMONS", "POKEMONS", DEMO_EVENTS["POKEMONS"], "legacy")
    set_connection(
        monkeypatch,
        EVENT_STORE_CONN,
        **event_store_connection(
            "dynamodb-legacy", table="legacy-{event_store_id}", dynamodb_read=read
        ),
    )

    with pytest.raises(EventStoreError) as raised:
        PourEventStoreCollectionEventsOperator(
            task_id="pour", event_store_ids=["POKEMONS", "TRAINERS"]
        ).execute({})

    assert "DynamoDB table 'legacy-TRAINERS'" in str(raised.value)
    assert "does not exist" in str(raised.value)
    assert queue.received() == []


def test_injected_dynamodb_table_name(monkeypatch, queue, aws):
    name = "events; DROP TABLE x"
    set_connection(
        monkeypatch, EVENT_STORE_CONN, **event_store_connection("dynamodb-single-table", table=name)
    )

    with pytest.raises(EventStoreError) as raised:
        pour_pokemons()

    assert f"DynamoDB table {name!r}" in str(raised.value)
    assert queue.received() == []


def test_non_existent_bus(monkeypatch, aws, demo_store):
    """A typo in the bus name: the real bus's rule target (an SQS queue) receives nothing."""
    sqs, events = aws.client("sqs"), aws.client("events")
    target = create_bus_to_queue(events, sqs, "castore-bus", "projection", ["POKEMONS"])
    set_connection(
        monkeypatch,
        MESSAGE_CHANNEL_CONN,
        **message_channel_connection("eventbridge", event_bus_name="castore-buss"),
    )

    with pytest.raises(PourInterruptedError) as raised:
        pour_pokemons()

    message = str(raised.value)
    assert "EventBridge bus castore-buss: 0 of 6 messages confirmed" in message
    assert "ResourceNotFoundException" in message
    assert isinstance(raised.value.__cause__, MessageChannelError)
    assert raised.value.result["poured_event_count"] == 0
    assert receive_all(sqs, target) == []


def test_non_existent_queue(monkeypatch, queue, demo_store):
    typo = queue.url + "-typo"
    set_connection(
        monkeypatch, MESSAGE_CHANNEL_CONN, **message_channel_connection("sqs", queue_url=typo)
    )

    with pytest.raises(PourInterruptedError) as raised:
        pour_pokemons()

    assert f"SQS queue {typo}: 0 of 6 messages confirmed" in str(raised.value)
    assert "NonExistentQueue" in str(raised.value)
    assert raised.value.result["poured_event_count"] == 0
    assert queue.received() == []


def test_oversized_message_without_offload(monkeypatch, queue, postgres_database):
    """The store's first event is over SQS's 256 KiB: nothing of the pour is published."""
    big = {
        "aggregateId": "mewtwo1",
        "version": 1,
        "type": "APPEARED",
        "timestamp": "2020-01-01T00:00:00.000Z",
        "payload": {"sprite": "x" * 270_000},
    }
    create_castore_table(postgres_database, "event", aggregate_id_type="VARCHAR(64)")
    copy_events(
        postgres_database,
        [("POKEMONS", big)] + [("POKEMONS", event) for event in DEMO_EVENTS["POKEMONS"]],
    )
    set_connection(monkeypatch, EVENT_STORE_CONN, **postgres_connection(postgres_database))

    with pytest.raises(PourInterruptedError) as raised:
        pour_pokemons()

    message = str(raised.value)
    assert "'mewtwo1'" in message and "version 1" in message
    assert "above the 262144-byte limit, and the channel has no S3 offload" in message
    assert raised.value.result["poured_event_count"] == 0
    assert queue.received() == []
