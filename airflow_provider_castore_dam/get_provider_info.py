"""What Airflow's providers manager reads about this provider (entry point
``apache_airflow_provider``). Connection forms are declared here, so the Airflow 3 UI shows
them without importing the hooks."""

from __future__ import annotations

from typing import Any

_OPTIONAL_STRING = ["string", "null"]
_PACKAGE = "airflow_provider_castore_dam"


def _field(label: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"label": label, "description": description, "schema": schema}


_AWS_FIELDS = {
    "aws_conn_id": _field(
        "AWS connection id",
        "Airflow AWS connection holding keys or a role to assume; empty: boto3's default chain.",
        {"type": _OPTIONAL_STRING, "default": "aws_default"},
    ),
    "region_name": _field(
        "Region",
        "AWS region, e.g. eu-west-1; overrides the AWS connection's.",
        {"type": _OPTIONAL_STRING},
    ),
    "endpoint_url": _field(
        "Endpoint URL",
        "Only for local emulators, e.g. http://127.0.0.1:5000; overrides the AWS connection's.",
        {"type": _OPTIONAL_STRING},
    ),
    "aws_account_id": _field(
        "AWS account id",
        "Only for lineage: the account in the OpenLineage names of tables and buses.",
        {"type": _OPTIONAL_STRING},
    ),
}

_EVENT_STORE = {
    "connection-type": "castore_event_store",
    "hook-class-name": f"{_PACKAGE}.hooks.event_store.CastoreEventStoreHook",
    "hook-name": "Castore Event Store",
    "ui-field-behaviour": {
        "hidden-fields": ["extra"],
        "relabeling": {"schema": "Database (postgres)", "host": "Host (postgres)"},
        "placeholders": {"port": "5432", "login": "postgres"},
    },
    "conn-fields": {
        "kind": _field(
            "Kind",
            "Where the events live, as written by Castore's storage adapters.",
            {
                "type": "string",
                "enum": ["postgres", "dynamodb-single-table", "dynamodb-legacy", "in-memory-demo"],
                "default": "postgres",
            },
        ),
        "table": _field(
            "Table",
            "PostgreSQL: table or schema.table (default event). DynamoDB: table name; for the "
            "legacy layout, {event_store_id} is replaced by the event store id.",
            {"type": _OPTIONAL_STRING},
        ),
        "sslmode": _field(
            "SSL mode (postgres)",
            "libpq sslmode, e.g. require or verify-full.",
            {"type": _OPTIONAL_STRING},
        ),
        "dynamodb_read": _field(
            "Time-ordered read (dynamodb)",
            "scan: a parallel scan of the whole table, sorted (fastest, fewest read units). "
            "query: one query per aggregate, for a store that is a small share of a table "
            "shared by many event stores.",
            {"type": "string", "enum": ["scan", "query"], "default": "scan"},
        ),
        **_AWS_FIELDS,
    },
}

_MESSAGE_CHANNEL = {
    "connection-type": "castore_message_channel",
    "hook-class-name": f"{_PACKAGE}.hooks.message_channel.CastoreMessageChannelHook",
    "hook-name": "Castore Message Channel",
    "ui-field-behaviour": {
        "hidden-fields": ["host", "port", "login", "password", "schema", "extra"],
        "relabeling": {},
        "placeholders": {},
    },
    "conn-fields": {
        "kind": _field(
            "Kind",
            "Where Castore consumers listen.",
            {"type": "string", "enum": ["sqs", "eventbridge", "in-memory"], "default": "sqs"},
        ),
        "queue_url": _field(
            "Queue URL (sqs)", "A .fifo URL means a FIFO queue.", {"type": _OPTIONAL_STRING}
        ),
        "event_bus_name": _field("Event bus name (eventbridge)", "", {"type": _OPTIONAL_STRING}),
        "fifo_deduplication": _field(
            "FIFO deduplication (sqs)",
            "castore: Castore's deduplication id; run: one scoped to the pour, so a replay "
            "within 5 minutes of the original message is not dropped by SQS.",
            {"type": "string", "enum": ["castore", "run"], "default": "castore"},
        ),
        "max_in_flight": _field(
            "Publish calls at once (sqs, eventbridge)",
            "Up to this many batches in flight together, never two of one aggregate; 1 "
            "publishes one batch after another. A crash repeats at most this many batches.",
            {"type": ["integer", "null"], "default": 16, "minimum": 1, "maximum": 256},
        ),
        "s3_offload_bucket": _field(
            "S3 offload bucket",
            "Messages over 256 KiB are stored here and published as a presigned URL, as "
            "Castore's -s3 adapters do. Empty: such messages fail the pour before publishing.",
            {"type": _OPTIONAL_STRING},
        ),
        "s3_offload_prefix": _field("S3 offload key prefix", "", {"type": _OPTIONAL_STRING}),
        "s3_url_expiry_seconds": _field(
            "Presigned URL expiry (s)",
            "",
            {"type": ["integer", "null"], "default": 900, "minimum": 1},
        ),
        **_AWS_FIELDS,
    },
}


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "airflow-provider-castore-dam",
        "name": "Castore dam",
        "description": "Pour past events of Castore event stores (PostgreSQL, DynamoDB) into "
        "Castore message channels (SQS, EventBridge), as Castore's dam does.",
        "integrations": [
            {
                "integration-name": "Castore",
                "external-doc-url": "https://github.com/castore-dev/castore",
                "tags": ["software"],
            }
        ],
        "operators": [
            {
                "integration-name": "Castore",
                "python-modules": [
                    f"{_PACKAGE}.operators.pour",
                    f"{_PACKAGE}.operators.integrity",
                    f"{_PACKAGE}.operators.reconcile",
                    f"{_PACKAGE}.operators.migrate",
                ],
            }
        ],
        "sensors": [
            {
                "integration-name": "Castore",
                "python-modules": [f"{_PACKAGE}.sensors.drain"],
            }
        ],
        "hooks": [
            {
                "integration-name": "Castore",
                "python-modules": [
                    f"{_PACKAGE}.hooks.event_store",
                    f"{_PACKAGE}.hooks.message_channel",
                ],
            }
        ],
        "triggers": [
            {
                "integration-name": "Castore",
                "python-modules": [f"{_PACKAGE}.triggers.drain"],
            }
        ],
        "connection-types": [_EVENT_STORE, _MESSAGE_CHANNEL],
    }
