"""Read side: Castore event stores."""

from airflow_provider_castore_dam.stores.in_memory import (
    InMemoryEventStore,
    InMemoryScanningEventStore,
)

__all__ = ["InMemoryEventStore", "InMemoryScanningEventStore"]
