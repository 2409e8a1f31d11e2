"""One event store within its DynamoDB table: what every read of the store needs."""

from __future__ import annotations

from dataclasses import dataclass

from airflow_provider_castore_dam.stores.dynamodb.items import EventItems
from airflow_provider_castore_dam.stores.dynamodb.layout import Layout, LayoutCheck, StoreKeys
from airflow_provider_castore_dam.stores.dynamodb.table import Table


@dataclass(frozen=True)
class StoreTable:
    """How the store's items are keyed in ``table``, read as events, and the layout check."""

    table: Table
    keys: StoreKeys
    items: EventItems
    layout_check: LayoutCheck

    @classmethod
    def of(cls, table: Table, event_store_id: str, layout: Layout) -> StoreTable:
        keys = StoreKeys.of(event_store_id, layout)
        return cls(table, keys, EventItems(table, keys), LayoutCheck(table, layout))
