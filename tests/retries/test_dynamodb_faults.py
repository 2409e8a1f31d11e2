"""DynamoDBEventStore through faults on a real moto server: throttling and 5xx answers from
a scripted wrapper around the real client, connections reset by a TCP proxy; permanent errors.

Faults are injected below ``Table.call``, so they reach every request of the store:
DescribeTable, the listing Query and the per-aggregate Queries, which the merge path runs on
prefetch threads.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from botocore.config import Config

from airflow_provider_castore_dam.channels import InMemoryMessageChannel
from airflow_provider_castore_dam.dam import pour_aggregate_events, pour_event_store_events
from airflow_provider_castore_dam.errors import EventStoreError
from airflow_provider_castore_dam.retry import RetryPolicy
from airflow_provider_castore_dam.stores.dynamodb import DynamoDBEventStore
from tests.engine import oracle
from tests.retries.aws_faults import (
    ACCESS_DENIED,
    BAD_GATEWAY,
    INTERNAL_SERVER_ERROR,
    REQUEST_LIMIT,
    SERVICE_UNAVAILABLE,
    THROTTLING,
    THROUGHPUT,
    VALIDATION,
    ScriptedFaults,
)
from tests.retries.helpers import FAST, assert_retry_lines, attempt_numbers, canon, retry_lines
from tests.stores.dynamodb_tables import castore_tables, unique_table_name

STORE = "POKEMONS"


def _events() -> list[dict[str, Any]]:
    events = []
    for n in range(40):
        for version in range(1, 4):
            events.append(
                {
                    "aggregateId": f"pokemon-{n:02d}",
                    "version": version,
                    "type": "APPEARED" if version == 1 else "LEVELLED_UP",
                    "timestamp": f"2022-01-0{1 + n % 3}T00:00:{n:02d}.00{version}Z",
                    "payload": {"n": n, "level": version * 10},
                }
            )
    return events


EVENTS = _events()
EXPECTED = [{"eventStoreId": STORE, "event": e} for _, e in oracle.pour_order({STORE: EVENTS})]


@pytest.fixture(scope="module")
def table(moto_server) -> str:
    ddb = moto_server.client("dynamodb")
    other = [{**e, "aggregateId": "t-" + e["aggregateId"]} for e in EVENTS[:9]]
    return castore_tables(ddb, {STORE: EVENTS, "TRAINERS": other})[STORE]


def published(channel: InMemoryMessageChannel) -> list[dict[str, Any]]:
    assert all(message.replay for message in channel.messages)
    return [message.message for message in channel.messages]


def faulty_store(moto, table: str, policy: RetryPolicy = FAST, **scripts: Any):
    client = ScriptedFaults(moto.client("dynamodb"), **scripts)
    store = DynamoDBEventStore(STORE, table, client=client, retry_policy=policy)
    return store, client


# --------------------------------------------------------------------------- transient


@pytest.mark.parametrize(
    "fault",
    [
        THROUGHPUT,
        THROTTLING,
        REQUEST_LIMIT,
        INTERNAL_SERVER_ERROR,
        SERVICE_UNAVAILABLE,
        BAD_GATEWAY,
    ],
    ids=["throughput", "throttling", "request-limit", "500", "503", "502"],
)
def test_throttling_and_server_errors_are_retried(moto_server, table, fault, caplog):
    code = fault("Query").response["Error"]["Code"]
    store, client = faulty_store(
        moto_server,
        table,
        describe_table=[fault],
        query=[None, fault, fault, None, None, fault, None, fault],
    )
    channel = InMemoryMessageChannel()

    with store:
        result = pour_event_store_events(store, channel)

    got = published(channel)
    assert len(got) == len(EXPECTED) and canon(got) == canon(EXPECTED)
    assert result["poured_event_count"] == len(EVENTS)
    assert client.faults == {"describe_table": 1, "query": 4}
    lines = assert_retry_lines(caplog, count=5, operation="DynamoDB ", reasons=[code])
    assert sum(f"DynamoDB DescribeTable on table {table!r}" in line for line in lines) == 1
    assert sum(f"DynamoDB Query on table {table!r}" in line for line in lines) == 4


def test_one_aggregate_read_through_throttling(moto_server, table, caplog):
    store, client = faulty_store(moto_server, table, query=[THROUGHPUT, THROUGHPUT, THROUGHPUT])
    channel = InMemoryMessageChannel()

    pour_aggregate_events(store, channel, "pokemon-07")

    want = [{"eventStoreId": STORE, "event": e} for e in EVENTS if e["aggregateId"] == "pokemon-07"]
    assert canon(published(channel)) == canon(want)
    assert client.calls["query"] == 4
    lines = assert_retry_lines(
        caplog,
        count=3,
        operation="DynamoDB Query",
        reasons=["ProvisionedThroughputExceededException: The level of configured"],
    )
    assert attempt_numbers(lines) == [1, 2, 3]


@pytest.mark.parametrize("deliver", [False, True], ids=["request-lost", "answer-lost"])
def test_connection_resets_are_retried(moto_server, moto_proxy, table, deliver, caplog):
    store = DynamoDBEventStore(
        STORE,
        table,
        session=moto_server.session(),
        endpoint_url=f"http://127.0.0.1:{moto_proxy.port}",
        client_config=Config(proxies={}),
        retry_policy=FAST,
        max_workers=1,  # one request at a time: the resets hit the first three requests
    )
    moto_proxy.reset_requests(3, deliver=deliver)
    channel = InMemoryMessageChannel()

    with store:
        pour_event_store_events(store, channel)

    assert canon(published(channel)) == canon(EXPECTED)
    assert moto_proxy.resets == 3
    lines = assert_retry_lines(
        caplog, count=3, operation="DynamoDB ", reasons=["ConnectionClosedError"]
    )
    assert f"DynamoDB DescribeTable on table {table!r} failed in attempt 1" in lines[0]
    assert attempt_numbers(lines) == [1, 2, 3]


# --------------------------------------------------------------------------- bounds


def test_retries_stop_at_the_attempt_budget(moto_server, table, caplog):
    policy = RetryPolicy(max_attempts=3, initial_backoff_seconds=0.001, max_backoff_seconds=0.01)
    store, client = faulty_store(moto_server, table, policy, query=[THROUGHPUT] * 10)
    channel = InMemoryMessageChannel()

    with pytest.raises(EventStoreError) as raised:
        pour_aggregate_events(store, channel, "pokemon-01")

    message = str(raised.value)
    assert "ProvisionedThroughputExceededException: The level of configured" in message
    assert message.endswith("(gave up after 3 attempts)")
    assert client.calls["query"] == 3
    assert published(channel) == []
    assert attempt_numbers(retry_lines(caplog)) == [1, 2]


def test_retries_stop_at_the_seconds_budget(moto_server, table, caplog):
    policy = RetryPolicy(
        max_attempts=None, max_seconds=0.3, initial_backoff_seconds=0.02, max_backoff_seconds=0.05
    )
    store, client = faulty_store(moto_server, table, policy, query=[THROTTLING] * 1000)
    started = time.monotonic()

    with pytest.raises(EventStoreError, match="ThrottlingException: Rate exceeded"):
        store.get_events("pokemon-01")

    assert 0.3 <= time.monotonic() - started < 3
    assert len(retry_lines(caplog)) == client.calls["query"] - 1 >= 3


# --------------------------------------------------------------------------- permanent


@pytest.mark.parametrize(
    ("fault", "fragment"),
    [
        (ACCESS_DENIED, "refused the AWS credentials or permissions"),
        (VALIDATION, "Query on DynamoDB table"),
    ],
    ids=["access-denied", "validation"],
)
def test_permanent_errors_fail_at_once(moto_server, table, fault, fragment, caplog):
    store, client = faulty_store(moto_server, table, query=[fault] * 10)
    service = fault("Query").response["Error"]
    channel = InMemoryMessageChannel()
    started = time.monotonic()

    with pytest.raises(EventStoreError) as raised:
        pour_event_store_events(store, channel)

    assert time.monotonic() - started < 2
    assert fragment in str(raised.value)
    assert f"{service['Code']}: {service['Message']}" in str(raised.value)
    assert "gave up" not in str(raised.value)
    assert client.calls["query"] == 1
    assert published(channel) == []
    assert retry_lines(caplog) == []


def test_missing_table_fails_at_once(moto_server, caplog):
    name = unique_table_name("missing")
    real = moto_server.client("dynamodb")
    try:
        real.describe_table(TableName=name)
    except real.exceptions.ResourceNotFoundException as error:
        service_message = error.response["Error"]["Message"]
    store, client = faulty_store(moto_server, name, describe_table=[], query=[])  # counted
    channel = InMemoryMessageChannel()

    with pytest.raises(EventStoreError) as raised:
        pour_event_store_events(store, channel)

    assert "does not exist" in str(raised.value)
    assert service_message in str(raised.value)
    assert client.calls == {"describe_table": 1}
    assert published(channel) == []
    assert retry_lines(caplog) == []
