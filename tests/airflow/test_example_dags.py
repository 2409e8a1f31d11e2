"""dag.test() runs of every example DAG against the real PostgreSQL server and the moto server."""

from __future__ import annotations

import json
import math
import threading
import time
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_1_PLUS, AIRFLOW_V_3_3_PLUS
from psycopg.conninfo import conninfo_to_dict

from airflow_provider_castore_dam.dam.digest import Digest
from airflow_provider_castore_dam.errors import MessageChannelError
from airflow_provider_castore_dam.hooks.message_channel import CastoreMessageChannelHook
from airflow_provider_castore_dam.operators import checkpointing
from airflow_provider_castore_dam.stores.demo import DEMO_EVENTS
from airflow_provider_castore_dam.stores.postgres.tables import copy_events, create_castore_table
from tests.airflow.connections import (
    message_channel_connection,
    postgres_store_connection,
    set_connection,
)
from tests.engine import oracle

EXAMPLE_DAGS = Path(__file__).resolve().parents[2] / "example_dags"
ALL_EVENTS = [(store_id, event) for store_id, events in DEMO_EVENTS.items() for event in events]


def load_dag(dag_id: str):
    if AIRFLOW_V_3_1_PLUS:
        from airflow.dag_processing.dagbag import DagBag
    else:
        from airflow.models.dagbag import DagBag

    bag = DagBag(dag_folder=str(EXAMPLE_DAGS / f"{dag_id}.py"))
    assert bag.import_errors == {}
    dag = bag.get_dag(dag_id)
    if not AIRFLOW_V_3_1_PLUS:
        write_to_metadata_db(dag)
    return dag


