"""EventBridgeMessageChannel through whole-call faults on a real moto bus (a rule forwards its
events to a queue, where they are read back): throttling and 5xx from a scripted wrapper around
the real client, connections reset by a TCP proxy; permanent errors."""

from __future__ import annotations

import json
from typing import Any

import pytest

from airflow_provider_castore_dam.channels.eventbridge import EventBridgeMessageChannel
from airflow_provider_castore_dam.dam import pour_event_store_events
from airflow_provider_castore_dam.errors import MessageChannelError, PourInterruptedError
from airflow_provider_castore_dam.retry import RetryPolicy
from tests.channels.aws import create_bus_to_queue, receive_all, unique
from tests.channels.engine_stores import store_of
from tests.retries.aws_faults import (
    ACCESS_DENIED,
    INTERNAL_FAILURE,
    SERVICE_UNAVAILABLE,
    THROTTLING,
    VALIDATION,
    ScriptedFaults,
    fault,
)
from tests.retries.helpers import FAST, assert_retry_lines, attempt_numbers, retry_lines

INTERNAL_EXCEPTION = fault("InternalException", "Internal service error", 500)
COUNT = 25  # three publish calls: 10, 10, 5
IDS = [f"a{n:05d}" for n in range(COUNT)]


@pytest.fixture
def bus(moto_server) -> tuple[str, Any, str]:
    events, sqs = moto_server.client("events"), moto_server.client("sqs")
    name = unique("bus")
    queue_url = create_bus_to_queue(events, sqs, name, unique("bus-target"), ["S"])
    return name, sqs, queue_url


def arrived(sqs: Any, queue_url: str) -> list[dict[str, Any]]:
    return [json.loads(message["Body"]) for message in receive_all(sqs, queue_url)]


def assert_all_once(sqs: Any, queue_url: str) -> None:
    events = arrived(sqs, queue_url)
    assert sorted(e["detail"]["event"]["aggregateId"] for e in events) == IDS
    for event in events:
        assert (event["source"], event["detail-type"]) == ("S", "__REPLAYED__")
        n = int(event["detail"]["event"]["aggregateId"][1:])
        assert event["detail"]["event"]["payload"] == {"n": n, "version": 1}


@pytest.mark.parametrize(
    "fault_",
    [THROTTLING, INTERNAL_FAILURE, INTERNAL_EXCEPTION, SERVICE_UNAVAILABLE],
    ids=["throttling", "500-failure", "500-exception", "503"],
)
def test_whole_call_throttling_and_server_errors_are_retried(moto_server, bus, fault_, caplog):
    name, sqs, queue_url = bus
    client = ScriptedFaults(moto_server.client("events"), put_events=[fault_, None, fault_])
    channel = EventBridgeMessageChannel(name, client=client, retry_policy=FAST, max_in_flight=1)

    result = pour_event_store_events(store_of(COUNT), channel)

    assert result["poured_event_count"] == COUNT
    assert client.calls["put_events"] == 5
    assert_all_once(sqs, queue_url)
    code = fault_("PutEvents").response["Error"]["Code"]
    lines = assert_retry_lines(
        caplog,
        count=2,
        operation=f"PutEvents to EventBridge bus {name}: 10 of 10 entries",
        reasons=[f"(first: {code}: "],
    )
    assert attempt_numbers(lines) == [1, 1]


@pytest.mark.parametrize("deliver", [False, True], ids=["request-lost", "answer-lost"])
def test_connection_resets_are_retried(moto_server, moto_proxy, bus, deliver, caplog):
    name, sqs, queue_url = bus
    channel = EventBridgeMessageChannel(
        name,
        session=moto_server.session(),
        endpoint_url=f"http://127.0.0.1:{moto_proxy.port}",
        retry_policy=FAST,
        max_in_flight=1,
    )
    moto_proxy.reset_requests(2, deliver=deliver)

    pour_event_store_events(store_of(COUNT), channel)

    assert moto_proxy.resets == 2
    events = arrived(sqs, queue_url)
    ids = sorted(e["detail"]["event"]["aggregateId"] for e in events)
    if deliver:  # the bus took the first batch three times (at least once delivery)
        assert ids == sorted(IDS + IDS[:10] * 2)
    else:
        assert ids == IDS
    lines = assert_retry_lines(
        caplog, count=2, operation="PutEvents to EventBridge bus", reasons=["ConnectionClosed"]
    )
    assert attempt_numbers(lines) == [1, 2]


@pytest.mark.parametrize("what", ["missing bus", "access denied", "validation"])
def test_permanent_errors_fail_at_once(moto_server, bus, what, caplog):
    name, sqs, queue_url = bus
    if what == "missing bus":
        name += "-gone"
        script: list[Any] = []
        code, service_message = "ResourceNotFoundException", f"Event bus {name} does not exist."
    else:
        fault_ = ACCESS_DENIED if what == "access denied" else VALIDATION
        script = [fault_]
        error = fault_("PutEvents").response["Error"]
        code, service_message = error["Code"], error["Message"]
    client = ScriptedFaults(moto_server.client("events"), put_events=script)
    channel = EventBridgeMessageChannel(name, client=client, retry_policy=FAST, max_in_flight=1)

    with pytest.raises(PourInterruptedError) as raised:
        pour_event_store_events(store_of(COUNT), channel)

    error = raised.value.__cause__
    assert isinstance(error, MessageChannelError)
    assert error.confirmed_count == 0
    assert "non-retryable error (not retried)" in str(error)
    assert f"{code}: {service_message}" in str(error)
    assert raised.value.result["poured_event_count"] == 0
    assert client.calls["put_events"] == 1
    assert arrived(sqs, queue_url) == []
    assert retry_lines(caplog) == []


def test_whole_call_retries_stop_at_the_budget(moto_server, bus, caplog):
    name, sqs, queue_url = bus
    client = ScriptedFaults(moto_server.client("events"), put_events=[THROTTLING] * 10)
    policy = RetryPolicy(max_attempts=3, initial_backoff_seconds=0.001, max_backoff_seconds=0.01)
    channel = EventBridgeMessageChannel(name, client=client, retry_policy=policy, max_in_flight=1)

    with pytest.raises(PourInterruptedError) as raised:
        pour_event_store_events(store_of(COUNT), channel)

    assert "retry budget was spent (3 attempts" in str(raised.value.__cause__)
    assert "ThrottlingException: Rate exceeded" in str(raised.value.__cause__)
    assert raised.value.result["poured_event_count"] == 0
    assert client.calls["put_events"] == 3
    assert arrived(sqs, queue_url) == []
    assert attempt_numbers(retry_lines(caplog)) == [1, 2]
