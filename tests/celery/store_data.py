"""A generated event store for the Celery runs, and the checks on what reached the queue."""

from __future__ import annotations

import random
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from airflow_provider_castore_dam.stores.postgres.tables import copy_events, create_castore_table

EVENT_STORE_ID = "POKEMONS"
EVENT_TYPES = ("POKEMON_APPEARED", "POKEMON_CAUGHT", "POKEMON_LEVELED_UP", "POKEMON_TRADED")
Key = tuple[str, str, int]
"""(event store id, aggregate id, version)."""


@dataclass
class CeleryStore:
    """The generated store, loaded in a database of its own."""

    dbname: str
    dsn: str
    events: list[dict[str, Any]]


def _timestamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def generate_events(aggregates: int = 300, seed: int = 7) -> list[dict[str, Any]]:
    """``aggregates`` aggregates of 1 to 20 versions (about 3,000 events), in timestamp order;
    each aggregate's versions follow each other in time, interleaved with other aggregates'."""
    rng = random.Random(seed)
    start = datetime(2024, 1, 1, tzinfo=timezone.utc)
    events = []
    for _ in range(aggregates):
        aggregate_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        moment = start + timedelta(milliseconds=rng.randrange(86_400_000))
        for version in range(1, rng.randint(1, 20) + 1):
            moment += timedelta(milliseconds=rng.randrange(1, 3_600_000))
            event = {
                "aggregateId": aggregate_id,
                "version": version,
                "type": EVENT_TYPES[0] if version == 1 else rng.choice(EVENT_TYPES[1:]),
                "timestamp": _timestamp(moment),
                "payload": {"level": version, "note": "x" * rng.randrange(40)},
            }
            events.append(event)
    return sorted(events, key=lambda event: (event["timestamp"], event["aggregateId"]))


def load_store(dsn: str, events: Sequence[dict[str, Any]]) -> None:
    """A Castore-layout ``event`` table (UUID aggregate ids) holding ``events``."""
    create_castore_table(dsn, "event")
    copy_events(dsn, [(EVENT_STORE_ID, event) for event in events])


def keys_of_events(events: Iterable[dict[str, Any]]) -> list[Key]:
    return [(EVENT_STORE_ID, event["aggregateId"], event["version"]) for event in events]


def keys_of_messages(bodies: Iterable[dict[str, Any]]) -> list[Key]:
    return [(b["eventStoreId"], b["event"]["aggregateId"], b["event"]["version"]) for b in bodies]


def versions_by_aggregate(keys: Iterable[Key]) -> dict[tuple[str, str], list[int]]:
    """Each aggregate's versions in the order received."""
    received: dict[tuple[str, str], list[int]] = defaultdict(list)
    for store_id, aggregate_id, version in keys:
        received[(store_id, aggregate_id)].append(version)
    return received


def out_of_order(keys: Iterable[Key]) -> dict[tuple[str, str], list[int]]:
    """The aggregates whose versions did not arrive as 1, 2, 3, ... where a repeat may only
    restart at an earlier version and go on one by one from there (a retry resending from
    its checkpoint). So, with repeats removed (first occurrence kept), each is in order."""
    wrong = {}
    for aggregate, versions in versions_by_aggregate(keys).items():
        highest = previous = 0
        for version in versions:
            goes_on, restarts = version == previous + 1, version <= previous
            if not (goes_on or restarts) or version > highest + 1:
                wrong[aggregate] = versions
                break
            previous, highest = version, max(highest, version)
    return wrong
