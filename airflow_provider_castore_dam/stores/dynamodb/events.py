"""One aggregate's events: a ``Query`` on its partition, run at once or prefetched on a bounded
thread pool for the engine's merge path."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from airflow_provider_castore_dam.protocols import EventDetail
from airflow_provider_castore_dam.stores.dynamodb.arguments import positive
from airflow_provider_castore_dam.stores.dynamodb.raw_items import raw_items
from airflow_provider_castore_dam.stores.dynamodb.store_table import StoreTable
from airflow_provider_castore_dam.stores.dynamodb.table import range_condition

EventsRequest = tuple[str, int | None, int | None, int | None, bool]
"""(aggregate id, min version, max version, limit, reverse): the arguments of ``get_events``."""


class AggregateEvents:
    """Reads aggregates' events; holds at most ``prefetch_capacity`` prefetched results, the
    oldest dropped first."""

    def __init__(self, store: StoreTable, *, max_workers: int, prefetch_capacity: int) -> None:
        self._store = store
        self._max_workers = max_workers
        self._prefetch_capacity = prefetch_capacity
        self._prefetch_lock = threading.Lock()
        self._prefetched: OrderedDict[EventsRequest, Future[list[EventDetail]]] = OrderedDict()
        self._executor: ThreadPoolExecutor | None = None

    def get(self, request: EventsRequest) -> list[EventDetail]:
        """The prefetched result of ``request`` if there is one, else a fresh read."""
        with self._prefetch_lock:
            future = self._prefetched.pop(request, None)
        if future is not None:
            return future.result()
        return self._fetch(request)

    def prefetch(self, requests: Iterable[EventsRequest]) -> None:
        with self._prefetch_lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(
                    max_workers=self._max_workers, thread_name_prefix="castore-dynamodb"
                )
            for request in requests:
                if request in self._prefetched:
                    continue
                self._prefetched[request] = self._executor.submit(self._fetch, request)
                while len(self._prefetched) > self._prefetch_capacity:
                    _, dropped = self._prefetched.popitem(last=False)
                    dropped.cancel()

    def close(self) -> None:
        with self._prefetch_lock:
            executor, self._executor = self._executor, None
            for future in self._prefetched.values():
                future.cancel()
            self._prefetched.clear()
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)

    def _fetch(self, request: EventsRequest) -> list[EventDetail]:
        aggregate_id, min_version, max_version, limit, reverse = request
        positive(limit, "limit")
        if min_version is not None and max_version is not None and min_version > max_version:
            return []
        self._store.layout_check.ensure()
        query = self._query(aggregate_id, min_version, max_version, reverse)
        events: list[EventDetail] = []
        while limit is None or len(events) < limit:
            if limit is not None:
                query["Limit"] = limit - len(events)
            with raw_items(self._store.table.client):
                response = self._store.table.call("Query", query)
            events.extend(self._store.items.event(item) for item in response.get("Items", []))
            if not response.get("LastEvaluatedKey"):
                break
            query["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        return events if limit is None else events[:limit]

    def _query(
        self, aggregate_id: str, min_version: int | None, max_version: int | None, reverse: bool
    ) -> dict[str, Any]:
        values: dict[str, Any] = {":id": {"S": self._store.keys.prefix + aggregate_id}}
        if min_version is not None and min_version <= 1 and max_version is None:
            min_version = None  # versions start at 1: the bound would only cost the server
        if min_version is not None:
            values[":low"] = {"N": str(min_version)}
        if max_version is not None:
            values[":high"] = {"N": str(max_version)}
        condition = "#id = :id" + range_condition("#version", ":low", ":high", values)
        return {
            "TableName": self._store.table.name,
            "KeyConditionExpression": condition,
            "ExpressionAttributeNames": {"#id": "aggregateId"}
            | ({"#version": "version"} if "#version" in condition else {}),
            "ExpressionAttributeValues": values,
            "ScanIndexForward": not reverse,
            "ConsistentRead": self._store.table.consistent_read,
        }
