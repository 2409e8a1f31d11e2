"""A backfill spread over the workers: 8 partitions of a store poured by 8 mapped tasks.

Each mapped task pours the aggregates of one partition (a stable hash of the aggregate id),
in timestamp order, with its own checkpoint: a task whose worker dies is retried, on any
worker, from where it stopped. The combine task's XCom is the whole pour's result; the DAG
then waits until the consumers drained the queue and checks that the partitions together
poured exactly the events of the store (counted by a dry run).

See docs/scale-out.md for choosing the number of partitions and ``max_in_flight``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.sdk import DAG, Param, task

from airflow_provider_castore_dam.channels.dry_run import DryRunMessageChannel
from airflow_provider_castore_dam.dam import pour_event_store_events
from airflow_provider_castore_dam.hooks.event_store import CastoreEventStoreHook
from airflow_provider_castore_dam.operators import PourEventStoreEventsOperator
from airflow_provider_castore_dam.sensors.drain import MessageChannelDrainedSensor

PARTITIONS = 8

with DAG(
    dag_id="example_castore_partitioned_backfill",
    schedule=None,
    max_active_runs=1,
    tags=["castore", "example"],
    params={
        "event_store_id": Param("POKEMONS", type="string", title="Event store id"),
        "queue_url": Param("", type="string", title="Queue URL the consumers read"),
        "rate_limit": Param(
            None, type=["null", "number"], title="Messages per second, per partition"
        ),
    },
) as dag:
    # [START howto_operator_partitioned_pour]
    pour = PourEventStoreEventsOperator.partitioned(
        task_id="pour_events",
        partitions=PARTITIONS,
        event_store_id="{{ params.event_store_id }}",
        rate_limit="{{ params.rate_limit }}",
        retries=2,
        retry_delay=timedelta(seconds=5),
    )
    # [END howto_operator_partitioned_pour]

    drained = MessageChannelDrainedSensor(
        task_id="wait_until_drained",
        queue_urls=["{{ params.queue_url }}"],
        aws_conn_id="aws_default",
        poke_interval=5,
        timeout=3600,
    )

    @task
    def check_count(pour_result: dict[str, Any], event_store_id: str) -> dict[str, int]:
        """Fails unless the partitions poured as many events as the store holds."""
        store = CastoreEventStoreHook().get_event_store(event_store_id)
        try:
            counted = pour_event_store_events(store, DryRunMessageChannel())
        finally:
            close = getattr(store, "close", None)
            if close is not None:
                close()
        poured, stored = int(pour_result["poured_event_count"]), counted["poured_event_count"]
        if poured != stored:
            raise ValueError(f"{poured} events poured by the partitions, {stored} in the store")
        return {"poured": poured, "stored": stored}

    pour >> drained >> check_count(pour.output, "{{ params.event_store_id }}")

if __name__ == "__main__":
    dag.test()
