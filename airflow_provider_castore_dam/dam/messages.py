"""The Castore messages a pour publishes."""

from __future__ import annotations

from airflow_provider_castore_dam.protocols import EventDetail, Message, ScannedAggregate


def notification_message(event_store_id: str, event: EventDetail) -> Message:
    return {"eventStoreId": event_store_id, "event": event}


def aggregate_exists_message(event_store_id: str, aggregate: ScannedAggregate) -> Message:
    return {
        "eventStoreId": event_store_id,
        "aggregateId": aggregate["aggregate_id"],
        "initialEventTimestamp": aggregate["initial_event_timestamp"],
    }
