"""The test infrastructure itself: real PostgreSQL and a real moto server answer."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from airflow_provider_castore_dam.demo.embedded_postgres import EmbeddedPostgres
from tests.infra import MotoServer, PostgresServer, skip_unless_ci

# Names of databases made by the postgres_database fixture, checked by a later test.
_function_databases: list[str] = []


def test_postgres_database_roundtrip(postgres_database: str) -> None:
    with psycopg.connect(postgres_database) as conn:
        name = conn.execute("SELECT current_database()").fetchone()[0]
        assert name == conninfo_to_dict(postgres_database)["dbname"]
        conn.execute("CREATE TABLE asset (id int PRIMARY KEY, title text NOT NULL)")
        conn.cursor().executemany("INSERT INTO asset VALUES (%s, %s)", [(1, "alpha"), (2, "béta")])
        conn.commit()
    with psycopg.connect(postgres_database) as conn:  # a new connection sees committed rows
        rows = conn.execute("SELECT id, title FROM asset ORDER BY id").fetchall()
    assert rows == [(1, "alpha"), (2, "béta")]
    _function_databases.append(name)


def test_postgres_database_dropped_after_test(postgres_server: PostgresServer) -> None:
    if not _function_databases:
        skip_unless_ci("test_postgres_database_roundtrip did not run first")
    for name in _function_databases:
        assert not postgres_server.database_exists(name)


def test_temporary_database_dropped_even_while_connected(postgres_server: PostgresServer) -> None:
    with postgres_server.temporary_database() as dsn:
        name = conninfo_to_dict(dsn)["dbname"]
        held = psycopg.connect(dsn)  # left open on purpose: the drop must force it
        held.execute("SELECT 1")
        assert postgres_server.database_exists(name)
    assert not postgres_server.database_exists(name)
    assert held.closed or held.broken or _connection_is_dead(held)
    held.close()


def _connection_is_dead(conn: psycopg.Connection) -> bool:
    try:
        conn.execute("SELECT 1")
    except psycopg.OperationalError:
        return True
    return False


def test_session_database_is_separate(
    postgres_session_database: str, postgres_database: str
) -> None:
    session_db = conninfo_to_dict(postgres_session_database)["dbname"]
    assert session_db != conninfo_to_dict(postgres_database)["dbname"]
    with psycopg.connect(postgres_session_database) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS shared (k text PRIMARY KEY)")
        conn.execute("INSERT INTO shared VALUES ('x') ON CONFLICT DO NOTHING")
        assert conn.execute("SELECT k FROM shared").fetchall() == [("x",)]


def test_postgres_server_origin(postgres_server: PostgresServer) -> None:
    assert postgres_server.origin in {"env", "local", "embedded"}
    forced = os.environ.get("CASTORE_DAM_TEST_PG", "auto")
    if forced != "auto":
        assert postgres_server.origin == forced
    with postgres_server.connect() as conn:
        assert conn.execute("SELECT 1 + 1").fetchone() == (2,)


@pytest.fixture
def embedded_server(postgres_server: PostgresServer) -> Iterator[PostgresServer]:
    """The session's server when it is the embedded one, else a private embedded server."""
    if postgres_server.origin == "embedded":
        yield postgres_server
    else:
        with EmbeddedPostgres() as embedded:
            yield PostgresServer(
                embedded.host, embedded.port, embedded.user, embedded.password, "embedded"
            )


def test_embedded_postgres(embedded_server: PostgresServer) -> None:
    assert embedded_server.origin == "embedded"
    assert embedded_server.host == "127.0.0.1" and embedded_server.password
    with embedded_server.connect() as conn:
        assert conn.info.server_version >= 180000
        assert conn.execute("SELECT current_setting('listen_addresses')").fetchone() == (
            "127.0.0.1",
        )
        assert conn.execute("SELECT current_user").fetchone() == ("postgres",)
    with pytest.raises(psycopg.OperationalError):  # password auth is really enforced
        psycopg.connect(embedded_server.dsn().replace(embedded_server.password, "wrong"))


def test_dynamodb_put_get(moto_reset: MotoServer) -> None:
    ddb = moto_reset.client("dynamodb")
    ddb.create_table(
        TableName="assets",
        KeySchema=[{"AttributeName": "asset_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "asset_id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    ddb.put_item(
        TableName="assets",
        Item={"asset_id": {"S": "a-1"}, "title": {"S": "Sunset"}, "size": {"N": "42"}},
    )
    item = ddb.get_item(TableName="assets", Key={"asset_id": {"S": "a-1"}})["Item"]
    assert item == {"asset_id": {"S": "a-1"}, "title": {"S": "Sunset"}, "size": {"N": "42"}}
    assert moto_reset.endpoint_url.startswith("http://127.0.0.1:")


def test_sqs_send_receive(moto_reset: MotoServer) -> None:
    sqs = moto_reset.client("sqs")
    url = sqs.create_queue(QueueName="castore-events")["QueueUrl"]
    body = f"asset-ingested {uuid.uuid4()}"
    sqs.send_message(
        QueueUrl=url,
        MessageBody=body,
        MessageAttributes={"kind": {"DataType": "String", "StringValue": "ingest"}},
    )
    messages = sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], WaitTimeSeconds=1
    )["Messages"]
    assert [m["Body"] for m in messages] == [body]
    assert messages[0]["MessageAttributes"]["kind"]["StringValue"] == "ingest"


def test_moto_reset_forgets_state(moto_server: MotoServer) -> None:
    s3 = moto_server.client("s3")
    s3.create_bucket(Bucket="castore-reset-probe")
    assert "castore-reset-probe" in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    moto_server.reset()
    assert s3.list_buckets()["Buckets"] == []


def test_moto_env_for_code_that_builds_its_own_clients(moto_env: MotoServer) -> None:
    import boto3

    assert os.environ["AWS_ENDPOINT_URL"] == moto_env.endpoint_url
    s3 = boto3.client("s3")  # picks endpoint and fake credentials up from the environment
    s3.create_bucket(Bucket="castore-env-probe")
    assert "castore-env-probe" in [
        b["Name"] for b in moto_env.client("s3").list_buckets()["Buckets"]
    ]
