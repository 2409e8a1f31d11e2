"""DynamoDBEventStore.audit_events on a real moto server, both layouts: every item of the store
as stored (no type, a type that is not text, timestamps that do not parse or are missing), and
whether Castore's listing can see each aggregate's version 1, grouped by aggregate and version
through the parallel scan and the external sort.
"""

from __future__ import annotations

import random
import threading
from typing import Any

import pytest

from airflow_provider_castore_dam import external_sort
from airflow_provider_castore_dam.protocols import AuditableEventStore, StoredEvent
from airflow_provider_castore_dam.stores.dynamodb import (
    DynamoDBEventStore,
    DynamoDBTableScanEventStore,
    audit,
)
from tests.engine.helpers import event
from tests.stores.dynamodb_tables import Tables, item, put_items

LAYOUTS = ["single-table", "legacy"]
T0 = "2022-01-01T10:00:00.000Z"
T1 = "2022-01-01T11:00:00.000Z"
SMALL_SCAN = {"scan_segments": 3, "scan_page_items": 7, "run_events": 11}
"""Several segments, many pages a segment, and sorted runs spilled to disk."""


def written(layout: str, aggregate_id: str, version: Any, *drop: str, **attributes: Any) -> dict:
    """The item Castore writes for store ``S``'s event, without the ``drop`` attributes and
    with ``attributes`` (low-level values) replacing its own."""
    stored = item("S", event(aggregate_id, 1 if isinstance(version, str) else version, T0), layout)
    if isinstance(version, str):
        stored["version"] = {"N": version}
    for name in drop:
        del stored[name]
    return stored | attributes


def defective_items(layout: str) -> list[tuple[dict, StoredEvent | None]]:
    """Items of store ``S`` (and others), each with what the audit yields for it (None: not
    an event of ``S``)."""
    index_key = "eventStoreId" if layout == "single-table" else "isInitialEvent"
    other_partition = {"S": "OTHER"} if layout == "single-table" else {"N": "2"}
    cases = [
        (written(layout, "healthy", 1), StoredEvent("healthy", 1, "HAPPENED", T0)),
        (written(layout, "healthy", 2), StoredEvent("healthy", 2, "HAPPENED", T0)),
        (written(layout, "no-type", 1, "type"), StoredEvent("no-type", 1, None, T0)),
        (written(layout, "n-type", 1, type={"N": "5"}), StoredEvent("n-type", 1, None, T0)),
        (
            written(layout, "yesterday", 2, timestamp={"S": "yesterday"}),
            StoredEvent("yesterday", 2, "HAPPENED", "yesterday"),
        ),
        (
            written(layout, "no-timestamp", 1, "timestamp"),
            StoredEvent("no-timestamp", 1, "HAPPENED", None, listed=False),
        ),
        (
            written(layout, "no-timestamp", 2, "timestamp"),
            StoredEvent("no-timestamp", 2, "HAPPENED", None),
        ),
        (
            written(layout, "offset", 1, timestamp={"S": "2022-01-01T11:00:00+01:00"}),
            StoredEvent("offset", 1, "HAPPENED", "2022-01-01T11:00:00+01:00"),
        ),
        (
            written(layout, "unindexed", 1, index_key),
            StoredEvent("unindexed", 1, "HAPPENED", T0, listed=False),
        ),
        (
            written(layout, "other-partition", 1, **{index_key: other_partition}),
            StoredEvent("other-partition", 1, "HAPPENED", T0, listed=False),
        ),
        (written(layout, "ポケモン", 1), StoredEvent("ポケモン", 1, "HAPPENED", T0)),
        (written(layout, "not-versions", "0", index_key), None),
        (written(layout, "not-versions", "1.5", index_key), None),
        (written(layout, "not-versions", "-1", index_key), None),
    ]
    if layout == "single-table":
        cases += [
            (item("OTHER", event("healthy", 1, T1)), None),
            (item("SS", event("healthy", 1, T1)), None),
        ]
    return cases


def defective_table(tables: Tables, layout: str) -> tuple[str, list[StoredEvent]]:
    """A table holding :func:`defective_items` in a shuffled order, and the audit expected of
    store ``S``: its events by aggregate id and version."""
    cases = defective_items(layout)
    random.Random(3).shuffle(cases)
    table = tables.create(layout)
    put_items(tables.client, table, [written for written, _ in cases])
    expected = sorted(stored for _, stored in cases if stored is not None)
    return table, expected


