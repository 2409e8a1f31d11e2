"""Brute-force answers the engine must match: whole stores in memory, sorted in one go."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from typing import Any

Event = dict[str, Any]


def _in(timestamp: str, start: str | None, end: str | None) -> bool:
    return (start is None or start <= timestamp) and (end is None or timestamp <= end)


def aggregates_by_id(events: list[Event]) -> dict[str, list[Event]]:
    grouped: dict[str, list[Event]] = defaultdict(list)
    for event in events:
        grouped[event["aggregateId"]].append(event)
    return {
        key: sorted(value, key=lambda event: event["version"]) for key, value in grouped.items()
    }


def listing(
    events: list[Event],
    after: str | None = None,
    before: str | None = None,
    reverse: bool = False,
) -> list[dict[str, str]]:
    initial = sorted(
        (aggregate[0]["timestamp"], aggregate_id)
        for aggregate_id, aggregate in aggregates_by_id(events).items()
    )
    selected = [
        {"aggregate_id": aggregate_id, "initial_event_timestamp": timestamp}
        for timestamp, aggregate_id in initial
        if _in(timestamp, after, before)
    ]
    return selected[::-1] if reverse else selected


def pour_order(
    stores: dict[str, list[Event]], start: str | None = None, end: str | None = None
) -> list[tuple[str, Event]]:
    """(store id, event) in pour order: running-max timestamp per aggregate, store id,
    aggregate id, version; filtered on that pour timestamp."""
    rows = []
    for store_id, events in stores.items():
        for aggregate_id, aggregate in aggregates_by_id(events).items():
            floor = ""
            for event in aggregate:
                floor = max(floor, event["timestamp"])
                if _in(floor, start, end):
                    rows.append(
                        ((floor, store_id, aggregate_id, event["version"]), store_id, event)
                    )
    rows.sort(key=lambda row: row[0])
    return [(store_id, event) for _, store_id, event in rows]


def scan_infos(events: list[Event], end: str | None = None) -> dict[str, Any]:
    listed = listing(events, before=end)
    return {
        "first_scanned_aggregate": listed[0] if listed else None,
        "last_scanned_aggregate": listed[-1] if listed else None,
    }


def _md5(text: str) -> int:
    return int(hashlib.md5(text.encode()).hexdigest(), 16) | 1


def digest(
    utility: str, inputs: dict[str, Any], keys: list[tuple[str, str, int | None]]
) -> dict[str, Any]:
    """The ``digest`` of a pour's result, from the formula of docs/verification.md: per store,
    the count and the sum of MD5("<n>:<store><aggregate>") * MD5("<version>") mod 2**128."""
    store_ids = inputs.get("event_store_ids") or [inputs["event_store_id"]]
    sums = dict.fromkeys(store_ids, 0)
    counts = dict.fromkeys(store_ids, 0)
    for store_id, aggregate_id, version in keys:
        product = _md5(f"{len(store_id)}:{store_id}{aggregate_id}") * _md5(str(version or 0))
        sums[store_id] = (sums[store_id] + product) % 2**128
        counts[store_id] += 1
    return {
        "utility": utility,
        "inputs": inputs,
        "event_stores": {
            s: {"count": counts[s], "hash": format(sums[s], "032x")} for s in sorted(sums)
        },
    }


def event_keys(store_id: str, events: list[Event]) -> list[tuple[str, str, int | None]]:
    return [(store_id, event["aggregateId"], event["version"]) for event in events]
