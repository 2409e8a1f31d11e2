"""Scheduled migration: every day, pour the aggregate ids of a store into a migration queue.

A migration consumer listens on the queue behind the ``castore_migration_queue`` connection
and rewrites each aggregate it is told about (for instance to a new schema). Pouring every
aggregate id daily lets the consumer catch aggregates created since the last run; the
consumer must be idempotent, since each run replays every aggregate again. The scan stops at
the end of the run's data interval, so a run replays exactly what existed when it was due; set
``initial_event_after`` to ``{{ data_interval_start }}`` too to send only the aggregates created
during the interval.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG

from airflow_provider_castore_dam.operators import PourEventStoreAggregateIdsOperator
from airflow_provider_castore_dam.operators.assets import channel_asset

POURED = channel_asset("castore_migration_queue", "POKEMONS")
"""``castore://castore_migration_queue/POKEMONS``: example_castore_after_migration runs on it."""

with DAG(
    dag_id="example_castore_scheduled_migration",
    schedule="@daily",
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,  # a slow run and the next one never pour at once
    tags=["castore", "example"],
) as dag:
    # [START howto_operator_pour_event_store_aggregate_ids]
    pour_aggregate_ids = PourEventStoreAggregateIdsOperator(
        task_id="pour_pokemon_aggregate_ids",
        event_store_conn_id="castore_event_store_default",
        event_store_id="POKEMONS",
        message_channel_conn_id="castore_migration_queue",
        options={"limit": 500, "initial_event_before": "{{ data_interval_end }}"},
        rate_limit=200,
        max_active_tis_per_dag=1,
        outlets=[POURED],  # its asset events carry the counts
    )
    # [END howto_operator_pour_event_store_aggregate_ids]

if __name__ == "__main__":
    dag.test()
