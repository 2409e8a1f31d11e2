"""The event store ids a single table holds."""

from __future__ import annotations

from typing import Any

from airflow_provider_castore_dam.errors import EventStoreError
from airflow_provider_castore_dam.stores.dynamodb.layout import DEFAULT_GSI_NAME


def list_event_store_ids(
    client: Any, table_name: str, gsi_name: str = DEFAULT_GSI_NAME
) -> list[str]:
    """Every ``eventStoreId`` of the ``initialEvents`` index of a single table, sorted (a store
    none of whose aggregates is in the index is not found)."""
    request: dict[str, Any] = {
        "TableName": table_name,
        "IndexName": gsi_name,
        "ProjectionExpression": "#store",
        "ExpressionAttributeNames": {"#store": "eventStoreId"},
    }
    store_ids: set[str] = set()
    try:
        for page in client.get_paginator("scan").paginate(**request):
            store_ids.update(item["eventStoreId"]["S"] for item in page.get("Items", []))
    except client.exceptions.ClientError as error:
        raise EventStoreError(
            f"cannot list the event stores of DynamoDB table {table_name!r}: {error}"
        ) from error
    return sorted(store_ids)
