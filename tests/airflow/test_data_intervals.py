"""A pour without from/to in a DAG with a daily schedule pours its run's data interval,
[start, end): over three consecutive days every event is poured once, the events at exactly
midnight by the day that starts then."""

from __future__ import annotations

import itertools

import pendulum
import pytest

from airflow_provider_castore_dam.stores.postgres.tables import copy_events, create_castore_table
from tests.airflow.connections import (
    message_channel_connection,
    postgres_store_connection,
    set_connection,
)
from tests.airflow.test_example_dags import load_dag
from tests.airflow.test_operators import published  # noqa: F401
from tests.engine.helpers import event

DAYS = [pendulum.datetime(2024, 3, d, tz="UTC") for d in (1, 2, 3, 4)]
STAMPS = [
    "2024-02-29T23:59:59.999Z",
    "2024-03-01T00:00:00.000Z",
    "2024-03-01T23:59:59.999Z",
    "2024-03-02T00:00:00.000Z",
    "2024-03-02T12:00:00.000Z",
    "2024-03-03T00:00:00.000Z",
    "2024-03-03T23:59:59.999Z",
    "2024-03-04T00:00:00.000Z",
]


@pytest.fixture
def day_store(monkeypatch, postgres_database):
    create_castore_table(postgres_database, "event", aggregate_id_type="VARCHAR(64)")
    copy_events(
        postgres_database,
        [("POKEMONS", event(f"p{n}", 1, stamp)) for n, stamp in enumerate(STAMPS)]
        + [("TRAINERS", event("ash", 1, STAMPS[3]))],
    )
    set_connection(
        monkeypatch,
        "castore_event_store_default",
        **postgres_store_connection(postgres_database),
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
    assert intervals == [(day.subtract(days=1), day) for day in DAYS[:3]]
    assert all(a[1] == b[0] for a, b in itertools.pairwise(intervals))  # no gap
    for (start, end), stamps in poured_by_run:
        assert stamps and all(start <= pendulum.parse(s) < end for s in stamps)
    everything = sorted(s for _, stamps in poured_by_run for s in stamps)
    # [Feb 29, Mar 3): each event once (STAMPS[3] twice: two stores), midnight events in the
    # day that starts then; from Mar 3 on, nothing.
    assert everything == sorted([*STAMPS[:5], STAMPS[3]])


def test_data_interval_filters_off_pours_everything(airflow_db, day_store, published):  # noqa: F811
    dag = load_dag("example_castore_daily_replay")
    dag.task_dict["replay_the_day"].data_interval_filters = False

    assert dag.test(logical_date=DAYS[1]).state == "success"

    assert len(published()) == len(STAMPS) + 1
