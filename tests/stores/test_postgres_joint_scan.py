"""Collection pours of PostgreSQL stores that share a table: one joint query reads them all,
and hands over to each store's own scan at the first sign of clock skew or at an error.

Expected messages come from the brute-force oracle; spies wrap the real methods only to see
which path read the events."""

from __future__ import annotations

import logging
import random
from typing import Any

import pytest

from airflow_provider_castore_dam.channels import InMemoryMessageChannel
from airflow_provider_castore_dam.dam import pour_event_store_collection_events
from airflow_provider_castore_dam.dam.inputs import parse_filters
from airflow_provider_castore_dam.dam.ordering import joint_scan
from airflow_provider_castore_dam.errors import PourInterruptedError
from airflow_provider_castore_dam.protocols import JointlyScannableEventStore, ScanHandover
from airflow_provider_castore_dam.stores import InMemoryEventStore
from airflow_provider_castore_dam.stores.postgres import PostgresEventStore
from tests.engine import oracle
from tests.engine.test_checkpoints import BATCH, BreakingChannel
from tests.stores.test_postgres_store import canon, event, messages

ENGINE_LOGGER = "airflow_provider_castore_dam.dam.ordering"
STORES = ("A", "B", "Ä")  # "Ä" sorts after "B" by code point, before it in most collations
STAMPS = [f"2022-01-0{day}T00:00:00.00{ms}Z" for day in (1, 2) for ms in range(4)]


def in_insertion_order(rows: list[tuple[str, dict]]) -> list[tuple[str, dict]]:
    """Initial events in (timestamp, aggregate id) order first, so that PostgreSQL's listing
    (ties by row id) and the in-memory store's (ties by aggregate id) agree."""
    return sorted(
        rows, key=lambda row: (row[1]["version"] != 1, row[1]["timestamp"], row[1]["aggregateId"])
    )


def monotonic_rows(seed: int, aggregates: int = 30) -> list[tuple[str, dict]]:
    """Three stores whose events tie across stores and aggregates on few milliseconds; every
    aggregate's timestamps go forward, and no two stores share an aggregate id."""
    rnd = random.Random(seed)
    rows = []
    for store_id in STORES:
        for number in range(aggregates):
            aggregate_id = f"{store_id.lower()}{rnd.choice('xé')}{number}"
            moments = sorted(rnd.choice(STAMPS) for _ in range(rnd.randint(1, 4)))
            for version, moment in enumerate(moments, 1):
                extra = rnd.choice([{}, {"payload": {"n": number}}, {"metadata": {"s": store_id}}])
                rows.append((store_id, event(aggregate_id, version, moment, **extra)))
    return in_insertion_order(rows)


def skew(rows: list[tuple[str, dict]], store_id: str) -> list[tuple[str, dict]]:
    """``rows`` and an aggregate of ``store_id`` whose third version is earlier than its
    second (it pours at the second's timestamp)."""
    return in_insertion_order(
        [
            *rows,
            (store_id, event("skewed", 1, STAMPS[3])),
            (store_id, event("skewed", 2, STAMPS[6])),
            (store_id, event("skewed", 3, STAMPS[4], payload={"late": True})),
        ]
    )


def expected(rows: list[tuple[str, dict]], start: str | None = None, end: str | None = None):
    by_store = {s: [e for sid, e in rows if sid == s] for s in STORES}
    return [{"eventStoreId": s, "event": e} for s, e in oracle.pour_order(by_store, start, end)]


def in_memory_result(rows: list[tuple[str, dict]], filters: dict | None = None) -> dict:
    stores = [InMemoryEventStore(s, [e for sid, e in rows if sid == s]) for s in STORES]
    return pour_event_store_collection_events(stores, InMemoryMessageChannel(), filters=filters)


@pytest.fixture
def own_scans(monkeypatch) -> list[tuple[str, str | None]]:
    """(store id, from_timestamp) of every store's own scan."""
    calls: list[tuple[str, str | None]] = []
    original = PostgresEventStore.scan_event_batches

    def spy(self: PostgresEventStore, **bounds: Any) -> Any:
        calls.append((self.event_store_id, bounds.get("from_timestamp")))
        return original(self, **bounds)

    monkeypatch.setattr(PostgresEventStore, "scan_event_batches", spy)
    return calls


