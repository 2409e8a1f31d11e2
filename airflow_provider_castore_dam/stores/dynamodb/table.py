"""The DynamoDB table a store reads: its client, and each request retried on transient errors
within the retry policy (see :mod:`airflow_provider_castore_dam.retry`), failures worded with
the table, region and endpoint, and what to check."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
    ReadTimeoutError,
)

from airflow_provider_castore_dam.errors import EventStoreError
from airflow_provider_castore_dam.retry import (
    RetryPolicy,
    call_with_retries,
    classify_aws_error,
    gave_up_note,
)

_CREDENTIAL_ERRORS = frozenset(
    {
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "IncompleteSignature",
        "IncompleteSignatureException",
        "InvalidClientTokenId",
        "MissingAuthenticationToken",
        "MissingAuthenticationTokenException",
        "ExpiredToken",
        "ExpiredTokenException",
        "AccessDeniedException",
        "AuthFailure",
    }
)
_UNREACHABLE_ERRORS = (
    EndpointConnectionError,
    ConnectTimeoutError,
    ReadTimeoutError,
    ConnectionClosedError,
)

_SNAKE_CASE = {"DescribeTable": "describe_table", "Query": "query", "Scan": "scan"}
"""The client method of each DynamoDB operation the store calls."""


def make_client(
    session: Any,
    region_name: str | None,
    endpoint_url: str | None,
    client_config: Any,
    connect_timeout: float,
    read_timeout: float,
) -> Any:
    # One attempt per request: ``Table.call`` retries within the store's retry policy.
    config = Config(
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        retries={"total_max_attempts": 1, "mode": "standard"},
    )
    if client_config is not None:
        config = config.merge(client_config)
    try:
        return (session or boto3.session.Session()).client(
            "dynamodb", region_name=region_name, endpoint_url=endpoint_url, config=config
        )
    except NoRegionError as error:
        raise EventStoreError(
            "no AWS region for DynamoDB: pass region_name=... or set AWS_REGION "
            "(or AWS_DEFAULT_REGION, or a region in the AWS profile)"
        ) from error
    except (BotoCoreError, ValueError) as error:
        raise EventStoreError(f"cannot make a DynamoDB client: {error}") from error


def range_condition(name: str, low: str, high: str, values: Mapping[str, Any]) -> str:
    """The ``KeyConditionExpression`` part bounding sort key ``name`` by the placeholders
    ``low`` and ``high`` (inclusive), for those of them that are in ``values``."""
    if low in values and high in values:
        return f" AND {name} BETWEEN {low} AND {high}"
    if low in values:
        return f" AND {name} >= {low}"
    if high in values:
        return f" AND {name} <= {high}"
    return ""


def error_code(error: Any) -> str:
    return str(getattr(error, "response", {}).get("Error", {}).get("Code", "")) or "unknown"


@dataclass(frozen=True)
class Table:
    """A table read through one client; :meth:`where` names it in messages."""

    client: Any
    name: str
    gsi_name: str
    consistent_read: bool
    retry_policy: RetryPolicy

    def where(self) -> str:
        meta = getattr(self.client, "meta", None)
        region = getattr(meta, "region_name", None)
        endpoint = getattr(meta, "endpoint_url", None)
        return f"DynamoDB table {self.name!r} (region {region}, endpoint {endpoint})"

    def call(self, operation: str, request: dict[str, Any]) -> dict[str, Any]:
        """One request, retried on transient errors; errors become :class:`EventStoreError`."""
        method: Callable[..., dict[str, Any]] = getattr(self.client, _SNAKE_CASE[operation])
        try:
            return call_with_retries(
                lambda: method(**request),
                policy=self.retry_policy,
                what=f"DynamoDB {operation} on table {self.name!r}",
                classify=classify_aws_error,
            )
        except ClientError as error:
            raise self._client_error(operation, request, error) from error
        except (NoCredentialsError, PartialCredentialsError) as error:
            raise EventStoreError(
                f"no usable AWS credentials to read {self.where()}: {error}. boto3 looks in "
                "the client/session arguments, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, the "
                "AWS profile (AWS_PROFILE), then container and instance roles"
            ) from error
        except _UNREACHABLE_ERRORS as error:
            raise EventStoreError(
                f"cannot reach DynamoDB to read {self.where()}: {error}{gave_up_note(error)}"
            ) from error
        except BotoCoreError as error:
            raise EventStoreError(
                f"{operation} on {self.where()} failed: {error}{gave_up_note(error)}"
            ) from error

    def _client_error(
        self, operation: str, request: Mapping[str, Any], error: Any
    ) -> EventStoreError:
        code = error_code(error)
        message = str(error.response.get("Error", {}).get("Message", ""))
        if (
            "IndexName" in request
            and code in {"ValidationException", "ResourceNotFoundException"}
            and self.gsi_name in message
            and "index" in message.lower()
        ):
            # DynamoDB: ValidationException "The table does not have the specified index";
            # moto: ResourceNotFoundException "Invalid index".
            return EventStoreError(
                f"{self.where()} has no usable global secondary index {self.gsi_name!r} "
                f"({code}: {message})"
            )
        if code == "ResourceNotFoundException":
            return EventStoreError(
                f"{self.where()} does not exist (DynamoDB {operation}: {message or code})"
            )
        if code in _CREDENTIAL_ERRORS:
            return EventStoreError(
                f"DynamoDB refused the AWS credentials or permissions for {self.where()} "
                f"({code}: {message}); check the access key, secret, session token and the "
                f"IAM policy (dynamodb:Query, dynamodb:DescribeTable)"
            )
        return EventStoreError(
            f"{operation} on {self.where()} failed: {code}: {message}{gave_up_note(error)}"
        )
