"""Runs when the scheduled migration has poured: scheduled on its asset, it checks the counts
the pour's asset event carries against the store.

``example_castore_scheduled_migration`` pours the aggregate ids of POKEMONS with
``outlets=[castore://castore_migration_queue/POKEMONS]``; each successful run adds an asset
event whose extra holds the pour's counts (``poured_count``, and per event store the digest's
count and hash). This DAG reads the latest one and fails unless the pour covered every
aggregate the store lists now (it may list more: aggregates created since).
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import DAG, task

from airflow_provider_castore_dam.operators.assets import channel_asset

POURED = channel_asset("castore_migration_queue", "POKEMONS")

with DAG(
    dag_id="example_castore_after_migration",
    schedule=[POURED],
    tags=["castore", "example"],
) as dag:
    # [START howto_asset_counts]
    @task(inlets=[POURED])
    def check_counts(*, inlet_events: Any = None) -> dict[str, int]:
        """Fails unless the latest pour poured at least the aggregates the store lists."""
        from airflow_provider_castore_dam.channels.dry_run import DryRunMessageChannel
        from airflow_provider_castore_dam.dam import pour_event_store_aggregate_ids
        from airflow_provider_castore_dam.hooks.event_store import CastoreEventStoreHook

        extra = inlet_events[POURED][-1].extra
        if extra["dry_run"]:
            raise ValueError("the latest pour was a dry run")
        store = CastoreEventStoreHook().get_event_store("POKEMONS")
        try:
            listed = pour_event_store_aggregate_ids(store, DryRunMessageChannel())
        finally:
            close = getattr(store, "close", None)
            if close is not None:
                close()
        poured, stored = extra["poured_count"], listed["poured_aggregate_id_count"]
        if poured < stored:
            raise ValueError(f"the pour sent {poured} aggregate ids; the store lists {stored}")
        return {"poured": poured, "listed": stored}

    # [END howto_asset_counts]
    check_counts()

if __name__ == "__main__":
    dag.test()
