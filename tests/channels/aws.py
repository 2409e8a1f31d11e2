"""Helpers for the channel tests: queues, buses and reading messages back from the moto server."""

from __future__ import annotations

import json
import threading
import urllib.request
import uuid
from typing import Any

from airflow_provider_castore_dam.channels.batch_retry import RetryPolicy

FAST_RETRIES = RetryPolicy(
    max_attempts=60, max_seconds=30, initial_backoff_seconds=0.001, max_backoff_seconds=0.01
)


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


def create_queue(sqs: Any, name: str, *, fifo: bool = False) -> str:
    if fifo:
        return sqs.create_queue(QueueName=f"{name}.fifo", Attributes={"FifoQueue": "true"})[
            "QueueUrl"
        ]
    return sqs.create_queue(QueueName=name)["QueueUrl"]


def receive_batch(sqs: Any, queue_url: str) -> list[dict[str, Any]]:
    """At most 10 messages of the queue, deleted once read."""
    messages = sqs.receive_message(
        QueueUrl=queue_url,
        MaxNumberOfMessages=10,
        WaitTimeSeconds=0,
        VisibilityTimeout=300,
        MessageAttributeNames=["All"],
        AttributeNames=["All"],
    ).get("Messages", [])
    if messages:
        sqs.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": message["ReceiptHandle"]}
                for i, message in enumerate(messages)
            ],
        )
    return messages


def receive_all(sqs: Any, queue_url: str) -> list[dict[str, Any]]:
    """Every message of the queue, in the order SQS hands them out, deleted once read."""
    received: list[dict[str, Any]] = []
    while batch := receive_batch(sqs, queue_url):
        received.extend(batch)
    return received


def attributes(sqs_message: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """Message attributes as ``{name: (DataType, StringValue)}``."""
    return {
        name: (value["DataType"], value["StringValue"])
        for name, value in sqs_message.get("MessageAttributes", {}).items()
    }


def message_ids(received: list[dict[str, Any]]) -> list[str]:
    return [attributes(message)["messageId"][1] for message in received]


def assert_versions_in_order(message_ids: list[str]) -> None:
    """Each aggregate's messageIds (``<store>#<aggregate>#<version>``) came in version order."""
    last: dict[str, int] = {}
    for message_id in message_ids:
        store_id, aggregate_id, version = message_id.split("#")
        key = f"{store_id}#{aggregate_id}"
        assert int(version) > last.get(key, 0), f"{message_id} came after version {last[key]}"
        last[key] = int(version)


def create_bus_to_queue(
    events: Any, sqs: Any, bus_name: str, queue_name: str, sources: list[str]
) -> str:
    """An event bus with a rule sending events of ``sources`` to a new standard queue."""
    events.create_event_bus(Name=bus_name)
    queue_url = create_queue(sqs, queue_name)
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    events.put_rule(
        Name=f"{bus_name}-to-queue",
        EventBusName=bus_name,
        EventPattern=json.dumps({"source": sources}),
        State="ENABLED",
    )
    events.put_targets(
        Rule=f"{bus_name}-to-queue",
        EventBusName=bus_name,
        Targets=[{"Id": "queue", "Arn": queue_arn}],
    )
    return queue_url


def fetch(url: str) -> bytes:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=10) as response:
        return response.read()


class QueueDrainer:
    """A consumer that reads and deletes a queue's messages, keeping what it read.

    moto's SQS spends time proportional to the queue's length on every message it sends or
    receives, so a 10,000-message pour into a queue nobody reads slows to a crawl. Report
    each request's delivered messages to ``sent`` (e.g.
    ``FaultySQSClient(after_send=drainer.sent)``): it drains the queue once ``every`` messages
    were delivered, keeping the queue short. ``drain()`` reads what is left; ``received``
    holds every message read, in order.
    """

    def __init__(self, sqs: Any, queue_url: str, every: int = 10) -> None:
        self._sqs, self._queue_url, self._every = sqs, queue_url, every
        self._unread = 0
        self._lock = threading.Lock()  # moto may hand one message to two receives at once
        self.received: list[dict[str, Any]] = []

    def sent(self, count: int) -> None:
        with self._lock:
            self._unread += count
            while self._unread >= self._every:
                batch = receive_batch(self._sqs, self._queue_url)
                self.received.extend(batch)
                self._unread = 0 if len(batch) < 10 else self._unread - len(batch)

    def drain(self) -> None:
        while batch := receive_batch(self._sqs, self._queue_url):
            self.received.extend(batch)
        self._unread = 0
