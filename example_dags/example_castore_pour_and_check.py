"""Chained: pour a store's events, wait until the consumers drained the queue, then check.

A projection consumer listens on the SQS queue of the ``castore_message_channel_default``
connection and writes one row per event it handles into a projection table of the
PostgreSQL database behind ``castore_event_store_default``. This DAG rebuilds the
projection: it pours every event of the store, waits (deferred, in the triggerer) until the
queue holds no visible, in-flight or delayed message for several readings in a row, then
compares the number of events poured (the pour's XCom) with the rows the consumer reports.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import DAG, Param, task

from airflow_provider_castore_dam.hooks.event_store import CastoreEventStoreHook
from airflow_provider_castore_dam.operators import PourEventStoreEventsOperator
from airflow_provider_castore_dam.sensors.drain import MessageChannelDrainedSensor

with DAG(
    dag_id="example_castore_pour_and_check",
    schedule=None,
    max_active_runs=1,  # a second run would pour into the queue this one waits to drain
    tags=["castore", "example"],
    params={
        "event_store_id": Param("POKEMONS", type="string", title="Event store id"),
        "queue_url": Param("", type="string", title="Queue URL the projection consumer reads"),
        "projection_table": Param("projection_event", type="string", title="Projection table"),
    },
) as dag:
    # [START howto_operator_pour_event_store_events]
    pour = PourEventStoreEventsOperator(
        task_id="pour_events",
        event_store_id="{{ params.event_store_id }}",
        rate_limit=500,
        max_active_tis_per_dag=1,
    )
    # [END howto_operator_pour_event_store_events]

    # [START howto_sensor_message_channel_drained]
    drained = MessageChannelDrainedSensor(
        task_id="wait_until_drained",
        queue_urls=["{{ params.queue_url }}"],
        aws_conn_id="aws_default",
        poke_interval=5,
        timeout=3600,
    )
    # [END howto_sensor_message_channel_drained]

    @task
    def check_projection(pour_result: dict[str, Any], projection_table: str) -> dict[str, int]:
        """Fails unless the consumer wrote one projection row per poured event."""
        import psycopg
        from psycopg import sql

        conninfo = CastoreEventStoreHook().postgres_conninfo()
        with psycopg.connect(conninfo) as connection:
            query = sql.SQL("SELECT count(*) FROM {}").format(
                sql.Identifier(*projection_table.split("."))
            )
            row = connection.execute(query).fetchone()
        projected = int(row[0]) if row else 0
        poured = int(pour_result["poured_event_count"])
        if projected != poured:
            raise ValueError(f"{poured} events poured but the projection has {projected} rows")
        return {"poured": poured, "projected": projected}

    pour >> drained >> check_projection(pour.output, "{{ params.projection_table }}")

if __name__ == "__main__":
    dag.test()
