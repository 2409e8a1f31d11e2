from __future__ import annotations

from functools import cached_property
from typing import Any

from airflow.providers.common.compat.sdk import BaseHook

from airflow_provider_castore_dam.channels.aws_clients import DEFAULT_MAX_IN_FLIGHT
from airflow_provider_castore_dam.channels.aws_names import check_event_bus_name, check_queue_url
from airflow_provider_castore_dam.errors import ConnectionConfigError, InvalidPourInputError
from airflow_provider_castore_dam.hooks import legacy_forms
from airflow_provider_castore_dam.hooks.connection_fields import ConnectionFields, aws_client
from airflow_provider_castore_dam.protocols import MessageChannel

MESSAGE_CHANNEL_KINDS = ("sqs", "eventbridge", "in-memory")
FIFO_DEDUPLICATIONS = ("castore", "run")
S3_CONFIG_DEFAULTS = {"signature_version": "s3v4"}
"""Presigned URLs signed with SigV4, as Castore's (botocore signs them with SigV2 in
us-east-1 otherwise); an AWS connection whose config sets a signature version keeps it."""


class CastoreMessageChannelHook(BaseHook):
    """The message channel described by a ``castore_message_channel`` connection.

    ``kind`` picks it: ``sqs`` (``queue_url``, ``fifo_deduplication``), ``eventbridge``
    (``event_bus_name``) or ``in-memory`` (keeps messages in the task's process, for demos and
    tests). SQS and EventBridge take credentials from ``aws_conn_id``, publish up to
    ``max_in_flight`` calls at once and offload messages over 256 KiB to ``s3_offload_bucket``
    when set.
    """

    conn_name_attr = "castore_message_channel_conn_id"
    default_conn_name = "castore_message_channel_default"
    conn_type = "castore_message_channel"
    hook_name = "Castore Message Channel"
    # Read by the UIs of Airflow 3.0 and 3.1 only when in the class's own namespace.
    get_connection_form_widgets = legacy_forms.connection_form_widgets_method
    get_ui_field_behaviour = legacy_forms.ui_field_behaviour_method

    def __init__(
        self, castore_message_channel_conn_id: str = default_conn_name, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.castore_message_channel_conn_id = castore_message_channel_conn_id

    @cached_property
    def fields(self) -> ConnectionFields:
        return ConnectionFields.of(
            self.get_connection(self.castore_message_channel_conn_id), self.conn_type
        )

    @property
    def kind(self) -> str:
        return self.fields.choice("kind", MESSAGE_CHANNEL_KINDS)

    def get_message_channel(self) -> MessageChannel:
        """The channel, checked before anything is published: a queue URL, bus name or
        option it refuses raises :class:`ConnectionConfigError` naming this connection."""
        try:
            return self._message_channel()
        except InvalidPourInputError as error:
            raise ConnectionConfigError(
                f"connection {self.castore_message_channel_conn_id!r}: {error}"
            ) from error

    def _message_channel(self) -> MessageChannel:
        kind = self.kind
        if kind == "in-memory":
            from airflow_provider_castore_dam.channels import InMemoryMessageChannel

            return InMemoryMessageChannel()
        if kind == "sqs":
            from airflow_provider_castore_dam.channels.sqs import SQSMessageChannel

            queue_url = self.fields.required("queue_url", "(the SQS queue URL)")
            deduplication = self.fields.choice(
                "fifo_deduplication", FIFO_DEDUPLICATIONS, default="castore"
            )
            return SQSMessageChannel(
                queue_url,
                client=aws_client(self.fields, "sqs", self._pool_size()),
                fifo_deduplication=deduplication,
                s3_offload=self._s3_offload(),
                max_in_flight=self._max_in_flight(),
            )
        from airflow_provider_castore_dam.channels.eventbridge import EventBridgeMessageChannel

        bus_name = self.fields.required("event_bus_name", "(the EventBridge bus name)")
        return EventBridgeMessageChannel(
            bus_name,
            client=aws_client(self.fields, "events", self._pool_size()),
            s3_offload=self._s3_offload(),
            max_in_flight=self._max_in_flight(),
        )

    def _max_in_flight(self) -> int:
        return self.fields.number("max_in_flight", DEFAULT_MAX_IN_FLIGHT)

    def _pool_size(self) -> dict[str, int]:
        """botocore connections for the calls in flight (and their S3 offloads)."""
        return {"max_pool_connections": max(10, self._max_in_flight())}

    def _s3_offload(self) -> Any:
        bucket = self.fields.text("s3_offload_bucket")
        if bucket is None:
            return None
        from airflow_provider_castore_dam.channels.s3_offload import S3Offload

        return S3Offload(
            bucket,
            prefix=self.fields.text("s3_offload_prefix") or "",
            url_expiry_seconds=self.fields.number("s3_url_expiry_seconds", 900),
            client=aws_client(self.fields, "s3", {**S3_CONFIG_DEFAULTS, **self._pool_size()}),
        )

    def lineage_dataset(self) -> tuple[str, str]:
        """The OpenLineage (namespace, name) of the queue or bus (see :mod:`.lineage`)."""
        from airflow_provider_castore_dam.hooks.lineage import (
            MEMORY,
            eventbridge_dataset,
            sqs_dataset,
        )

        kind = self.kind
        if kind == "sqs":
            return sqs_dataset(self.fields, str(self.fields.text("queue_url")))
        if kind == "eventbridge":
            return eventbridge_dataset(self.fields, str(self.fields.text("event_bus_name")))
        return MEMORY, "in-memory"

    def test_connection(self) -> tuple[bool, str]:
        """Checks the queue, bus and offload bucket exist and are readable, publishing nothing."""
        try:
            kind = self.kind
            if kind == "sqs":
                queue_url = self.fields.required("queue_url", "(the SQS queue URL)")
                aws_client(self.fields, "sqs").get_queue_attributes(
                    QueueUrl=check_queue_url(queue_url), AttributeNames=["QueueArn"]
                )
            elif kind == "eventbridge":
                bus_name = self.fields.required("event_bus_name", "(the EventBridge bus name)")
                aws_client(self.fields, "events").describe_event_bus(
                    Name=check_event_bus_name(bus_name)
                )
            bucket = self.fields.optional("s3_offload_bucket")
            if kind != "in-memory" and bucket is not None:
                aws_client(self.fields, "s3").head_bucket(Bucket=bucket)
        except Exception as error:
            return False, f"{type(error).__name__}: {error}"
        return True, f"{kind} message channel connection works"
