"""CheckEventStoreIntegrityOperator over real stores: every store of a connection, fail_on,
the report in XCom and the table in the task log."""

from __future__ import annotations

import json

import pytest

from airflow_provider_castore_dam.dam.integrity import DEFECT_KINDS, IntegrityCheckError
from airflow_provider_castore_dam.errors import InvalidPourInputError
from airflow_provider_castore_dam.hooks.event_store import CastoreEventStoreHook
from airflow_provider_castore_dam.operators import CheckEventStoreIntegrityOperator
from airflow_provider_castore_dam.stores.demo import DEMO_EVENTS
from airflow_provider_castore_dam.stores.postgres.tables import copy_events, create_castore_table
from tests.airflow.connections import (
    event_store_connection,
    postgres_store_connection,
    set_connection,
)
from tests.engine.helpers import event
from tests.stores.dynamodb_tables import create_table, put_events


@pytest.fixture
def defective_table(monkeypatch, postgres_database):
    """Table ``event`` (no unique constraint) holding CLEAN, GAPPY (v1, v3) and TWICE (v1 twice)."""
    create_castore_table(postgres_database, "event", aggregate_id_type="VARCHAR(64)", indexes=False)
    copy_events(
        postgres_database,
        [
            ("CLEAN", event("c1", 1, "2024-01-01T00:00:00.000Z", type="CREATED")),
            ("CLEAN", event("c1", 2, "2024-01-02T00:00:00.000Z")),
            ("GAPPY", event("g1", 1, "2024-01-01T00:00:00.000Z")),
            ("GAPPY", event("g1", 3, "2024-01-03T00:00:00.000Z")),
            ("TWICE", event("t1", 1, "2024-01-01T00:00:00.000Z")),
            ("TWICE", event("t1", 1, "2024-01-01T00:00:00.000Z")),
        ],
    )
    set_connection(
        monkeypatch,
        "castore_event_store_default",
        **postgres_store_connection(postgres_database, "event"),
    )


def test_every_store_of_the_connection_is_checked_and_the_task_fails_on_any(
    defective_table, capsys
):
    operator = CheckEventStoreIntegrityOperator(task_id="audit")

    with pytest.raises(IntegrityCheckError) as raised:
        operator.execute({})

    assert str(raised.value).splitlines() == [
        "integrity check failed:",
        "GAPPY: 1 version_gap",
        "  version_gap in 'g1' (versions 1, 3): versions 2 missing",
        "TWICE: 1 duplicated_version",
        "  duplicated_version in 't1' (versions 1): stored more than once",
    ]
    reports = raised.value.reports
    assert sorted(reports) == ["CLEAN", "GAPPY", "TWICE"]
    assert reports["CLEAN"]["defect_count"] == 0
    assert reports["CLEAN"]["by_event_type"] == {"CREATED": 1, "HAPPENED": 1}
    assert reports["TWICE"]["event_count"] == 2
    log = [line.split(" [airflow")[0] for line in capsys.readouterr().out.splitlines()]
    table = log.index("event store | aggregates | events | defects | kinds")
    assert log[table : table + 5] == [
        "event store | aggregates | events | defects | kinds",
        "------------+------------+--------+---------+---------------------",
        "CLEAN       |          1 |      2 |       0 | -",
        "GAPPY       |          1 |      2 |       1 | 1 version_gap",
        "TWICE       |          1 |      2 |       1 | 1 duplicated_version",
    ]


def test_fail_on_kinds_and_never_return_the_reports(defective_table):
    result = CheckEventStoreIntegrityOperator(
        task_id="audit", event_store_ids="GAPPY,CLEAN", fail_on="duplicated_version"
    ).execute({})
    assert sorted(result["stores"]) == ["CLEAN", "GAPPY"]
    assert result["defect_count"] == 1
    assert result["stores"]["GAPPY"]["defects"] == [
        {
            "kind": "version_gap",
            "aggregate_id": "g1",
            "versions": [1, 3],
            "detail": "versions 2 missing",
        }
    ]
    assert json.loads(json.dumps(result)) == result

    never = CheckEventStoreIntegrityOperator(task_id="audit", fail_on="never").execute({})
    assert never["defect_count"] == 2

    with pytest.raises(IntegrityCheckError, match="TWICE: 1 duplicated_version"):
        CheckEventStoreIntegrityOperator(
            task_id="audit", fail_on='["duplicated_version", "version_gap"]', max_reported_defects=0
        ).execute({})


def test_bad_fail_on_fails_before_any_store_is_read(defective_table, monkeypatch):
    def no_store(*_):
        raise AssertionError("no store may be opened")

    monkeypatch.setattr(CastoreEventStoreHook, "get_event_store", no_store)
    with pytest.raises(InvalidPourInputError, match=r"unknown defect kind\(s\) \['gaps'\]"):
        CheckEventStoreIntegrityOperator(task_id="audit", fail_on="gaps").execute({})
    with pytest.raises(InvalidPourInputError, match="max_reported_defects"):
        CheckEventStoreIntegrityOperator(task_id="audit", max_reported_defects=-1)


def test_the_demo_connection_lists_its_stores(monkeypatch):
    set_connection(
        monkeypatch, "castore_event_store_default", **event_store_connection("in-memory-demo")
    )
    result = CheckEventStoreIntegrityOperator(task_id="audit").execute({})
    assert sorted(result["stores"]) == sorted(DEMO_EVENTS)
    assert result["defect_count"] == 0
    assert result["stores"]["POKEMONS"]["event_count"] == len(DEMO_EVENTS["POKEMONS"])
    assert result["stores"]["POKEMONS"]["defect_counts"] == dict.fromkeys(DEFECT_KINDS, 0)


def test_dynamodb_connections_list_their_stores(monkeypatch, aws):
    client = aws.client("dynamodb")
    create_table(client, "single")
    for store_id in ("POKEMONS", "TRAINERS"):
        put_events(client, "single", store_id, DEMO_EVENTS[store_id])
    set_connection(
        monkeypatch, "single", **event_store_connection("dynamodb-single-table", table="single")
    )
    set_connection(
        monkeypatch,
        "legacy",
        **event_store_connection("dynamodb-legacy", table="t-{event_store_id}"),
    )
    assert CastoreEventStoreHook("single").list_event_store_ids() == ["POKEMONS", "TRAINERS"]
    with pytest.raises(InvalidPourInputError, match="name the event stores"):
        CastoreEventStoreHook("legacy").list_event_store_ids()


def test_postgres_connection_lists_its_stores(defective_table):
    assert CastoreEventStoreHook().list_event_store_ids() == ["CLEAN", "GAPPY", "TWICE"]
