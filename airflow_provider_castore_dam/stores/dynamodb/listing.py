"""Listing a store's aggregates by initial event timestamp, from the ``initialEvents`` index."""

from __future__ import annotations

import logging
from typing import Any

from airflow_provider_castore_dam.protocols import AggregateIdsPage
from airflow_provider_castore_dam.stores.dynamodb.page_tokens import encode_page_token
from airflow_provider_castore_dam.stores.dynamodb.store_table import StoreTable
from airflow_provider_castore_dam.stores.dynamodb.table import range_condition

# The package's logger, so the store logs under one name as it did as a single module.
log = logging.getLogger(__package__)


class AggregateListing:
    """Pages of one store's aggregates; warns once if the store looks empty."""

    def __init__(self, store: StoreTable) -> None:
        self._store = store
        self._found_aggregates = False
        self._warned_empty = False

    def page(
        self,
        size: int,
        after: str | None,
        before: str | None,
        start_key: dict[str, Any] | None,
        *,
        reverse: bool,
        first: bool,
    ) -> AggregateIdsPage:
        """Up to ``size`` aggregates between the inclusive bounds, from ``start_key`` on;
        ``first`` when no page token was given."""
        self._store.layout_check.ensure()
        if after is not None and before is not None and after > before:
            return AggregateIdsPage(aggregate_ids=[])
        request = self._index_query(after, before, reverse)
        items: list[dict[str, Any]] = []
        # Ask for one aggregate more than the page holds, so a token is only handed out when
        # something follows; DynamoDB may answer short or empty pages with a LastEvaluatedKey
        # (1 MB cap, or the last Limit items), so keep asking until enough or the end.
        while len(items) <= size:
            request["Limit"] = size + 1 - len(items)
            if start_key is not None:
                request["ExclusiveStartKey"] = start_key
            response = self._store.table.call("Query", request)
            items.extend(response.get("Items", []))
            start_key = response.get("LastEvaluatedKey")
            if not start_key:
                break
        page = items[:size]
        aggregates = [self._store.items.scanned_aggregate(item) for item in page]
        if aggregates:
            self._found_aggregates = True
        elif first:
            self._warn_if_store_empty(bounded=after is not None or before is not None)
        return AggregateIdsPage(
            aggregate_ids=aggregates,
            next_page_token=(
                encode_page_token(self._store.items, page[-1]) if len(items) > size else None
            ),
        )

    def _index_query(self, after: str | None, before: str | None, reverse: bool) -> dict[str, Any]:
        values: dict[str, Any] = {":partition": self._store.keys.index_partition_value}
        if after is not None:
            values[":after"] = {"S": after}
        if before is not None:
            values[":before"] = {"S": before}
        condition = "#partition = :partition" + range_condition(
            "#timestamp", ":after", ":before", values
        )
        names = {"#partition": self._store.keys.index_partition_name}
        if after is not None or before is not None:
            names["#timestamp"] = "timestamp"
        return {
            "TableName": self._store.table.name,
            "IndexName": self._store.table.gsi_name,
            "KeyConditionExpression": condition,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
            "ScanIndexForward": not reverse,
        }

    def _warn_if_store_empty(self, *, bounded: bool) -> None:
        """Log once when the index holds no aggregate at all for this store (a wrong
        ``event_store_id`` or table reads as an empty store, which is not an error)."""
        if self._found_aggregates or self._warned_empty:
            return
        if bounded:
            probe = self._index_query(None, None, False)
            probe["Limit"] = 1
            response = self._store.table.call("Query", probe)
            if response.get("Items") or response.get("LastEvaluatedKey"):
                self._found_aggregates = True
                return
        self._warned_empty = True
        if self._store.keys.layout == "single-table":
            log.warning(
                "no aggregate of event store %r in %s: its index %r has no item with "
                "eventStoreId = %r; is event_store_id right?",
                self._store.keys.event_store_id,
                self._store.table.where(),
                self._store.table.gsi_name,
                self._store.keys.event_store_id,
            )
        else:
            log.warning(
                "no aggregate in %s (legacy layout, event store %r): its index %r has no item "
                "with isInitialEvent = 1; is it the table of this event store?",
                self._store.table.where(),
                self._store.keys.event_store_id,
                self._store.table.gsi_name,
            )
