"""SQSMessageChannel through whole-call faults on a real moto queue: throttling and 5xx from a
scripted wrapper around the real client, connections reset by a TCP proxy; permanent errors.

(Per-entry failures and random faults are covered by ``tests/channels/test_faults.py``.)
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

from airflow_provider_castore_dam.channels.sqs import SQSMessageChannel
from airflow_provider_castore_dam.dam import pour_event_store_events
from airflow_provider_castore_dam.errors import MessageChannelError, PourInterruptedError
from airflow_provider_castore_dam.retry import RetryPolicy
from tests.channels.aws import create_queue, message_ids, receive_all, unique
from tests.channels.engine_stores import store_of
from tests.retries.aws_faults import (
    BAD_GATEWAY,
    S3_INTERNAL_ERROR,
    SERVICE_UNAVAILABLE,
    SQS_INVALID,
    THROTTLING,
    ScriptedFaults,
    fault,
)
from tests.retries.helpers import FAST, assert_retry_lines, attempt_numbers, retry_lines

INTERNAL_ERROR = S3_INTERNAL_ERROR  # SQS answers InternalError / 500 as S3 does
SQS_ACCESS_DENIED = fault(
    "AccessDenied", "Access to the resource https://sqs.us-east-1.amazonaws.com/ is denied.", 403
)
COUNT = 25  # three publish calls: 10, 10, 5
IDS = [f"S#a{n:05d}#1" for n in range(COUNT)]


def bodies(received: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        message_id: json.loads(message["Body"])
        for message_id, message in zip(message_ids(received), received, strict=True)
    }


def assert_all_once(sqs: Any, queue_url: str) -> None:
    received = receive_all(sqs, queue_url)
    assert sorted(message_ids(received)) == IDS  # all of them, once each
    for message_id, body in bodies(received).items():
        n = int(message_id.split("#")[1][1:])
        assert body["eventStoreId"] == "S"
        assert body["event"]["payload"] == {"n": n, "version": 1}


@pytest.mark.parametrize(
    "fault_",
    [THROTTLING, INTERNAL_ERROR, SERVICE_UNAVAILABLE, BAD_GATEWAY],
    ids=["throttling", "500", "503", "502"],
)
def test_whole_call_throttling_and_server_errors_are_retried(moto_server, fault_, caplog):
    sqs = moto_server.client("sqs")
    queue_url = create_queue(sqs, unique("whole-call"))
    client = ScriptedFaults(sqs, send_message_batch=[None, fault_, fault_, None, fault_])
    channel = SQSMessageChannel(queue_url, client=client, retry_policy=FAST, max_in_flight=1)

    result = pour_event_store_events(store_of(COUNT), channel)

    assert result["poured_event_count"] == COUNT
    assert client.calls["send_message_batch"] == 6
    assert_all_once(sqs, queue_url)
    code = fault_("SendMessageBatch").response["Error"]["Code"]
    lines = assert_retry_lines(
        caplog,
        count=3,
        operation=f"SendMessageBatch to SQS queue {queue_url}: ",
        reasons=[f"(first: {code}: "],
    )
    assert attempt_numbers(lines) == [1, 2, 1]
    assert [line.split(": ")[1].split(" not")[0] for line in lines] == [
        "10 of 10 entries",
        "10 of 10 entries",
        "5 of 5 entries",
    ]


def channel_through(moto_server, proxy, queue_url: str, **options: Any) -> SQSMessageChannel:
    return SQSMessageChannel(
        queue_url,
        session=moto_server.session(),
        endpoint_url=f"http://127.0.0.1:{proxy.port}",
        retry_policy=FAST,
        max_in_flight=1,
        **options,
    )


def test_requests_lost_to_connection_resets_are_sent_again(moto_server, moto_proxy, caplog):
    sqs = moto_server.client("sqs")
    queue_url = create_queue(sqs, unique("reset"))
    channel = channel_through(moto_server, moto_proxy, queue_url)
    moto_proxy.reset_requests(2)

    pour_event_store_events(store_of(COUNT), channel)

    assert moto_proxy.resets == 2
    assert_all_once(sqs, queue_url)
    lines = assert_retry_lines(
        caplog, count=2, operation="SendMessageBatch to SQS queue", reasons=["ConnectionClosed"]
    )
    assert attempt_numbers(lines) == [1, 2]


@pytest.mark.parametrize("fifo", [False, True], ids=["standard", "fifo"])
def test_answers_lost_to_connection_resets(moto_server, moto_proxy, fifo, caplog):
    """The request reached SQS, the answer did not: the batch is sent again. A standard
    queue then holds it twice (at least once delivery, as documented); a FIFO queue drops the
    copy (same deduplication ids)."""
    sqs = moto_server.client("sqs")
    queue_url = create_queue(sqs, unique("answer-lost"), fifo=fifo)
    channel = channel_through(moto_server, moto_proxy, queue_url)
    moto_proxy.reset_requests(1, deliver=True)

    pour_event_store_events(store_of(COUNT), channel)

    received = message_ids(receive_all(sqs, queue_url))
    copies = Counter(received)
    assert set(copies) == set(IDS)
    if fifo:
        assert received == IDS  # once each, in order
    else:
        assert sorted(id_ for id_, count in copies.items() if count == 2) == IDS[:10]
        assert len(received) == COUNT + 10
    assert_retry_lines(
        caplog, count=1, operation="SendMessageBatch to SQS queue", reasons=["ConnectionClosed"]
    )


@pytest.mark.parametrize("what", ["missing queue", "access denied", "validation"])
def test_permanent_errors_fail_at_once(moto_server, what, caplog):
    sqs = moto_server.client("sqs")
    queue_url = create_queue(sqs, unique("permanent"))
    if what == "missing queue":
        queue_url += "-gone"
        script: list[Any] = []
        code, service_message = "NonExistentQueue", "The specified queue does not exist."
    else:
        fault_ = SQS_ACCESS_DENIED if what == "access denied" else SQS_INVALID
        script = [fault_]
        error = fault_("SendMessageBatch").response["Error"]
        code, service_message = error["Code"], error["Message"]
    client = ScriptedFaults(sqs, send_message_batch=script)
    channel = SQSMessageChannel(queue_url, client=client, retry_policy=FAST, max_in_flight=1)

    with pytest.raises(PourInterruptedError) as raised:
        pour_event_store_events(store_of(COUNT), channel)

    error = raised.value.__cause__
    assert isinstance(error, MessageChannelError)
    assert error.confirmed_count == 0
    assert "non-retryable error (not retried)" in str(error)
    assert code in str(error) and service_message in str(error)
    assert raised.value.result["poured_event_count"] == 0
    assert client.calls["send_message_batch"] == 1
    if what != "missing queue":
        assert receive_all(sqs, queue_url) == []
    assert retry_lines(caplog) == []


def test_whole_call_retries_stop_at_the_budget(moto_server, caplog):
    sqs = moto_server.client("sqs")
    queue_url = create_queue(sqs, unique("budget"))
    client = ScriptedFaults(sqs, send_message_batch=[None] + [SERVICE_UNAVAILABLE] * 10)
    policy = RetryPolicy(max_attempts=3, initial_backoff_seconds=0.001, max_backoff_seconds=0.01)
    channel = SQSMessageChannel(queue_url, client=client, retry_policy=policy, max_in_flight=1)

    with pytest.raises(PourInterruptedError) as raised:
        pour_event_store_events(store_of(COUNT), channel)

    error = raised.value.__cause__
    assert "retry budget was spent (3 attempts" in str(error)
    assert "ServiceUnavailable: Service is unavailable, try again" in str(error)
    assert raised.value.result["poured_event_count"] == 10
    assert client.calls["send_message_batch"] == 4
    assert sorted(message_ids(receive_all(sqs, queue_url))) == IDS[:10]
    assert attempt_numbers(retry_lines(caplog)) == [1, 2]
