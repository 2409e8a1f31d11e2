"""PostgresEventStore.audit_events on a real PostgreSQL server: every row of the store as
stored, by aggregate and version, on Castore's own tables and on tables without its
constraints (duplicated versions, NULL types and timestamps).

Aggregate ids are lower-case letters, which every collation orders as Python does, so the
expected order is Python's.
"""

from __future__ import annotations

import itertools
import random
from typing import Any

import psycopg
import pytest
from psycopg import sql

from airflow_provider_castore_dam.errors import EventStoreError
from airflow_provider_castore_dam.protocols import AuditableEventStore, StoredEvent
from airflow_provider_castore_dam.stores import InMemoryEventStore
from airflow_provider_castore_dam.stores.postgres import PostgresEventStore, audit, cursor
from tests.engine.helpers import event

UUIDS = {
    name: f"00000000-0000-4000-8000-00000000000{index}"
    for index, name in enumerate(("abra", "bulbasaur", "charmander", "ditto"), start=1)
}


@pytest.fixture(params=["chunked", "fetch"])
def fetching(request, monkeypatch):
    """Both ways a query is read: streamed in chunks (libpq 17+) or FETCHed a batch a time."""
    monkeypatch.setattr(cursor, "CHUNKED_ROWS", request.param == "chunked")
    return request.param


def audited(store: Any) -> list[StoredEvent]:
    batches = list(store.audit_events())
    assert all(batches), "batches are never empty"
    return [stored for batch in batches for stored in batch]


def shuffled(rows: list[tuple[str, dict]], seed: int = 7) -> list[tuple[str, dict]]:
    """The rows in another order, so that insertion order is not the audit's order."""
    rows = list(rows)
    random.Random(seed).shuffle(rows)
    return rows


def castore_rows(aggregate_id) -> list[tuple[str, dict]]:
    """POKEMONS and TRAINERS events with the same aggregate ids (``aggregate_id(name)``);
    timestamps with microseconds, which the audit cuts to Castore's milliseconds."""
    rows = []
    for store_id, count in (("POKEMONS", 3), ("TRAINERS", 1)):
        for name_index, name in enumerate(UUIDS):
            for version in range(1, count + name_index % 2 + 1):
                stamp = f"2022-01-0{version}T10:00:00.{name_index}23456Z"
                kind = f"{store_id}_{version}"
                rows.append((store_id, event(aggregate_id(name), version, stamp, type=kind)))
    return rows


@pytest.mark.parametrize(
    "aggregate_id_type, timestamp_type",
    [("VARCHAR(64)", "TIMESTAMPTZ"), ("UUID", "TIMESTAMPTZ"), ("VARCHAR(64)", "TIMESTAMP")],
)
def test_audit_yields_the_stores_events_by_aggregate_and_version(
    make_table, aggregate_id_type, timestamp_type
):
    table = make_table(aggregate_id_type=aggregate_id_type, timestamp_type=timestamp_type)
    aggregate_id = UUIDS.get if aggregate_id_type == "UUID" else str
    rows = castore_rows(aggregate_id)
    table.load(shuffled(rows))
    store = table.store("POKEMONS")
    assert isinstance(store, AuditableEventStore)
    expected = [
        StoredEvent(e["aggregateId"], e["version"], e["type"], e["timestamp"][:23] + "Z")
        for e in sorted(
            (e for store_id, e in rows if store_id == "POKEMONS"),
            key=lambda e: (e["aggregateId"], e["version"]),
        )
    ]
    got = audited(store)
    assert got == expected
    assert len(got) == 14
    assert got[:4] == [
        StoredEvent(aggregate_id("abra"), 1, "POKEMONS_1", "2022-01-01T10:00:00.023Z"),
        StoredEvent(aggregate_id("abra"), 2, "POKEMONS_2", "2022-01-02T10:00:00.023Z"),
        StoredEvent(aggregate_id("abra"), 3, "POKEMONS_3", "2022-01-03T10:00:00.023Z"),
        StoredEvent(aggregate_id("bulbasaur"), 1, "POKEMONS_1", "2022-01-01T10:00:00.123Z"),
    ]
    trainers = audited(table.store("TRAINERS"))
    assert [(s.aggregate_id, s.version, s.type) for s in trainers] == [
        (aggregate_id("abra"), 1, "TRAINERS_1"),
        (aggregate_id("bulbasaur"), 1, "TRAINERS_1"),
        (aggregate_id("bulbasaur"), 2, "TRAINERS_2"),
        (aggregate_id("charmander"), 1, "TRAINERS_1"),
        (aggregate_id("ditto"), 1, "TRAINERS_1"),
        (aggregate_id("ditto"), 2, "TRAINERS_2"),
    ]
    assert audited(table.store("NOBODY")) == []


