"""An EventBridge bus, written as Castore's ``EventBridgeMessageBusAdapter`` writes it.

Every message becomes one ``PutEvents`` entry (at most 10 per request):

- ``EventBusName``: the bus;
- ``Source``: the message's eventStoreId;
- ``DetailType``: ``__REPLAYED__`` for event-carrying messages published as replays (else the
  event's type), ``__AGGREGATE_EXISTS__`` for aggregate-exists messages;
- ``Detail``: the message JSON, as ``JSON.stringify`` writes it.

Entries reported in the response with an ``ErrorCode`` are retried when the code is transient
(``ThrottlingException``, ``InternalFailure``...), see :mod:`.batch_retry`; validation errors
(``InvalidArgument``, ``MalformedDetail``, access errors...) are not.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from airflow_provider_castore_dam.channels.aws_clients import DEFAULT_MAX_IN_FLIGHT, build_client
from airflow_provider_castore_dam.channels.aws_names import check_event_bus_name
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
    detail_type,
    to_json,
)
from airflow_provider_castore_dam.channels.s3_offload import (
    S3Offload,
    eventbridge_entry_size,
    offload_oversized,
)
from airflow_provider_castore_dam.errors import InvalidPourInputError
from airflow_provider_castore_dam.protocols import Message, check_max_in_flight

EVENTBRIDGE_MAX_BATCH_SIZE = 10


@dataclass
class _Entry:
    message: Message
    source: str
    detail_type: str
    content: str
    """The event's detail: the message JSON, or its S3 offload's ``messageUrl``."""

    @property
    def size(self) -> int:
        return eventbridge_entry_size(self.content, self.detail_type, self.source)


class EventBridgeMessageChannel:
    """Publishes poured messages to an EventBridge event bus (name or ARN).

    ``client``: a boto3 EventBridge (``events``) client; or ``session`` / ``region_name`` /
    ``endpoint_url`` to build one (with botocore's retries off: this channel retries, within
    ``retry_policy``). ``s3_offload``: where entries over 262,144 bytes go; without it they
    raise :class:`~airflow_provider_castore_dam.channels.s3_offload.MessageTooLargeError`.
    """

    def __init__(
        self,
        event_bus_name: str,
        *,
        client: Any = None,
        session: Any = None,
        region_name: str | None = None,
        endpoint_url: str | None = None,
        s3_offload: S3Offload | None = None,
        retry_policy: RetryPolicy | None = None,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
    ) -> None:
        if s3_offload is not None and not isinstance(s3_offload, S3Offload):
            raise InvalidPourInputError(f"s3_offload must be an S3Offload, not {s3_offload!r}")
        self._event_bus_name = check_event_bus_name(event_bus_name)
        self._s3_offload = s3_offload
        self._retry_policy = retry_policy or RetryPolicy()
        self._max_in_flight = check_max_in_flight(max_in_flight)
        self._client = build_client(
            "events",
            client=client,
            session=session,
            region_name=region_name,
            endpoint_url=endpoint_url,
            max_in_flight=self._max_in_flight,
        )

    def __repr__(self) -> str:
        return f"EventBridgeMessageChannel({self._event_bus_name!r})"

    @property
    def max_in_flight(self) -> int:
        """Publish calls a pour makes at once (see :class:`~.protocols.MessageChannel`)."""
        return self._max_in_flight

    @property
    def max_batch_size(self) -> int:
        return EVENTBRIDGE_MAX_BATCH_SIZE

    @property
    def event_bus_name(self) -> str:
        return self._event_bus_name

    @property
    def _target(self) -> str:
        return f"EventBridge bus {self._event_bus_name}"

    def _entry(self, message: Message, replay: bool) -> _Entry:
        try:
            kind = detail_type(message, replay=replay)
            detail = to_json(message)
        except TypeError as error:
            raise InvalidMessageError(
                f"{self._target}: cannot serialise the {describe_message(message)}: {error}"
            ) from error
        source = message.get("eventStoreId")
        if not isinstance(source, str):
            raise InvalidMessageError(
                f"{self._target}: the eventStoreId of the {describe_message(message)} "
                f"must be a string to be the event source, not {source!r}"
            )
        return _Entry(message, source, kind, detail)

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
            operation="PutEvents",
            describe_entry=lambda index: f"message {_message_id(entries[index].message)}",
        )

    def _send(self, entries: Sequence[_Entry], request: Sequence[int]) -> dict[int, EntryFailure]:
        response = self._client.put_events(
            Entries=[
                {
                    "EventBusName": self._event_bus_name,
                    "Source": entries[index].source,
                    "DetailType": entries[index].detail_type,
                    "Detail": entries[index].content,
                }
                for index in request
            ]
        )
        return eventbridge_failures(request, response)


def _message_id(message: Message) -> str:
    try:
        return castore_message_id(message)
    except InvalidMessageError:
        return "?"


def eventbridge_failures(
    request: Sequence[int], response: Mapping[str, Any]
) -> dict[int, EntryFailure]:
    """The failed entries of a ``PutEvents`` response, whose ``Entries`` follow the request's.

    An entry with an ``ErrorCode`` failed; one with neither an ``EventId`` nor an error (or
    missing from the response) counts as failed, retryably.
    """
    results = list(response.get("Entries") or [])
    failures: dict[int, EntryFailure] = {}
    for position, index in enumerate(request):
        result = results[position] if position < len(results) else {}
        if result.get("ErrorCode"):
            failures[index] = failure_for_code(
                str(result["ErrorCode"]), str(result.get("ErrorMessage") or "")
            )
        elif not result.get("EventId"):
            failures[index] = failure_for_code(
                "MissingFromResponse",
                "PutEvents returned no event id for the entry",
                retryable=True,
            )
    if not failures and (response.get("FailedEntryCount") or 0) > 0:
        # The count says some failed but no entry says which: trust nothing of the request.
        failures = dict.fromkeys(
            request,
            failure_for_code(
                "FailedEntryCount",
                f"{response['FailedEntryCount']} entries failed",
                retryable=True,
            ),
        )
    return failures
