"""Partitioned pours against the brute-force oracle: each partition pours its aggregates in
pour order, the partitions together pour every event once, and their results combine into the
unpartitioned pour's."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_castore_dam.channels import InMemoryMessageChannel
from airflow_provider_castore_dam.dam import (
    pour_event_store_collection_events,
    pour_event_store_events,
)
from airflow_provider_castore_dam.dam.checkpoints import CheckpointMismatchError
from airflow_provider_castore_dam.dam.results import combine_partition_results
from airflow_provider_castore_dam.errors import InvalidPourInputError
from airflow_provider_castore_dam.partitions import Partition, partition_of
from airflow_provider_castore_dam.stores import InMemoryEventStore, InMemoryScanningEventStore
from tests.engine import oracle
from tests.engine.test_properties import bounds, collections, store_events

STORE_KINDS = [InMemoryScanningEventStore, InMemoryEventStore]  # native scan, merge path


def poured(channel: InMemoryMessageChannel) -> list[tuple[str, str, int]]:
    messages = [published.message for published in channel.messages]
    return [(m["eventStoreId"], m["event"]["aggregateId"], m["event"]["version"]) for m in messages]


def test_the_hash_is_md5s_first_four_bytes():
    assert partition_of("a00001", 2**32) == 3_661_447_337  # PostgreSQL computes the same
    for aggregate_id in ["", "a", "漢😀", "4c1c6a1e-3b8e-4f7e-9a37-0d9c7e2f3b11"]:
        digest = hashlib.md5(aggregate_id.encode()).digest()
        assert partition_of(aggregate_id, 7) == int.from_bytes(digest[:4], "big") % 7


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(store_events(), st.integers(1, 5), bounds, bounds, st.sampled_from(STORE_KINDS))
def test_partitions_pour_their_aggregates_in_order(events, count, start, end, kind):
    store = kind("S", events)
    filters = {"from": start, "to": end} if start is None or end is None or start <= end else None
    whole = InMemoryMessageChannel()
    whole_result = pour_event_store_events(store, whole, filters)
    results, union = [], []
    for index in range(count):
        channel = InMemoryMessageChannel()
        results.append(pour_event_store_events(store, channel, filters, partition=(index, count)))
        part = poured(channel)
        expected = [k for k in poured(whole) if partition_of(k[1], count) == index]
        assert part == expected  # the partition's aggregates, in pour order
        union += part
    assert sorted(union) == sorted(poured(whole))  # every event once
    assert combine_partition_results(results) == whole_result


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(collections(), st.integers(1, 4))
def test_collection_partitions_add_up_to_the_collection(stores, count):
    built = [InMemoryScanningEventStore(store_id, events) for store_id, events in stores.items()]
    whole = InMemoryMessageChannel()
    whole_result = pour_event_store_collection_events(built, whole)
    results, union = [], []
    for index in range(count):
        channel = InMemoryMessageChannel()
        results.append(pour_event_store_collection_events(built, channel, partition=(index, count)))
        union += poured(channel)
    expected = [(s, e["aggregateId"], e["version"]) for s, e in oracle.pour_order(stores)]
    assert sorted(union) == sorted(expected)
    assert combine_partition_results(results) == whole_result


def test_a_partition_checkpoint_resumes_only_that_partition():
    events = [
        {"aggregateId": f"a{n}", "version": 1, "type": "T", "timestamp": "2021-01-01T00:00:00Z"}
        for n in range(20)
    ]
    store = InMemoryScanningEventStore("S", events)
    checkpoints = []
    pour_event_store_events(
        store, InMemoryMessageChannel(), partition=(0, 2), on_checkpoint=checkpoints.append
    )
    assert checkpoints[-1]["inputs"]["partition"] == [0, 2]

    channel = InMemoryMessageChannel()
    with pytest.raises(CheckpointMismatchError):
        pour_event_store_events(store, channel, partition=(1, 2), checkpoint=checkpoints[-1])
    with pytest.raises(CheckpointMismatchError):
        pour_event_store_events(store, channel, checkpoint=checkpoints[-1])
    assert channel.messages == []


@pytest.mark.parametrize(
    ("partition", "error"),
    [
        ((2, 2), "partition index must be from 0 to 1"),
        ((-1, 2), "partition index must be from 0 to 1"),
        ((0, 0), "partition count must be from 1 to 65536"),
        ((0, 70_000), "partition count must be from 1 to 65536"),
        ("0/2", "partition must be (index, count)"),
        ((0,), "partition must be (index, count)"),
        ((True, 2), "partition must be (index, count)"),
        ((0.0, 2), "partition must be (index, count)"),
    ],
)
def test_bad_partitions_fail_before_publishing(partition, error):
    store = InMemoryScanningEventStore(
        "S", [{"aggregateId": "a", "version": 1, "type": "T", "timestamp": "2021-01-01T00:00:00Z"}]
    )
    channel = InMemoryMessageChannel()
    with pytest.raises(InvalidPourInputError) as raised:
        pour_event_store_events(store, channel, partition=partition)
    assert error in str(raised.value)
    with pytest.raises(InvalidPourInputError):
        pour_event_store_collection_events([store], channel, partition=partition)
    assert channel.messages == []


def test_partitions_given_as_a_dict():
    assert Partition(1, 3).as_json() == [1, 3]
    store = InMemoryScanningEventStore(
        "S", [{"aggregateId": "a", "version": 1, "type": "T", "timestamp": "2021-01-01T00:00:00Z"}]
    )
    index = partition_of("a", 3)
    channel = InMemoryMessageChannel()
    result = pour_event_store_events(store, channel, partition={"index": index, "count": 3})
    assert result["poured_event_count"] == 1
