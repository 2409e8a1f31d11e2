"""boto3 clients for the AWS channels: given, or built from a session, region and endpoint."""

from __future__ import annotations

import re
from typing import Any

from airflow_provider_castore_dam.errors import InvalidPourInputError

DEFAULT_MAX_IN_FLIGHT = 16
"""Publish calls at once by default for the SQS and EventBridge channels (measured: see
docs/scale-out.md); ``max_in_flight=1`` publishes one call after another."""

_QUEUE_URL_REGION = re.compile(r"^https?://sqs[.-]([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?/")


def region_from_queue_url(queue_url: str) -> str | None:
    """The region in an AWS SQS queue URL (``https://sqs.<region>.amazonaws.com/...``)."""
    match = _QUEUE_URL_REGION.match(queue_url)
    return match.group(1) if match else None


def build_client(
    service_name: str,
    *,
    client: Any,
    session: Any,
    region_name: str | None,
    endpoint_url: str | None,
    config_options: dict[str, Any] | None = None,
    max_in_flight: int = 1,
) -> Any:
    """``client`` when given, else a client of ``session`` (default: a new boto3 session).

    Clients built here make a single attempt per request (botocore's own retries are off): the
    channels retry through :mod:`.batch_retry` and :mod:`airflow_provider_castore_dam.retry`,
    within their retry policy, so attempts do not multiply. A given client keeps its own
    configuration (and its own retries, beneath ours). Built clients keep at least
    ``max_in_flight`` connections open (botocore's default is 10).
    """
    if client is not None:
        if session is not None or region_name is not None or endpoint_url is not None:
            raise InvalidPourInputError(
                "pass either client, or session / region_name / endpoint_url, not both"
            )
        return client
    try:
        import boto3
        from botocore.config import Config
    except ImportError as error:  # pragma: no cover - depends on the install
        raise ImportError(
            "the AWS channels need boto3: pip install 'airflow-provider-castore-dam[aws]'"
        ) from error
    options = {"max_pool_connections": max(10, max_in_flight), **(config_options or {})}
    config = Config(retries={"mode": "standard", "total_max_attempts": 1}, **options)
    return (session or boto3.session.Session()).client(
        service_name, region_name=region_name, endpoint_url=endpoint_url, config=config
    )
