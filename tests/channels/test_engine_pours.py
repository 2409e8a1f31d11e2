"""The pour engine end to end into SQS: batches of 10, rate limit per message."""

from __future__ import annotations

import json
import threading
import time

import pytest

from airflow_provider_castore_dam.channels import DEFAULT_MAX_IN_FLIGHT
from airflow_provider_castore_dam.channels.sqs import SQSMessageChannel
from airflow_provider_castore_dam.dam import (
    pour_event_store_aggregate_ids,
    pour_event_store_events,
)
from airflow_provider_castore_dam.stores import InMemoryEventStore
from tests.channels.aws import (
    FAST_RETRIES,
    assert_versions_in_order,
    create_queue,
    message_ids,
    receive_all,
)
from tests.channels.engine_stores import store_of
from tests.channels.faults import FaultySQSClient


def test_store_pour_sends_one_request_per_ten_messages(moto_reset):
    sqs = moto_reset.client("sqs")
    queue_url = create_queue(sqs, "pour")
    client = FaultySQSClient(moto_reset.client("sqs"))
    channel = SQSMessageChannel(
        queue_url, client=client, retry_policy=FAST_RETRIES, max_in_flight=1
    )
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
    channel = SQSMessageChannel(queue_url, client=client, max_in_flight=1)

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


def interleaved_store(aggregates: int, versions: int, store_id: str = "S") -> InMemoryEventStore:
    """Every aggregate's version v a minute after its version v - 1: in pour order, all the
    first versions, then all the second ones..."""
    events = [
        {
            "aggregateId": f"a{n:05d}",
            "version": version,
            "type": "HAPPENED",
            "timestamp": f"2021-01-01T00:{version:02d}:{n // 1000:02d}.{n % 1000:03d}Z",
        }
        for n in range(aggregates)
        for version in range(1, versions + 1)
    ]
    return InMemoryEventStore(store_id, events)


class OverlapCountingClient:
    """Forwards send_message_batch and records how many calls were in flight at once."""

    def __init__(self, client, delay: float = 0.005) -> None:
        self._client, self._delay = client, delay
        self._lock = threading.Lock()
        self._running = 0
        self.most_at_once = 0

    def send_message_batch(self, **request):
        with self._lock:
            self._running += 1
            self.most_at_once = max(self.most_at_once, self._running)
        try:
            time.sleep(self._delay)  # the network, during which the other calls proceed
            return self._client.send_message_batch(**request)
        finally:
            with self._lock:
                self._running -= 1


@pytest.mark.parametrize("fifo", [False, True], ids=["standard", "fifo"])
def test_calls_in_flight_keep_each_aggregate_in_order(moto_reset, fifo):
    sqs = moto_reset.client("sqs")
    queue_url = create_queue(sqs, "in-flight", fifo=fifo)
    client = OverlapCountingClient(moto_reset.client("sqs"))
    channel = SQSMessageChannel(queue_url, client=client)
    store = interleaved_store(aggregates=200, versions=3)

    result = pour_event_store_events(store, channel)

    received = message_ids(receive_all(sqs, queue_url))
    expected = {f"S#a{n:05d}#{v}" for n in range(200) for v in range(1, 4)}
    assert result["poured_event_count"] == 600
    assert len(received) == len(set(received)) == 600
    assert set(received) == expected
    assert_versions_in_order(received)
    assert client.most_at_once == DEFAULT_MAX_IN_FLIGHT
