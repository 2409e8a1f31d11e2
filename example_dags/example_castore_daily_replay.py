"""Daily replay: each run pours the events of its own day, so Airflow's backfill re-pours any
past days by hand.

With no ``from``/``to`` filter, a pour in a DAG with a time-based schedule pours its run's data
interval, ``[data_interval_start, data_interval_end)``: an event at exactly midnight belongs to
the day that starts then, so consecutive runs never pour an event twice and miss none (see
docs/operators.md, *Data intervals*). "Trigger -> Backfill" in the UI (or ``airflow backfill
create``) re-pours a range of past days, one run per day, with no template to write.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG

from airflow_provider_castore_dam.operators import PourEventStoreCollectionEventsOperator

with DAG(
    dag_id="example_castore_daily_replay",
    schedule="@daily",
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["castore", "example"],
) as dag:
    # [START howto_operator_pour_data_interval]
    PourEventStoreCollectionEventsOperator(
        task_id="replay_the_day",
        event_store_conn_id="castore_event_store_default",
        message_channel_conn_id="castore_message_channel_default",
        event_store_ids=["POKEMONS", "TRAINERS"],
        # no filters: the run's data interval; data_interval_filters=False pours everything
    )
    # [END howto_operator_pour_data_interval]

if __name__ == "__main__":
    dag.test()
