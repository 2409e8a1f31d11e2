"""Secrets stay out of task logs and XCom: the PostgreSQL password, the AWS secret key and
session token of the AWS connection, and the presigned URLs of offloaded messages.

The example backfill DAG runs with dag.test() against the real PostgreSQL server and moto, with
connections holding known secrets and a store holding one message over SQS's 256 KiB, so an S3
offload happens. In dag.test() the task log is printed unmasked (a worker's supervisor masks
it when writing the log file, with ``airflow.sdk.log.mask_logs``), so the test checks both what
the task logs (no secret at all) and that Airflow's masker knows every secret (``***`` wherever
one would appear).
"""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
import uuid

import pytest

from airflow_provider_castore_dam.stores.demo import DEMO_EVENTS
from airflow_provider_castore_dam.stores.postgres.tables import copy_events, create_castore_table
from tests.airflow.connections import (
    message_channel_connection,
    postgres_store_connection,
    set_connection,
)
from tests.airflow.test_example_dags import load_dag, receive_all, xcom

BIG_EVENT = {
    "aggregateId": "mewtwo1",
    "version": 1,
    "type": "APPEARED",
    "timestamp": "2021-07-01T00:00:00.000Z",
    "payload": {"sprite": "x" * 270_000},
}


def rendered_fields(dag_run) -> dict:
    from airflow.models.renderedtifields import RenderedTaskInstanceFields
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = (
            session.query(RenderedTaskInstanceFields)
            .filter(
                RenderedTaskInstanceFields.dag_id == dag_run.dag_id,
                RenderedTaskInstanceFields.run_id == dag_run.run_id,
            )
            .all()
        )
        return {row.task_id: row.rendered_fields for row in rows}


def fetch(url: str) -> bytes:
    assert urllib.parse.urlsplit(url).hostname == "127.0.0.1"  # moto, never elsewhere
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=10) as response:
        return bytes(response.read())


@pytest.fixture
def secrets(monkeypatch, postgres_database, aws):
    """Connections with known secrets: a PostgreSQL password (trust auth ignores it), an AWS
    secret key and session token (moto accepts any), an SQS channel offloading to S3."""
    known = {
        "password": f"pg-password-{uuid.uuid4().hex}",
        "secret_key": f"aws-secret-key-{uuid.uuid4().hex}",
        "session_token": f"aws-session-token-{uuid.uuid4().hex}",
    }
    create_castore_table(postgres_database, "event", aggregate_id_type="VARCHAR(64)")
    rows = [(store_id, event) for store_id, events in DEMO_EVENTS.items() for event in events]
    copy_events(postgres_database, sorted([*rows, ("POKEMONS", BIG_EVENT)], key=_timestamp))
    set_connection(
        monkeypatch,
        "castore_event_store_default",
        **postgres_store_connection(postgres_database, password=known["password"]),
    )
    set_connection(
        monkeypatch,
        "aws_default",
        conn_type="aws",
        login="AKIATESTINGSECRETS",
        password=known["secret_key"],
        extra={
            "region_name": aws.region,
            "endpoint_url": aws.endpoint_url,
            "aws_session_token": known["session_token"],
        },
    )
    queue_url = aws.client("sqs").create_queue(QueueName="backfill")["QueueUrl"]
    aws.client("s3").create_bucket(Bucket="offload")
    set_connection(
        monkeypatch,
        "castore_message_channel_default",
        **message_channel_connection("sqs", queue_url=queue_url, s3_offload_bucket="offload"),
    )
    return known, queue_url


def _timestamp(row: tuple) -> str:
    return str(row[1]["timestamp"])


def test_no_secret_in_task_log_or_xcom(airflow_db, aws, secrets, capsys, caplog):
    from airflow.sdk.log import mask_logs

    known, queue_url = secrets

    def masked(text: str) -> str:
        return str(mask_logs(None, "info", {"event": text})["event"])

    assert all(masked(secret) == secret for secret in known.values())  # not known to Airflow yet

    dag_run = load_dag("example_castore_manual_backfill").test(
        run_conf={"event_store_ids": ["POKEMONS", "TRAINERS"], "dry_run": False}
    )
    output = capsys.readouterr()
    # Airflow 3.0's dag.test() prints its supervisor's debug lines, which show each MaskSecret
    # request in clear; they are Airflow's own and never in a task log at the INFO level.
    task_log = "\n".join(
        line
        for line in (output.out + output.err + caplog.text).splitlines()
        if "msg=MaskSecret(" not in line
    )

    assert dag_run.state == "success"
    result = xcom(dag_run, "backfill")
    assert result["poured_event_count"] == 11
    bodies = [json.loads(message["Body"]) for message in receive_all(aws.client("sqs"), queue_url)]
    urls = [body["messageUrl"] for body in bodies if "messageUrl" in body]
    assert len(bodies) == 11 and len(urls) == 1
    url = urls[0]
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]  # SigV4, as Castore signs
    assert query["X-Amz-Security-Token"] == [known["session_token"]]
    assert json.loads(fetch(url))["event"]["aggregateId"] == "mewtwo1"
    assert "offloaded message POKEMONS#mewtwo1#1" in task_log  # the log says where, not how

    leaks = {**known, "presigned URL": url, "URL signature": query["X-Amz-Signature"][0]}
    stored = json.dumps([result, rendered_fields(dag_run)])
    for name, secret in leaks.items():
        assert secret not in task_log, f"the {name} is in the task log"
        assert secret not in stored, f"the {name} is in XCom or the rendered fields"

    # Airflow's masker now knows every connection secret: the log file gets *** wherever one
    # would appear, the session token inside a presigned URL included.
    line = masked(f"password={known['password']} key={known['secret_key']} url={url}")
    assert line == f"password=*** key=*** url={url.replace(known['session_token'], '***')}"
