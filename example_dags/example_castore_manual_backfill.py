"""Manual backfill: replay the events of one or several stores, by hand, from the UI.

Trigger it from the Airflow UI ("Trigger DAG"): the form asks for the event store ids, the
time range, a rate limit and whether to make a dry run. A dry run reads the stores and counts
what would be poured (per store and event type, with first and last timestamps) without
publishing anything: run one first to see what a backfill will send. The events are poured in
timestamp order, merged across the stores, as replays.

A failed try is retried from its last checkpoint (nothing skipped, at most one batch sent
twice). After a manual clear the pour starts over, unless the checkpoint that the failed try
logged is pasted into "Resume from" (see docs/delivery.md).
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import DAG, Param

from airflow_provider_castore_dam.operators import PourEventStoreCollectionEventsOperator

with DAG(
    dag_id="example_castore_manual_backfill",
    schedule=None,
    max_active_runs=1,  # one backfill at a time: see docs/concurrent-pours.md
    render_template_as_native_obj=True,
    tags=["castore", "example"],
    params={
        "event_store_ids": Param(
            ["POKEMONS", "TRAINERS"],
            type="array",
            items={"type": "string"},
            minItems=1,
            title="Event store ids",
            description="The stores whose events are poured, merged in timestamp order.",
        ),
        "from": Param(
            None,
            type=["null", "string"],
            format="date-time",
            title="From",
            description="Earliest event timestamp poured (inclusive). Empty: from the start.",
        ),
        "to": Param(
            None,
            type=["null", "string"],
            format="date-time",
            title="To",
            description="Latest event timestamp poured (inclusive). Empty: up to now.",
        ),
        "rate_limit": Param(
            100,
            type=["null", "number"],
            exclusiveMinimum=0,
            title="Rate limit",
            description="Messages per second. Empty: as fast as the channel accepts.",
        ),
        "dry_run": Param(
            True,
            type="boolean",
            title="Dry run",
            description="Count what would be poured, publish nothing.",
        ),
        "log_messages": Param(
            False,
            type="boolean",
            title="Log each message",
            description="Write every published message to the task log (for small pours).",
        ),
        "count_first": Param(
            False,
            type="boolean",
            title="Count first",
            description="Count the messages with a dry run first: progress lines then show "
            "the percent done and the time left.",
        ),
        "resume_from": Param(
            None,
            type=["null", "object"],
            title="Resume from",
            description="A checkpoint logged by a failed try, to resume it after a clear. "
            "Empty: start from the beginning.",
        ),
    },
) as dag:
    # [START howto_operator_pour_event_store_collection_events]
    backfill = PourEventStoreCollectionEventsOperator(
        task_id="backfill",
        event_store_conn_id="castore_event_store_default",
        message_channel_conn_id="castore_message_channel_default",
        event_store_ids="{{ params.event_store_ids }}",
        filters={"from": "{{ params['from'] }}", "to": "{{ params.to }}"},
        rate_limit="{{ params.rate_limit }}",
        dry_run="{{ params.dry_run }}",
        resume_from="{{ params.resume_from }}",
        log_messages="{{ params.log_messages }}",
        count_first="{{ params.count_first }}",
        retries=3,
        retry_delay=timedelta(minutes=1),
        max_active_tis_per_dag=1,
    )
    # [END howto_operator_pour_event_store_collection_events]

if __name__ == "__main__":
    dag.test()
