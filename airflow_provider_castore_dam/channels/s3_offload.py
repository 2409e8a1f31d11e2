"""Oversized messages: Castore's ``-s3`` adapters' offload, and the error without it.

SQS and EventBridge take at most 262,144 bytes per entry, counted as Castore counts them (see
:func:`sqs_entry_size` and :func:`eventbridge_entry_size`). A channel given an
:class:`S3Offload` stores an oversized message's JSON in S3 and publishes
``{"messageUrl": "<presigned GET URL>"}`` in its place, keeping the attributes (SQS) or the
source and detail-type (EventBridge): what the consumers of Castore's
``message-queue-adapter-sqs-s3`` and ``message-bus-adapter-event-bridge-s3`` read. Without one,
the channel raises :class:`MessageTooLargeError` before sending anything of the call.

Presigned URLs are credentials for the object: they are published, never logged, and redacted
from error messages.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any, Protocol

from airflow_provider_castore_dam.channels.aws_clients import build_client
from airflow_provider_castore_dam.channels.castore_format import (
    InvalidMessageError,
    aggregate_and_version,
    castore_message_id,
    describe_message,
    s3_object_path,
    to_json,
    utf8_size,
)
from airflow_provider_castore_dam.errors import InvalidPourInputError, MessageChannelError
from airflow_provider_castore_dam.protocols import Message
from airflow_provider_castore_dam.retry import (
    RetryPolicy,
    call_with_retries,
    classify_aws_error,
    gave_up_note,
)

log = logging.getLogger("airflow_provider_castore_dam.channels")

SIZE_LIMIT = 262_144
"""Castore's ``SEND_MESSAGES_SIZE_LIMIT`` / ``PUT_EVENTS_ENTRIES_SIZE_LIMIT``: an entry is
offloaded when its size is above this (exactly 262,144 bytes stays inline)."""

MAX_URL_EXPIRY_SECONDS = 7 * 24 * 3600  # the longest a SigV4 presigned URL may live


def sqs_entry_size(body: str, attributes: Mapping[str, Mapping[str, str]]) -> int:
    """Castore's ``getMessageSize``: body bytes, plus for each attribute the bytes of its name
    and of every value of its attribute object (``DataType`` included)."""
    size = utf8_size(body)
    for name, attribute in attributes.items():
        size += utf8_size(name) + sum(utf8_size(value) for value in attribute.values())
    return size


def eventbridge_entry_size(detail: str, detail_type: str, source: str) -> int:
    """Castore's ``getFormattedMessageSize`` for entries without ``Time`` and ``Resources``:
    the bytes of Detail, DetailType and Source (the bus name does not count)."""
    return utf8_size(detail) + utf8_size(detail_type) + utf8_size(source)


class MessageTooLargeError(MessageChannelError):
    """A message exceeds 262,144 bytes and the channel has no S3 offload.

    Raised before the channel sends anything of the ``publish_messages`` call, so
    ``confirmed_count`` is 0 and, the engine publishing its batches in order, nothing after the
    message is published either. It is a :class:`MessageChannelError`: a pour stops with
    ``PourInterruptedError`` whose result counts the batches published before.
    """

    def __init__(self, message: Message, *, size: int, target: str) -> None:
        try:
            aggregate_id, version = aggregate_and_version(message)
        except InvalidMessageError:
            aggregate_id, version = None, None
        self.event_store_id: Any = message.get("eventStoreId")
        self.aggregate_id: Any = aggregate_id
        self.version: Any = version
        self.size = size
        self.limit = SIZE_LIMIT
        super().__init__(
            f"{target}: the {describe_message(message)} is {size} bytes as Castore counts it, "
            f"above the {SIZE_LIMIT}-byte limit, and the channel has no S3 offload "
            "(pass s3_offload=S3Offload(bucket=...)); nothing of this batch was published",
            confirmed_count=0,
        )


def _iso_now() -> datetime:
    return datetime.now(timezone.utc)


def iso_millis(moment: datetime) -> str:
    """JavaScript's ``Date.prototype.toISOString``: UTC, milliseconds, ``Z``."""
    utc = moment.astimezone(timezone.utc)
    return f"{utc:%Y-%m-%dT%H:%M:%S}.{utc.microsecond // 1000:03d}Z"


