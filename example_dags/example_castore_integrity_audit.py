"""Nightly integrity audit: check every event store of a connection and fail on any defect.

Reads each store of ``castore_event_store_default`` once, as stored, and counts its aggregates
and events per type. The task fails, naming each store and its first defects, when it finds a
version gap, a duplicated version, a first version that is not 1, clock skew, a timestamp that
does not parse, an event with no type, or (DynamoDB) an aggregate missing from the
``initialEvents`` index. The task log ends with a table of the counts per store; the XCom holds
every store's report. See docs/verification.md for what each defect means and how to fix it.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG

from airflow_provider_castore_dam.operators import CheckEventStoreIntegrityOperator

with DAG(
    dag_id="example_castore_integrity_audit",
    schedule="0 3 * * *",
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["castore", "example"],
) as dag:
    # [START howto_operator_check_event_store_integrity]
    CheckEventStoreIntegrityOperator(
        task_id="check_integrity",
        event_store_conn_id="castore_event_store_default",
        event_store_ids=None,  # every store of the connection
        fail_on="any",
        max_reported_defects=100,
    )
    # [END howto_operator_check_event_store_integrity]

if __name__ == "__main__":
    dag.test()
