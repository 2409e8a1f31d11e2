"""Conformance of migrations: stores written by Castore 2.4.2's own adapters, poured into an
event store destination of another kind, then read back by Castore's own adapters
(``read_stores.mjs``): every aggregate and every event of the source, nothing else.

- DynamoDB legacy -> DynamoDB single-table (Castore's v1 -> v2 path);
- PostgreSQL -> DynamoDB single-table;
- DynamoDB single-table -> PostgreSQL.

Expected is the source as this project reads it (its reads are conformance-tested in
test_castore_postgres / test_castore_dynamodb). Castore's PostgreSQL adapter drops falsy
payloads and metadata when it reads (a Castore defect, see docs/stores-postgres.md): where
Castore reads PostgreSQL, the expected events lose them too.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from airflow_provider_castore_dam.dam import pour_event_store_collection_events
from airflow_provider_castore_dam.dam.integrity import check_event_store_integrity
from airflow_provider_castore_dam.stores.dynamodb import (
    DynamoDBEventStore,
    DynamoDBTableScanEventStore,
)
from airflow_provider_castore_dam.stores.dynamodb.destination import (
    DynamoDBEventStoreDestination,
)
from airflow_provider_castore_dam.stores.postgres import PostgresEventStore
from airflow_provider_castore_dam.stores.postgres.destination import (
    PostgresEventStoreDestination,
)
from airflow_provider_castore_dam.stores.postgres.tables import create_castore_table
from tests.interop.node import run_castore
from tests.interop.test_castore_dynamodb import STORE_IDS
from tests.interop.test_castore_dynamodb import castore as castore_dynamodb  # noqa: F401
from tests.interop.test_castore_postgres import castore as castore_postgres  # noqa: F401
from tests.interop.test_castore_postgres import js_falsy, node_url
from tests.stores.dynamodb_tables import create_table, delete_tables


def our_read(store: Any) -> dict[str, Any]:
    """What read_stores.mjs prints for one store, from this project's own reads."""
    listed, token = [], None
    while True:
        page = store.list_aggregate_ids(page_token=token)
        listed += page.aggregate_ids
        token = page.next_page_token
        if token is None:
            break
    return {
        "aggregateIds": [
            {
                "aggregateId": a["aggregate_id"],
                "initialEventTimestamp": a["initial_event_timestamp"],
            }
            for a in listed
        ],
        "events": {a["aggregate_id"]: store.get_events(a["aggregate_id"]) for a in listed},
    }


def castore_read(env: dict[str, str]) -> dict[str, Any]:
    return run_castore("read_stores.mjs", env={"STORE_IDS": ",".join(STORE_IDS), **env})


def comparable(read: dict[str, Any], *, postgres_reader: bool = False) -> str:
    """A store's read as sorted JSON: aggregates in any order of ties, events as read (falsy
    payloads dropped where Castore's PostgreSQL adapter reads)."""
    events = {
        aggregate_id: [
            {
                key: value
                for key, value in event.items()
                if not (postgres_reader and key in ("payload", "metadata") and js_falsy(value))
            }
            for event in aggregate_events
        ]
        for aggregate_id, aggregate_events in read["events"].items()
    }
    listed = sorted(
        read["aggregateIds"], key=lambda a: (a["initialEventTimestamp"], a["aggregateId"])
    )
    return json.dumps(
        {"aggregateIds": listed, "events": events}, sort_keys=True, ensure_ascii=False
    )


def dynamodb_env(moto_server, tables: dict[str, str], backend: str) -> dict[str, str]:
    return {
        "BACKEND": backend,
        "DDB_TABLES": json.dumps(tables),
        "DYNAMODB_ENDPOINT": moto_server.endpoint_url,
        "AWS_REGION": moto_server.region,
        "AWS_ACCESS_KEY_ID": moto_server.access_key_id,
        "AWS_SECRET_ACCESS_KEY": moto_server.secret_access_key,
    }


def test_legacy_dynamodb_to_single_table_read_by_castore(castore_dynamodb, moto_server):  # noqa: F811
    _, stores = castore_dynamodb
    sources = [stores["dynamodb_legacy"][store_id] for store_id in STORE_IDS]
    client = moto_server.client("dynamodb")
    table = create_table(client, f"migrated-{uuid.uuid4().hex[:8]}", "single-table")
    try:
        result = pour_event_store_collection_events(
            sources, DynamoDBEventStoreDestination(table, client=client)
        )

        read = castore_read(
            dynamodb_env(moto_server, dict.fromkeys(STORE_IDS, table), "dynamodb_single_table")
        )
        for store_id, source in zip(STORE_IDS, sources, strict=True):
            assert comparable(read[store_id]) == comparable(our_read(source))
            report = check_event_store_integrity(DynamoDBEventStore(store_id, table, client=client))
            assert report["defect_count"] == 0
        assert result["poured_event_count"] == sum(
            len(events) for s in STORE_IDS for events in read[s]["events"].values()
        )
    finally:
        delete_tables(client, [table])


def test_postgres_to_dynamodb_and_dynamodb_to_postgres_read_by_castore(
    castore_postgres,  # noqa: F811
    castore_dynamodb,  # noqa: F811
    moto_server,
    postgres_server,
):
    output, dsn = castore_postgres
    client = moto_server.client("dynamodb")
    table = create_table(client, f"from-postgres-{uuid.uuid4().hex[:8]}", "single-table")
    try:
        pg_sources = [PostgresEventStore(store_id, dsn) for store_id in STORE_IDS]
        pour_event_store_collection_events(
            pg_sources, DynamoDBEventStoreDestination(table, client=client)
        )
        read = castore_read(
            dynamodb_env(moto_server, dict.fromkeys(STORE_IDS, table), "dynamodb_single_table")
        )
        for store_id, source in zip(STORE_IDS, pg_sources, strict=True):
            assert comparable(read[store_id]) == comparable(our_read(source))
            source.close()
    finally:
        delete_tables(client, [table])

    _, dynamodb_stores = castore_dynamodb
    ddb_sources = [dynamodb_stores["dynamodb_single_table"][store_id] for store_id in STORE_IDS]
    with postgres_server.temporary_database("migrated") as target_dsn:
        create_castore_table(target_dsn, "event")
        with PostgresEventStoreDestination(target_dsn) as destination:
            pour_event_store_collection_events(ddb_sources, destination)
        read = castore_read({"BACKEND": "postgres", "PG_DSN": node_url(target_dsn)})
        for store_id, source in zip(STORE_IDS, ddb_sources, strict=True):
            assert comparable(read[store_id], postgres_reader=True) == comparable(
                our_read(source), postgres_reader=True
            )
    assert output["eventStoreIds"] == STORE_IDS


def test_the_table_scan_store_reads_the_same(castore_dynamodb, moto_server):  # noqa: F811
    """The migration's source may be read by either DynamoDB store: both give the same."""
    _, stores = castore_dynamodb
    client = moto_server.client("dynamodb")
    for store_id in STORE_IDS:
        merge = stores["dynamodb_legacy"][store_id]
        scanning = DynamoDBTableScanEventStore(
            store_id, merge.table_name, layout="legacy", client=client
        )
        assert comparable(our_read(scanning)) == comparable(our_read(merge))