def write_to_metadata_db(dag) -> None:
    """Airflow 3.0's dag.test() does not write the DAG and its assets to the metadata database,
    where an asset event needs its asset, active; the DAG processor would."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.models.dag import DAG as SchedulerDAG
    from airflow.serialization.serialized_objects import SerializedDAG

    DagBundlesManager().sync_bundles_to_db()
    serialized = SerializedDAG.deserialize_dag(SerializedDAG.serialize_dag(dag))
    SchedulerDAG.bulk_write_to_db("dags-folder", None, [serialized])


def xcom(dag_run, task_id: str):
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = (
            session.query(XComModel)
            .filter(
                XComModel.dag_id == dag_run.dag_id,
                XComModel.run_id == dag_run.run_id,
                XComModel.task_id == task_id,
                XComModel.key == "return_value",
            )
            .one()
        )
        return row.value


def checkpoint_variables() -> list[str]:
    from airflow.models.variable import Variable as VariableModel
    from airflow.utils.session import create_session

    with create_session() as session:
        keys = [row.key for row in session.query(VariableModel)]
    return [key for key in keys if key.startswith(checkpointing.CHECKPOINT_KEY)]


def receive_all(sqs, queue_url: str) -> list[dict]:
    messages = []
    while True:
        batch = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=10,
            MessageAttributeNames=["All"],
            WaitTimeSeconds=0,
        ).get("Messages", [])
        if not batch:
            return messages
        messages.extend(batch)
        sqs.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)
            ],
        )


@pytest.fixture
def demo_store(monkeypatch, postgres_database):
    """The demo stores in a Castore-layout PostgreSQL table, behind castore_event_store_default."""
    create_castore_table(postgres_database, "event", aggregate_id_type="VARCHAR(64)")
    rows = [(store_id, event) for store_id, events in DEMO_EVENTS.items() for event in events]
    copy_events(postgres_database, sorted(rows, key=lambda row: row[1]["timestamp"]))
    set_connection(
        monkeypatch,
        "castore_event_store_default",
        **postgres_store_connection(postgres_database),
    )
    return postgres_database


def test_scheduled_migration_pours_every_aggregate_id(airflow_db, demo_store, aws, monkeypatch):
    sqs = aws.client("sqs")
    queue_url = sqs.create_queue(QueueName="migration")["QueueUrl"]
    set_connection(
        monkeypatch,
        "castore_migration_queue",
        **message_channel_connection("sqs", queue_url=queue_url),
    )

    dag_run = load_dag("example_castore_scheduled_migration").test()

    assert dag_run.state == "success"
    result = xcom(dag_run, "pour_pokemon_aggregate_ids")
    assert result["poured_aggregate_id_count"] == 3
    assert result["first_scanned_aggregate"]["aggregate_id"] == "pikachu1"
    bodies = [json.loads(m["Body"]) for m in receive_all(sqs, queue_url)]
    assert sorted(body["aggregateId"] for body in bodies) == ["arcanine1", "charizard1", "pikachu1"]
    assert all(body["eventStoreId"] == "POKEMONS" for body in bodies)

    # Its asset event carries the counts; the DAG scheduled on the asset reads and checks them.
    [extra] = asset_event_extras("castore://castore_migration_queue/POKEMONS")
    assert extra == {
        "utility": "pour_event_store_aggregate_ids",
        "dry_run": False,
        "poured_count": 3,
        "event_stores": result["digest"]["event_stores"],
    }
    downstream = load_dag("example_castore_after_migration").test()
    assert downstream.state == "success"
    assert xcom(downstream, "check_counts") == {"poured": 3, "listed": 3}


def asset_event_extras(uri: str) -> list[dict]:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    with create_session() as session:
        events = (
            session.query(AssetEvent)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .filter(AssetModel.uri == uri)
            .all()
        )
        return [dict(event.extra) for event in events]


@pytest.mark.parametrize("dry_run", [True, False])
def test_manual_backfill_with_params(airflow_db, demo_store, aws, monkeypatch, dry_run):
    sqs = aws.client("sqs")
    queue_url = sqs.create_queue(QueueName="backfill")["QueueUrl"]
    set_connection(
        monkeypatch,
        "castore_message_channel_default",
        **message_channel_connection("sqs", queue_url=queue_url),
    )
    start, end = "2021-06-01T00:00:00.000Z", "2022-01-01T00:00:00.000Z"

    dag_run = load_dag("example_castore_manual_backfill").test(
        run_conf={
            "event_store_ids": ["POKEMONS", "TRAINERS"],
            "from": start,
            "to": end,
            "rate_limit": 50,
            "dry_run": dry_run,
        }
    )

    assert dag_run.state == "success"
    result = xcom(dag_run, "backfill")
    expected = oracle.pour_order(DEMO_EVENTS, start, end)
    assert result["poured_event_count"] == len(expected) == 4
    published = [json.loads(m["Body"]) for m in receive_all(sqs, queue_url)]
    if dry_run:
        assert published == []
        assert result["dry_run"]["POKEMONS"]["message_count"] == 2
        assert result["dry_run"]["TRAINERS"]["by_event_type"] == {
            "POKEMON_CAUGHT": 1,
            "TRAINER_CREATED": 1,
        }
    else:
        assert "dry_run" not in result
        assert sorted(
            (m["eventStoreId"], m["event"]["aggregateId"], m["event"]["version"]) for m in published
        ) == sorted((store_id, e["aggregateId"], e["version"]) for store_id, e in expected)


def run_pour_and_check(demo_store, sqs, queue_url, *, duplicate: str | None = None):
    """The DAG run, with a consumer that starts after a delay (so the sensor has to wait for
    it) and writes one projection row per message; it writes ``duplicate``'s row twice."""
    drained_at: list[float] = []
    stop = threading.Event()

    def consumer():
        time.sleep(3)
        with psycopg.connect(demo_store, autocommit=True) as connection:
            while not stop.is_set():
                messages = receive_all(sqs, queue_url)
                for message in messages:
                    message_id = message["MessageAttributes"]["messageId"]["StringValue"]
                    for _ in range(2 if message_id == duplicate else 1):
                        connection.execute(
                            "INSERT INTO projection_event VALUES (%s)", (message_id,)
                        )
                if messages:
                    drained_at.append(time.monotonic())
                time.sleep(0.2)

    thread = threading.Thread(target=consumer, daemon=True)
    thread.start()
    dag = load_dag("example_castore_pour_and_check")
    for task in dag.tasks:  # quick polling for the test
        if task.task_id == "wait_until_drained":
            task.poke_interval, task.stable_readings = 0.5, 3
    try:
        dag_run = dag.test(run_conf={"event_store_id": "POKEMONS", "queue_url": queue_url})
        finished = time.monotonic()
    finally:
        stop.set()
        thread.join()
    assert drained_at and drained_at[-1] < finished
    return dag_run


@pytest.fixture
def projection(demo_store, aws, monkeypatch):
    """The queue behind castore_message_channel_default and the projection table behind
    castore_projection_db (a Postgres connection, as common.sql's checks want)."""
    sqs = aws.client("sqs")
    queue_url = sqs.create_queue(QueueName="projection")["QueueUrl"]
    set_connection(
        monkeypatch,
        "castore_message_channel_default",
        **message_channel_connection("sqs", queue_url=queue_url),
    )
    params = conninfo_to_dict(demo_store)
    set_connection(
        monkeypatch,
        "castore_projection_db",
        conn_type="postgres",
        host=params["host"],
        port=int(params.get("port", 5432)),
        login=params.get("user"),
        schema=params["dbname"],
    )
    with psycopg.connect(demo_store, autocommit=True) as connection:
        connection.execute("CREATE TABLE projection_event (message_id text)")
    return sqs, queue_url


