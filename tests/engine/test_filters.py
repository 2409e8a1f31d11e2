"""Filters on event types and aggregate ids: a filtered pour publishes exactly the events of the
unfiltered pour that the filters keep, in the same order (oracle: filter the oracle's pour),
on both merge paths, with partitions, timestamp filters and clock skew; its checkpoints and
digest carry the normalised filters; bad filters fail before anything is published."""

from __future__ import annotations

import hashlib
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_castore_dam.channels import InMemoryMessageChannel
from airflow_provider_castore_dam.dam import (
    pour_aggregate_events,
    pour_event_store_aggregate_ids,
    pour_event_store_collection_events,
    pour_event_store_events,
)
from airflow_provider_castore_dam.dam.filters import parse_pour_filters
from airflow_provider_castore_dam.dam.reconcile import reconcile_pour
from airflow_provider_castore_dam.errors import InvalidPourInputError
from airflow_provider_castore_dam.partitions import partition_of
from airflow_provider_castore_dam.stores import InMemoryEventStore, InMemoryScanningEventStore
from tests.engine import oracle
from tests.engine.test_properties import bounds, collections, ordered_range

TYPES = ["A", "B", "C"]
STORE_KINDS = [InMemoryEventStore, InMemoryScanningEventStore]


@st.composite
def typed(draw: st.DrawFn, stores: dict[str, list[dict]]) -> dict[str, list[dict]]:
    """The stores with a random type on each event."""
    return {
        store_id: [{**e, "type": draw(st.sampled_from(TYPES))} for e in events]
        for store_id, events in stores.items()
    }


@st.composite
def type_filters(draw: st.DrawFn) -> object:
    included = draw(st.one_of(st.none(), st.sets(st.sampled_from(TYPES), min_size=1)))
    excluded = draw(st.sets(st.sampled_from(TYPES)))
    if included is None and not excluded:
        return None
    if excluded or draw(st.booleans()):
        value = {"exclude": sorted(excluded)} if excluded else {}
        return value | ({"include": sorted(included)} if included else {}) or None
    return sorted(included)


def keeps_type(filters: object, event_type: str) -> bool:
    if filters is None:
        return True
    if isinstance(filters, list):
        return event_type in filters
    return event_type in filters.get("include", TYPES) and event_type not in filters.get(
        "exclude", []
    )


def published(channel):
    return [(m.message["eventStoreId"], m.message["event"]) for m in channel.messages]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.data(),
    start=bounds,
    end=bounds,
    kind=st.sampled_from(STORE_KINDS),
    partition=st.one_of(st.none(), st.just((1, 2))),
)
def test_a_filtered_pour_is_the_unfiltered_pour_less_what_it_leaves_out(
    data, start, end, kind, partition
):
    stores = data.draw(collections().flatmap(typed))
    start, end = ordered_range(start, end)
    every_id = sorted({e["aggregateId"] for events in stores.values() for e in events})
    ids = None
    if every_id:
        ids = data.draw(st.one_of(st.none(), st.sets(st.sampled_from(every_id), min_size=1)))
    types = data.draw(type_filters())
    filters = {"from": start, "to": end}
    if ids:
        filters["aggregate_ids"] = sorted(ids)
    if types:
        filters["event_types"] = types
    built = [kind(store_id, events) for store_id, events in stores.items()]
    channel = InMemoryMessageChannel()

    if len(built) == 1:
        result = pour_event_store_events(built[0], channel, filters, partition=partition)
    else:
        result = pour_event_store_collection_events(built, channel, filters, partition=partition)

    expected = [
        (store_id, event)
        for store_id, event in oracle.pour_order(stores, start, end)
        if (ids is None or event["aggregateId"] in ids)
        and keeps_type(types, event["type"])
        and (partition is None or partition_of(event["aggregateId"], 2) == 1)
    ]
    assert published(channel) == expected
    assert result["poured_event_count"] == len(expected)
    assert result["digest"]["inputs"]["filters"] == parse_pour_filters(filters).as_json()
    assert reconcile_pour(result, built)["matches"] is True


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_aggregate_events_and_aggregate_ids_take_the_filters_that_mean_something_to_them(data):
    stores = data.draw(collections().flatmap(typed))
    store_id, events = next(iter(stores.items()))
    store = InMemoryEventStore(store_id, events)
    every_id = sorted({e["aggregateId"] for e in events})
    if not every_id:
        return
    types = data.draw(type_filters())
    aggregate_id = data.draw(st.sampled_from(every_id))
    channel = InMemoryMessageChannel()

    pour_aggregate_events(store, channel, aggregate_id, filters={"event_types": types})

    expected = [
        e for e in oracle.aggregates_by_id(events)[aggregate_id] if keeps_type(types, e["type"])
    ]
    assert [m.message["event"] for m in channel.messages] == expected

    ids = data.draw(st.sets(st.sampled_from(every_id), min_size=1))
    channel = InMemoryMessageChannel()
    result = pour_event_store_aggregate_ids(store, channel, filters={"aggregate_ids": sorted(ids)})
    assert [m.message["aggregateId"] for m in channel.messages] == [
        a["aggregate_id"] for a in oracle.listing(events) if a["aggregate_id"] in ids
    ]
    assert result["digest"]["inputs"]["filters"] == {"aggregate_ids": sorted(ids)}
    assert reconcile_pour(result, [store])["matches"] is True


