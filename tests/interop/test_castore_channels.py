"""Conformance: our SQS and EventBridge channels put on the wire what Castore 2.4.2 puts there.

``publish_messages.mjs`` publishes messages through Castore's own ``SQSMessageQueueAdapter``
(standard and FIFO) and ``EventBridgeMessageBusAdapter``, one at a time (their single-message
path), to one set of queues and a bus; our channels publish the same messages, in batches, to
another set on the same moto server. Each bus has a rule sending its events to a queue. We then
read everything back and compare, message by message: the SQS body (byte for byte), message
attributes and their MD5, FIFO group and deduplication ids; the EventBridge detail-type, source
and detail.

Where we differ on purpose (docs/channels.md): integers beyond 2**53 (JavaScript rounds them;
we keep their digits), so none is used here.
"""

from __future__ import annotations

import json
import uuid
from itertools import groupby
from typing import Any

import pytest

from airflow_provider_castore_dam.channels.eventbridge import EventBridgeMessageChannel
from airflow_provider_castore_dam.channels.sqs import SQSMessageChannel
from tests.channels.aws import attributes, create_bus_to_queue, create_queue, receive_all
from tests.interop.node import require_castore, run_castore

STORES = ["POKEMONS", "TRAINERS", "POKÉDEX"]


def event(aggregate_id: str, version: int, event_type: str = "APPEARED", **extra: Any) -> dict:
    return {
        "aggregateId": aggregate_id,
        "version": version,
        "type": event_type,
        "timestamp": f"2022-01-0{version % 9 + 1}T10:00:00.123Z",
        **extra,
    }


ITEMS: list[dict[str, Any]] = [
    {
        "message": {
            "eventStoreId": "POKEMONS",
            "event": event(
                "pikachu1",
                1,
                payload={
                    "name": "Pikachu ピカチュウ ⚡",
                    "stats": {"hp": 35, "ratio": 0.1, "moves": [["Éclair", 40], {"x": None}]},
                },
                metadata={"by": "Sacha", "tags": []},
            ),
        },
        "replay": True,
    },
    {
        "message": {
            "eventStoreId": "POKEMONS",
            "aggregateId": "pikachu1",
            "initialEventTimestamp": "2022-01-02T10:00:00.123Z",
        },
        "replay": True,
    },
    {
        "message": {"eventStoreId": "TRAINERS", "event": event("sacha", 2, "LEVELLED")},
        "replay": True,
    },
    {
        "message": {
            "eventStoreId": "POKÉDEX",
            "event": event(
                "entrée-🐭",
                3,
                payload={
                    "b": 1,
                    "2": "two",
                    "1": "one",
                    "numbers": [100.0, -0.0, 1e21, 1.5e-7, 123.456, 2**53, -7],
                    "text": 'line\nbreak\t"quoted" back\\slash \u0001 \u2028 \u007f',
                    "lone": "\ud800",
                },
            ),
        },
        "replay": True,
    },
    {
        "message": {
            "eventStoreId": "TRAINERS",
            "event": event("ondine", 1, "JOINED"),
            "aggregate": {"aggregateId": "ondine", "version": 1, "badges": 0},
        },
        "replay": True,
    },
    {
        "message": {
            "eventStoreId": "TRAINERS",
            "aggregateId": "ondine",
            "initialEventTimestamp": "2022-01-02T10:00:00.123Z",
        },
        "replay": False,
    },
    {
        "message": {"eventStoreId": "POKEMONS", "event": event("evoli", 4, "EVOLVED")},
        "replay": False,
    },
    {"message": {"eventStoreId": "POKEMONS", "event": event("zero", 0, "ODD")}, "replay": True},
]