def task_states(dag_run) -> dict[str, str]:
    return {ti.task_id: ti.state for ti in dag_run.get_task_instances()}


def test_pour_then_wait_for_the_consumer_then_check(airflow_db, demo_store, projection):
    sqs, queue_url = projection

    dag_run = run_pour_and_check(demo_store, sqs, queue_url)

    assert dag_run.state == "success"
    assert xcom(dag_run, "pour_events")["poured_event_count"] == 6
    assert xcom(dag_run, "wait_until_drained") == {
        queue_url: {"visible": 0, "in_flight": 0, "delayed": 0}
    }
    reconciliation = xcom(dag_run, "reconcile")
    assert reconciliation["matches"] is True
    pokemons = reconciliation["event_stores"]["POKEMONS"]
    assert pokemons["source"] == pokemons["poured"]
    assert pokemons["poured"] == xcom(dag_run, "pour_events")["digest"]["event_stores"]["POKEMONS"]
    assert pokemons["poured"]["count"] == 6
    assert task_states(dag_run)["check_projection_rows"] == "success"
    assert task_states(dag_run)["check_projection_columns"] == "success"


def test_the_sql_checks_fail_on_a_projection_that_is_off_by_one(airflow_db, demo_store, projection):
    sqs, queue_url = projection

    dag_run = run_pour_and_check(demo_store, sqs, queue_url, duplicate="POKEMONS#pikachu1#2")

    assert dag_run.state == "failed"
    states = task_states(dag_run)
    assert states["pour_events"] == "success"
    assert states["reconcile"] == "success"  # the pour delivered what the store holds
    assert states["check_projection_rows"] == "failed"  # 7 rows for 6 poured events
    assert states["check_projection_columns"] == "failed"  # a message id twice


@pytest.mark.parametrize(
    "dag_id",
    [
        "example_castore_scheduled_migration",
        "example_castore_manual_backfill",
        "example_castore_pour_and_check",
    ],
)
def test_example_dags_never_run_two_pours_at_once(airflow_db, dag_id):
    """docs/concurrent-pours.md: one run of the DAG at a time, one instance of each pour."""
    from airflow_provider_castore_dam.operators.pour import BasePourOperator

    dag = load_dag(dag_id)

    pours = [task for task in dag.tasks if isinstance(task, BasePourOperator)]
    assert dag.max_active_runs == 1
    assert len(pours) == 1
    assert pours[0].max_active_tis_per_dag == 1


class FlakyChannel:
    """The connection's real channel, two messages a call, whose ``fail_on_call``-th call
    sends nothing and fails (a dropped connection)."""

    max_batch_size = 2

    def __init__(self, channel, fail_on_call: int) -> None:
        self.channel, self.fail_on_call, self.calls = channel, fail_on_call, 0

    def publish_messages(self, messages, *, replay):
        self.calls += 1
        if self.calls == self.fail_on_call:
            raise MessageChannelError("connection reset by peer", confirmed_count=0)
        self.channel.publish_messages(messages, replay=replay)


