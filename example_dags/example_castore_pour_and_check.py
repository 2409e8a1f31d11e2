"""Chained: pour a store's events, wait until the consumers drained the queue, then check.

A projection consumer listens on the SQS queue of the ``castore_message_channel_default``
connection and writes one row per event it handles (its ``messageId``) into a projection
table of the database behind the ``castore_projection_db`` connection (a common.sql
connection: Postgres here). This DAG rebuilds the projection: it pours every event of the
store, waits (deferred, in the triggerer) until the queue holds no visible, in-flight or
delayed message for several readings in a row, then reconciles the pour with its source (a dry
run of the same pour: counts and digests per store, see docs/verification.md) and checks the
projection with the common.sql provider's operators: one row per poured event (the pour's XCom
count, templated into the check), no null and no duplicated message id. The store must not
change between the pour and the reconciliation: for a store still written, give the pour a
``filters.to`` bound.
"""

from __future__ import annotations

from airflow.providers.common.sql.operators.sql import (
    SQLColumnCheckOperator,
    SQLTableCheckOperator,
)
from airflow.sdk import DAG, Param

from airflow_provider_castore_dam.operators import (
    PourEventStoreEventsOperator,
    ReconcilePourOperator,
)
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

    # [START howto_operator_reconcile_pour]
    reconcile = ReconcilePourOperator(
        task_id="reconcile",
        pour_result=pour.output,  # the pour's XCom: its counts and digest
        event_store_conn_id="castore_event_store_default",
    )
    # [END howto_operator_reconcile_pour]

    # [START howto_sql_checks_after_a_pour]
    rows_check = SQLTableCheckOperator(
        task_id="check_projection_rows",
        conn_id="castore_projection_db",
        table="{{ params.projection_table }}",
        checks={
            "one_row_per_poured_event": {
                "check_statement": (
                    "COUNT(*) = {{ ti.xcom_pull(task_ids='pour_events')['poured_event_count'] }}"
                )
            }
        },
    )
    columns_check = SQLColumnCheckOperator(
        task_id="check_projection_columns",
        conn_id="castore_projection_db",
        table="{{ params.projection_table }}",
        column_mapping={
            "message_id": {"null_check": {"equal_to": 0}, "unique_check": {"equal_to": 0}}
        },
    )
    # [END howto_sql_checks_after_a_pour]

    pour >> drained >> reconcile >> [rows_check, columns_check]

if __name__ == "__main__":
    dag.test()