def test_audit_equals_the_in_memory_stores(table):
    rows = castore_rows(str)
    table.load(rows)
    for store_id in ("POKEMONS", "TRAINERS"):
        events = [
            {**e, "timestamp": e["timestamp"][:23] + "Z"} for sid, e in rows if sid == store_id
        ]
        memory = InMemoryEventStore(store_id, events, default_page_size=4)
        assert isinstance(memory, AuditableEventStore)
        assert [len(batch) for batch in memory.audit_events()][:-1] == [4] * (len(events) // 4)
        assert audited(table.store(store_id)) == audited(memory)


def test_audit_streams_in_batches(table, fetching, monkeypatch):
    monkeypatch.setattr(audit, "AUDIT_BATCH_SIZE", 4)
    table.load([("S", event(f"a{i:02}", 1, "2022-01-01T00:00:00.000Z")) for i in range(10)])
    batches = list(table.store("S").audit_events())
    assert [len(batch) for batch in batches] == [4, 4, 2]
    assert [s.aggregate_id for batch in batches for s in batch] == [f"a{i:02}" for i in range(10)]


T0 = "2022-01-01T10:00:00.000Z"
T1 = "2022-01-01T11:00:00.000Z"
T2 = "2022-01-01T12:00:00.000Z"

DEFECTIVE_ROWS: list[tuple[Any, dict]] = [
    ("S", event("duplicated", 1, T0, type="BORN")),
    ("S", event("duplicated", 2, T1, type="FIRST_COPY")),
    ("S", event("duplicated", 2, T1, type="SECOND_COPY")),
    ("S", event("duplicated", 3, T2, type="GREW")),
    ("S", event("gap", 1, T0, type="BORN")),
    ("S", event("gap", 4, T1, type="GREW")),
    ("S", event("skewed", 1, T1, type="BORN")),
    ("S", event("skewed", 2, T0, type="GREW")),
    ("S", event("skewed", 3, T2, type="GREW")),
    ("S", event("untyped", 1, T0, type=None)),
    ("S", event("untyped", 2, T1, type="")),
    ("S", event("untyped", 3, T2, type="GREW")),
    ("S", event("untimed", 1, None, type="BORN")),
    ("S", event("versionless", 2, T0, type="GREW")),
    ("S", event("versionless", None, T1, type="GREW")),
    ("S", event(None, 1, T0, type="BORN")),
    ("OTHER", event("gap", 2, T0, type="OTHER")),
    (None, event("gap", 3, T0, type="NOBODY")),
]
"""A store holding what Castore's table refuses; rows without an aggregate id or a version
are not events, and rows of other stores are not its events."""

DEFECTIVE_AUDIT = [
    StoredEvent("duplicated", 1, "BORN", T0),
    StoredEvent("duplicated", 2, "FIRST_COPY", T1),
    StoredEvent("duplicated", 2, "SECOND_COPY", T1),
    StoredEvent("duplicated", 3, "GREW", T2),
    StoredEvent("gap", 1, "BORN", T0),
    StoredEvent("gap", 4, "GREW", T1),
    StoredEvent("skewed", 1, "BORN", T1),
    StoredEvent("skewed", 2, "GREW", T0),
    StoredEvent("skewed", 3, "GREW", T2),
    StoredEvent("untimed", 1, "BORN", None),
    StoredEvent("untyped", 1, None, T0),
    StoredEvent("untyped", 2, None, T1),
    StoredEvent("untyped", 3, "GREW", T2),
    StoredEvent("versionless", 2, "GREW", T0),
]


def test_audit_reads_a_table_without_castores_constraints(loose_table, fetching):
    loose_table.load(shuffled(DEFECTIVE_ROWS))
    got = audited(loose_table.store("S"))
    # The two copies of a duplicated version come together, in either order.
    assert sorted(got[1:3]) == DEFECTIVE_AUDIT[1:3]
    assert got[:1] + sorted(got[1:3]) + got[3:] == DEFECTIVE_AUDIT


@pytest.mark.parametrize("close_after", [0, 1])
def test_closing_the_audit_early_releases_its_connection(table, fetching, close_after):
    table.load([("S", event(f"a{i:05}", 1, "2022-01-01T00:00:00.000Z")) for i in range(5000)])
    store = table.store("S", max_pool_size=1, pool_timeout=3)
    for _ in range(3):  # a connection kept by a closed audit would starve the next one
        batches = store.audit_events()
        for batch in itertools.islice(batches, close_after + 1):
            assert len(batch) == audit.AUDIT_BATCH_SIZE
        batches.close()
    assert store.list_aggregate_ids(limit=1).aggregate_ids[0]["aggregate_id"] == "a00000"
    with psycopg.connect(table.dsn, autocommit=True) as conn:
        busy = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND application_name = 'airflow-provider-castore-dam' AND state <> 'idle'"
        ).fetchone()[0]
        assert busy == 0
        # No transaction of the store still holds the table.
        conn.execute("SET lock_timeout = '2s'")
        conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(table.name)))


def test_audit_checks_the_table_before_it_returns(table):
    with (
        PostgresEventStore("S", table.dsn, table="no_such_table") as store,
        pytest.raises(EventStoreError, match="does not exist"),
    ):
        store.audit_events()
