"""example_castore_store_migration with dag.test(): legacy DynamoDB tables (one per store, on
the moto server) copied into a single table as Castore writes it, then the integrity check,
the reconciliation and the count check; a destination that already differs stops it."""

from __future__ import annotations

import pytest

from airflow_provider_castore_dam.stores.demo import DEMO_EVENTS
from tests.airflow.connections import (
    event_store_connection,
    postgres_store_connection,
    set_connection,
)
from tests.airflow.test_example_dags import (
    demo_store,  # noqa: F401
    load_dag,
    task_states,
    xcom,
)
from tests.stores.dynamodb_tables import create_table, delete_tables, item, put_events, put_items
from tests.stores.test_dynamodb_destination import all_items, castore_items


@pytest.fixture
def tables(aws, monkeypatch):
    client = aws.client("dynamodb")
    legacy = {store_id: f"legacy-{store_id}" for store_id in DEMO_EVENTS}
    for store_id, table in legacy.items():
        create_table(client, table, "legacy")
        put_events(client, table, store_id, DEMO_EVENTS[store_id], "legacy")
    single = create_table(client, "single-table-events", "single-table")
    set_connection(
        monkeypatch,
        "castore_legacy_tables",
        **event_store_connection("dynamodb-legacy", table="legacy-{event_store_id}"),
    )
    set_connection(
        monkeypatch,
        "castore_single_table",
        **event_store_connection("dynamodb-single-table", table=single),
    )
    yield client, single
    delete_tables(client, [*legacy.values(), single])


def test_legacy_tables_move_to_a_single_table_and_the_move_is_proved(airflow_db, tables):
    client, single = tables

    dag_run = load_dag("example_castore_store_migration").test()

    assert dag_run.state == "success", task_states(dag_run)
    assert all_items(client, single) == castore_items(DEMO_EVENTS, "single-table")
    migrated = xcom(dag_run, "migrate")
    assert migrated["poured_event_count"] == sum(map(len, DEMO_EVENTS.values()))
    assert xcom(dag_run, "check_destination")["defect_count"] == 0
    assert xcom(dag_run, "reconcile")["matches"] is True
    assert xcom(dag_run, "compare_counts") == {s: len(e) for s, e in DEMO_EVENTS.items()}


def test_an_event_already_there_and_different_stops_the_migration(airflow_db, tables):
    client, single = tables
    changed = {**DEMO_EVENTS["POKEMONS"][1], "type": "SOMETHING_ELSE"}
    put_items(client, single, [item("POKEMONS", changed)])

    dag = load_dag("example_castore_store_migration")
    dag.task_dict["migrate"].retries = 0  # a conflict is no transient error

    dag_run = dag.test(run_conf={"conflict": "skip_identical"})

    assert dag_run.state == "failed"
    assert task_states(dag_run)["migrate"] == "failed"
    assert task_states(dag_run)["check_destination"] == "upstream_failed"


def upcast_pokemons(event_store_id: str, event: dict) -> object:
    """An upcaster: drops LEVELLED_UP events, renames CAUGHT_BY_TRAINER to CAUGHT."""
    if event["type"] == "LEVELLED_UP":
        return None
    if event["type"] == "CAUGHT_BY_TRAINER":
        return {**event, "type": "CAUGHT"}
    return event


def test_a_postgres_store_into_another_table_renamed_and_upcast(
    airflow_db,
    monkeypatch,
    demo_store,  # noqa: F811
):
    from airflow_provider_castore_dam.operators import MigrateEventStoreOperator
    from airflow_provider_castore_dam.stores.postgres import PostgresEventStore
    from airflow_provider_castore_dam.stores.postgres.tables import create_castore_table

    create_castore_table(demo_store, "event_v2", aggregate_id_type="VARCHAR(64)")
    set_connection(monkeypatch, "castore_v2", **postgres_store_connection(demo_store, "event_v2"))
    operator = MigrateEventStoreOperator(
        task_id="migrate",
        destination_conn_id="castore_v2",
        event_store_ids="POKEMONS",
        transform="tests.airflow.test_example_migration:upcast_pokemons",
        rename_event_stores='{"POKEMONS": "POKEMONS_V2"}',  # as a template renders a dict
    )

    result = operator.execute({})

    with PostgresEventStore("POKEMONS_V2", demo_store, table="event_v2") as migrated:
        events = {a: migrated.get_events(a) for a in ("pikachu1", "charizard1", "arcanine1")}
    assert [(e["version"], e["type"]) for e in events["pikachu1"]] == [
        (1, "APPEARED"),
        (2, "CAUGHT"),
    ]
    assert [(e["version"], e["type"]) for e in events["arcanine1"]] == [
        (1, "APPEARED"),
        (2, "CAUGHT"),
    ]
    assert result["digest"]["event_stores"]["POKEMONS_V2"]["count"] == 5
    assert result["digest"]["inputs"]["transform"].endswith(":upcast_pokemons")
