"""The integrity check's pass, on stores holding exactly the stored events a test gives.

The oracle of the property test does not re-run the check's logic: it derives the expected
defects from the defects the test injected into a clean store."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_provider_castore_dam.dam.integrity import (
    DEFECT_KINDS,
    IntegrityCheckError,
    check_event_store_integrity,
    parse_fail_on,
    raise_on_defects,
)
from airflow_provider_castore_dam.errors import InvalidPourInputError
from airflow_provider_castore_dam.protocols import AggregateIdsPage, StoredEvent
from airflow_provider_castore_dam.stores import InMemoryEventStore
from airflow_provider_castore_dam.stores.demo import DEMO_EVENTS
from tests.engine.defects import defective_stores, expected_counts, found_defects, ts


class StoredEventsStore:
    """An auditable store over the given stored events, yielded in the given order."""

    def __init__(self, events: list[StoredEvent], batch_size: int = 3) -> None:
        self.event_store_id = "STORE"
        self._events = events
        self._batch_size = batch_size
        self.closed = False

    def list_aggregate_ids(self, **_: object) -> AggregateIdsPage:
        raise AssertionError("the check reads an auditable store as stored")

    def get_events(self, aggregate_id: str, **_: object) -> list[dict]:
        raise AssertionError("the check reads an auditable store as stored")

    def audit_events(self) -> Iterator[list[StoredEvent]]:
        try:
            for start in range(0, len(self._events), self._batch_size):
                yield self._events[start : start + self._batch_size]
        finally:
            self.closed = True


class ListedOnly:
    """A store with only the EventStore protocol's reads."""

    def __init__(self, store: InMemoryEventStore) -> None:
        self.event_store_id = store.event_store_id
        self.list_aggregate_ids = store.list_aggregate_ids
        self.get_events = store.get_events


def stored(
    aggregate_id: str, version: int, second: int, type_: str | None = "HAPPENED", **kw: object
) -> StoredEvent:
    return StoredEvent(aggregate_id, version, type_, kw.pop("timestamp", ts(second)), **kw)  # type: ignore[arg-type]


def defects(report: dict) -> list[tuple[str, str, list[int]]]:
    return [(d["kind"], d["aggregate_id"], d["versions"]) for d in report["defects"]]


def test_a_clean_store_has_no_defect_and_its_counts() -> None:
    store = StoredEventsStore(
        [stored("a", 1, 0, "CREATED"), stored("a", 2, 5), stored("b", 1, 1, "CREATED")]
    )
    report = check_event_store_integrity(store)
    assert report == {
        "event_store_id": "STORE",
        "aggregate_count": 2,
        "event_count": 3,
        "by_event_type": {"CREATED": 2, "HAPPENED": 1},
        "defect_count": 0,
        "defect_counts": dict.fromkeys(DEFECT_KINDS, 0),
        "defects": [],
        "listing_checked": True,
    }
    assert store.closed


def test_each_defect_kind_with_its_versions_and_detail() -> None:
    store = StoredEventsStore(
        [
            stored("gap", 1, 0), stored("gap", 2, 1), stored("gap", 5, 2),
            stored("dup", 1, 0), stored("dup", 2, 1), stored("dup", 2, 1),
            stored("late", 2, 0), stored("late", 3, 1),
            stored("skew", 1, 10), stored("skew", 2, 20), stored("skew", 3, 15),
            stored("bad-ts", 1, 0, timestamp="yesterday"), stored("bad-ts", 2, 0, timestamp=None),
            stored("untyped", 1, 0, None), stored("untyped", 2, 1, ""),
            stored("unlisted", 1, 0, listed=False), stored("unlisted", 2, 1),
        ]
    )  # fmt: skip
    report = check_event_store_integrity(store)
    assert defects(report) == [
        ("version_gap", "gap", [2, 5]),
        ("duplicated_version", "dup", [2]),
        ("first_version_not_1", "late", [2]),
        ("clock_skew", "skew", [2, 3]),
        ("unparseable_timestamp", "bad-ts", [1]),
        ("unparseable_timestamp", "bad-ts", [2]),
        ("missing_type", "untyped", [1]),
        ("missing_type", "untyped", [2]),
        ("unlisted_aggregate", "unlisted", [1]),
    ]
    details = {d["kind"]: d["detail"] for d in reversed(report["defects"])}  # the first of each
    assert details["version_gap"] == "versions 3 to 4 missing"
    assert details["unparseable_timestamp"] == (
        "timestamp 'yesterday' is not an ISO 8601 timestamp with a time zone"
    )
    assert report["defects"][5]["detail"] == "the event has no timestamp"
    assert details["clock_skew"] == (f"version 3 at {ts(15)} is earlier than version 2 at {ts(20)}")
    assert report["aggregate_count"] == 7
    assert report["event_count"] == 17
    assert report["by_event_type"] == {"HAPPENED": 15}
    assert report["defect_count"] == 9
    assert report["defect_counts"]["unparseable_timestamp"] == 2


