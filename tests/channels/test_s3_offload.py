from __future__ import annotations

import json
import logging
import re
import urllib.parse

import pytest

from airflow_provider_castore_dam.channels.eventbridge import EventBridgeMessageChannel
from airflow_provider_castore_dam.channels.s3_offload import (
    SIZE_LIMIT,
    MessageTooLargeError,
    S3Offload,
    eventbridge_entry_size,
    iso_millis,
)
from airflow_provider_castore_dam.channels.sqs import SQSMessageChannel
from airflow_provider_castore_dam.dam import pour_event_store_events
from airflow_provider_castore_dam.errors import (
    CastoreDamError,
    MessageChannelError,
    PourInterruptedError,
)
from airflow_provider_castore_dam.stores import InMemoryEventStore
from tests.channels.aws import (
    FAST_RETRIES,
    attributes,
    create_bus_to_queue,
    create_queue,
    fetch,
    receive_all,
)

ISO = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"


def event_message(version: int, payload: object = None, aggregate_id: str = "pika") -> dict:
    event = {
        "aggregateId": aggregate_id,
        "version": version,
        "type": "GREW",
        "timestamp": "2021-01-01T00:00:00.000Z",
    }
    if payload is not None:
        event["payload"] = payload
    return {"eventStoreId": "POKEMONS", "event": event}


def compact(message: dict) -> str:
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False)


def sqs_size(message: dict, message_id: str) -> int:
    """Castore's count, by hand: body + name + DataType + value of each attribute."""
    body = len(compact(message).encode())
    return body + len("messageIdString") + len(message_id) + len("replayNumber1")


def sized_event(version: int, size: int) -> dict:
    """An event message whose SQS entry is exactly ``size`` bytes (with multi-byte text)."""
    message = event_message(version, {"text": "é" * 1000, "blob": ""})
    missing = size - sqs_size(message, f"POKEMONS#pika#{version}")
    message["event"]["payload"]["blob"] = "x" * missing
    assert sqs_size(message, f"POKEMONS#pika#{version}") == size
    return message


@pytest.fixture
def aws(moto_reset):
    s3 = moto_reset.client("s3")
    s3.create_bucket(Bucket="offload")
    return moto_reset, moto_reset.client("sqs"), s3


def offload_for(moto, **options) -> S3Offload:
    return S3Offload("offload", client=moto.client("s3"), **options)


def test_oversized_sqs_message_is_offloaded_and_fetchable(aws, caplog):
    moto, sqs, s3 = aws
    queue_url = create_queue(sqs, "big")
    channel = SQSMessageChannel(
        queue_url,
        client=moto.client("sqs"),
        s3_offload=S3Offload(  # a client of its own: SigV4 URLs, as Castore's
            "offload",
            prefix="replays/",
            url_expiry_seconds=60,
            session=moto.session(),
            endpoint_url=moto.endpoint_url,
        ),
        retry_policy=FAST_RETRIES,
    )
    small, big, after = event_message(1), sized_event(2, SIZE_LIMIT + 1), event_message(3)

    with caplog.at_level(logging.DEBUG, logger="airflow_provider_castore_dam"):
        channel.publish_messages([small, big, after], replay=True)

    received = receive_all(sqs, queue_url)
    bodies = [json.loads(message["Body"]) for message in received]
    assert bodies[0] == small and bodies[2] == after  # order kept
    assert list(bodies[1]) == ["messageUrl"]
    assert attributes(received[1]) == {
        "messageId": ("String", "POKEMONS#pika#2"),
        "replay": ("Number", "1"),
    }
    url = bodies[1]["messageUrl"]
    assert fetch(url) == compact(big).encode()
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    assert query["X-Amz-Expires"] == ["60"]
    [key] = [obj["Key"] for obj in s3.list_objects_v2(Bucket="offload")["Contents"]]
    assert re.fullmatch(rf"replays/POKEMONS/pika/{ISO}#2", key)
    assert s3.head_object(Bucket="offload", Key=key)["ContentType"] == "application/json"
    logged = "\n".join(
        record.getMessage()
        for record in caplog.records
        if record.name.startswith("airflow_provider_castore_dam")
    )
    assert "offloaded message POKEMONS#pika#2" in logged
    assert url not in logged and "X-Amz-Signature" not in logged


def test_exactly_the_limit_stays_inline(aws):
    moto, sqs, _ = aws
    queue_url = create_queue(sqs, "limit")
    channel = SQSMessageChannel(queue_url, client=moto.client("sqs"), s3_offload=offload_for(moto))
    message = sized_event(1, SIZE_LIMIT)

    channel.publish_messages([message], replay=True)

    [received] = receive_all(sqs, queue_url)
    assert received["Body"] == compact(message)


def test_aggregate_exists_key_has_no_version_and_fifo_ids_are_kept(aws):
    moto, sqs, s3 = aws
    queue_url = create_queue(sqs, "big", fifo=True)
    channel = SQSMessageChannel(queue_url, client=moto.client("sqs"), s3_offload=offload_for(moto))
    message = {
        "eventStoreId": "TRAINERS",
        "aggregateId": "sacha",
        "initialEventTimestamp": "2020-01-01T00:00:00.000Z",
        "padding": "y" * SIZE_LIMIT,
    }

    channel.publish_messages([message], replay=True)

    [received] = receive_all(sqs, queue_url)
    assert received["Attributes"]["MessageGroupId"] == "TRAINERS#sacha"
    assert received["Attributes"]["MessageDeduplicationId"] == "TRAINERS#sacha"
    assert json.loads(fetch(json.loads(received["Body"])["messageUrl"])) == message
    [key] = [obj["Key"] for obj in s3.list_objects_v2(Bucket="offload")["Contents"]]
    assert re.fullmatch(rf"TRAINERS/sacha/{ISO}", key)


