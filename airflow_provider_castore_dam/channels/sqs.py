"""An SQS queue, written as Castore's ``SQSMessageQueueAdapter`` writes it.

Every message becomes one ``SendMessageBatch`` entry (at most 10 per request) carrying:

- ``MessageBody``: the message JSON, as ``JSON.stringify`` writes it;
- message attribute ``messageId`` (``String``): ``<eventStoreId>#<aggregateId>#<version>``, or
  ``<eventStoreId>#<aggregateId>`` for aggregate-exists messages;
- message attribute ``replay`` (``Number``, ``"1"``) when publishing replays;
- on FIFO queues (URL ending in ``.fifo``): ``MessageGroupId`` ``<eventStoreId>#<aggregateId>``
  and ``MessageDeduplicationId`` the messageId, or ``<messageId>#<run id>`` with
  ``fifo_deduplication="run"``.

Entry ids are the message's position in the call (``"0"``..``"9"``), which SQS accepts (Castore
uses the messageId, which it rejects). Failed entries are retried, see :mod:`.batch_retry`.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from airflow_provider_castore_dam.channels.aws_clients import (
    DEFAULT_MAX_IN_FLIGHT,
    build_client,
    region_from_queue_url,
)
from airflow_provider_castore_dam.channels.aws_names import check_queue_url
from airflow_provider_castore_dam.channels.batch_retry import (
    EntryFailure,
    RetryPolicy,
    deliver,
    failure_for_code,
    pack_requests,
)
from airflow_provider_castore_dam.channels.castore_format import (
    InvalidMessageError,
    castore_message_id,
    describe_message,
    message_group_id,
    to_json,
)
from airflow_provider_castore_dam.channels.s3_offload import (
    S3Offload,
    offload_oversized,
    sqs_entry_size,
)
from airflow_provider_castore_dam.errors import InvalidPourInputError
from airflow_provider_castore_dam.protocols import Message, check_max_in_flight

FifoDeduplication = Literal["castore", "run"]
"""The values of ``fifo_deduplication`` (the parameter takes a plain ``str``, checked at run
time, so values read from configuration need no cast)."""

SQS_MAX_BATCH_SIZE = 10
_RUN_ID = re.compile(r"[\x21-\x7e]{1,64}\Z")  # printable ASCII: what a dedup id may contain


@dataclass
class _Entry:
    message: Message
    message_id: str
    content: str
    """The message body: the message JSON, or its S3 offload's ``messageUrl``."""
    attributes: dict[str, dict[str, str]]
    group_id: str | None
    deduplication_id: str | None

    @property
    def size(self) -> int:
        return sqs_entry_size(self.content, self.attributes)

    def request_entry(self, entry_id: str) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "Id": entry_id,
            "MessageBody": self.content,
            "MessageAttributes": {
                name: dict(attribute) for name, attribute in self.attributes.items()
            },
        }
        if self.group_id is not None:
            entry["MessageGroupId"] = self.group_id
        if self.deduplication_id is not None:
            entry["MessageDeduplicationId"] = self.deduplication_id
        return entry


