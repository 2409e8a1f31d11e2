"""Reading our connection types' fields, with an error naming the connection for every
misconfiguration, and AWS clients through the amazon provider's connection handling."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from airflow.providers.common.compat.sdk import AirflowNotFoundException, BaseHook
from airflow.sdk import Connection
from airflow.sdk.log import mask_secret

from airflow_provider_castore_dam.errors import ConnectionConfigError


@dataclass(frozen=True)
class ConnectionFields:
    """A connection's custom fields (stored in ``extra`` under their plain names)."""

    conn_id: str
    conn_type: str
    values: Mapping[str, Any]

    @classmethod
    def of(cls, connection: Connection, expected_conn_type: str) -> ConnectionFields:
        conn_id = connection.conn_id
        if connection.conn_type != expected_conn_type:
            raise ConnectionConfigError(
                f"connection {conn_id!r} has type {connection.conn_type!r}; "
                f"expected {expected_conn_type!r}"
            )
        try:
            values = json.loads(connection.extra) if connection.extra else {}
        except json.JSONDecodeError as error:
            raise ConnectionConfigError(
                f"the extra of connection {conn_id!r} is not valid JSON: {error}"
            ) from error
        if not isinstance(values, dict):
            raise ConnectionConfigError(
                f"the extra of connection {conn_id!r} must be a JSON object, "
                f"not {type(values).__name__}"
            )
        mask_secret(values)
        return cls(conn_id, expected_conn_type, values)

    def optional(self, name: str) -> Any:
        value = self.values.get(name)
        return None if value == "" else value

    def text(self, name: str) -> str | None:
        """A string field; ``None`` when absent or empty."""
        value = self.optional(name)
        if value is not None and not isinstance(value, str):
            raise ConnectionConfigError(
                f"connection {self.conn_id!r} has {name} {value!r}; expected a string"
            )
        return value

    def required(self, name: str, why: str) -> str:
        value = self.text(name)
        if value is None:
            raise ConnectionConfigError(f"connection {self.conn_id!r} needs {name!r} {why}")
        return value

    def choice(self, name: str, allowed: tuple[str, ...], default: str | None = None) -> str:
        value = self.optional(name) or default
        if value not in allowed:
            raise ConnectionConfigError(
                f"connection {self.conn_id!r} has {name} {value!r}; expected one of "
                f"{', '.join(allowed)}"
            )
        return str(value)

    def number(self, name: str, default: int) -> int:
        value = self.optional(name)
        if value is None:
            return default
        try:
            return int(value)
        except (TypeError, ValueError) as error:
            raise ConnectionConfigError(
                f"connection {self.conn_id!r} has {name} {value!r}; expected a whole number"
            ) from error


def aws_client(
    fields: ConnectionFields, service: str, config_defaults: Mapping[str, Any] | None = None
) -> Any:
    """A boto3 client built by the amazon provider from the connection's ``aws_conn_id``
    (default ``aws_default``; null for boto3's own credential chain) with its keys, role
    assumption, region and endpoint; this connection's region and endpoint URL take
    precedence when set. ``config_defaults``: botocore ``Config`` options applied unless the
    AWS connection's own config sets them (e.g. ``signature_version``)."""
    try:
        from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
    except ImportError as error:
        raise ConnectionConfigError(
            f"connection {fields.conn_id!r} needs the amazon provider: "
            "pip install 'airflow-provider-castore-dam[aws]'"
        ) from error
    from botocore.exceptions import NoRegionError

    region_name = fields.text("region_name")
    endpoint_url = fields.text("endpoint_url")
    aws_conn_id = aws_conn_id_of(fields)
    hook = AwsBaseHook(aws_conn_id=aws_conn_id, client_type=service, region_name=region_name)
    config = _with_defaults(hook.config, config_defaults or {})
    try:
        if endpoint_url is None:
            return hook.get_client_type(region_name=region_name, config=config)
        return hook.get_session(region_name=region_name).client(
            service, endpoint_url=endpoint_url, config=config, verify=hook.verify
        )
    except NoRegionError as error:
        raise ConnectionConfigError(
            f"connection {fields.conn_id!r} has no AWS region for {service}: set region_name "
            f"in it or in its AWS connection {aws_conn_id!r}"
        ) from error


def aws_conn_id_of(fields: ConnectionFields) -> str | None:
    """The AWS connection id: ``aws_default`` unless set; empty for boto3's own chain. One set
    explicitly must exist (the amazon provider would silently fall back to boto3's chain)."""
    if "aws_conn_id" not in fields.values:
        return "aws_default"
    aws_conn_id = fields.text("aws_conn_id")
    if aws_conn_id is not None:
        try:
            BaseHook.get_connection(aws_conn_id)
        except AirflowNotFoundException as error:
            raise ConnectionConfigError(
                f"connection {fields.conn_id!r} has aws_conn_id {aws_conn_id!r}, which is not "
                "an Airflow connection; leave it empty for boto3's default credential chain"
            ) from error
    return aws_conn_id


def _with_defaults(config: Any, defaults: Mapping[str, Any]) -> Any:
    """``config`` (a botocore ``Config`` or None) with ``defaults`` for the options it leaves
    unset."""
    from botocore.config import Config

    base = config or Config()
    unset = {name: value for name, value in defaults.items() if getattr(base, name) is None}
    return base.merge(Config(**unset)) if unset else base
