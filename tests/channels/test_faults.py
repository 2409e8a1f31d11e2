"""Lost entries, throttled calls and sender faults, on a real queue through a faulty client."""

from __future__ import annotations

import time

import pytest

from airflow_provider_castore_dam.channels import DEFAULT_MAX_IN_FLIGHT
from airflow_provider_castore_dam.channels.batch_retry import RetryPolicy
from airflow_provider_castore_dam.channels.sqs import SQSMessageChannel
from airflow_provider_castore_dam.dam import pour_event_store_events
from airflow_provider_castore_dam.errors import MessageChannelError, PourInterruptedError
from tests.channels.aws import (
    FAST_RETRIES,
    QueueDrainer,
    create_queue,
    message_ids,
    receive_all,
)
from tests.channels.engine_stores import store_of
from tests.channels.faults import FaultySQSClient


def faulty_channel(moto, queue_url, policy=FAST_RETRIES, max_in_flight=1, **faults):
    client = FaultySQSClient(moto.client("sqs"), **faults)
    channel = SQSMessageChannel(
        queue_url, client=client, retry_policy=policy, max_in_flight=max_in_flight
    )
    return channel, client


def test_ten_thousand_events_through_faults_all_arrive_once(moto_reset):
    sqs = moto_reset.client("sqs")
    queue_url = create_queue(sqs, "faulty")
    consumer = QueueDrainer(sqs, queue_url)
    channel, client = faulty_channel(
        moto_reset,
        queue_url,
        max_in_flight=DEFAULT_MAX_IN_FLIGHT,
        entry_failure_rate=0.2,
        throttle_rate=0.1,
        after_send=consumer.sent,
    )
    store = store_of(10_000, versions=10)

    result = pour_event_store_events(store, channel)

    consumer.drain()
    received = message_ids(consumer.received)
    expected = {f"S#a{n:05d}#{v}" for n in range(1000) for v in range(1, 11)}
    assert len(received) == len(set(received)) == 10_000  # none lost, none twice
    assert set(received) == expected
    assert result["poured_event_count"] == len(received)
    assert sum(call.throttled for call in client.calls) > 50  # the faults did happen
    assert len(client.calls) > 1000 * 1.3


def test_spent_budget_reports_the_confirmed_messages(moto_reset):
    sqs = moto_reset.client("sqs")
    queue_url = create_queue(sqs, "budget")
    lost = "S#a00013#1"
    policy = RetryPolicy(max_attempts=3, initial_backoff_seconds=0.001, max_backoff_seconds=0.01)
    channel, client = faulty_channel(moto_reset, queue_url, policy, always_fail=[lost])

    with pytest.raises(PourInterruptedError) as raised:
        pour_event_store_events(store_of(25), channel)

    error = raised.value.__cause__
    assert isinstance(error, MessageChannelError)
    assert error.confirmed_count == 9
    assert "9 of 10 messages confirmed" in str(error)
    assert "retry budget was spent (3 attempts" in str(error)
    assert "InternalError" in str(error) and lost in str(error)
    assert raised.value.result["poured_event_count"] == 19
    assert sum(lost in call.message_ids for call in client.calls) == 3
    received = message_ids(receive_all(sqs, queue_url))
    assert len(received) == 19 and lost not in received
    assert set(received) == {f"S#a{n:05d}#1" for n in range(20)} - {lost}


def test_sender_fault_is_not_retried(moto_reset):
    sqs = moto_reset.client("sqs")
    queue_url = create_queue(sqs, "sender")
    refused = "S#a00013#1"
    channel, client = faulty_channel(moto_reset, queue_url, sender_faults=[refused])

    with pytest.raises(PourInterruptedError) as raised:
        pour_event_store_events(store_of(25), channel)

    error = raised.value.__cause__
    assert isinstance(error, MessageChannelError)
    assert error.confirmed_count == 9
    assert "9 of 10 messages confirmed" in str(error) and "non-retryable" in str(error)
    assert "InvalidParameterValue" in str(error)
    assert sum(refused in call.message_ids for call in client.calls) == 1
    assert len(client.calls) == 2  # the first batch, then the refused one's: no retry
    assert raised.value.result["poured_event_count"] == 19
    assert len(receive_all(sqs, queue_url)) == 19


def test_throttled_calls_stop_at_the_attempt_budget(moto_reset):
    sqs = moto_reset.client("sqs")
    queue_url = create_queue(sqs, "throttled")
    policy = RetryPolicy(max_attempts=4, initial_backoff_seconds=0.001, max_backoff_seconds=0.01)
    channel, client = faulty_channel(moto_reset, queue_url, policy, throttle_rate=1.0)

    with pytest.raises(MessageChannelError) as raised:
        channel.publish_messages(
            [{"eventStoreId": "S", "aggregateId": "a", "initialEventTimestamp": "t"}],
            replay=True,
        )

    assert raised.value.confirmed_count == 0
    assert "ThrottlingException" in str(raised.value)
    assert len(client.calls) == 4


def test_seconds_budget_bounds_the_retries(moto_reset):
    sqs = moto_reset.client("sqs")
    queue_url = create_queue(sqs, "seconds")
    policy = RetryPolicy(
        max_attempts=None, max_seconds=0.5, initial_backoff_seconds=0.05, max_backoff_seconds=0.1
    )
    channel, client = faulty_channel(moto_reset, queue_url, policy, always_fail=["S#a"])
    started = time.monotonic()

    with pytest.raises(MessageChannelError) as raised:
        channel.publish_messages(
            [{"eventStoreId": "S", "aggregateId": "a", "initialEventTimestamp": "t"}],
            replay=True,
        )

    assert 0.45 <= time.monotonic() - started < 2
    assert "retry budget was spent" in str(raised.value)
    assert len(client.calls) >= 5


def test_connection_errors_are_retried_then_reported(moto_reset):
    policy = RetryPolicy(max_attempts=2, initial_backoff_seconds=0, max_backoff_seconds=0)
    channel = SQSMessageChannel(
        "http://127.0.0.1:1/123456789012/q",
        session=moto_reset.session(),
        endpoint_url="http://127.0.0.1:1",
        retry_policy=policy,
    )

    with pytest.raises(MessageChannelError) as raised:
        channel.publish_messages(
            [{"eventStoreId": "S", "aggregateId": "a", "initialEventTimestamp": "t"}],
            replay=True,
        )

    assert raised.value.confirmed_count == 0
    assert "EndpointConnectionError" in str(raised.value)
    assert "2 attempts" in str(raised.value)