def test_oversized_eventbridge_entry_is_offloaded(aws):
    moto, sqs, _ = aws
    queue_url = create_bus_to_queue(
        moto.client("events"), sqs, "castore", "bus-target", ["POKEMONS"]
    )
    channel = EventBridgeMessageChannel(
        "castore", client=moto.client("events"), s3_offload=offload_for(moto, prefix="eb-")
    )
    big = event_message(7, {"blob": "z" * SIZE_LIMIT})
    small = event_message(8)

    channel.publish_messages([big, small], replay=True)

    events = [json.loads(m["Body"]) for m in receive_all(sqs, queue_url)]
    assert [(e["detail-type"], e["source"]) for e in events] == [
        ("__REPLAYED__", "POKEMONS"),
        ("__REPLAYED__", "POKEMONS"),
    ]
    assert list(events[0]["detail"]) == ["messageUrl"]
    assert fetch(events[0]["detail"]["messageUrl"]) == compact(big).encode()
    assert events[1]["detail"] == small


def test_eventbridge_size_counts_detail_detail_type_and_source():
    assert eventbridge_entry_size("{}", "__REPLAYED__", "é") == 2 + 12 + 2


def test_oversized_message_without_offload_publishes_nothing_of_its_batch(moto_reset):
    sqs = moto_reset.client("sqs")
    queue_url = create_queue(sqs, "no-offload")
    channel = SQSMessageChannel(queue_url, client=moto_reset.client("sqs"))
    big = sized_event(2, SIZE_LIMIT + 1)

    with pytest.raises(MessageTooLargeError) as raised:
        channel.publish_messages([event_message(1), big, event_message(3)], replay=True)

    error = raised.value
    assert isinstance(error, MessageChannelError) and isinstance(error, CastoreDamError)
    assert error.confirmed_count == 0
    assert (error.event_store_id, error.aggregate_id, error.version) == ("POKEMONS", "pika", 2)
    assert error.size == SIZE_LIMIT + 1
    for fragment in ("'POKEMONS'", "'pika'", "version 2", f"{SIZE_LIMIT + 1} bytes"):
        assert fragment in str(error)
    assert receive_all(sqs, queue_url) == []


@pytest.mark.parametrize("max_in_flight", [1, 16])
def test_pour_stops_at_an_oversized_event_and_publishes_nothing_after_it(moto_reset, max_in_flight):
    """One call at a time: nothing after the call holding the oversized event. With calls in
    flight, calls started beside it may be published too, and are counted; nothing of its own
    call ever is."""
    sqs = moto_reset.client("sqs")
    queue_url = create_queue(sqs, "pour")
    events = []
    for i in range(30):
        payload = {"blob": "b" * (SIZE_LIMIT + 10)} if i == 14 else {"i": i}
        events.append(
            {
                "aggregateId": f"a{i:02d}",
                "version": 1,
                "type": "CREATED",
                "timestamp": f"2021-01-01T00:00:{i:02d}.000Z",
                "payload": payload,
            }
        )
    store = InMemoryEventStore("POKEMONS", events)
    channel = SQSMessageChannel(
        queue_url, client=moto_reset.client("sqs"), max_in_flight=max_in_flight
    )

    with pytest.raises(PourInterruptedError) as raised:
        pour_event_store_events(store, channel)

    assert isinstance(raised.value.__cause__, MessageTooLargeError)
    assert "'a14'" in str(raised.value)
    received = [json.loads(m["Body"])["event"]["aggregateId"] for m in receive_all(sqs, queue_url)]
    assert raised.value.result["poured_event_count"] == len(received)
    assert not {f"a{i:02d}" for i in range(10, 20)} & set(received)  # nothing of batch 2
    if max_in_flight == 1:
        assert received == [f"a{i:02d}" for i in range(10)]  # nor after it


def test_failed_upload_publishes_nothing_and_leaks_no_url(moto_reset):
    sqs = moto_reset.client("sqs")
    queue_url = create_queue(sqs, "no-bucket")
    channel = SQSMessageChannel(
        queue_url,
        client=moto_reset.client("sqs"),
        s3_offload=S3Offload("missing-bucket", client=moto_reset.client("s3")),
        retry_policy=FAST_RETRIES,
    )

    with pytest.raises(MessageChannelError) as raised:
        channel.publish_messages([event_message(1), sized_event(2, SIZE_LIMIT + 1)], replay=True)

    assert raised.value.confirmed_count == 0
    assert "NoSuchBucket" in str(raised.value)
    assert receive_all(sqs, queue_url) == []


def test_iso_millis_is_javascripts_to_iso_string():
    from datetime import datetime, timedelta, timezone

    moment = datetime(2024, 2, 29, 23, 59, 59, 999_999, tzinfo=timezone(timedelta(hours=2)))
    assert iso_millis(moment) == "2024-02-29T21:59:59.999Z"
