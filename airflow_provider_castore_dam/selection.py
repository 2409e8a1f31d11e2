"""Which events of a store a pour reads: the aggregates of a partition, the aggregates named
by id, the events of some types (or all but some types).

A selection is applied where the events are read: stores that can put it in their query
(PostgreSQL's ``WHERE``, DynamoDB's ``FilterExpression`` for aggregate ids), so that what is
not selected is not fetched, and the engine applies it to any other store. **A selected pour
publishes exactly the events of the unselected pour that the selection keeps, in the same
order**: an event left out by its type still counts for its aggregate's pour timestamp (the
latest timestamp of the earlier versions, see the clock-skew rule in the README), so stores
only leave types out in their query where that cannot move an event (PostgreSQL before a
clock skew; DynamoDB filters types after placing events).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from airflow_provider_castore_dam.partitions import Partition


@dataclass(frozen=True)
class Selection:
    partition: Partition | None = None
    aggregate_ids: frozenset[str] | None = None
    """Only these aggregates (None: every aggregate)."""
    event_types: frozenset[str] | None = None
    """Only events of these types (None: every type)."""
    excluded_event_types: frozenset[str] = frozenset()
    """No event of these types."""

    @property
    def selects_aggregates(self) -> bool:
        """Whether some aggregates are left out (by partition or id)."""
        return self.partition is not None or self.aggregate_ids is not None

    @property
    def selects_types(self) -> bool:
        return self.event_types is not None or bool(self.excluded_event_types)

    def contains(self, aggregate_id: str) -> bool:
        """Whether the aggregate is selected (its events may still be left out by type)."""
        return (self.aggregate_ids is None or aggregate_id in self.aggregate_ids) and (
            self.partition is None or self.partition.contains(aggregate_id)
        )

    def keeps_type(self, event_type: Any) -> bool:
        return (self.event_types is None or event_type in self.event_types) and (
            event_type not in self.excluded_event_types
        )
