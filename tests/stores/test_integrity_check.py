"""check_event_store_integrity end to end, on defective stores of a real PostgreSQL server and
of a moto server: each defect kind alone, then all of them in one store.

Each store also holds a healthy aggregate, and other stores' events beside it (left out of
the counts). PostgreSQL aggregate ids are lower-case letters, ordered alike by every
collation, so defects come in the order of the ids in both stores.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from airflow_provider_castore_dam.dam.integrity import DEFECT_KINDS, check_event_store_integrity
from airflow_provider_castore_dam.stores.dynamodb import DynamoDBEventStore
from tests.engine.helpers import event
from tests.stores.dynamodb_tables import Tables, item, put_items
from tests.stores.test_dynamodb_audit import written

T0 = "2022-01-01T10:00:00.000Z"
T1 = "2022-01-01T11:00:00.000Z"
T2 = "2022-01-01T12:00:00.000Z"

DefectKey = tuple[str, str, list[int]]
Expected = tuple[list[DefectKey], int, int, dict[str, int]]
"""(defects as (kind, aggregate id, versions), aggregates, events, events per type)."""

POSTGRES_HEALTHY = [event("healthy", 1, T0, type="BORN"), event("healthy", 2, T1, type="GREW")]
POSTGRES_CASES: dict[str, tuple[list[dict], Expected]] = {
    "version_gap": (
        [event("gap", 1, T0, type="BORN"), event("gap", 2, T1), event("gap", 5, T2)],
        ([("version_gap", "gap", [2, 5])], 1, 3, {"BORN": 1, "HAPPENED": 2}),
    ),
    # Only PostgreSQL can hold a duplicated version: in DynamoDB (aggregateId, version) is
    # the primary key, so a second copy overwrites the first.
    "duplicated_version": (
        [event("dup", 1, T0), event("dup", 2, T1), event("dup", 2, T1), event("dup", 3, T2)],
        ([("duplicated_version", "dup", [2])], 1, 4, {"HAPPENED": 4}),
    ),
    "first_version_not_1": (
        [event("late", 2, T0), event("late", 3, T1)],
        ([("first_version_not_1", "late", [2])], 1, 2, {"HAPPENED": 2}),
    ),
    "clock_skew": (
        [event("skew", 1, T1), event("skew", 2, T0), event("skew", 3, T2)],
        ([("clock_skew", "skew", [1, 2])], 1, 3, {"HAPPENED": 3}),
    ),
    # A timestamp column holds a timestamp or NULL: NULL is the only one that cannot parse.
    "unparseable_timestamp": (
        [event("untimed", 1, T0), event("untimed", 2, None)],
        ([("unparseable_timestamp", "untimed", [2])], 1, 2, {"HAPPENED": 2}),
    ),
    "missing_type": (
        [event("untyped", 1, T0, type=None), event("untyped", 2, T1, type="")],
        (
            [("missing_type", "untyped", [1]), ("missing_type", "untyped", [2])],
            1,
            2,
            {},
        ),
    ),
    # unlisted_aggregate: PostgreSQL lists every aggregate by its version-1 row.
}

DYNAMODB_CASES: dict[str, tuple[Any, Expected]] = {
    "version_gap": (
        lambda layout: [written(layout, "gap", version) for version in (1, 2, 5)],
        ([("version_gap", "gap", [2, 5])], 1, 3, {"HAPPENED": 3}),
    ),
    "first_version_not_1": (
        lambda layout: [written(layout, "late", 2), written(layout, "late", 3)],
        ([("first_version_not_1", "late", [2])], 1, 2, {"HAPPENED": 2}),
    ),
    "clock_skew": (
        lambda layout: [
            written(layout, "skew", 1, timestamp={"S": T1}),
            written(layout, "skew", 2, timestamp={"S": T0}),
        ],
        ([("clock_skew", "skew", [1, 2])], 1, 2, {"HAPPENED": 2}),
    ),
    "unparseable_timestamp": (
        lambda layout: [
            written(layout, "badtime", 1),
            written(layout, "badtime", 2, timestamp={"S": "yesterday"}),
            written(layout, "badtime", 3, "timestamp"),
            # Not Castore's form, but it parses: no defect.
            written(layout, "badtime", 4, timestamp={"S": "2022-01-01T12:00:00+01:00"}),
        ],
        (
            [
                ("unparseable_timestamp", "badtime", [2]),
                ("unparseable_timestamp", "badtime", [3]),
            ],
            1,
            4,
            {"HAPPENED": 4},
        ),
    ),
    "missing_type": (
        lambda layout: [
            written(layout, "untyped", 1, "type"),
            written(layout, "untyped", 2, type={"N": "2"}),
        ],
        ([("missing_type", "untyped", [1]), ("missing_type", "untyped", [2])], 1, 2, {}),
    ),
    "unlisted_aggregate": (
        lambda layout: [
            written(layout, "unindexed", 1, index_key(layout)),
            written(layout, "unindexed", 2),
            written(layout, "wrongindex", 1, **{index_key(layout): wrong_index_value(layout)}),
        ],
        (
            [("unlisted_aggregate", "unindexed", [1]), ("unlisted_aggregate", "wrongindex", [1])],
            2,
            3,
            {"HAPPENED": 3},
        ),
    ),
    # duplicated_version: impossible in DynamoDB, whose primary key is (aggregateId, version).
}


def index_key(layout: str) -> str:
    return "eventStoreId" if layout == "single-table" else "isInitialEvent"


def wrong_index_value(layout: str) -> dict[str, str]:
    return {"S": "OTHER"} if layout == "single-table" else {"N": "2"}


def with_healthy(expected: Expected, healthy_types: dict[str, int]) -> Expected:
    """``expected`` plus the healthy aggregate, which has no defect."""
    defects, aggregates, events, types = expected
    total = Counter(types) + Counter(healthy_types)
    return defects, aggregates + 1, events + sum(healthy_types.values()), dict(total)


def mixed(cases: dict[str, Expected]) -> Expected:
    """The cases in one store: every case's defects, in the order of their aggregate ids."""
    defects = sorted(
        (defect for case in cases.values() for defect in case[0]),
        key=lambda defect: defect[1],  # stable: an aggregate's defects stay in their order
    )
    types: Counter[str] = Counter()
    for case in cases.values():
        types.update(case[3])
    return (
        defects,
        sum(case[1] for case in cases.values()),
        sum(case[2] for case in cases.values()),
        dict(types),
    )


