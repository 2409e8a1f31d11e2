"""A pour without from/to in a DAG with a daily schedule pours its run's data interval,
[start, end): over three consecutive days every event is poured once, the events at exactly
midnight by the day that starts then."""

from __future__ import annotations

import itertools

import pendulum
import pytest

from airflow_provider_castore_dam.stores.postgres.tables import copy_events, create_castore_table
from tests.airflow.connections import message_channel_connection, set_connection
from tests.airflow.test_example_dags import load_dag
from tests.airflow.test_operators import published  # noqa: F401
from tests.engine.helpers import event

DAYS = [pendulum.datetime(2024, 3, d, tz="UTC") for d in (1, 2, 3, 4)]
STAMPS = [
    "2024-02-29T23:59:59.999Z",  # the day before: never poured
    "2024-03-01T00:00:00.000Z",
    "2024-03-01T23:59:59.999Z",
    "2024-03-02T00:00:00.000Z",
    "2024-03-02T12:00:00.000Z",
    "2024-03-03T00:00:00.000Z",
    "2024-03-03T23:59:59.999Z",
    "2024-03-04T00:00:00.000Z",  # the day after: never poured
]


@pytest.fixture
def day_store(monkeypatch, postgres_database):
    from psycopg.conninfo import conninfo_to_dict

    create_castore_table(postgres_database, "event", aggregate_id_type="VARCHAR(64)")
    copy_events(
        postgres_database,
        [("POKEMONS", event(f"p{n}", 1, stamp)) for n, stamp in enumerate(STAMPS)]
        + [("TRAINERS", event("ash", 1, STAMPS[3]))],
    )
    params = conninfo_to_dict(postgres_database)
    set_connection(
        monkeypatch,
        "castore_event_store_default",
        conn_type="castore_event_store",
        host=params["host"],
        port=int(params.get("port", 5432)),
        login=params.get("user"),
        schema=params["dbname"],
        extra={"kind": "postgres", "table": "event"},
    )
    set_connection(
        monkeypatch, "castore_message_channel_default", **message_channel_connection("in-memory")
    )


def test_three_consecutive_days_pour_every_event_once(airflow_db, day_store, published):  # noqa: F811
    dag = load_dag("example_castore_daily_replay")
    poured_by_run = []
    for day in DAYS[:3]:
        seen = len(published())
        dag_run = dag.test(logical_date=day)
        assert dag_run.state == "success"
        interval = (dag_run.data_interval_start, dag_run.data_interval_end)
        assert interval[1] - interval[0] == pendulum.duration(days=1)
        poured_by_run.append((interval, [m["event"]["timestamp"] for m in published()[seen:]]))

    intervals = [interval for interval, _ in poured_by_run]
    assert all(a[1] == b[0] for a, b in itertools.pairwise(intervals))  # no gap
    for (start, end), stamps in poured_by_run:
        assert stamps and all(start <= pendulum.parse(s) < end for s in stamps)
    everything = sorted(s for _, stamps in poured_by_run for s in stamps)
    expected = sorted(
        s for s in [*STAMPS, STAMPS[3]] if intervals[0][0] <= pendulum.parse(s) < intervals[-1][1]
    )
    assert everything == expected  # each once, midnight events in the day that starts then


def test_data_interval_filters_off_pours_everything(airflow_db, day_store, published):  # noqa: F811
    dag = load_dag("example_castore_daily_replay")
    dag.task_dict["replay_the_day"].data_interval_filters = False

    assert dag.test(logical_date=DAYS[1]).state == "success"

    assert len(published()) == len(STAMPS) + 1
