from __future__ import annotations

import json
import threading
import time

import pytest

from airflow_provider_castore_dam.channels import DEFAULT_MAX_IN_FLIGHT
from airflow_provider_castore_dam.channels.eventbridge import (
    EventBridgeMessageChannel,
    eventbridge_failures,
)
from airflow_provider_castore_dam.dam import pour_event_store_events
from airflow_provider_castore_dam.errors import MessageChannelError
from tests.channels.aws import (
    FAST_RETRIES,
    assert_versions_in_order,
    create_bus_to_queue,
    receive_all,
)
from tests.channels.test_engine_pours import interleaved_store

EVENT = {
    "eventStoreId": "POKEMONS",
    "event": {
        "aggregateId": "pikachu1",
        "version": 2,
        "type": "LEVELLED_UP",
        "timestamp": "2021-01-01T00:00:00.000Z",
        "payload": {"level": 42, "name": "ピカチュウ", "nested": {"a": [1.5, {"b": None}]}},
    },
}
EXISTS = {
    "eventStoreId": "TRAINERS",
    "aggregateId": "sacha",
    "initialEventTimestamp": "2020-12-01T00:00:00.000Z",
}


@pytest.fixture
def bus(moto_reset):
    events, sqs = moto_reset.client("events"), moto_reset.client("sqs")
    queue_url = create_bus_to_queue(events, sqs, "castore", "bus-target", ["POKEMONS", "TRAINERS"])
    return moto_reset, sqs, queue_url


def channel_for(moto, bus_name="castore", **options):
    return EventBridgeMessageChannel(
        bus_name, client=moto.client("events"), retry_policy=FAST_RETRIES, **options
    )


def arrived(sqs, queue_url):
    return [json.loads(message["Body"]) for message in receive_all(sqs, queue_url)]


def test_replayed_events_and_aggregate_exists_messages_arrive(bus):
    moto, sqs, queue_url = bus

    channel_for(moto).publish_messages([EVENT, EXISTS], replay=True)

    events = arrived(sqs, queue_url)
    assert [(e["detail-type"], e["source"], e["detail"]) for e in events] == [
        ("__REPLAYED__", "POKEMONS", EVENT),
        ("__AGGREGATE_EXISTS__", "TRAINERS", EXISTS),
    ]


def test_without_replay_the_detail_type_is_the_event_type(bus):
    moto, sqs, queue_url = bus

    channel_for(moto).publish_messages([EVENT, EXISTS], replay=False)

    assert [e["detail-type"] for e in arrived(sqs, queue_url)] == [
        "LEVELLED_UP",
        "__AGGREGATE_EXISTS__",
    ]


def test_ten_messages_make_one_put_events(bus):
    moto, sqs, queue_url = bus
    client = moto.client("events")
    calls = []
    original = client.put_events

    def spy(**kwargs):
        calls.append(kwargs["Entries"])
        return original(**kwargs)

    client.put_events = spy
    channel = EventBridgeMessageChannel("castore", client=client)
    messages = [
        {**EVENT, "event": {**EVENT["event"], "version": version}} for version in range(1, 11)
    ]

    channel.publish_messages(messages, replay=True)

    assert channel.max_batch_size == 10
    assert len(calls) == 1
    assert {entry["EventBusName"] for entry in calls[0]} == {"castore"}
    assert [e["detail"] for e in arrived(sqs, queue_url)] == messages


def test_a_rejected_entry_is_not_retried_and_the_rest_is_confirmed(bus):
    moto, sqs, queue_url = bus
    client = moto.client("events")
    calls = []
    original = client.put_events

    def spy(**kwargs):
        calls.append(len(kwargs["Entries"]))
        return original(**kwargs)

    client.put_events = spy
    channel = EventBridgeMessageChannel("castore", client=client, retry_policy=FAST_RETRIES)
    no_source = {**EXISTS, "eventStoreId": ""}  # moto (like AWS) refuses an empty Source

    with pytest.raises(MessageChannelError) as raised:
        channel.publish_messages([EVENT, no_source, EXISTS], replay=True)

    assert calls == [3]
    assert raised.value.confirmed_count == 2
    assert "2 of 3 messages confirmed" in str(raised.value)
    assert "InvalidArgument" in str(raised.value)
    assert [e["detail"] for e in arrived(sqs, queue_url)] == [EVENT, EXISTS]


