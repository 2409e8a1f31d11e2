from __future__ import annotations

import json

import pytest

from airflow_provider_castore_dam.channels.castore_format import InvalidMessageError
from airflow_provider_castore_dam.channels.sqs import SQSMessageChannel
from airflow_provider_castore_dam.errors import MessageChannelError
from tests.channels.aws import FAST_RETRIES, attributes, create_queue, receive_all

EVENT = {
    "eventStoreId": "POKEMONS",
    "event": {
        "aggregateId": "pikachu1",
        "version": 2,
        "type": "LEVELLED_UP",
        "timestamp": "2021-01-01T00:00:00.000Z",
        "payload": {"level": 42, "moves": ["éclair", "⚡"], "nested": {"a": [1, {"b": None}]}},
        "metadata": {"by": "Sacha"},
    },
}
EXISTS = {
    "eventStoreId": "POKEMONS",
    "aggregateId": "pikachu1",
    "initialEventTimestamp": "2020-12-01T00:00:00.000Z",
}


def compact(message: dict) -> str:
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False)


@pytest.fixture
def sqs(moto_reset):
    return moto_reset.client("sqs")


def channel_for(moto, queue_url, **options) -> SQSMessageChannel:
    return SQSMessageChannel(
        queue_url, client=moto.client("sqs"), retry_policy=FAST_RETRIES, **options
    )


def test_standard_queue_gets_castore_body_and_attributes(moto_reset, sqs):
    queue_url = create_queue(sqs, "standard")
    channel = channel_for(moto_reset, queue_url)

    channel.publish_messages([EVENT, EXISTS], replay=True)

    received = receive_all(sqs, queue_url)
    assert [message["Body"] for message in received] == [compact(EVENT), compact(EXISTS)]
    assert [json.loads(message["Body"]) for message in received] == [EVENT, EXISTS]
    assert [attributes(message) for message in received] == [
        {"messageId": ("String", "POKEMONS#pikachu1#2"), "replay": ("Number", "1")},
        {"messageId": ("String", "POKEMONS#pikachu1"), "replay": ("Number", "1")},
    ]
    for message in received:
        assert "MessageGroupId" not in message["Attributes"]
        assert "MessageDeduplicationId" not in message["Attributes"]


def test_without_replay_there_is_no_replay_attribute(moto_reset, sqs):
    queue_url = create_queue(sqs, "standard")

    channel_for(moto_reset, queue_url).publish_messages([EVENT], replay=False)

    [message] = receive_all(sqs, queue_url)
    assert attributes(message) == {"messageId": ("String", "POKEMONS#pikachu1#2")}


def test_fifo_queue_gets_castore_group_and_deduplication_ids(moto_reset, sqs):
    queue_url = create_queue(sqs, "castore", fifo=True)
    channel = channel_for(moto_reset, queue_url)
    assert channel.fifo and channel.run_id is None
    later = {**EVENT, "event": {**EVENT["event"], "version": 3}}

    channel.publish_messages([EXISTS, EVENT, later], replay=True)

    received = receive_all(sqs, queue_url)
    assert [json.loads(message["Body"]) for message in received] == [EXISTS, EVENT, later]
    assert [
        (message["Attributes"]["MessageGroupId"], message["Attributes"]["MessageDeduplicationId"])
        for message in received
    ] == [
        ("POKEMONS#pikachu1", "POKEMONS#pikachu1"),
        ("POKEMONS#pikachu1", "POKEMONS#pikachu1#2"),
        ("POKEMONS#pikachu1", "POKEMONS#pikachu1#3"),
    ]
    assert [attributes(message)["messageId"][1] for message in received] == [
        "POKEMONS#pikachu1",
        "POKEMONS#pikachu1#2",
        "POKEMONS#pikachu1#3",
    ]
    assert all(attributes(message)["replay"] == ("Number", "1") for message in received)


def test_castore_deduplication_drops_a_second_pour_within_five_minutes(moto_reset, sqs):
    queue_url = create_queue(sqs, "castore", fifo=True)

    channel_for(moto_reset, queue_url).publish_messages([EVENT], replay=True)
    channel_for(moto_reset, queue_url).publish_messages([EVENT], replay=True)

    assert len(receive_all(sqs, queue_url)) == 1  # silently dropped by SQS


def test_run_scoped_deduplication_keeps_each_run(moto_reset, sqs):
    queue_url = create_queue(sqs, "runs", fifo=True)
    first = channel_for(moto_reset, queue_url, fifo_deduplication="run", run_id="manual__2024")
    second = channel_for(moto_reset, queue_url, fifo_deduplication="run")

    first.publish_messages([EVENT], replay=True)
    first.publish_messages([EVENT], replay=True)  # same run: still deduplicated
    second.publish_messages([EVENT], replay=True)

    received = receive_all(sqs, queue_url)
    assert second.run_id and second.run_id != first.run_id
    assert [message["Attributes"]["MessageDeduplicationId"] for message in received] == [
        "POKEMONS#pikachu1#2#manual__2024",
        f"POKEMONS#pikachu1#2#{second.run_id}",
    ]
    assert {message["Attributes"]["MessageGroupId"] for message in received} == {
        "POKEMONS#pikachu1"
    }
    assert {attributes(message)["messageId"][1] for message in received} == {"POKEMONS#pikachu1#2"}


def test_batches_of_ten_use_valid_entry_ids_one_request(moto_reset, sqs):
    queue_url = create_queue(sqs, "batch")
    client = moto_reset.client("sqs")
    requests = []
    original = client.send_message_batch

    def spy(**kwargs):
        requests.append(kwargs["Entries"])
        return original(**kwargs)

    client.send_message_batch = spy
    channel = SQSMessageChannel(queue_url, client=client)
    messages = [
        {**EVENT, "event": {**EVENT["event"], "version": version}} for version in range(1, 11)
    ]

    channel.publish_messages(messages, replay=True)

    assert channel.max_batch_size == 10
    assert len(requests) == 1
    assert [entry["Id"] for entry in requests[0]] == [str(i) for i in range(10)]
    assert [json.loads(m["Body"]) for m in receive_all(sqs, queue_url)] == messages


def test_missing_queue_is_not_retried_and_reports_nothing_confirmed(moto_reset):
    url = moto_reset.endpoint_url + "/123456789012/does-not-exist"
    channel = channel_for(moto_reset, url)

    with pytest.raises(MessageChannelError) as raised:
        channel.publish_messages([EVENT, EXISTS], replay=True)

    assert raised.value.confirmed_count == 0
    assert "0 of 2 messages confirmed" in str(raised.value)
    assert "non-retryable" in str(raised.value)


def test_unparseable_message_sends_nothing(moto_reset, sqs):
    queue_url = create_queue(sqs, "bad")

    with pytest.raises(InvalidMessageError) as raised:
        channel_for(moto_reset, queue_url).publish_messages(
            [EVENT, {"eventStoreId": "S"}], replay=True
        )

    assert raised.value.confirmed_count == 0
    assert receive_all(sqs, queue_url) == []


def test_builds_its_own_client_from_endpoint(moto_reset, sqs, monkeypatch):
    for name, value in moto_reset.env().items():
        monkeypatch.setenv(name, value)
    queue_url = create_queue(sqs, "own-client")
    channel = SQSMessageChannel(
        queue_url, endpoint_url=moto_reset.endpoint_url, region_name=moto_reset.region
    )

    channel.publish_messages([EXISTS], replay=True)

    assert [json.loads(m["Body"]) for m in receive_all(sqs, queue_url)] == [EXISTS]