def audited(store: Any) -> list[StoredEvent]:
    batches = list(store.audit_events())
    assert all(batches), "batches are never empty"
    return [stored for batch in batches for stored in batch]


def all_listed(store: DynamoDBEventStore) -> list[str]:
    found, token = [], None
    while True:
        page = store.list_aggregate_ids(page_token=token, limit=3)
        found += [aggregate["aggregate_id"] for aggregate in page.aggregate_ids]
        token = page.next_page_token
        if token is None:
            return found


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("store_class", [DynamoDBEventStore, DynamoDBTableScanEventStore])
def test_audit_yields_items_as_stored(ddb, tables, layout, store_class):
    table, expected = defective_table(tables, layout)
    store = store_class("S", table, layout=layout, client=ddb)
    assert isinstance(store, AuditableEventStore)
    got = audited(store)
    assert got == expected
    assert [(s.aggregate_id, s.version) for s in got] == [
        ("healthy", 1),
        ("healthy", 2),
        ("n-type", 1),
        ("no-timestamp", 1),
        ("no-timestamp", 2),
        ("no-type", 1),
        ("offset", 1),
        ("other-partition", 1),
        ("unindexed", 1),
        ("yesterday", 2),
        ("ポケモン", 1),
    ]
    assert [s.aggregate_id for s in got if not s.listed] == [
        "no-timestamp",
        "other-partition",
        "unindexed",
    ]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_listed_is_what_castores_listing_sees(ddb, tables, layout):
    table, _ = defective_table(tables, layout)
    store = DynamoDBEventStore("S", table, layout=layout, client=ddb)
    initial = [s for s in audited(store) if s.version == 1]
    assert sorted(all_listed(store)) == [s.aggregate_id for s in initial if s.listed]
    assert len(initial) == 8


def many_events(count: int = 80) -> list[dict]:
    """``count`` aggregates of 1 to 4 events (200 events for 80 aggregates)."""
    return [
        event(f"aggregate-{index:03d}", version, T0, type=f"TYPE_{version}")
        for index in range(count)
        for version in range(1, index % 4 + 2)
    ]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_many_pages_segments_and_spilled_runs_keep_the_order(
    moto_server, ddb, tables, layout, monkeypatch
):
    events = many_events()
    random.Random(5).shuffle(events)
    table = tables.castore({"S": events, "OTHER": events[:20]}, layout)["S"]
    monkeypatch.setattr(audit, "AUDIT_BATCH_SIZE", 16)
    client = moto_server.client("dynamodb")
    scans, runs = count_calls(client, "Scan"), count_runs(monkeypatch)
    store = DynamoDBTableScanEventStore("S", table, layout=layout, client=client, **SMALL_SCAN)
    batches = list(store.audit_events())
    expected = sorted(StoredEvent(e["aggregateId"], e["version"], e["type"], T0) for e in events)
    assert [s for batch in batches for s in batch] == expected
    assert len(expected) == 200
    assert [len(batch) for batch in batches] == [16] * 12 + [8]
    pages = -(-len(events) // SMALL_SCAN["scan_page_items"])
    assert len(scans) >= pages
    assert len(runs) >= len(events) // SMALL_SCAN["run_events"]
    default = DynamoDBEventStore("S", table, layout=layout, client=ddb)
    assert audited(default) == expected


def count_calls(client: Any, operation: str) -> list[dict]:
    calls: list[dict] = []
    client.meta.events.register(
        f"before-call.dynamodb.{operation}", lambda params, **_: calls.append(params)
    )
    return calls


def count_runs(monkeypatch) -> list[object]:
    """The sorted runs the external sort spills to disk."""
    runs: list[object] = []
    spill = external_sort._run

    def counting(items, directory):
        runs.append(spill(items, directory))
        return runs[-1]

    monkeypatch.setattr(external_sort, "_run", counting)
    return runs


def scan_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("castore-dynamodb-scan")]


def test_closing_the_audit_stops_its_scan(ddb, tables, monkeypatch):
    table = tables.castore({"S": many_events()})["S"]
    monkeypatch.setattr(audit, "AUDIT_BATCH_SIZE", 10)
    store = DynamoDBTableScanEventStore("S", table, client=ddb, **SMALL_SCAN)
    batches = store.audit_events()
    assert len(next(batches)) == 10
    batches.close()
    assert scan_threads() == []
    assert len(audited(store)) == 200