# Before Airflow 3.3 there is no task state store: the Variable is the only place.
@pytest.mark.parametrize(
    "kept_in", ["task state store", "variable"] if AIRFLOW_V_3_3_PLUS else ["variable"]
)
def test_a_retried_backfill_resumes_from_its_checkpoint(
    airflow_db, demo_store, aws, monkeypatch, kept_in
):
    """The first try fails on its third publish call; Airflow retries the task, which resumes
    from the checkpoint its first try saved (in the task state store, or before Airflow 3.3 in
    a Variable): every event is in the queue exactly once, and the checkpoint is gone."""
    if kept_in == "variable":
        store_of = checkpointing.state_store
        monkeypatch.setattr(
            checkpointing,
            "state_store",
            lambda context: store_of({k: v for k, v in context.items() if k != "task_state_store"}),
        )
    sqs = aws.client("sqs")
    queue_url = sqs.create_queue(QueueName="resumed")["QueueUrl"]
    set_connection(
        monkeypatch,
        "castore_message_channel_default",
        **message_channel_connection("sqs", queue_url=queue_url),
    )
    original = CastoreMessageChannelHook.get_message_channel
    tries: list[FlakyChannel] = []

    def flaky_on_first_try(self):
        tries.append(FlakyChannel(original(self), fail_on_call=3 if not tries else 0))
        return tries[-1]

    monkeypatch.setattr(CastoreMessageChannelHook, "get_message_channel", flaky_on_first_try)
    dag = load_dag("example_castore_manual_backfill")
    dag.task_dict["backfill"].retry_delay = timedelta(0)

    dag_run = dag.test(run_conf={"event_store_ids": ["POKEMONS", "TRAINERS"], "dry_run": False})

    assert dag_run.state == "success"
    assert len(tries) == 2
    assert [t.calls for t in tries] == [3, math.ceil((len(ALL_EVENTS) - 4) / 2)]
    assert xcom(dag_run, "backfill")["poured_event_count"] == len(ALL_EVENTS)
    published = [json.loads(m["Body"]) for m in receive_all(sqs, queue_url)]
    keys = [
        (m["eventStoreId"], m["event"]["aggregateId"], m["event"]["version"]) for m in published
    ]
    assert sorted(keys) == sorted((s, e["aggregateId"], e["version"]) for s, e in ALL_EVENTS)
    each_once = Digest()
    for key in keys:
        each_once.add_key(key)
    assert xcom(dag_run, "backfill")["digest"]["event_stores"] == each_once.as_json()
    assert checkpoint_variables() == []


def test_partitioned_backfill_pours_each_event_once(airflow_db, demo_store, aws, monkeypatch):
    """dag.test() of the 8-partition backfill: 8 mapped pours, one combined result equal to the
    unpartitioned pour's, every event of the store once in the queue, then the drain and the
    count check."""
    from airflow_provider_castore_dam.channels.dry_run import DryRunMessageChannel
    from airflow_provider_castore_dam.dam import pour_event_store_events
    from airflow_provider_castore_dam.hooks.event_store import CastoreEventStoreHook

    sqs = aws.client("sqs")
    queue_url = sqs.create_queue(QueueName="partitioned")["QueueUrl"]
    set_connection(
        monkeypatch,
        "castore_message_channel_default",
        **message_channel_connection("sqs", queue_url=queue_url),
    )
    received: list[dict] = []
    stop = threading.Event()

    def consumer():
        while not stop.is_set():
            received.extend(receive_all(sqs, queue_url))
            time.sleep(0.2)

    thread = threading.Thread(target=consumer, daemon=True)
    thread.start()
    dag = load_dag("example_castore_partitioned_backfill")
    dag.task_dict["wait_until_drained"].poke_interval = 0.5
    dag.task_dict["wait_until_drained"].stable_readings = 3
    try:
        dag_run = dag.test(run_conf={"event_store_id": "POKEMONS", "queue_url": queue_url})
    finally:
        stop.set()
        thread.join()

    assert dag_run.state == "success"
    store = CastoreEventStoreHook().get_event_store("POKEMONS")
    whole = pour_event_store_events(store, DryRunMessageChannel())
    store.close()
    assert xcom(dag_run, "pour_events.combine_partitions") == whole
    keys = [json.loads(m["Body"]) for m in received]
    keys = [(m["eventStoreId"], m["event"]["aggregateId"], m["event"]["version"]) for m in keys]
    expected = [("POKEMONS", e["aggregateId"], e["version"]) for e in DEMO_EVENTS["POKEMONS"]]
    assert sorted(keys) == sorted(expected)
    assert xcom(dag_run, "check_count") == {"poured": len(expected), "stored": len(expected)}
    mapped = [t for t in dag_run.get_task_instances() if t.task_id == "pour_events.pour_partition"]
    assert sorted(t.map_index for t in mapped) == list(range(8))
    assert all(t.state == "success" for t in mapped)


def test_integrity_audit_passes_on_a_clean_store_and_fails_on_defects(airflow_db, demo_store):
    dag = load_dag("example_castore_integrity_audit")

    clean = dag.test()

    assert clean.state == "success"
    result = xcom(clean, "check_integrity")
    assert sorted(result["stores"]) == sorted(DEMO_EVENTS)
    assert result["defect_count"] == 0
    for store_id, events in DEMO_EVENTS.items():
        assert result["stores"][store_id]["event_count"] == len(events)

    with psycopg.connect(demo_store, autocommit=True) as connection:
        connection.execute(
            "DELETE FROM event WHERE aggregate_name = 'POKEMONS' AND aggregate_id = 'pikachu1' "
            "AND version = 2"
        )
    defective = dag.test()

    assert defective.state == "failed"
