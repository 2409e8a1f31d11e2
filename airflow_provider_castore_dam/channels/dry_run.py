"""A channel that publishes nothing and counts what a pour would have published."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_castore_dam.protocols import Message

AGGREGATE_EXISTS = "__AGGREGATE_EXISTS__"


@dataclass
class _StoreCount:
    message_count: int = 0
    by_event_type: Counter[str] = field(default_factory=Counter)
    first_timestamp: str | None = None
    last_timestamp: str | None = None


class DryRunMessageChannel:
    """Counts messages per event store and event type (``__AGGREGATE_EXISTS__`` for
    aggregate-exists messages), with the first and last timestamp of each store."""

    max_batch_size = 1000

    def __init__(self) -> None:
        self._counts: dict[str, _StoreCount] = {}

    def publish_messages(self, messages: Sequence[Message], *, replay: bool) -> None:
        for message in messages:
            count = self._counts.setdefault(message["eventStoreId"], _StoreCount())
            if "event" in message:
                event_type, timestamp = message["event"]["type"], message["event"]["timestamp"]
            else:
                event_type, timestamp = AGGREGATE_EXISTS, message["initialEventTimestamp"]
            count.message_count += 1
            count.by_event_type[event_type] += 1
            count.first_timestamp = min(count.first_timestamp or timestamp, timestamp)
            count.last_timestamp = max(count.last_timestamp or timestamp, timestamp)

    def summary(self) -> dict[str, dict[str, Any]]:
        """``{event_store_id: {message_count, by_event_type, first_timestamp, last_timestamp}}``."""
        return {
            store_id: {
                "message_count": count.message_count,
                "by_event_type": dict(sorted(count.by_event_type.items())),
                "first_timestamp": count.first_timestamp,
                "last_timestamp": count.last_timestamp,
            }
            for store_id, count in sorted(self._counts.items())
        }
