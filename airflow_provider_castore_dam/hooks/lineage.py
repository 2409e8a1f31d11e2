"""OpenLineage names of what a pour reads and writes, from its connections (no network).

Stores and channels as OpenLineage datasets, ``(namespace, name)``:

- PostgreSQL table: ``postgres://{host}:{port}``, ``{database}.{schema}.{table}`` (the spec's);
- DynamoDB table: ``arn:aws:dynamodb:{region}:{account}``, ``table/{table}``;
- SQS queue: ``arn:aws:sqs:{region}:{account}``, ``{queue name}`` (account and name from the
  queue URL);
- EventBridge bus: ``arn:aws:events:{region}:{account}``, ``event-bus/{bus}``;
- the in-memory demo stores and channel: ``castore-memory``, ``{event store id}`` /
  ``in-memory``.

The spec names no AWS service but Glue (``arn:aws:glue:{region}:{account}``,
``table/{database}/{table}``); DynamoDB, SQS and EventBridge follow its pattern. The account is
the connection's ``aws_account_id`` where the name does not hold it (``unknown`` without it):
asking STS would be a network call.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from airflow_provider_castore_dam.hooks.connection_fields import ConnectionFields, aws_conn_id_of

Dataset = tuple[str, str]
"""(namespace, name)."""

MEMORY = "castore-memory"
UNKNOWN_ACCOUNT = "unknown"


def postgres_dataset(host: str, port: int, database: str, table: str) -> Dataset:
    schema, _, name = table.rpartition(".")
    return f"postgres://{host}:{port}", f"{database}.{schema or 'public'}.{name}"


def dynamodb_dataset(fields: ConnectionFields, table: str) -> Dataset:
    return f"arn:aws:dynamodb:{region(fields)}:{account(fields)}", f"table/{table}"


def sqs_dataset(fields: ConnectionFields, queue_url: str) -> Dataset:
    path = [part for part in urlsplit(queue_url).path.split("/") if part]
    owner = path[0] if len(path) >= 2 else account(fields)
    return f"arn:aws:sqs:{region(fields)}:{owner}", path[-1] if path else queue_url


def eventbridge_dataset(fields: ConnectionFields, bus: str) -> Dataset:
    return f"arn:aws:events:{region(fields)}:{account(fields)}", f"event-bus/{bus}"


def account(fields: ConnectionFields) -> str:
    return str(fields.text("aws_account_id") or UNKNOWN_ACCOUNT)


def region(fields: ConnectionFields) -> str:
    """The connection's region, else its AWS connection's (read, not asked of AWS)."""
    given = fields.text("region_name")
    if given:
        return str(given)
    try:
        from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

        hook = AwsBaseHook(aws_conn_id=aws_conn_id_of(fields), client_type="sts")
        return str(hook.conn_region_name)
    except Exception:  # no amazon provider, no such connection: the name still helps
        return "unknown"
