"""The drain sensor and its trigger against the moto server (real SQS and EventBridge APIs).

Triggers run with ``asyncio.run`` (no event-loop plugin needed); the trigger reaches moto
through the amazon provider's AWS connection ``aws_default``, set as ``AIRFLOW_CONN_*`` JSON.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import (
    AirflowException,
    AirflowSensorTimeout,
    AirflowSkipException,
    TaskDeferred,
)

from airflow_provider_castore_dam.errors import CastoreDamError
from airflow_provider_castore_dam.sensors import MessageChannelDrainedSensor
from airflow_provider_castore_dam.sensors import drain as sensor_module
from airflow_provider_castore_dam.sensors.drain import DEFER_TIMEOUT_MARGIN
from airflow_provider_castore_dam.triggers import drain as drain_module
from airflow_provider_castore_dam.triggers.drain import MessageChannelDrainedTrigger
from airflow_provider_castore_dam.triggers.queue_counts import (
    DrainWatch,
    InvalidDrainInputError,
    SqsArn,
    describe_counts,
)
from tests.airflow.connections import set_connection

POLL = 0.05
ZERO = {"visible": 0, "in_flight": 0, "delayed": 0}


@pytest.fixture
def aws(moto_reset, monkeypatch):
    """The moto server, empty, with the ``aws_default`` connection pointing at it."""
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    set_connection(
        monkeypatch,
        "aws_default",
        conn_type="aws",
        login=moto_reset.access_key_id,
        password=moto_reset.secret_access_key,
        extra={"region_name": moto_reset.region, "endpoint_url": moto_reset.endpoint_url},
    )
    return moto_reset


@pytest.fixture
def sqs(aws):
    return aws.client("sqs")


def make_queue(sqs, name: str, messages: int = 0) -> str:
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    for i in range(messages):
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"n": i}))
    return url


def drain_queue(sqs, url: str) -> int:
    """Receive and delete until a receive comes back empty; the number of messages deleted."""
    deleted = 0
    while True:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        if not messages:
            return deleted
        for message in messages:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            deleted += 1


class Consumer(threading.Thread):
    """Drains a queue in a thread once ``ready()`` (polled) is true, or after ``start_after``
    seconds; ``finished_at`` = monotonic time when done."""

    def __init__(
        self, sqs, url: str, start_after: float = 0, ready: Callable[[], bool] | None = None
    ) -> None:
        super().__init__(daemon=True)
        self.sqs, self.url, self.start_after, self.ready = sqs, url, start_after, ready
        self.deleted = 0
        self.finished_at: float | None = None

    def run(self) -> None:
        time.sleep(self.start_after)
        give_up = time.monotonic() + 20
        while self.ready is not None and not self.ready() and time.monotonic() < give_up:
            time.sleep(POLL / 5)
        self.deleted = drain_queue(self.sqs, self.url)
        self.finished_at = time.monotonic()


def run_trigger(trigger: MessageChannelDrainedTrigger, timeout: float = 20) -> dict[str, Any]:
    async def first_event() -> dict[str, Any]:
        event = await asyncio.wait_for(anext(trigger.run()), timeout)
        return event.payload

    return asyncio.run(first_event())


def trigger_for(*urls: str, **kwargs: Any) -> MessageChannelDrainedTrigger:
    kwargs.setdefault("poll_interval", POLL)
    return MessageChannelDrainedTrigger(queue_urls=list(urls), **kwargs)


# --------------------------------------------------------------------------- trigger


@pytest.fixture
def readings(monkeypatch) -> list[dict[str, Any]]:
    """Every reading the trigger records, in order."""
    seen: list[dict[str, Any]] = []

    class RecordingWatch(DrainWatch):
        def record(self, counts):
            seen.append(counts)
            return super().record(counts)

    monkeypatch.setattr(drain_module, "DrainWatch", RecordingWatch)
    monkeypatch.setattr(sensor_module, "DrainWatch", RecordingWatch)
    return seen


def test_trigger_completes_only_after_a_consumer_drained_the_queue(sqs, readings):
    url = make_queue(sqs, "migration", messages=25)
    trigger = trigger_for(url, stable_readings=3)

    async def scenario() -> tuple[dict[str, Any], float, Consumer]:
        task = asyncio.ensure_future(anext(trigger.run()))
        give_up = time.monotonic() + 20
        while len(readings) < 5 and time.monotonic() < give_up:  # seen the messages a while
            await asyncio.sleep(POLL / 5)
        assert not task.done(), "completed while the queue still held messages"
        assert all(r[url]["visible"] == 25 for r in readings)
        consumer = Consumer(sqs, url)
        consumer.start()
        event = await asyncio.wait_for(task, 20)
        return event.payload, time.monotonic(), consumer

    payload, completed_at, consumer = asyncio.run(scenario())
    consumer.join(5)
    assert consumer.deleted == 25
    assert consumer.finished_at is not None and consumer.finished_at <= completed_at
    assert payload["status"] == "drained"
    assert payload["counts"] == {url: ZERO}
    assert payload["zero_readings"] == 3
    assert payload["readings"] == len(readings) >= 5 + 3
    assert readings[-3:] == [{url: ZERO}] * 3
    assert payload["queue_urls"] == [url]


def test_in_flight_messages_keep_the_trigger_waiting(sqs):
    url = make_queue(sqs, "in-flight", messages=2)
    received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=600)
    assert len(received["Messages"]) == 2  # received, not deleted: in flight

    payload = run_trigger(trigger_for(url, deadline=time.time() + 0.5))

    assert payload["status"] == "timeout"
    assert payload["counts"] == {url: {"visible": 0, "in_flight": 2, "delayed": 0}}
    assert payload["zero_readings"] == 0
    assert payload["readings"] >= 1


def test_delayed_messages_keep_the_trigger_waiting(sqs):
    url = make_queue(sqs, "delayed")
    sqs.send_message(QueueUrl=url, MessageBody="{}", DelaySeconds=600)

    payload = run_trigger(trigger_for(url, deadline=time.time() + 0.5))

    assert payload["status"] == "timeout"
    assert payload["counts"] == {url: {"visible": 0, "in_flight": 0, "delayed": 1}}


def test_a_message_between_zero_readings_restarts_the_stable_window(sqs, monkeypatch):
    """Readings 1-2 are empty; a message arrives before reading 3, is consumed after it."""
    url = make_queue(sqs, "flicker")
    history: list[tuple[int, bool]] = []

    class ObservedWatch(DrainWatch):
        def record(self, counts):
            drained = super().record(counts)
            history.append((self.zero_readings, drained))
            if len(history) == 2:
                sqs.send_message(QueueUrl=url, MessageBody="late")
            if counts[url]["visible"]:
                assert drain_queue(sqs, url) == 1
            return drained

    monkeypatch.setattr(drain_module, "DrainWatch", ObservedWatch)
    payload = run_trigger(trigger_for(url, stable_readings=3))

    assert payload["status"] == "drained"
    assert history[:3] == [(1, False), (2, False), (0, False)]
    assert history[3:] == [(1, False), (2, False), (3, True)]
    assert payload["readings"] == 6


def test_several_queues_must_all_be_empty(sqs):
    empty = make_queue(sqs, "empty")
    busy = make_queue(sqs, "busy", messages=1)

    payload = run_trigger(trigger_for(empty, busy, deadline=time.time() + 0.3))

    assert payload["status"] == "timeout"
    assert payload["counts"] == {empty: ZERO, busy: {"visible": 1, "in_flight": 0, "delayed": 0}}
    assert payload["zero_readings"] == 0


def test_a_missing_queue_is_an_error_event(sqs):
    url = make_queue(sqs, "exists")
    sqs.delete_queue(QueueUrl=url)

    payload = run_trigger(trigger_for(url))

    assert payload["status"] == "error"
    assert f"cannot read the message counts of queue {url}" in payload["message"]


def test_a_past_deadline_still_reports_one_reading(sqs):
    url = make_queue(sqs, "late", messages=3)

    payload = run_trigger(trigger_for(url, deadline=time.time() - 1))

    assert payload == {
        "status": "timeout",
        "queue_urls": [url],
        "counts": {url: {"visible": 3, "in_flight": 0, "delayed": 0}},
        "readings": 1,
        "zero_readings": 0,
    }


# --------------------------------------------------------------------------- discovery


def make_bus_with_queue_targets(aws, bus: str, *queue_urls: str) -> None:
    events, sqs = aws.client("events"), aws.client("sqs")
    events.create_event_bus(Name=bus)
    events.put_rule(Name="not-sqs", EventBusName=bus, EventPattern='{"source": ["castore"]}')
    events.put_targets(
        Rule="not-sqs",
        EventBusName=bus,
        Targets=[{"Id": "log", "Arn": "arn:aws:logs:us-east-1:123456789012:log-group:castore"}],
    )
    for i, url in enumerate(queue_urls):
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
        rule = f"to-queue-{i}"
        events.put_rule(Name=rule, EventBusName=bus, EventPattern='{"source": ["castore"]}')
        events.put_targets(
            Rule=rule,
            EventBusName=bus,
            Targets=[{"Id": "queue", "Arn": arn["Attributes"]["QueueArn"]}],
        )


def test_trigger_discovers_the_queues_targeted_by_a_bus(aws, sqs, readings):
    first = make_queue(sqs, "projection-a")
    second = make_queue(sqs, "projection-b", messages=1)
    given = make_queue(sqs, "given")
    make_bus_with_queue_targets(aws, "castore-bus", first, second)

    trigger = MessageChannelDrainedTrigger(
        queue_urls=given, event_bus_name="castore-bus", poll_interval=POLL
    )
    consumer = Consumer(sqs, second, ready=lambda: len(readings) >= 2)
    consumer.start()
    payload = run_trigger(trigger)
    consumer.join(5)

    assert readings[0] == {given: ZERO, first: ZERO, second: {**ZERO, "visible": 1}}
    assert payload["status"] == "drained"
    assert payload["queue_urls"] == [given, first, second]
    assert payload["counts"] == {given: ZERO, first: ZERO, second: ZERO}
    assert consumer.deleted == 1


def test_discovery_without_sqs_targets_is_an_error(aws):
    make_bus_with_queue_targets(aws, "no-queues")

    payload = run_trigger(MessageChannelDrainedTrigger(event_bus_name="no-queues"))

    assert payload["status"] == "error"
    assert "EventBridge bus 'no-queues' has no rule with an SQS queue target" in payload["message"]
    assert "(1 rule(s) found)" in payload["message"]


def test_discovery_of_a_missing_bus_is_an_error(aws):
    payload = run_trigger(MessageChannelDrainedTrigger(event_bus_name="missing-bus"))

    assert payload["status"] == "error"
    assert "EventBridge bus 'missing-bus'" in payload["message"]


def test_a_target_queue_that_no_longer_exists_is_an_error(aws, sqs):
    url = make_queue(sqs, "gone")
    make_bus_with_queue_targets(aws, "stale-bus", url)
    sqs.delete_queue(QueueUrl=url)

    payload = run_trigger(MessageChannelDrainedTrigger(event_bus_name="stale-bus"))

    assert payload["status"] == "error"
    assert "cannot find queue arn:aws:sqs:us-east-1:" in payload["message"]
    assert "target of rule 'to-queue-0' of EventBridge bus 'stale-bus'" in payload["message"]


def test_sqs_arn_parsing():
    arn = SqsArn.parse("arn:aws-cn:sqs:cn-north-1:123456789012:orders.fifo")
    assert arn == SqsArn(
        "arn:aws-cn:sqs:cn-north-1:123456789012:orders.fifo",
        "cn-north-1",
        "123456789012",
        "orders.fifo",
    )
    assert SqsArn.parse("arn:aws:sns:us-east-1:123456789012:topic") is None
    assert SqsArn.parse("not an arn") is None


# --------------------------------------------------------------------------- serialisation


def test_trigger_serialisation_round_trips():
    trigger = MessageChannelDrainedTrigger(
        queue_urls="https://sqs.eu-west-1.amazonaws.com/123456789012/q",
        event_bus_name="bus",
        aws_conn_id="aws_migrations",
        region_name="eu-west-1",
        poll_interval=5,
        stable_readings=4,
        deadline=1_800_000_000.5,
    )
    classpath, kwargs = trigger.serialize()

    assert classpath == "airflow_provider_castore_dam.triggers.drain.MessageChannelDrainedTrigger"
    assert kwargs == {
        "queue_urls": ["https://sqs.eu-west-1.amazonaws.com/123456789012/q"],
        "event_bus_name": "bus",
        "aws_conn_id": "aws_migrations",
        "region_name": "eu-west-1",
        "poll_interval": 5.0,
        "stable_readings": 4,
        "deadline": 1_800_000_000.5,
    }
    module, name = classpath.rsplit(".", 1)
    rebuilt = getattr(importlib.import_module(module), name)(**kwargs)
    assert rebuilt.serialize() == (classpath, kwargs)

    from airflow.serialization.serialized_objects import BaseSerialization

    stored = json.loads(json.dumps(BaseSerialization.serialize(kwargs)))  # as in the DB
    assert BaseSerialization.deserialize(stored) == kwargs
    assert getattr(importlib.import_module(module), name)(**kwargs).serialize()[1] == kwargs


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({}, "give queue_urls, event_bus_name, or both"),
        ({"queue_urls": []}, "give queue_urls, event_bus_name, or both"),
        ({"queue_urls": ["q", ""]}, "queue URLs must be non-empty strings"),
        ({"queue_urls": "q", "stable_readings": 0}, "stable_readings must be 1 or more"),
        ({"queue_urls": "q", "stable_readings": 2.5}, "stable_readings must be an int"),
        ({"queue_urls": "q", "poll_interval": -1}, "poll_interval must be 0 or more"),
    ],
)
def test_trigger_rejects_bad_arguments(kwargs, fragment):
    with pytest.raises(InvalidDrainInputError, match=fragment) as info:
        MessageChannelDrainedTrigger(**kwargs)
    assert isinstance(info.value, CastoreDamError)


# --------------------------------------------------------------------------- sensor: deferrable


def test_sensor_defers_to_the_trigger():
    sensor = MessageChannelDrainedSensor(
        task_id="wait_for_drain",
        queue_urls="https://sqs.us-east-1.amazonaws.com/123456789012/q",
        event_bus_name="bus",
        aws_conn_id="aws_migrations",
        region_name="us-east-1",
        stable_readings=5,
        poke_interval=7,
        timeout=600,
    )
    before = time.time()
    with pytest.raises(TaskDeferred) as info:
        sensor.execute({})

    deferred = info.value
    assert deferred.method_name == "execute_complete"
    assert deferred.timeout == timedelta(seconds=600 + DEFER_TIMEOUT_MARGIN)
    assert isinstance(deferred.trigger, MessageChannelDrainedTrigger)
    classpath, kwargs = deferred.trigger.serialize()
    assert classpath.endswith("triggers.drain.MessageChannelDrainedTrigger")
    deadline = kwargs.pop("deadline")
    assert before + 600 <= deadline <= time.time() + 600
    assert kwargs == {
        "queue_urls": ["https://sqs.us-east-1.amazonaws.com/123456789012/q"],
        "event_bus_name": "bus",
        "aws_conn_id": "aws_migrations",
        "region_name": "us-east-1",
        "poll_interval": 7.0,
        "stable_readings": 5,
    }


def test_sensor_defaults():
    sensor = MessageChannelDrainedSensor(task_id="t", queue_urls=["a", "b"])
    assert sensor.deferrable is True
    assert sensor.stable_readings == 3
    assert sensor.aws_conn_id == "aws_default"
    assert {"queue_urls", "event_bus_name"} <= set(sensor.template_fields)


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({}, "give queue_urls, event_bus_name, or both"),
        ({"queue_urls": "q", "stable_readings": 0}, "stable_readings must be 1 or more"),
        (
            {"queue_urls": "q", "deferrable": False, "mode": "reschedule"},
            "mode='reschedule' would forget",
        ),
    ],
)
def test_sensor_rejects_bad_arguments(kwargs, fragment):
    with pytest.raises(InvalidDrainInputError, match=fragment):
        MessageChannelDrainedSensor(task_id="t", **kwargs)


COUNTS = {"https://q": {"visible": 4, "in_flight": 1, "delayed": 0}}


def test_execute_complete_returns_the_counts_when_drained():
    sensor = MessageChannelDrainedSensor(task_id="t", queue_urls="https://q")
    counts = {"https://q": ZERO}
    event = {"status": "drained", "counts": counts, "readings": 7, "zero_readings": 3}
    assert sensor.execute_complete({}, event) == counts


def test_execute_complete_times_out_with_the_last_counts():
    sensor = MessageChannelDrainedSensor(task_id="t", queue_urls="https://q", timeout=90)
    event = {"status": "timeout", "counts": COUNTS, "readings": 12, "zero_readings": 0}

    with pytest.raises(AirflowSensorTimeout) as info:
        sensor.execute_complete({}, event)

    message = str(info.value)
    assert "did not read empty 3 time(s) in a row within the timeout of 90s" in message
    assert "12 reading(s)" in message
    assert "Last counts: https://q: 4 visible, 1 in flight, 0 delayed" in message


@pytest.mark.parametrize(
    ("event", "fragment"),
    [
        ({"status": "error", "message": "DrainCheckError: boom"}, "DrainCheckError: boom"),
        ({"status": "bogus"}, "unexpected event"),
        (None, "sent no event"),
    ],
)
def test_execute_complete_raises_on_errors(event, fragment):
    sensor = MessageChannelDrainedSensor(task_id="t", queue_urls="https://q")
    with pytest.raises(AirflowException, match=fragment) as info:
        sensor.execute_complete({}, event)
    assert not isinstance(info.value, AirflowSensorTimeout)


# --------------------------------------------------------------------------- sensor: poke mode


def poke_sensor(**kwargs: Any) -> MessageChannelDrainedSensor:
    kwargs.setdefault("poke_interval", POLL)
    kwargs.setdefault("timeout", 20)
    return MessageChannelDrainedSensor(task_id="wait_for_drain", deferrable=False, **kwargs)


def test_poke_mode_waits_for_a_consumer(sqs, readings):
    url = make_queue(sqs, "poked", messages=12)
    sensor = poke_sensor(queue_urls=url, stable_readings=3)
    consumer = Consumer(sqs, url, ready=lambda: len(readings) >= 4)
    consumer.start()

    counts = sensor.execute({})
    returned_at = time.monotonic()
    consumer.join(5)

    assert counts == {url: ZERO}
    assert consumer.deleted == 12
    assert consumer.finished_at is not None and consumer.finished_at <= returned_at
    assert sensor._watch is not None
    assert sensor._watch.zero_readings == 3
    assert sensor._watch.readings == len(readings) >= 4 + 3
    assert all(r[url]["visible"] == 12 for r in readings[:4])


def test_poke_mode_discovers_queues_from_a_bus(aws, sqs):
    url = make_queue(sqs, "bus-target")
    make_bus_with_queue_targets(aws, "poke-bus", url)

    counts = poke_sensor(event_bus_name="poke-bus", stable_readings=2).execute({})

    assert counts == {url: ZERO}


def test_poke_mode_timeout_names_the_last_counts(sqs):
    url = make_queue(sqs, "stuck", messages=2)
    sqs.send_message(QueueUrl=url, MessageBody="later", DelaySeconds=600)
    sensor = poke_sensor(queue_urls=[url], timeout=0.3)

    with pytest.raises(AirflowSensorTimeout) as info:
        sensor.execute({})

    message = str(info.value)
    assert "within the timeout of 0.3s" in message
    assert f"Last counts: {url}: 2 visible, 0 in flight, 1 delayed" in message


def test_poke_mode_soft_fail_skips_on_timeout(sqs):
    url = make_queue(sqs, "soft", messages=1)
    sensor = poke_sensor(queue_urls=url, timeout=0.2, soft_fail=True)

    with pytest.raises(AirflowSkipException) as info:
        sensor.execute({})
    assert isinstance(info.value.__cause__, AirflowSensorTimeout)
    assert "1 visible" in str(info.value.__cause__)


def test_poke_mode_missing_queue_fails_clearly(sqs):
    url = make_queue(sqs, "vanished")
    sqs.delete_queue(QueueUrl=url)

    with pytest.raises(CastoreDamError, match=f"cannot read the message counts of queue {url}"):
        poke_sensor(queue_urls=url).execute({})


def test_describe_counts():
    assert describe_counts(None) == "no reading"
    assert describe_counts({"u": {"visible": 1, "in_flight": 2, "delayed": 3}}) == (
        "u: 1 visible, 2 in flight, 3 delayed"
    )
