"""Move event stores from Castore's legacy DynamoDB layout (one table per store) to the
single-table layout, then prove the move.

Castore's v1-to-v2 guide deprecates ``DynamoDBEventStorageAdapter`` (legacy, to be removed)
and moves data with a hand-written pour whose worker pushes each event into the new store.
Here one task copies the stores, written exactly as Castore's single-table adapter writes
them, with checkpoints (a retried task resumes, taking its own earlier writes as written),
then:

- the integrity check reads the destination as stored (no version gap, every aggregate in
  the ``initialEvents`` index...);
- reconciliation compares the migration's digest with a dry run of the same pour of the
  source;
- the count check compares, per store, the events migrated with the events the destination
  holds (a destination that held other events of these stores before fails it on purpose).

Connections: ``castore_legacy_tables`` (kind ``dynamodb-legacy``, ``table`` with
``{event_store_id}`` in it) and ``castore_single_table`` (kind ``dynamodb-single-table``).
See docs/migrations.md.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.sdk import DAG, Param, task

from airflow_provider_castore_dam.operators import (
    CheckEventStoreIntegrityOperator,
    MigrateEventStoreOperator,
    ReconcilePourOperator,
)
from airflow_provider_castore_dam.operators.log_table import text_table

with DAG(
    dag_id="example_castore_store_migration",
    schedule=None,
    max_active_runs=1,
    tags=["castore", "example"],
    params={
        "event_store_ids": Param(["POKEMONS", "TRAINERS"], type="array", title="Event stores"),
        "conflict": Param(
            "fail", enum=["fail", "skip_identical", "overwrite"], title="Events already there"
        ),
    },
) as dag:
    # [START howto_operator_migrate_event_store]
    migrate = MigrateEventStoreOperator(
        task_id="migrate",
        event_store_conn_id="castore_legacy_tables",
        destination_conn_id="castore_single_table",
        event_store_ids="{{ params.event_store_ids }}",
        conflict="{{ params.conflict }}",
        retries=2,
        retry_delay=timedelta(seconds=30),
    )
    # [END howto_operator_migrate_event_store]

    check_destination = CheckEventStoreIntegrityOperator(
        task_id="check_destination",
        event_store_conn_id="castore_single_table",
        event_store_ids="{{ params.event_store_ids }}",
        fail_on="any",
    )
    reconcile = ReconcilePourOperator(
        task_id="reconcile",
        pour_result=migrate.output,
        event_store_conn_id="castore_legacy_tables",
    )

    @task
    def compare_counts(migration: dict[str, Any], integrity: dict[str, Any]) -> dict[str, Any]:
        """Fails unless each store's destination holds exactly the events migrated."""
        migrated = migration["digest"]["event_stores"]
        rows = [
            [store_id, migrated[store_id]["count"], report["event_count"]]
            for store_id, report in integrity["stores"].items()
        ]
        print(text_table(["event store", "migrated", "in the destination"], rows))
        wrong = [row for row in rows if row[1] != row[2]]
        if wrong:
            raise ValueError(f"migrated and destination counts differ: {wrong}")
        return {row[0]: row[1] for row in rows}

    counts = compare_counts(migrate.output, check_destination.output)
    migrate >> [check_destination, reconcile]

if __name__ == "__main__":
    dag.test()
