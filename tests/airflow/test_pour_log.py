"""The task log of a pour: a progress line every interval (percent and time left when the
total is counted first), each message only when asked, on any channel, and a summary table."""

from __future__ import annotations

import pytest

from airflow_provider_castore_dam.dam import ProgressReport
from airflow_provider_castore_dam.operators import PourEventStoreCollectionEventsOperator
from airflow_provider_castore_dam.operators.pour_log import duration, progress_line
from tests.airflow.connections import (
    event_store_connection,
    message_channel_connection,
    set_connection,
)
from tests.channels.aws import receive_all


@pytest.fixture
def sqs_channel(monkeypatch, aws):
    set_connection(
        monkeypatch, "castore_event_store_default", **event_store_connection("in-memory-demo")
    )
    sqs = aws.client("sqs")
    url = sqs.create_queue(QueueName="logged")["QueueUrl"]
    set_connection(
        monkeypatch,
        "castore_message_channel_default",
        **message_channel_connection("sqs", queue_url=url),
    )
    return sqs, url


def run(capsys, **arguments) -> str:
    operator = PourEventStoreCollectionEventsOperator(
        task_id="pour", event_store_ids=["POKEMONS", "TRAINERS"], progress_interval=0, **arguments
    )
    operator.execute({})
    return capsys.readouterr().out


def lines(log: str, fragment: str) -> list[str]:
    return [line.split(" [airflow")[0] for line in log.splitlines() if fragment in line]


def test_messages_are_logged_only_when_asked_on_any_channel(sqs_channel, capsys):
    sqs, url = sqs_channel

    quiet = run(capsys)
    logged = run(capsys, log_messages="true")  # as a template renders it

    assert lines(quiet, "Published (replay=") == []
    published = lines(logged, "Published (replay=True)")
    assert len(published) == 10 == len(receive_all(sqs, url)) // 2
    assert "'eventStoreId': 'POKEMONS'" in published[0]


def test_a_dry_run_is_its_own_count(sqs_channel, capsys):
    log = run(capsys, count_first=True, dry_run=True)

    assert lines(log, "A dry run counted") == []
    progress = lines(log, "Poured ")
    assert progress and all(" of " not in line for line in progress)
    assert lines(log, "Dry run, nothing published")


def test_counting_first_gives_percent_and_time_left_and_a_summary_table(sqs_channel, capsys):
    log = run(capsys, count_first=True, rate_limit=20)

    assert lines(log, "A dry run counted 10 messages to pour")
    progress = lines(log, "Poured ")
    assert progress and all(" of 10 messages (" in line and " left" in line for line in progress)
    assert any("(100.0 %)" in line for line in progress)
    table = log[log.index("Pour done:") :].splitlines()[1:6]
    assert [line.split(" [airflow")[0] for line in table] == [
        "event store | messages poured",
        "------------+----------------",
        "POKEMONS    |               6",
        "TRAINERS    |               4",
        "(all)       |              10",
    ]


@pytest.mark.parametrize(
    ("report", "line"),
    [
        (ProgressReport(50, 10.0), "Poured 50 messages in 10 s, 5.0 messages/s"),
        (
            ProgressReport(1_200, 125.0, total=5_000),
            "Poured 1,200 of 5,000 messages (24.0 %) in 2 min 05 s, 9.6 messages/s, "
            "about 6 min 36 s left",
        ),
        (ProgressReport(0, 0.0, total=10), "Poured 0 messages in 0 s, 0.0 messages/s"),
    ],
)
def test_progress_lines(report, line):
    assert progress_line(report) == line


def test_durations():
    assert [duration(s) for s in (0.4, 59, 61, 3599, 7260)] == [
        "0 s",
        "59 s",
        "1 min 01 s",
        "59 min 59 s",
        "2 h 01 min",
    ]