def test_non_canonical_but_parseable_timestamps_compare_as_instants() -> None:
    store = StoredEventsStore(
        [
            stored("a", 1, 0, timestamp="2024-01-01T01:00:00+01:00"),  # 00:00Z
            stored("a", 2, 0, timestamp="2024-01-01T00:30:00.000Z"),
            stored("a", 3, 0, timestamp="2024-02-30T00:00:00.000Z"),  # no such day
        ]
    )
    assert defects(check_event_store_integrity(store)) == [("unparseable_timestamp", "a", [3])]


def test_only_the_first_defects_are_kept_but_all_are_counted() -> None:
    store = StoredEventsStore([stored(f"a{i}", 2, 0) for i in range(10)])
    report = check_event_store_integrity(store, max_reported_defects=3)
    assert [d["aggregate_id"] for d in report["defects"]] == ["a0", "a1", "a2"]
    assert report["defect_count"] == report["defect_counts"]["first_version_not_1"] == 10


def test_filters_select_aggregates_by_their_first_stored_event() -> None:
    store = StoredEventsStore(
        [
            stored("early", 1, 0), stored("early", 3, 50),
            stored("inside", 1, 10), stored("inside", 3, 100),
            stored("garbled", 1, 0, timestamp="?"),
        ]
    )  # fmt: skip
    report = check_event_store_integrity(store, {"from": ts(5), "to": ts(20)})
    assert defects(report) == [
        ("version_gap", "inside", [1, 3]),
        ("unparseable_timestamp", "garbled", [1]),
    ]
    assert report["aggregate_count"] == 2
    assert report["event_count"] == 3


def test_a_store_without_audit_is_read_through_its_listing() -> None:
    store = InMemoryEventStore("POKEMONS", DEMO_EVENTS["POKEMONS"])
    listed = ListedOnly(store)
    report = check_event_store_integrity(listed)
    assert report["listing_checked"] is False
    assert report["event_count"] == len(DEMO_EVENTS["POKEMONS"])
    assert report["aggregate_count"] == len({e["aggregateId"] for e in DEMO_EVENTS["POKEMONS"]})
    assert report["by_event_type"] == dict(
        sorted(Counter(e["type"] for e in DEMO_EVENTS["POKEMONS"]).items())
    )
    assert report["defect_count"] == 0


def test_fail_on() -> None:
    report = check_event_store_integrity(StoredEventsStore([stored("a", 2, 0)]))
    raise_on_defects({"STORE": report}, parse_fail_on(["version_gap"]))
    raise_on_defects({"STORE": report}, parse_fail_on("never"))
    with pytest.raises(IntegrityCheckError) as raised:
        raise_on_defects({"STORE": report}, parse_fail_on("any"))
    assert str(raised.value) == (
        "integrity check failed:\nSTORE: 1 first_version_not_1\n"
        "  first_version_not_1 in 'a' (versions 2): no version 1 is stored"
    )
    assert raised.value.reports == {"STORE": report}


@pytest.mark.parametrize(
    ("fail_on", "message"),
    [
        ("all", "fail_on must be 'any', 'never' or a non-empty list"),
        ([], "fail_on must be 'any', 'never' or a non-empty list"),
        (["version_gap", "typo"], "unknown defect kind(s) ['typo']"),
        (3, "fail_on must be"),
    ],
)
def test_bad_fail_on(fail_on: object, message: str) -> None:
    with pytest.raises(InvalidPourInputError, match=re.escape(message)):
        parse_fail_on(fail_on)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"filters": {"since": ts(0)}}, "unknown filters key"),
        ({"filters": {"from": "noon"}}, "not an ISO 8601 timestamp"),
        ({"max_reported_defects": -1}, "max_reported_defects must be an integer of at least 0"),
        ({"max_reported_defects": True}, "max_reported_defects must be an integer"),
    ],
)
def test_bad_arguments_fail_before_reading(arguments: dict, message: str) -> None:
    store = StoredEventsStore([stored("a", 1, 0)])
    with pytest.raises(InvalidPourInputError, match=message):
        check_event_store_integrity(store, **arguments)
    assert not store.closed  # never opened


# --------------------------------------------------------------------------- property


@settings(max_examples=300, deadline=None)
@given(store=defective_stores(), batch_size=st.integers(1, 7))
def test_exactly_the_injected_defects_are_reported(
    store: tuple[list[StoredEvent], Counter], batch_size: int
) -> None:
    events, expected = store
    report = check_event_store_integrity(
        StoredEventsStore(events, batch_size), max_reported_defects=1000
    )
    assert found_defects(report) == expected
    assert report["defect_count"] == sum(expected.values())
    assert {key: report[key] for key in expected_counts(events)} == expected_counts(events)
