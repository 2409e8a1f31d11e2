"""The deployment itself, with its own DAG (dags/castore_celery_harness.py): both workers take
tasks and record their names, and a killed worker's tasks are retried on the other one."""

from __future__ import annotations

import time

import pytest

from tests.celery.config import HEARTBEAT_TIMEOUT
from tests.celery.harness import AirflowCelery, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.celery]

DAG_ID = "castore_celery_harness"


def test_both_workers_take_tasks_and_record_their_names(two_workers: AirflowCelery):
    two_workers.wait_for_dag(DAG_ID)

    run_id = two_workers.trigger(DAG_ID, {"sleep": 2})

    assert two_workers.wait_for_run(DAG_ID, run_id) == "success"
    tis = two_workers.db.task_instances(DAG_ID, run_id)
    assert [(ti["map_index"], ti["try_number"]) for ti in tis] == [(i, 1) for i in range(8)]
    assert {ti["hostname"] for ti in tis} == set(two_workers.workers)
    for ti in tis:
        returned = two_workers.db.xcom(DAG_ID, run_id, "nap", ti["map_index"])
        assert returned == {"item": ti["map_index"], "hostname": ti["hostname"], "try": 1}


def test_a_killed_workers_tasks_are_retried_on_the_other_worker(two_workers: AirflowCelery):
    victim, survivor = two_workers.workers
    two_workers.wait_for_dag(DAG_ID)
    run_id = two_workers.trigger(DAG_ID, {"sleep": 8})

    def all_running():
        tis = two_workers.db.task_instances(DAG_ID, run_id)
        return tis if all(ti["state"] == "running" for ti in tis) and len(tis) == 8 else None

    running = wait_for("the eight tasks to run", all_running, 60)
    killed = [ti["map_index"] for ti in running if ti["hostname"] == victim]
    assert killed, running
    two_workers.kill_component(victim)
    killed_at = time.monotonic()

    def failed_over():
        tries = two_workers.db.earlier_tries(DAG_ID, run_id)
        return tries if len(tries) == len(killed) else None

    tries = wait_for("the killed tasks to fail", failed_over, HEARTBEAT_TIMEOUT + 30)
    print(f"killed tasks failed {time.monotonic() - killed_at:.1f} s after the kill")
    assert two_workers.wait_for_run(DAG_ID, run_id) == "success"
    assert [(t["map_index"], t["hostname"], t["try_number"]) for t in tries] == [
        (i, victim, 1) for i in killed
    ]
    tis = two_workers.db.task_instances(DAG_ID, run_id)
    assert [(ti["map_index"], ti["hostname"], ti["try_number"]) for ti in tis] == [
        (i, survivor, 2) if i in killed else (i, survivor, 1) for i in range(8)
    ]
