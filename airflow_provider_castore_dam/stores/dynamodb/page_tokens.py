"""Listing page tokens: the index key of a page's last item, where the next page starts
(exclusive), as unpadded base64url JSON."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from airflow_provider_castore_dam.errors import EventStoreError
from airflow_provider_castore_dam.stores.dynamodb.items import EventItems
from airflow_provider_castore_dam.stores.dynamodb.layout import StoreKeys


def encode_page_token(items: EventItems, item: Mapping[str, Any]) -> str:
    key = {
        "aggregateId": items.attribute(item, "aggregateId", "S"),
        "version": items.attribute(item, "version", "N"),
        "timestamp": items.attribute(item, "timestamp", "S"),
    }
    text = json.dumps(key, separators=(",", ":"), ensure_ascii=False)
    return base64.urlsafe_b64encode(text.encode()).decode("ascii").rstrip("=")


def decode_page_token(token: str, keys: StoreKeys, issuer: object) -> dict[str, Any]:
    """The ``ExclusiveStartKey`` of ``token``, which ``issuer`` (the store) should have returned."""

    def bad(reason: str) -> EventStoreError:
        shown = token if len(token) <= 80 else token[:77] + "..."
        return EventStoreError(
            f"page token {shown!r} is not one that {issuer!r} returned: {reason}"
        )

    if not isinstance(token, str):
        raise bad(f"a {type(token).__name__}, not a string")
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        key = json.loads(text)
    except (binascii.Error, ValueError) as error:
        raise bad("not base64url-encoded JSON") from error
    if not isinstance(key, dict) or set(key) != {"aggregateId", "version", "timestamp"}:
        raise bad("expected the keys aggregateId, version, timestamp")
    if not all(isinstance(value, str) for value in key.values()):
        raise bad("its values should be strings")
    if not key["aggregateId"].startswith(keys.prefix):
        raise bad(f"it names an aggregate of another event store ({key['aggregateId']!r})")
    try:
        Decimal(key["version"])
    except InvalidOperation as error:
        raise bad(f"version {key['version']!r} is not a number") from error
    return {
        keys.index_partition_name: keys.index_partition_value,
        "timestamp": {"S": key["timestamp"]},
        "aggregateId": {"S": key["aggregateId"]},
        "version": {"N": key["version"]},
    }
