"""The pour engine end to end into SQS: batches of 10, rate limit per message."""

from __future__ import annotations

import json

from airflow_provider_castore_dam.channels.sqs import SQSMessageChannel
from airflow_provider_castore_dam.dam import (
    pour_event_store_aggregate_ids,
    pour_event_store_events,
)
from tests.channels.aws import FAST_RETRIES, create_queue, message_ids, receive_all
from tests.channels.engine_stores import store_of
from tests.channels.faults import FaultySQSClient


def test_store_pour_sends_one_request_per_ten_messages(moto_reset):
    sqs = moto_reset.client("sqs")
    queue_url = create_queue(sqs, "pour")
    client = FaultySQSClient(moto_reset.client("sqs"))
    channel = SQSMessageChannel(queue_url, client=client, retry_policy=FAST_RETRIES)
    store = store_of(95)

    result = pour_event_store_events(store, channel)

    assert result["poured_event_count"] == 95
    assert [len(call.message_ids) for call in client.calls] == [10] * 9 + [5]
    received = receive_all(sqs, queue_url)
    assert message_ids(received) == [f"S#a{n:05d}#1" for n in range(95)]
    assert all(json.loads(m["Body"])["eventStoreId"] == "S" for m in received)


def test_aggregate_ids_pour_into_fifo_queue(moto_reset):
    sqs = moto_reset.client("sqs")
    queue_url = create_queue(sqs, "aggregates", fifo=True)
    client = FaultySQSClient(moto_reset.client("sqs"))
    channel = SQSMessageChannel(queue_url, client=client)

    result = pour_event_store_aggregate_ids(store_of(23), channel)

    assert result["poured_aggregate_id_count"] == 23
    assert len(client.calls) == 3
    received = receive_all(sqs, queue_url)
    assert message_ids(received) == [f"S#a{n:05d}" for n in range(23)]
    assert [m["Attributes"]["MessageGroupId"] for m in received] == message_ids(received)


def test_rate_limit_holds_per_message(moto_reset):
    sqs = moto_reset.client("sqs")
    queue_url = create_queue(sqs, "paced")
    client = FaultySQSClient(moto_reset.client("sqs"))
    channel = SQSMessageChannel(queue_url, client=client)

    result = pour_event_store_events(store_of(50), channel, rate_limit=20)

    assert result["poured_event_count"] == 50
    calls = client.calls
    assert [len(call.message_ids) for call in calls] == [10] * 5
    # 10 messages per 0.5 s. The bound on every one-second window is checked on a fake clock
    # (tests/engine/test_rate_limit.py): here, a loaded machine delays when a call reaches the
    # client by more or less, which shifts the windows, but never shortens the whole pour.
    assert calls[-1].at - calls[0].at >= 4 * 0.5 - 0.01
    assert len(receive_all(sqs, queue_url)) == 50