def test_throttled_entries_are_retried_until_confirmed(bus):
    moto, sqs, queue_url = bus
    client = moto.client("events")
    original = client.put_events
    calls = []

    def flaky(**kwargs):
        calls.append(len(kwargs["Entries"]))
        if len(calls) == 1:  # first call: entry 1 throttled, others go through
            entries = kwargs["Entries"]
            sent = original(Entries=[entries[0], entries[2]])["Entries"]
            return {
                "FailedEntryCount": 1,
                "Entries": [
                    sent[0],
                    {"ErrorCode": "ThrottlingException", "ErrorMessage": "slow down"},
                    sent[1],
                ],
            }
        return original(**kwargs)

    client.put_events = flaky
    channel = EventBridgeMessageChannel("castore", client=client, retry_policy=FAST_RETRIES)
    second = {**EVENT, "event": {**EVENT["event"], "version": 3}}

    channel.publish_messages([EVENT, second, EXISTS], replay=True)

    assert calls == [3, 1]
    # the retried entry arrives after the entries that followed it
    assert [e["detail"] for e in arrived(sqs, queue_url)] == [EVENT, EXISTS, second]


def test_missing_bus_fails_the_call_without_retry(moto_reset):
    with pytest.raises(MessageChannelError) as raised:
        channel_for(moto_reset, "no-such-bus").publish_messages([EVENT], replay=True)

    assert raised.value.confirmed_count == 0
    assert "ResourceNotFoundException" in str(raised.value)


def test_failure_parsing():
    response = {
        "FailedEntryCount": 2,
        "Entries": [
            {"EventId": "a"},
            {"ErrorCode": "InternalFailure", "ErrorMessage": "oops"},
            {"ErrorCode": "MalformedDetail", "ErrorMessage": "bad"},
        ],
    }
    failures = eventbridge_failures([4, 5, 6, 7], response)
    assert sorted(failures) == [5, 6, 7]
    assert failures[5].retryable and not failures[6].retryable
    assert failures[7].code == "MissingFromResponse" and failures[7].retryable
    assert eventbridge_failures([0], {"FailedEntryCount": 1, "Entries": [{"EventId": "x"}]})


class SlowEventsClient:
    """Forwards put_events after a short wait (the network), counting calls at once."""

    def __init__(self, client) -> None:
        self._client, self._lock = client, threading.Lock()
        self._running = self.most_at_once = 0

    def put_events(self, **request):
        with self._lock:
            self._running += 1
            self.most_at_once = max(self.most_at_once, self._running)
        try:
            time.sleep(0.005)
            return self._client.put_events(**request)
        finally:
            with self._lock:
                self._running -= 1


def test_calls_in_flight_keep_each_aggregate_in_order(bus):
    moto, sqs, queue_url = bus
    client = SlowEventsClient(moto.client("events"))
    channel = EventBridgeMessageChannel("castore", client=client, retry_policy=FAST_RETRIES)
    store = interleaved_store(aggregates=200, versions=2, store_id="POKEMONS")

    result = pour_event_store_events(store, channel)

    received = arrived(sqs, queue_url)
    events = [m["detail"]["event"] for m in received]
    ids = [f"POKEMONS#{e['aggregateId']}#{e['version']}" for e in events]
    assert result["poured_event_count"] == 400
    assert len(ids) == len(set(ids)) == 400
    assert_versions_in_order(ids)
    assert client.most_at_once == channel.max_in_flight == DEFAULT_MAX_IN_FLIGHT