@pytest.mark.parametrize("batch_size", [1, 4, 500])
def test_stores_sharing_a_table_are_poured_by_one_query(table, own_scans, batch_size, caplog):
    rows = monotonic_rows(seed=batch_size)
    table.load(rows)
    stores = [table.store(s, scan_batch_size=batch_size) for s in STORES]
    channel = InMemoryMessageChannel()

    with caplog.at_level(logging.INFO, logger=ENGINE_LOGGER):
        result = pour_event_store_collection_events(stores, channel, filters={"to": STAMPS[5]})

    want = expected(rows, end=STAMPS[5])
    assert 0 < len(want) < len(rows)
    assert canon(messages(channel)) == canon(want)
    assert result == in_memory_result(rows, {"to": STAMPS[5]})
    assert own_scans == []
    assert not any("handed over" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("skewed", STORES)
def test_clock_skew_hands_over_to_each_stores_own_scan(table, own_scans, skewed, caplog):
    rows = skew(monotonic_rows(seed=7), skewed)
    table.load(rows)
    stores = [table.store(s, scan_batch_size=5) for s in STORES]
    channel = InMemoryMessageChannel()

    with caplog.at_level(logging.INFO, logger=ENGINE_LOGGER):
        result = pour_event_store_collection_events(stores, channel)

    assert canon(messages(channel)) == canon(expected(rows))
    assert result == in_memory_result(rows)
    handovers = [r.getMessage() for r in caplog.records if "handed over" in r.getMessage()]
    assert len(handovers) == 1 and "last version seen" in handovers[0]
    # every store went on with its own scan, from where the joint scan had left it
    assert sorted(store_id for store_id, _ in own_scans) == sorted(STORES)
    assert any(start is not None for _, start in own_scans)


def test_skew_in_the_first_batch_hands_over_before_anything_is_poured(table, own_scans):
    rows = [
        ("A", event("a", 1, STAMPS[1])),
        ("B", event("b", 1, STAMPS[0])),
        ("B", event("b", 2, STAMPS[2])),
        ("B", event("b", 3, STAMPS[0])),  # earlier than version 2: pours at STAMPS[2]
    ]
    table.load(rows)
    stores = [table.store(s) for s in ("A", "B")]
    channel = InMemoryMessageChannel()

    pour_event_store_collection_events(stores, channel)

    assert [
        (m["eventStoreId"], m["event"]["aggregateId"], m["event"]["version"])
        for m in messages(channel)
    ] == [
        ("B", "b", 1),
        ("A", "a", 1),
        ("B", "b", 2),
        ("B", "b", 3),
    ]
    assert sorted(own_scans) == [("A", None), ("B", None)]


def test_an_aggregate_id_in_two_stores_does_not_hide_skew(table, own_scans):
    """A's Z 1 must not pass for the version before B's Z 2, which is earlier than B's Z 1."""
    rows = in_insertion_order(
        [
            *monotonic_rows(seed=13),
            ("A", event("Z", 1, STAMPS[2])),
            ("B", event("Z", 1, STAMPS[3])),
            ("B", event("Z", 2, STAMPS[2])),  # pours at STAMPS[3], after B's Z 1
        ]
    )
    table.load(rows)
    stores = [table.store(s, scan_batch_size=6) for s in STORES]
    channel = InMemoryMessageChannel()

    pour_event_store_collection_events(stores, channel)

    assert canon(messages(channel)) == canon(expected(rows))
    assert sorted(store_id for store_id, _ in own_scans) == sorted(STORES)


def test_without_the_skew_check_the_joint_scan_reads_everything(table, own_scans):
    rows = monotonic_rows(seed=11)
    table.load(rows)
    stores = [table.store(s, check_clock_skew=False, scan_batch_size=7) for s in STORES]
    channel = InMemoryMessageChannel()

    pour_event_store_collection_events(stores, channel)

    assert canon(messages(channel)) == canon(expected(rows))
    assert own_scans == []


def test_joint_scans_only_start_from_the_beginning_of_one_table(table, make_table):
    a, b = table.store("A"), table.store("B")
    elsewhere = make_table().store("B")
    unchecked = table.store("B", check_clock_skew=False)
    everything = parse_filters(None)
    assert isinstance(a, JointlyScannableEventStore)

    assert joint_scan([a, b], everything, {}) is not None
    assert joint_scan([a, b], parse_filters({"to": STAMPS[1]}), {}) is not None
    assert joint_scan([a, b], parse_filters({"from": STAMPS[1]}), {}) is None
    assert joint_scan([a, b], everything, {"A": (STAMPS[0], "x", 1)}) is None
    assert joint_scan([a], everything, {}) is None
    assert joint_scan([a, elsewhere], everything, {}) is None
    assert joint_scan([a, unchecked], everything, {}) is None


def test_a_store_of_another_table_is_refused(table, make_table):
    elsewhere = make_table().store("B")

    with pytest.raises(ValueError, match="joint_scan_key"):
        table.store("A").scan_jointly([elsewhere])


def test_a_joint_scan_that_cannot_connect_hands_over(table):
    table.load(monotonic_rows(seed=3))
    a, b = table.store("A"), table.store("B")
    scan = a.scan_jointly([a, b])
    a._connections.pool.close()  # the joint scan's connections are gone: its first read fails

    with pytest.raises(ScanHandover, match="joint scan of"):
        next(scan)


@pytest.mark.parametrize(("fail_on_call", "delivered"), [(1, 0), (20, 2), (70, 1)])
@pytest.mark.parametrize("skewed", [None, "B"])
def test_a_joint_pour_interrupted_resumes_with_each_stores_scan(
    table, own_scans, fail_on_call, delivered, skewed
):
    rows = monotonic_rows(seed=5)
    rows = rows if skewed is None else skew(rows, skewed)
    table.load(rows)
    stores = [table.store(s, scan_batch_size=8) for s in STORES]
    want = expected(rows)
    channel = BreakingChannel(fail_on_call, delivered)
    saved: list[dict] = []

    with pytest.raises(PourInterruptedError):
        pour_event_store_collection_events(stores, channel, on_checkpoint=saved.append)
    confirmed = (fail_on_call - 1) * BATCH
    assert len(saved) == fail_on_call - 1
    before = len(channel.messages)
    resumed = pour_event_store_collection_events(
        stores, channel, checkpoint=saved[-1] if saved else None
    )

    published = [m.message for m in channel.messages]
    assert canon(published[:confirmed]) == canon(want[:confirmed])
    assert canon(published[before:]) == canon(want[confirmed:])
    assert resumed["poured_event_count"] == len(want)
    if saved:  # a resumed pour starts after a position: each store's own scan
        assert {store_id for store_id, _ in own_scans} == set(STORES)
