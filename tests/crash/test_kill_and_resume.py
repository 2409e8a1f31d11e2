"""kill -9 a pour of 20,000 events into SQS (moto server) mid-way, resume it from its
checkpoint file, and check that the queue holds every event, with at most max_in_flight
batches twice."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path

import pytest

from airflow_provider_castore_dam.channels import DEFAULT_MAX_IN_FLIGHT
from airflow_provider_castore_dam.dam.digest import Digest
from airflow_provider_castore_dam.stores.postgres.tables import (
    copy_events,
    create_castore_table,
)

EVENTS = 20_000
STORE = "ORDERS"
REPO = Path(__file__).resolve().parents[2]


def events() -> list[tuple[str, dict]]:
    """20,000 events over 2,000 aggregates in timestamp order, three to a millisecond."""
    rnd = random.Random(7)
    aggregate_ids = [f"{i:08d}-0000-4000-8000-000000000000" for i in range(2_000)]
    versions: Counter[str] = Counter()
    rows = []
    for n in range(EVENTS):
        aggregate_id = aggregate_ids[n] if n < 2_000 else rnd.choice(aggregate_ids)
        versions[aggregate_id] += 1
        millisecond = n // 3
        event = {
            "aggregateId": aggregate_id,
            "version": versions[aggregate_id],
            "type": "ORDER_EVENT",
            "timestamp": f"2024-01-01T00:00:{millisecond // 1000:02d}.{millisecond % 1000:03d}Z",
            "payload": {"n": n},
        }
        rows.append((STORE, event))
    return rows


def pour(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.crash.pour_with_checkpoint_file", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def queued_messages(server) -> list[dict]:
    """Every message moto holds, read in one go from its state dump (receiving 20,000
    messages through the API would take minutes: moto walks the whole queue on each call)."""
    with urllib.request.urlopen(server.endpoint_url + "/moto-api/data.json") as response:
        state = json.load(response)
    return [json.loads(message["body"]) for message in state["sqs"].get("Message", [])]


@pytest.fixture(scope="module")
def sqs_server():
    """moto's server without its quadratic SQS send (see tests/benchmarks/moto_server.py):
    stock moto rebuilds every queue attribute, walking all messages, on each send."""
    from tests.benchmarks import moto_server

    with moto_server.start() as server:
        yield server


@pytest.mark.slow  # ~1 minute: 20,000 messages sent to moto
def test_kill_9_mid_pour_then_resume_loses_nothing(postgres_database, sqs_server, tmp_path):
    rows = events()
    create_castore_table(postgres_database, "event")
    copy_events(postgres_database, rows, "event")
    sqs = sqs_server.client("sqs")
    queue_url = sqs.create_queue(QueueName="crash-test", Attributes={"VisibilityTimeout": "600"})[
        "QueueUrl"
    ]
    checkpoint = tmp_path / "checkpoint.json"
    args = [postgres_database, "event", STORE, queue_url, str(checkpoint)]
    env = {**os.environ, **sqs_server.env()}

    first = pour(args, env)
    deadline = time.monotonic() + 120
    poured = 0
    while poured < EVENTS // 4 and time.monotonic() < deadline and first.poll() is None:
        time.sleep(0.05)
        if checkpoint.exists():
            poured = json.loads(checkpoint.read_text())["result"]["poured_event_count"]
    assert first.poll() is None, first.communicate()
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert first.returncode == -signal.SIGKILL
    killed_at = json.loads(checkpoint.read_text())["result"]["poured_event_count"]
    assert EVENTS // 4 <= killed_at < EVENTS

    second = pour(args, env)
    out, err = second.communicate(timeout=300)
    assert second.returncode == 0, err.decode()[-3000:]
    result = json.loads(out)
    assert result["poured_event_count"] == EVENTS

    received = queued_messages(sqs_server)
    keys = Counter((m["event"]["aggregateId"], m["event"]["version"]) for m in received)
    expected = {(e["aggregateId"], e["version"]) for _, e in rows}
    assert set(keys) == expected
    duplicates = sum(count - 1 for count in keys.values())
    bound = DEFAULT_MAX_IN_FLIGHT * 10  # docs/delivery.md: at most max_in_flight calls of 10
    assert duplicates <= bound, f"{duplicates} duplicates, more than max_in_flight batches"
    # The resumed pour's digest counts each message once, as an uninterrupted pour's would.
    each_once = Digest()
    for aggregate_id, version in keys:
        each_once.add_key((STORE, aggregate_id, version))
    assert result["digest"]["event_stores"] == each_once.as_json()
    assert all(m["eventStoreId"] == STORE for m in received)
