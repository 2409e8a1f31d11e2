"""Partitioned pours of PostgreSQL stores: the partition is chosen in the query, by the same
hash as in Python, for text and UUID aggregate ids, single stores, joint scans and the
clock-skew tail."""

from __future__ import annotations

import uuid

import pytest

from airflow_provider_castore_dam.channels import InMemoryMessageChannel
from airflow_provider_castore_dam.dam import (
    pour_event_store_collection_events,
    pour_event_store_events,
)
from airflow_provider_castore_dam.partitions import Partition, partition_of
from tests.stores.test_postgres_joint_scan import STAMPS, STORES, monotonic_rows, skew
from tests.stores.test_postgres_store import canon, event, messages

COUNT = 3


def in_partition(poured: list[dict], index: int) -> list[dict]:
    return [m for m in poured if partition_of(m["event"]["aggregateId"], COUNT) == index]


@pytest.fixture
def queries(monkeypatch) -> list[str]:
    """The text of every scan query the stores send."""
    from airflow_provider_castore_dam.stores.postgres import cursor

    sent: list[str] = []
    original = cursor.CursorReader.__init__

    def spy(self, conn, query, params, *args, **kwargs):
        sent.append(query.as_string(conn))
        original(self, conn, query, params, *args, **kwargs)

    monkeypatch.setattr(cursor.CursorReader, "__init__", spy)
    return sent


@pytest.mark.parametrize("skewed", [False, True], ids=["in-order", "clock-skew"])
def test_each_partition_is_the_whole_pour_filtered(table, queries, skewed):
    rows = monotonic_rows(seed=3)
    rows = skew(rows, "A") if skewed else rows
    table.load(rows)
    store = table.store("A", scan_batch_size=7)
    whole = InMemoryMessageChannel()
    pour_event_store_events(store, whole)
    queries.clear()

    parts = []
    for index in range(COUNT):
        channel = InMemoryMessageChannel()
        pour_event_store_events(store, channel, partition=(index, COUNT))
        assert canon(messages(channel)) == canon(in_partition(messages(whole), index))
        parts += messages(channel)
    assert sorted(map(canon, parts)) == sorted(map(canon, messages(whole)))
    assert queries and all("md5(aggregate_id::text)" in query for query in queries)


def test_uuid_aggregate_ids_hash_as_their_text(make_table):
    table = make_table(aggregate_id_type="UUID")
    ids = [str(uuid.UUID(int=n * 7919 + 1)) for n in range(40)]
    table.load([("A", event(i, 1, STAMPS[n % 8])) for n, i in enumerate(ids)])
    store = table.store("A")
    for index in range(COUNT):
        channel = InMemoryMessageChannel()
        pour_event_store_events(store, channel, partition=(index, COUNT))
        got = sorted(m["event"]["aggregateId"] for m in messages(channel))
        assert got == sorted(i for i in ids if Partition(index, COUNT).contains(i))


def test_a_joint_scan_reads_one_partition_of_every_store(table, queries):
    rows = monotonic_rows(seed=11)
    table.load(rows)
    stores = [table.store(s, scan_batch_size=5) for s in STORES]
    whole = InMemoryMessageChannel()
    whole_result = pour_event_store_collection_events(stores, whole)
    queries.clear()

    counts = 0
    for index in range(COUNT):
        channel = InMemoryMessageChannel()
        result = pour_event_store_collection_events(stores, channel, partition=(index, COUNT))
        assert canon(messages(channel)) == canon(in_partition(messages(whole), index))
        counts += result["poured_event_count"]
    assert counts == whole_result["poured_event_count"]
    assert len(queries) == COUNT  # one joint query per partition
    assert all("ANY(" in query and "md5(aggregate_id::text)" in query for query in queries)
