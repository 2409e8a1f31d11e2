"""What an SQS queue holds: the key of every Castore message in it, for reconciliation.

Two ways to read a queue, chosen by ``delete``:

- ``delete=False`` (default): **receive without deleting**. Every message received is hidden
  for ``visibility_timeout`` seconds, so each is read once; when the read ends, all of them are
  made visible again (``ChangeMessageVisibility`` to 0), and the queue holds what it held.
  For a queue that nobody else reads while the audit runs (a test's queue, a queue kept for
  the audit): a consumer reading at the same time takes messages the audit then misses. Each
  receive counts towards a redrive policy's ``maxReceiveCount``. Not for FIFO queues, which
  hide the rest of a message group while one of its messages is received.
- ``delete=True``: **an audit queue**, one that exists for the audit (a second queue
  subscribed to the same bus or topic): messages are deleted once read, as a consumer would.

The read ends when no message has come for ``idle_seconds``. Receipt handles of a read without
deleting go to a temporary file, not memory, so a queue of any size can be read.
"""

from __future__ import annotations

import contextlib
import json
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from typing import Any

from airflow_provider_castore_dam.errors import InvalidPourInputError, MessageChannelError
from airflow_provider_castore_dam.external_sort import Spool
from airflow_provider_castore_dam.protocols import MessageKey, message_key

RECEIVE_MAX = 10
DEFAULT_VISIBILITY_TIMEOUT = 900
DEFAULT_IDLE_SECONDS = 5.0


def sqs_message_keys(
    client: Any,
    queue_url: str,
    *,
    delete: bool = False,
    visibility_timeout: int = DEFAULT_VISIBILITY_TIMEOUT,
    idle_seconds: float = DEFAULT_IDLE_SECONDS,
) -> Iterator[MessageKey]:
    """The key of every message the queue holds, in the order received (a message held twice
    gives its key twice). Messages that are not Castore's fail the read, naming them."""
    _check(queue_url, delete, visibility_timeout, idle_seconds)
    handles: Spool[str] = Spool(prefix="castore-dam-sqs-")
    started = time.monotonic()
    try:
        last_received = time.monotonic()
        while time.monotonic() - last_received < idle_seconds:
            wait = max(0, min(20, int(idle_seconds - (time.monotonic() - last_received))))
            messages = _receive(client, queue_url, visibility_timeout, wait)
            if not messages:
                continue
            last_received = time.monotonic()
            if not delete and last_received - started > visibility_timeout * 0.9:
                raise MessageChannelError(
                    f"reading {queue_url} took longer than its visibility timeout "
                    f"({visibility_timeout} s): messages read first may be read again; "
                    "give a longer visibility_timeout"
                )
            receipts = [message["ReceiptHandle"] for message in messages]
            if not delete:
                handles.write(receipts)
            for message in messages:
                yield _key(message, queue_url)
            if delete:
                _delete(client, queue_url, receipts)
    finally:
        try:
            if not delete:
                for chunk in handles.chunks():
                    _make_visible(client, queue_url, chunk)
        finally:
            handles.close()


def count_sqs_messages(client: Any, queue_url: str, **options: Any) -> dict[str, int]:
    """Messages the queue holds per event store id, each copy counted (``options`` as for
    :func:`sqs_message_keys`: by default the messages are received without being deleted)."""
    counts: Counter[str] = Counter(key[0] for key in sqs_message_keys(client, queue_url, **options))
    return dict(sorted(counts.items()))


def _check(queue_url: str, delete: bool, visibility_timeout: int, idle_seconds: float) -> None:
    if not isinstance(delete, bool):
        raise InvalidPourInputError(f"delete must be true or false, not {delete!r}")
    if not delete and queue_url.endswith(".fifo"):
        raise InvalidPourInputError(
            f"{queue_url} is a FIFO queue: it hides the rest of a message group while one of "
            "its messages is received, so it cannot be read without deleting; read an audit "
            "queue with delete=True"
        )
    if (
        isinstance(visibility_timeout, bool)
        or not isinstance(visibility_timeout, int)
        or not (1 <= visibility_timeout <= 43_200)
    ):
        raise InvalidPourInputError(
            f"visibility_timeout must be 1 to 43200 seconds, not {visibility_timeout!r}"
        )
    if (
        isinstance(idle_seconds, bool)
        or not isinstance(idle_seconds, (int, float))
        or not (0 < idle_seconds <= 3_600)
    ):
        raise InvalidPourInputError(f"idle_seconds must be above 0, not {idle_seconds!r}")


def _receive(client: Any, queue_url: str, visibility_timeout: int, wait: int) -> list[Any]:
    try:
        response = client.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=RECEIVE_MAX,
            VisibilityTimeout=visibility_timeout,
            WaitTimeSeconds=wait,
            MessageAttributeNames=["All"],
        )
    except Exception as error:
        raise MessageChannelError(f"cannot receive from {queue_url}: {error}") from error
    return list(response.get("Messages", []))


def _key(message: Any, queue_url: str) -> MessageKey:
    """The key of a received message: from its body, or the body its ``messageUrl`` points
    to (an S3-offloaded message)."""
    try:
        body = json.loads(message["Body"])
        if isinstance(body, dict) and "messageUrl" in body and "eventStoreId" not in body:
            with urllib.request.urlopen(body["messageUrl"], timeout=30) as response:
                body = json.loads(response.read())
        return message_key(body)
    except (ValueError, KeyError, TypeError, OSError) as error:
        raise MessageChannelError(
            f"message {message.get('MessageId')} of {queue_url} is not a Castore message "
            f"({type(error).__name__}: {error}): {str(message.get('Body'))[:200]}"
        ) from error


def _delete(client: Any, queue_url: str, handles: list[str]) -> None:
    entries = [{"Id": str(i), "ReceiptHandle": h} for i, h in enumerate(handles)]
    response = client.delete_message_batch(QueueUrl=queue_url, Entries=entries)
    if response.get("Failed"):
        raise MessageChannelError(f"cannot delete from {queue_url}: {response['Failed']}")


def _make_visible(client: Any, queue_url: str, handles: list[str]) -> None:
    """Best effort: a message left hidden comes back by itself after the visibility timeout."""
    entries = [
        {"Id": str(i), "ReceiptHandle": h, "VisibilityTimeout": 0} for i, h in enumerate(handles)
    ]
    with contextlib.suppress(Exception):
        client.change_message_visibility_batch(QueueUrl=queue_url, Entries=entries)