class SQSMessageChannel:
    """Publishes poured messages to an SQS queue, standard or FIFO (``.fifo`` URL).

    ``client``: a boto3 SQS client; or ``session`` / ``region_name`` / ``endpoint_url`` to
    build one (with botocore's retries off: this channel retries, within ``retry_policy``).

    ``fifo_deduplication`` (FIFO queues only): ``"castore"`` (default) uses Castore's
    messageId as deduplication id, so SQS silently drops a message whose messageId it has seen
    in the last 5 minutes (e.g. a replay right after the original publication, or a re-run of
    a pour); ``"run"`` uses ``<messageId>#<run id>`` so each channel instance (one pour run)
    has its own deduplication scope. ``run_id`` (printable ASCII, at most 64 characters; e.g.
    Airflow's run id) defaults to a random one per channel instance.

    ``s3_offload``: where messages over 262,144 bytes go; without it they raise
    :class:`~airflow_provider_castore_dam.channels.s3_offload.MessageTooLargeError`.
    """

    def __init__(
        self,
        queue_url: str,
        *,
        client: Any = None,
        session: Any = None,
        region_name: str | None = None,
        endpoint_url: str | None = None,
        fifo_deduplication: str = "castore",
        run_id: str | None = None,
        s3_offload: S3Offload | None = None,
        retry_policy: RetryPolicy | None = None,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
    ) -> None:
        self._queue_url = check_queue_url(queue_url)
        self._fifo = queue_url.endswith(".fifo")
        if fifo_deduplication not in ("castore", "run"):
            raise InvalidPourInputError(
                f"fifo_deduplication must be 'castore' or 'run', not {fifo_deduplication!r}"
            )
        if fifo_deduplication == "run" and not self._fifo:
            raise InvalidPourInputError(
                "fifo_deduplication='run' needs a FIFO queue (URL ending in .fifo); "
                f"{queue_url} is a standard queue"
            )
        if run_id is not None and fifo_deduplication != "run":
            raise InvalidPourInputError("run_id is only used with fifo_deduplication='run'")
        if run_id is not None and (not isinstance(run_id, str) or not _RUN_ID.match(run_id)):
            raise InvalidPourInputError(
                f"run_id must be 1 to 64 printable ASCII characters without spaces, not {run_id!r}"
            )
        self._run_id = (run_id or uuid.uuid4().hex) if fifo_deduplication == "run" else None
        if s3_offload is not None and not isinstance(s3_offload, S3Offload):
            raise InvalidPourInputError(f"s3_offload must be an S3Offload, not {s3_offload!r}")
        self._s3_offload = s3_offload
        self._retry_policy = retry_policy or RetryPolicy()
        self._max_in_flight = check_max_in_flight(max_in_flight)
        if client is None and region_name is None and session is None:
            region_name = region_from_queue_url(queue_url)
        self._client = build_client(
            "sqs",
            client=client,
            session=session,
            region_name=region_name,
            endpoint_url=endpoint_url,
            max_in_flight=self._max_in_flight,
        )

    def __repr__(self) -> str:
        return f"SQSMessageChannel({self._queue_url!r}, fifo={self._fifo})"

    @property
    def max_in_flight(self) -> int:
        """Publish calls a pour makes at once (see :class:`~.protocols.MessageChannel`)."""
        return self._max_in_flight

    @property
    def max_batch_size(self) -> int:
        return SQS_MAX_BATCH_SIZE

    @property
    def queue_url(self) -> str:
        return self._queue_url

    @property
    def fifo(self) -> bool:
        return self._fifo

    @property
    def run_id(self) -> str | None:
        """The run id in deduplication ids (``fifo_deduplication="run"`` only)."""
        return self._run_id

    @property
    def _target(self) -> str:
        return f"SQS queue {self._queue_url}"

    def _entry(self, message: Message, replay: bool) -> _Entry:
        try:
            message_id = castore_message_id(message)
            body = to_json(message)
            group_id = message_group_id(message) if self._fifo else None
        except TypeError as error:
            raise InvalidMessageError(
                f"{self._target}: cannot serialise the {describe_message(message)}: {error}"
            ) from error
        attributes = {"messageId": {"DataType": "String", "StringValue": message_id}}
        if replay:
            attributes["replay"] = {"DataType": "Number", "StringValue": "1"}
        deduplication_id = None
        if self._fifo:
            deduplication_id = (
                message_id if self._run_id is None else f"{message_id}#{self._run_id}"
            )
        return _Entry(message, message_id, body, attributes, group_id, deduplication_id)

    def publish_messages(self, messages: Sequence[Message], *, replay: bool) -> None:
        """Publish ``messages`` in order (see :mod:`.batch_retry` for retries and order).

        Nothing is sent when a message cannot be formatted or is oversized without offload.
        """
        entries = [self._entry(message, replay) for message in messages]
        offload_oversized(entries, self._s3_offload, policy=self._retry_policy, target=self._target)
        sizes = [entry.size for entry in entries]
        deliver(
            len(entries),
            pack=lambda pending: pack_requests(pending, sizes),
            send=lambda request: self._send(entries, request),
            policy=self._retry_policy,
            target=self._target,
            operation="SendMessageBatch",
            describe_entry=lambda index: f"message {entries[index].message_id}",
        )

    def _send(self, entries: Sequence[_Entry], request: Sequence[int]) -> dict[int, EntryFailure]:
        response = self._client.send_message_batch(
            QueueUrl=self._queue_url,
            Entries=[entries[index].request_entry(str(index)) for index in request],
        )
        return sqs_failures(request, response)


def sqs_failures(request: Sequence[int], response: Mapping[str, Any]) -> dict[int, EntryFailure]:
    """The failed entries of a ``SendMessageBatch`` response (entry ids are the indices).

    ``Failed`` entries are retryable unless ``SenderFault`` is true; an entry listed neither
    as successful nor as failed counts as failed (retryable).
    """
    by_id = {str(index): index for index in request}
    failures: dict[int, EntryFailure] = {}
    for failed in response.get("Failed") or []:
        index = by_id.get(str(failed.get("Id")))
        if index is not None:
            failures[index] = failure_for_code(
                str(failed.get("Code") or "Unknown"),
                str(failed.get("Message") or ""),
                retryable=not failed.get("SenderFault", False),
            )
    confirmed = {str(success.get("Id")) for success in response.get("Successful") or []}
    for entry_id, index in by_id.items():
        if index not in failures and entry_id not in confirmed:
            failures[index] = failure_for_code(
                "MissingFromResponse",
                "SQS listed the entry neither as successful nor failed",
                retryable=True,
            )
    return failures