class S3Offload:
    """Where a channel stores oversized messages.

    ``bucket``: the S3 bucket. ``prefix``: pasted before the key as is (no separator added,
    as in Castore: use ``"replays/"`` for a folder). ``url_expiry_seconds``: lifetime of the
    presigned GET URL (Castore's default 900 s; at most 7 days). ``client``: a boto3 S3
    client, or ``session`` / ``region_name`` / ``endpoint_url`` to build one (SigV4 URLs).

    Objects are written at ``<prefix><eventStoreId>/<aggregateId>/<publish time>#<version>``
    (aggregate-exists messages: without ``#<version>``), the publish time in UTC with
    milliseconds, content type ``application/json``, body the message JSON.
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        url_expiry_seconds: int = 900,
        *,
        client: Any = None,
        session: Any = None,
        region_name: str | None = None,
        endpoint_url: str | None = None,
        clock: Callable[[], datetime] = _iso_now,
    ) -> None:
        if not isinstance(bucket, str) or not bucket:
            raise InvalidPourInputError(f"bucket must be a non-empty string, not {bucket!r}")
        if not isinstance(prefix, str):
            raise InvalidPourInputError(f"prefix must be a string, not {prefix!r}")
        if (
            isinstance(url_expiry_seconds, bool)
            or not isinstance(url_expiry_seconds, int)
            or not 1 <= url_expiry_seconds <= MAX_URL_EXPIRY_SECONDS
        ):
            raise InvalidPourInputError(
                f"url_expiry_seconds must be an integer from 1 to {MAX_URL_EXPIRY_SECONDS}, "
                f"not {url_expiry_seconds!r}"
            )
        self.bucket = bucket
        self.prefix = prefix
        self.url_expiry_seconds = url_expiry_seconds
        self._clock = clock
        self._client = build_client(
            "s3",
            client=client,
            session=session,
            region_name=region_name,
            endpoint_url=endpoint_url,
            config_options={"signature_version": "s3v4"},
        )

    def __repr__(self) -> str:
        return (
            f"S3Offload(bucket={self.bucket!r}, prefix={self.prefix!r}, "
            f"url_expiry_seconds={self.url_expiry_seconds})"
        )

    def object_key(self, message: Message, published_at: datetime) -> str:
        """The key Castore's ``-s3`` adapters use for ``message`` published at that time."""
        return self.prefix + s3_object_path(message, iso_millis(published_at))

    def offload(self, message: Message, body: str, *, policy: RetryPolicy, target: str) -> str:
        """Store ``body`` (the message JSON) and return a presigned GET URL for it.

        Whole-call errors are retried within ``policy``; a failure raises
        ``MessageChannelError`` with ``confirmed_count`` 0.
        """
        key = self.object_key(message, self._clock())
        location = f"s3://{self.bucket}/{key}"
        try:
            call_with_retries(
                lambda: self._client.put_object(
                    Bucket=self.bucket,
                    Key=key,
                    Body=body.encode("utf-8"),
                    ContentType="application/json",
                ),
                policy=policy,
                what=f"PutObject {location}",
                classify=classify_aws_error,
            )
            url: str = self._client.generate_presigned_url(
                "get_object",
                Params={"Bucket": self.bucket, "Key": key},
                ExpiresIn=self.url_expiry_seconds,
            )
        except Exception as error:
            raise MessageChannelError(
                f"{target}: could not offload the {describe_message(message)} to {location}: "
                f"{classify_aws_error(error)}{gave_up_note(error)}; nothing of this batch was "
                "published",
                confirmed_count=0,
            ) from error
        log.info(
            "%s: offloaded message %s (%d bytes) to %s",
            target,
            castore_message_id(message),
            utf8_size(body),
            location,
        )
        return url


class OffloadableEntry(Protocol):
    """A channel's entry: its message, and the JSON it sends (replaced by the offload URL)."""

    message: Message
    content: str

    @property
    def size(self) -> int: ...


def offload_oversized(
    entries: Sequence[OffloadableEntry],
    offload: S3Offload | None,
    *,
    policy: RetryPolicy,
    target: str,
) -> None:
    """Store the entries over ``SIZE_LIMIT`` in S3 and send ``{"messageUrl": ...}`` in their
    place; without ``offload``, raise :class:`MessageTooLargeError` for the first one, before
    anything of the call is sent."""
    oversized = [entry for entry in entries if entry.size > SIZE_LIMIT]
    if oversized and offload is None:
        raise MessageTooLargeError(oversized[0].message, size=oversized[0].size, target=target)
    for entry in oversized:
        assert offload is not None
        url = offload.offload(entry.message, entry.content, policy=policy, target=target)
        entry.content = to_json({"messageUrl": url})
