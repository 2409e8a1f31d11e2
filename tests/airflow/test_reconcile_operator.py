"""ReconcilePourOperator: a pour's XCom against a dry run of its source and against what an SQS
queue on the moto server holds; the report in XCom, a table in the log, failures that name the
messages."""

from __future__ import annotations

import json

import pytest

from airflow_provider_castore_dam.dam.reconcile import ReconciliationError
from airflow_provider_castore_dam.errors import InvalidPourInputError
from airflow_provider_castore_dam.operators import (
    PourEventStoreCollectionEventsOperator,
    PourEventStoreEventsOperator,
    ReconcilePourOperator,
)
from airflow_provider_castore_dam.stores.demo import DEMO_EVENTS
from tests.airflow.connections import (
    event_store_connection,
    message_channel_connection,
    set_connection,
)
from tests.channels.aws import create_queue, receive_all

QUICK = {"idle_seconds": 1.0}


@pytest.fixture
def queue(monkeypatch, aws):
    """An SQS queue on moto behind castore_message_channel_default; the demo stores."""
    set_connection(
        monkeypatch, "castore_event_store_default", **event_store_connection("in-memory-demo")
    )
    sqs = aws.client("sqs")
    queue_url = create_queue(sqs, "replays")
    set_connection(
        monkeypatch,
        "castore_message_channel_default",
        **message_channel_connection("sqs", queue_url=queue_url),
    )
    return sqs, queue_url


def test_a_pour_reconciles_with_its_source_and_its_queue(queue, capsys):
    sqs, queue_url = queue
    pour = PourEventStoreCollectionEventsOperator(
        task_id="pour", event_store_ids=["POKEMONS", "TRAINERS"]
    )
    result = pour.execute({})

    report = ReconcilePourOperator(
        task_id="reconcile", pour_result=result, queue_url=queue_url, **QUICK
    ).execute({})

    assert report["matches"] is True
    for store_id in ("POKEMONS", "TRAINERS"):
        store = report["event_stores"][store_id]
        count = len(DEMO_EVENTS[store_id])
        assert store["source"]["count"] == store["poured"]["count"] == count
        assert store["delivered"]["count"] == count
    assert json.loads(json.dumps(report)) == report
    log = [line.split(" [airflow")[0] for line in capsys.readouterr().out.splitlines()]
    header = "event store | source | poured | delivered | missing | extra | duplicated | matches"
    assert log[log.index(header) + 2 :][:2] == [
        "POKEMONS    |      6 |      6 |         6 |       0 |     0 |          0 | yes",
        "TRAINERS    |      4 |      4 |         4 |       0 |     0 |          0 | yes",
    ]
    assert len(receive_all(sqs, queue_url)) == 10  # read without deleting


def test_a_lost_and_a_repeated_message_fail_the_task_naming_them(queue):
    sqs, queue_url = queue
    result = PourEventStoreEventsOperator(task_id="pour", event_store_id="POKEMONS").execute({})
    messages = receive_all(sqs, queue_url)  # take them all, put back all but one, one twice
    for message in [*messages[1:], messages[3]]:
        sqs.send_message(QueueUrl=queue_url, MessageBody=message["Body"])
    lost, twice = (json.loads(messages[i]["Body"])["event"] for i in (0, 3))

    operator = ReconcilePourOperator(
        task_id="reconcile",
        pour_result=json.dumps(result),  # as a template renders it
        queue_url=queue_url,
        delete_from_queue="true",
        **QUICK,
    )
    with pytest.raises(ReconciliationError) as raised:
        operator.execute({})

    assert str(raised.value).splitlines() == [
        "reconciliation failed:",
        "POKEMONS: source 6, poured 6, delivered 6 (1 missing, 0 extra, 1 duplicated)",
        f"  missing: {lost['aggregateId']!r} v{lost['version']}",
        f"  duplicated: {twice['aggregateId']!r} v{twice['version']}",
    ]
    assert receive_all(sqs, queue_url) == []  # an audit queue: emptied


def test_without_a_queue_the_digest_is_compared_with_the_source(queue):
    result = PourEventStoreEventsOperator(task_id="pour", event_store_id="TRAINERS").execute({})
    as_python_literal = str(result)  # a template without render_template_as_native_obj

    report = ReconcilePourOperator(task_id="reconcile", pour_result=as_python_literal).execute({})

    assert report["matches"] is True
    assert report["event_stores"]["TRAINERS"]["delivered"] is None
    result["digest"]["event_stores"]["TRAINERS"]["count"] = 5
    with pytest.raises(ReconciliationError, match=r"TRAINERS: source 4, poured 5$"):
        ReconcilePourOperator(task_id="reconcile", pour_result=result).execute({})


@pytest.mark.parametrize(
    ("pour_result", "options", "fragment"),
    [
        ("not a result", {}, "pour_result must be a pour's result"),
        ({"poured_event_count": 6}, {}, "with its digest"),
        (None, {"allow_duplicates": "maybe"}, "allow_duplicates must be true or false"),
    ],
)
def test_bad_inputs_fail_before_the_queue_is_read(queue, pour_result, options, fragment):
    sqs, queue_url = queue
    if pour_result is None:
        pour_result = PourEventStoreEventsOperator(
            task_id="pour", event_store_id="TRAINERS"
        ).execute({})
    operator = ReconcilePourOperator(
        task_id="reconcile", pour_result=pour_result, queue_url=queue_url, **options, **QUICK
    )

    with pytest.raises(InvalidPourInputError, match=fragment):
        operator.execute({})
    counts = sqs.get_queue_attributes(
        QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    assert counts["ApproximateNumberOfMessagesNotVisible"] == "0"