def test_a_file_of_ids_is_recorded_by_its_fingerprint_and_a_changed_file_is_refused(tmp_path):
    events = [
        {"aggregateId": f"a{n}", "version": 1, "type": "T", "timestamp": oracle_time(n)}
        for n in range(5)
    ]
    store = InMemoryScanningEventStore("S", events)
    ids = tmp_path / "ids.txt"
    ids.write_text("a3\n\n  a1  \na9\n")
    channel = InMemoryMessageChannel()

    result = pour_event_store_events(store, channel, {"aggregate_ids": {"file": str(ids)}})

    assert [m.message["event"]["aggregateId"] for m in channel.messages] == ["a1", "a3"]
    recorded = result["digest"]["inputs"]["filters"]["aggregate_ids"]
    assert recorded == {
        "file": str(ids),
        "count": 3,
        "sha256": hashlib.sha256(b"a1\na3\na9").hexdigest(),
    }
    assert reconcile_pour(result, [store])["matches"] is True
    ids.write_text("a3\na4\n")
    with pytest.raises(InvalidPourInputError, match="changed since the pour"):
        reconcile_pour(result, [store])


def oracle_time(n: int) -> str:
    return f"2021-01-01T00:00:0{n}.000Z"


STORE = InMemoryEventStore(
    "S", [{"aggregateId": "a", "version": 1, "type": "T", "timestamp": oracle_time(0)}]
)


@pytest.mark.parametrize(
    ("utility", "filters", "fragment"),
    [
        ("events", {"event_types": []}, "filters.event_types must be a non-empty list"),
        ("events", {"event_types": "T"}, "filters.event_types must be a non-empty list"),
        ("events", {"event_types": ["T", ""]}, "non-empty strings"),
        ("events", {"event_types": {"only": ["T"]}}, "filters.event_types must be a list of types"),
        ("events", {"event_types": {}}, "filters.event_types must be a list of types"),
        ("events", {"event_types": {"exclude": []}}, "filters.event_types.exclude must be"),
        ("events", {"aggregate_ids": []}, "filters.aggregate_ids must be a non-empty list"),
        ("events", {"aggregate_ids": [3]}, "filters.aggregate_ids must be a non-empty list"),
        ("events", {"aggregate_ids": {"path": "ids"}}, "must be a list of ids or {'file': path}"),
        ("events", {"aggregate_ids": {"file": "/no/such/file"}}, "cannot read the aggregate ids"),
        ("events", {"types": ["T"]}, "unknown filters key(s) ['types']"),
        ("aggregate_events", {"aggregate_ids": ["a"]}, "allowed here: from, to, event_types"),
        ("aggregate_ids", {"event_types": ["T"]}, "allowed here: aggregate_ids"),
        ("aggregate_ids", {"from": "2021-01-01T00:00:00Z"}, "allowed here: aggregate_ids"),
    ],
)
def test_bad_filters_fail_before_anything_is_published(utility, filters, fragment):
    channel = InMemoryMessageChannel()
    pour = {
        "events": lambda: pour_event_store_events(STORE, channel, filters),
        "aggregate_events": lambda: pour_aggregate_events(STORE, channel, "a", filters=filters),
        "aggregate_ids": lambda: pour_event_store_aggregate_ids(STORE, channel, filters=filters),
    }[utility]
    with pytest.raises(InvalidPourInputError, match=re.escape(fragment)):
        pour()
    assert channel.messages == []


def test_an_empty_file_of_ids_is_refused(tmp_path):
    empty = tmp_path / "ids.txt"
    empty.write_text("\n  \n")
    channel = InMemoryMessageChannel()
    with pytest.raises(InvalidPourInputError, match="holds no id"):
        pour_event_store_events(STORE, channel, {"aggregate_ids": {"file": str(empty)}})
    assert channel.messages == []
