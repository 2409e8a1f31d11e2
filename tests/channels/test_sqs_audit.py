"""Reading what a queue holds, on the moto server: without deleting (the queue keeps its
messages) or as an audit queue (emptied), FIFO queues, offloaded and foreign messages."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from airflow_provider_castore_dam.channels.s3_offload import S3Offload
from airflow_provider_castore_dam.channels.sqs import SQSMessageChannel
from airflow_provider_castore_dam.channels.sqs_audit import count_sqs_messages, sqs_message_keys
from airflow_provider_castore_dam.dam import pour_event_store_events
from airflow_provider_castore_dam.dam.reconcile import reconcile_pour
from airflow_provider_castore_dam.errors import InvalidPourInputError, MessageChannelError
from tests.channels.aws import FAST_RETRIES, create_queue, receive_all
from tests.channels.engine_stores import store_of

QUICK = {"idle_seconds": 1.0}


def queue_counts(sqs, queue_url) -> tuple[int, int]:
    attributes = sqs.get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return (
        int(attributes["ApproximateNumberOfMessages"]),
        int(attributes["ApproximateNumberOfMessagesNotVisible"]),
    )


def poured_queue(moto, name, events=300, fifo=False, **channel_options):
    sqs = moto.client("sqs")
    queue_url = create_queue(sqs, name, fifo=fifo)
    channel = SQSMessageChannel(
        queue_url, client=sqs, retry_policy=FAST_RETRIES, max_in_flight=4, **channel_options
    )
    store = store_of(events, versions=3)
    return sqs, queue_url, store, pour_event_store_events(store, channel)


def test_read_without_deleting_sees_every_message_and_leaves_them_visible(moto_reset):
    sqs, queue_url, store, result = poured_queue(moto_reset, "kept")
    again = {"eventStoreId": "S", "event": {"aggregateId": "a00007", "version": 2}}
    sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(again))  # as a resume may

    keys = list(sqs_message_keys(sqs, queue_url, **QUICK))

    expected = Counter(("S", f"a{n:05d}", v) for n in range(100) for v in (1, 2, 3))
    expected["S", "a00007", 2] += 1
    assert Counter(keys) == expected
    assert queue_counts(sqs, queue_url) == (301, 0)  # all visible again
    assert count_sqs_messages(sqs, queue_url, **QUICK) == {"S": 301}
    report = reconcile_pour(
        result, [store], delivered=sqs_message_keys(sqs, queue_url, **QUICK), allow_duplicates=True
    )
    assert report["matches"] is True
    assert report["event_stores"]["S"]["duplicated"] == [{"aggregate_id": "a00007", "version": 2}]
    assert queue_counts(sqs, queue_url) == (301, 0)


def test_an_audit_queue_is_emptied(moto_reset):
    sqs, queue_url, store, result = poured_queue(moto_reset, "audit")

    report = reconcile_pour(
        result, [store], delivered=sqs_message_keys(sqs, queue_url, delete=True, **QUICK)
    )

    assert report["matches"] is True
    assert report["event_stores"]["S"]["delivered"]["count"] == 300
    assert queue_counts(sqs, queue_url) == (0, 0)
    assert receive_all(sqs, queue_url) == []


def test_a_fifo_queue_is_read_as_an_audit_queue_only(moto_reset):
    sqs, queue_url, _, _ = poured_queue(moto_reset, "ordered", events=60, fifo=True)

    with pytest.raises(InvalidPourInputError, match=r"FIFO queue.*delete=True"):
        next(sqs_message_keys(sqs, queue_url, **QUICK))
    assert queue_counts(sqs, queue_url) == (60, 0)  # nothing was received

    assert count_sqs_messages(sqs, queue_url, delete=True, **QUICK) == {"S": 60}
    assert queue_counts(sqs, queue_url) == (0, 0)


def test_offloaded_messages_are_read_from_their_url(moto_reset):
    s3 = moto_reset.client("s3")
    s3.create_bucket(Bucket="offload")
    offload = S3Offload(
        "offload", session=moto_reset.session(), endpoint_url=moto_reset.endpoint_url
    )
    sqs = moto_reset.client("sqs")
    queue_url = create_queue(sqs, "big")
    channel = SQSMessageChannel(queue_url, client=sqs, s3_offload=offload)
    big = {"aggregateId": "big", "version": 1, "type": "T", "timestamp": "2021-01-01T00:00:00.000Z"}
    big["payload"] = "x" * 300_000
    channel.publish_messages([{"eventStoreId": "S", "event": big}], replay=True)

    assert list(sqs_message_keys(sqs, queue_url, **QUICK)) == [("S", "big", 1)]


def test_a_foreign_message_fails_the_read_naming_it(moto_reset):
    sqs = moto_reset.client("sqs")
    queue_url = create_queue(sqs, "foreign")
    sent = sqs.send_message(QueueUrl=queue_url, MessageBody='{"hello": "world"}')

    with pytest.raises(MessageChannelError, match=f"message {sent['MessageId']} .* not a Castore"):
        list(sqs_message_keys(sqs, queue_url, **QUICK))
    assert queue_counts(sqs, queue_url) == (1, 0)  # made visible again


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"delete": "yes"}, "delete must be true or false"),
        ({"visibility_timeout": 0}, "visibility_timeout must be 1 to 43200"),
        ({"idle_seconds": 0}, "idle_seconds must be above 0"),
    ],
)
def test_bad_options_fail_before_receiving(moto_reset, options, fragment):
    sqs = moto_reset.client("sqs")
    queue_url = create_queue(sqs, "untouched")
    sqs.send_message(QueueUrl=queue_url, MessageBody="{}")

    with pytest.raises(InvalidPourInputError, match=fragment):
        next(sqs_message_keys(sqs, queue_url, **options))
    assert queue_counts(sqs, queue_url) == (1, 0)
