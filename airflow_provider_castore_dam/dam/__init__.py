"""The pour engine: Castore's ``@castore/dam`` utilities in plain Python.

Importable without Airflow. Every function validates all its arguments before reading the
store, publishes every message with the replay flag, and returns a dict of JSON types.
"""

from airflow_provider_castore_dam.dam.pour_aggregate_events import pour_aggregate_events
from airflow_provider_castore_dam.dam.pour_event_store_aggregate_ids import (
    pour_event_store_aggregate_ids,
)
from airflow_provider_castore_dam.dam.pour_event_store_collection_events import (
    pour_event_store_collection_events,
)
from airflow_provider_castore_dam.dam.pour_event_store_events import pour_event_store_events
from airflow_provider_castore_dam.dam.progress import PourProgress, ProgressReport
from airflow_provider_castore_dam.errors import (
    CastoreDamError,
    InvalidPourInputError,
    MessageChannelError,
    PourInterruptedError,
)

__all__ = [
    "CastoreDamError",
    "InvalidPourInputError",
    "MessageChannelError",
    "PourInterruptedError",
    "PourProgress",
    "ProgressReport",
    "pour_aggregate_events",
    "pour_event_store_aggregate_ids",
    "pour_event_store_collection_events",
    "pour_event_store_events",
]
