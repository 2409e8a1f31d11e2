"""example_castore_partitioned_backfill on the Celery deployment: eight partitions poured at
once by two workers into an SQS queue that the test itself consumes, with and without one
worker killed (SIGKILL) mid-pour."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from airflow_provider_castore_dam.channels import DEFAULT_MAX_IN_FLIGHT
from tests.celery.config import EXAMPLE_DAGS
from tests.celery.consumer import CeleryQueue, QueueConsumer
from tests.celery.harness import AirflowCelery, wait_for
from tests.celery.store_data import (
    EVENT_STORE_ID,
    CeleryStore,
    Key,
    keys_of_events,
    keys_of_messages,
    out_of_order,
)

pytestmark = [pytest.mark.slow, pytest.mark.celery]

DAG_ID = "example_castore_partitioned_backfill"
POUR = "pour_events.pour_partition"
COMBINE = "pour_events.combine_partitions"
PARTITIONS = 8
SQS_BATCH_SIZE = 10
MAX_IN_FLIGHT = DEFAULT_MAX_IN_FLIGHT  # batches published at once
RATE_LIMIT = 10
"""Messages per second per partition (80 in all). moto's SQS walks every message of the queue
on each send and on each message received, so the test's consumer must keep the queue short:
past about 100 messages a second it falls behind, and then ever further."""


@dataclass
class Backfill:
    deployment: AirflowCelery
    queue: CeleryQueue
    store: CeleryStore

    def run(
        self, conf: dict[str, Any], during: Callable[[str, QueueConsumer], None] | None = None
    ) -> tuple[str, str, list[Key]]:
        """Run the DAG with ``conf`` while consuming the queue; ``during(run_id, consumer)``
        runs once the run is triggered. The run id, its final state, the keys received."""
        sqs = self.queue.recreate()
        with QueueConsumer(sqs, self.queue.url) as consumer:
            run_id = self.deployment.trigger(
                DAG_ID, {"event_store_id": EVENT_STORE_ID, "queue_url": self.queue.url, **conf}
            )
            if during is not None:
                during(run_id, consumer)
            state = self.deployment.wait_for_run(DAG_ID, run_id, timeout=300)
        assert consumer.errors == []
        return run_id, state, keys_of_messages(consumer.bodies)

    def pour_tis(self, run_id: str) -> list[dict[str, Any]]:
        tis = self.deployment.db.task_instances(DAG_ID, run_id)
        return [ti for ti in tis if ti["task_id"] == POUR]


@pytest.fixture
def backfill(
    two_workers: AirflowCelery, celery_queue: CeleryQueue, celery_store: CeleryStore
) -> Backfill:
    dag_file = EXAMPLE_DAGS / f"{DAG_ID}.py"
    if not dag_file.exists():
        pytest.fail(f"{dag_file} does not exist")
    two_workers.wait_for_dag(DAG_ID)
    return Backfill(two_workers, celery_queue, celery_store)


def unpartitioned_count(store: CeleryStore) -> int:
    """What one unpartitioned pour of the store reports (a dry run, in this process)."""
    from airflow_provider_castore_dam.channels.dry_run import DryRunMessageChannel
    from airflow_provider_castore_dam.dam import pour_event_store_events
    from airflow_provider_castore_dam.stores.postgres import PostgresEventStore

    with PostgresEventStore(EVENT_STORE_ID, store.dsn) as event_store:
        result = pour_event_store_events(event_store, DryRunMessageChannel())
    return int(result["poured_event_count"])


def duplicates(keys: list[Key]) -> dict[Key, int]:
    return {key: count for key, count in Counter(keys).items() if count > 1}


def test_eight_partitions_on_two_workers_pour_every_event_once_in_order(backfill: Backfill):
    expected = keys_of_events(backfill.store.events)

    run_id, state, received = backfill.run({"rate_limit": RATE_LIMIT})

    assert state == "success"
    assert set(received) == set(expected)
    assert duplicates(received) == {}
    assert len(received) == len(expected)
    assert out_of_order(received) == {}
    pours = backfill.pour_tis(run_id)
    assert [ti["map_index"] for ti in pours] == list(range(PARTITIONS))
    assert {ti["hostname"] for ti in pours} == set(backfill.deployment.workers)
    combined = backfill.deployment.db.xcom(DAG_ID, run_id, COMBINE)
    assert combined["poured_event_count"] == len(expected) == unpartitioned_count(backfill.store)


def test_a_worker_killed_mid_pour_loses_nothing_and_its_partitions_resume(backfill: Backfill):
    """One worker is SIGKILLed (with its pool and task processes) while it pours; it is started
    again 5 s later, as a supervisor would. The scheduler fails its partitions' tries once
    their heartbeats stop; their retries resume from the tries' checkpoints."""
    deployment = backfill.deployment
    victim = deployment.workers[0]
    expected = keys_of_events(backfill.store.events)
    killed: list[int] = []

    def kill_a_worker_mid_pour(run_id: str, consumer: QueueConsumer) -> None:
        def pouring_on_victim() -> list[int] | None:
            running = [
                ti["map_index"]
                for ti in backfill.pour_tis(run_id)
                if ti["state"] == "running" and ti["hostname"] == victim
            ]
            return running if running and len(consumer.bodies) >= 100 else None

        killed.extend(wait_for("the pour to be under way on both workers", pouring_on_victim, 90))
        deployment.kill_component(victim)
        print(f"killed {victim} pouring partitions {killed} after {len(consumer.bodies)} messages")
        time.sleep(5)
        deployment.relaunch_worker(victim)

    started = time.monotonic()
    run_id, state, received = backfill.run({"rate_limit": RATE_LIMIT}, kill_a_worker_mid_pour)

    assert state == "success"
    assert set(received) == set(expected)
    assert out_of_order(received) == {}
    failed_tries = [t for t in deployment.db.earlier_tries(DAG_ID, run_id) if t["task_id"] == POUR]
    assert {(t["map_index"], t["hostname"]) for t in failed_tries} >= {(i, victim) for i in killed}
    retried = {ti["map_index"]: ti["try_number"] for ti in backfill.pour_tis(run_id)}
    assert all(retried[i] >= 2 for i in killed)
    repeated = len(received) - len(set(received))
    bound = len(failed_tries) * MAX_IN_FLIGHT * SQS_BATCH_SIZE
    print(
        f"run took {time.monotonic() - started:.0f} s; {len(failed_tries)} failed pour tries; "
        f"{repeated} messages received twice (bound {bound})"
    )
    assert repeated <= bound
    combined = deployment.db.xcom(DAG_ID, run_id, COMBINE)
    assert combined["poured_event_count"] == len(expected)
