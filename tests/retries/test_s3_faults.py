"""S3 offload (PutObject of oversized messages) through faults on a real moto bucket: SlowDown
and 5xx from a scripted wrapper around the real client, connections reset by a TCP proxy;
permanent errors. The channel is SQS; its own client is not faulty."""

from __future__ import annotations

import json
from typing import Any

import pytest

from airflow_provider_castore_dam.channels.s3_offload import S3Offload
from airflow_provider_castore_dam.channels.sqs import SQSMessageChannel
from airflow_provider_castore_dam.errors import MessageChannelError
from airflow_provider_castore_dam.retry import RetryPolicy
from tests.channels.aws import create_queue, fetch, message_ids, receive_all, unique
from tests.retries.aws_faults import (
    BAD_GATEWAY,
    S3_ACCESS_DENIED,
    S3_INTERNAL_ERROR,
    SLOW_DOWN,
    ScriptedFaults,
)
from tests.retries.helpers import FAST, assert_retry_lines, attempt_numbers, canon, retry_lines


def message(version: int, size: int = 0) -> dict[str, Any]:
    return {
        "eventStoreId": "POKEMONS",
        "event": {
            "aggregateId": "pika",
            "version": version,
            "type": "LEVELLED_UP",
            "timestamp": f"2021-01-01T00:00:0{version}.000Z",
            "payload": {"blob": "é" * (size // 2)},
        },
    }


SMALL, BIG, AFTER = message(1), message(2, 300_000), message(3)


@pytest.fixture
def aws(moto_server) -> tuple[Any, str, str]:
    sqs, s3 = moto_server.client("sqs"), moto_server.client("s3")
    bucket = unique("offload")
    s3.create_bucket(Bucket=bucket)
    return sqs, create_queue(sqs, unique("offloaded")), bucket


def objects(moto_server, bucket: str) -> list[str]:
    listing = moto_server.client("s3").list_objects_v2(Bucket=bucket)
    return [item["Key"] for item in listing.get("Contents", [])]


def assert_published_once(moto_server, sqs: Any, queue_url: str, bucket: str) -> None:
    received = receive_all(sqs, queue_url)
    assert message_ids(received) == ["POKEMONS#pika#1", "POKEMONS#pika#2", "POKEMONS#pika#3"]
    bodies = [json.loads(item["Body"]) for item in received]
    assert bodies[0] == SMALL and bodies[2] == AFTER
    assert list(bodies[1]) == ["messageUrl"]
    assert canon(json.loads(fetch(bodies[1]["messageUrl"]))) == canon(BIG)
    [key] = objects(moto_server, bucket)  # one object, whatever the attempts
    assert key.startswith("POKEMONS/pika/") and key.endswith("#2")


@pytest.mark.parametrize(
    "fault_", [SLOW_DOWN, S3_INTERNAL_ERROR, BAD_GATEWAY], ids=["slow-down", "500", "502"]
)
def test_slow_down_and_server_errors_are_retried(moto_server, aws, fault_, caplog):
    sqs, queue_url, bucket = aws
    s3 = ScriptedFaults(moto_server.client("s3"), put_object=[fault_, fault_])
    channel = SQSMessageChannel(
        queue_url, client=sqs, s3_offload=S3Offload(bucket, client=s3), retry_policy=FAST
    )

    channel.publish_messages([SMALL, BIG, AFTER], replay=True)

    assert s3.calls["put_object"] == 3
    assert_published_once(moto_server, sqs, queue_url, bucket)
    error = fault_("PutObject").response["Error"]
    lines = assert_retry_lines(
        caplog,
        count=2,
        operation=f"PutObject s3://{bucket}/POKEMONS/pika/",
        reasons=[f"({error['Code']}: {error['Message']})"],
    )
    assert attempt_numbers(lines) == [1, 2]
    assert not any("X-Amz-Signature" in line for line in lines)


@pytest.mark.parametrize("deliver", [False, True], ids=["request-lost", "answer-lost"])
def test_connection_resets_are_retried(moto_server, moto_proxy, aws, deliver, caplog):
    sqs, queue_url, bucket = aws
    offload = S3Offload(
        bucket, session=moto_server.session(), endpoint_url=f"http://127.0.0.1:{moto_proxy.port}"
    )
    channel = SQSMessageChannel(queue_url, client=sqs, s3_offload=offload, retry_policy=FAST)
    moto_proxy.reset_requests(2, deliver=deliver)

    channel.publish_messages([SMALL, BIG, AFTER], replay=True)

    assert moto_proxy.resets == 2
    assert_published_once(moto_server, sqs, queue_url, bucket)
    lines = assert_retry_lines(
        caplog, count=2, operation="PutObject s3://", reasons=["ConnectionClosedError"]
    )
    assert attempt_numbers(lines) == [1, 2]


@pytest.mark.parametrize("what", ["missing bucket", "access denied"])
def test_permanent_errors_fail_at_once(moto_server, aws, what, caplog):
    sqs, queue_url, bucket = aws
    if what == "missing bucket":
        bucket += "-gone"
        script: list[Any] = []
        expected = "NoSuchBucket: The specified bucket does not exist"
    else:
        script = [S3_ACCESS_DENIED]
        expected = "AccessDenied: Access Denied by bucket policy"
    s3 = ScriptedFaults(moto_server.client("s3"), put_object=script)
    channel = SQSMessageChannel(
        queue_url, client=sqs, s3_offload=S3Offload(bucket, client=s3), retry_policy=FAST
    )

    with pytest.raises(MessageChannelError) as raised:
        channel.publish_messages([SMALL, BIG, AFTER], replay=True)

    assert raised.value.confirmed_count == 0
    assert expected in str(raised.value)
    assert "nothing of this batch was published" in str(raised.value)
    assert "gave up" not in str(raised.value)
    assert s3.calls["put_object"] == 1
    assert receive_all(sqs, queue_url) == []
    if what == "access denied":
        assert objects(moto_server, bucket) == []
    assert retry_lines(caplog) == []


def test_offload_retries_stop_at_the_budget(moto_server, aws, caplog):
    sqs, queue_url, bucket = aws
    s3 = ScriptedFaults(moto_server.client("s3"), put_object=[SLOW_DOWN] * 10)
    policy = RetryPolicy(max_attempts=3, initial_backoff_seconds=0.001, max_backoff_seconds=0.01)
    channel = SQSMessageChannel(
        queue_url, client=sqs, s3_offload=S3Offload(bucket, client=s3), retry_policy=policy
    )

    with pytest.raises(MessageChannelError) as raised:
        channel.publish_messages([SMALL, BIG, AFTER], replay=True)

    assert "SlowDown: Please reduce your request rate. (gave up after 3 attempts)" in str(
        raised.value
    )
    assert s3.calls["put_object"] == 3
    assert receive_all(sqs, queue_url) == []
    assert attempt_numbers(retry_lines(caplog)) == [1, 2]