def assert_report(report: dict, store_id: str, expected: Expected) -> None:
    defects, aggregates, events, types = expected
    assert [(d["kind"], d["aggregate_id"], d["versions"]) for d in report["defects"]] == defects
    assert report["defect_counts"] == {
        kind: sum(1 for defect in defects if defect[0] == kind) for kind in DEFECT_KINDS
    }
    assert report["defect_count"] == len(defects)
    assert report["event_store_id"] == store_id
    assert (report["aggregate_count"], report["event_count"]) == (aggregates, events)
    assert report["by_event_type"] == dict(sorted(types.items()))
    assert report["listing_checked"] is True


# --------------------------------------------------------------------------- PostgreSQL


def load_postgres(loose_table: Any, events: list[dict]) -> None:
    others = [("OTHER", event("gap", 3, T0, type="OTHER")), (None, event("dup", 9, T0))]
    loose_table.load([("S", e) for e in POSTGRES_HEALTHY + events] + others)


@pytest.mark.parametrize("kind", list(POSTGRES_CASES))
def test_postgres_defect_alone(loose_table, kind):
    events, expected = POSTGRES_CASES[kind]
    load_postgres(loose_table, events)
    report = check_event_store_integrity(loose_table.store("S"))
    assert_report(report, "S", with_healthy(expected, {"BORN": 1, "GREW": 1}))
    assert report["defect_counts"][kind] == len(expected[0]) > 0


def test_postgres_defects_mixed(loose_table):
    load_postgres(loose_table, [e for events, _ in POSTGRES_CASES.values() for e in events])
    expected = with_healthy(
        mixed({kind: case[1] for kind, case in POSTGRES_CASES.items()}), {"BORN": 1, "GREW": 1}
    )
    store = loose_table.store("S")
    report = check_event_store_integrity(store)
    assert_report(report, "S", expected)
    assert (report["defect_count"], report["aggregate_count"], report["event_count"]) == (7, 7, 18)
    assert [d["aggregate_id"] for d in report["defects"]][:2] == ["dup", "gap"]
    capped = check_event_store_integrity(store, max_reported_defects=2)
    assert capped["defects"] == report["defects"][:2]
    assert capped["defect_counts"] == report["defect_counts"]


def test_postgres_castore_table_without_defects(table):
    table.load([("S", e) for e in POSTGRES_HEALTHY] + [("OTHER", event("healthy", 3, T0))])
    report = check_event_store_integrity(table.store("S"))
    assert_report(report, "S", ([], 1, 2, {"BORN": 1, "GREW": 1}))


# --------------------------------------------------------------------------- DynamoDB


def dynamodb_store(tables: Tables, layout: str, items: list[dict]) -> DynamoDBEventStore:
    table = tables.create(layout)
    healthy = [written(layout, "healthy", 1), written(layout, "healthy", 2)]
    put_items(tables.client, table, healthy + items)
    if layout == "single-table":
        put_items(tables.client, table, [item("OTHER", event("gap", 1, T0))])
    return DynamoDBEventStore("S", table, layout=layout, client=tables.client)


@pytest.mark.parametrize("layout", ["single-table", "legacy"])
@pytest.mark.parametrize("kind", list(DYNAMODB_CASES))
def test_dynamodb_defect_alone(tables, layout, kind):
    items, expected = DYNAMODB_CASES[kind]
    report = check_event_store_integrity(dynamodb_store(tables, layout, items(layout)))
    assert_report(report, "S", with_healthy(expected, {"HAPPENED": 2}))
    assert report["defect_counts"][kind] == len(expected[0]) > 0


@pytest.mark.parametrize("layout", ["single-table", "legacy"])
def test_dynamodb_defects_mixed(tables, layout):
    items = [written for make, _ in DYNAMODB_CASES.values() for written in make(layout)]
    report = check_event_store_integrity(dynamodb_store(tables, layout, items))
    expected = mixed({kind: case[1] for kind, case in DYNAMODB_CASES.items()})
    assert_report(report, "S", with_healthy(expected, {"HAPPENED": 2}))
    assert (report["defect_count"], report["aggregate_count"], report["event_count"]) == (9, 8, 18)
