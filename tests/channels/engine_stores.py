"""In-memory stores for the pours of the channel tests."""

from __future__ import annotations

from airflow_provider_castore_dam.stores import InMemoryEventStore


def store_of(count: int, versions: int = 1) -> InMemoryEventStore:
    events = [
        {
            "aggregateId": f"a{n:05d}",
            "version": version,
            "type": "HAPPENED",
            "timestamp": f"2021-01-01T{n // 3600 % 24:02d}:{n // 60 % 60:02d}:{n % 60:02d}.000Z",
            "payload": {"n": n, "version": version},
        }
        for n in range(count // versions)
        for version in range(1, versions + 1)
    ]
    return InMemoryEventStore("S", events)