@pytest.fixture(scope="module")
def published(moto_server):
    """Both sides published; every queue read back (node runs once)."""
    require_castore()
    sqs, events = moto_server.client("sqs"), moto_server.client("events")
    run = uuid.uuid4().hex[:8]
    sides: dict[str, dict[str, str]] = {}
    for side in ("castore", "python"):
        bus = f"{side}-bus-{run}"
        sides[side] = {
            "queue": create_queue(sqs, f"{side}-std-{run}"),
            "fifo": create_queue(sqs, f"{side}-fifo-{run}", fifo=True),
            "bus": bus,
            "bus_queue": create_bus_to_queue(events, sqs, bus, f"{side}-bus-q-{run}", STORES),
        }
    castore = sides["castore"]
    output = run_castore(
        "publish_messages.mjs",
        env={
            **moto_server.env(),
            "SQS_ENDPOINT": moto_server.endpoint_url,
            "EVENTBRIDGE_ENDPOINT": moto_server.endpoint_url,
            "SQS_QUEUE_URL": castore["queue"],
            "SQS_FIFO_QUEUE_URL": castore["fifo"],
            "EVENT_BUS_NAME": castore["bus"],
        },
        stdin=ITEMS,
    )
    assert output == {"ok": True}

    python = sides["python"]
    channels = [
        SQSMessageChannel(python["queue"], client=moto_server.client("sqs")),
        SQSMessageChannel(python["fifo"], client=moto_server.client("sqs")),
        EventBridgeMessageChannel(python["bus"], client=moto_server.client("events")),
    ]
    for replay, items in groupby(ITEMS, key=lambda item: item["replay"]):
        messages = [item["message"] for item in items]
        for channel in channels:
            channel.publish_messages(messages, replay=replay)

    return {
        side: {name: receive_all(sqs, urls[name]) for name in ("queue", "fifo", "bus_queue")}
        for side, urls in sides.items()
    }


def test_every_message_arrived_on_both_sides(published):
    for side in ("castore", "python"):
        assert {name: len(got) for name, got in published[side].items()} == {
            "queue": len(ITEMS),
            "fifo": len(ITEMS),
            "bus_queue": len(ITEMS),
        }, side


@pytest.mark.parametrize("queue", ["queue", "fifo"])
def test_sqs_bodies_and_attributes_are_castores(published, queue):
    castore, python = published["castore"][queue], published["python"][queue]
    for item, ours, theirs in zip(ITEMS, python, castore, strict=True):
        assert ours["Body"] == theirs["Body"]  # byte for byte
        assert json.loads(ours["Body"]) == json.loads(theirs["Body"])
        assert attributes(ours) == attributes(theirs)
        assert ours["MD5OfMessageAttributes"] == theirs["MD5OfMessageAttributes"]
        assert ours["MD5OfBody"] == theirs["MD5OfBody"]
        assert ("replay" in attributes(ours)) is item["replay"]


def test_fifo_ids_are_castores(published):
    castore, python = published["castore"]["fifo"], published["python"]["fifo"]
    for ours, theirs in zip(python, castore, strict=True):
        for name in ("MessageGroupId", "MessageDeduplicationId"):
            assert ours["Attributes"][name] == theirs["Attributes"][name]
    assert [m["Attributes"]["MessageGroupId"] for m in python][:3] == [
        "POKEMONS#pikachu1",
        "POKEMONS#pikachu1",
        "TRAINERS#sacha",
    ]
    assert python[-1]["Attributes"]["MessageDeduplicationId"] == "POKEMONS#zero"  # version 0


def test_eventbridge_events_are_castores(published):
    castore = [json.loads(m["Body"]) for m in published["castore"]["bus_queue"]]
    python = [json.loads(m["Body"]) for m in published["python"]["bus_queue"]]
    for ours, theirs in zip(python, castore, strict=True):
        for key in ("detail-type", "source", "detail", "resources"):
            assert ours[key] == theirs[key], key
    assert [event["detail-type"] for event in python] == [
        "__REPLAYED__",
        "__AGGREGATE_EXISTS__",
        "__REPLAYED__",
        "__REPLAYED__",
        "__REPLAYED__",
        "__AGGREGATE_EXISTS__",
        "EVOLVED",
        "__REPLAYED__",
    ]
    assert [event["detail"] for event in python] == [item["message"] for item in ITEMS]
