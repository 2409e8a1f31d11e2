"""Checkpoints: a pour interrupted at any batch and resumed from its last checkpoint publishes
everything an uninterrupted pour does, in the same order, re-publishing at most the batch that
failed; both merge paths, all four utilities, random stores (hypothesis)."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_castore_dam.channels import InMemoryMessageChannel
from airflow_provider_castore_dam.dam import (
    PourInterruptedError,
    pour_aggregate_events,
    pour_event_store_aggregate_ids,
    pour_event_store_collection_events,
    pour_event_store_events,
)
from airflow_provider_castore_dam.dam.checkpoints import CheckpointMismatchError, aggregates_after
from airflow_provider_castore_dam.errors import InvalidPourInputError, MessageChannelError
from airflow_provider_castore_dam.stores import InMemoryEventStore, InMemoryScanningEventStore
from tests.engine.test_properties import TIMESTAMPS, bounds, collections, ordered_range

BATCH = 3


class BreakingChannel(InMemoryMessageChannel):
    """Confirms calls until ``fail_on_call``; that call delivers ``delivered`` of its
    messages (not necessarily the first ones) and fails; later calls work again."""

    def __init__(self, fail_on_call: int | None = None, delivered: int = 0) -> None:
        super().__init__(max_batch_size=BATCH)
        self.fail_on_call = fail_on_call
        self.delivered = delivered

    def publish_messages(self, messages, *, replay):
        if self.publish_calls + 1 != self.fail_on_call:
            return super().publish_messages(messages, replay=replay)
        self.fail_on_call = None
        delivered = min(self.delivered, len(messages))
        super().publish_messages(list(messages)[::-1][:delivered], replay=replay)
        raise MessageChannelError("lost the connection", confirmed_count=delivered)


def pour(utility, stores, channel, bound, **kwargs):
    """Run ``utility`` over ``stores`` (id -> store) with arguments drawn from ``bound``."""
    first = next(iter(stores.values()))
    start, end = bound
    filters = {"from": start, "to": end}
    if utility == "events":
        return pour_event_store_events(first, channel, filters, **kwargs)
    if utility == "collection":
        return pour_event_store_collection_events(list(stores.values()), channel, filters, **kwargs)
    if utility == "aggregate_ids":
        options = {"initial_event_after": start, "reverse": end is not None, "limit": 2}
        return pour_event_store_aggregate_ids(first, channel, options, **kwargs)
    aggregate_id = min(first._events, default="none")
    options = {"reverse": start is not None}
    return pour_aggregate_events(first, channel, aggregate_id, options, filters, **kwargs)


def keys(channel):
    return [json.dumps(m.message, sort_keys=True) for m in channel.messages]


UTILITIES = ["events", "collection", "aggregate_ids", "aggregate_events"]


@pytest.mark.parametrize("store_class", [InMemoryEventStore, InMemoryScanningEventStore])
@pytest.mark.parametrize("utility", UTILITIES)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=collections(), start=bounds, end=bounds, failure=st.data())
def test_resumed_pour_publishes_everything_once_but_the_failed_batch(
    utility, store_class, data, start, end, failure
):
    start, end = ordered_range(start, end)
    stores = {store_id: store_class(store_id, events) for store_id, events in data.items()}

    reference = InMemoryMessageChannel(max_batch_size=BATCH)
    expected_result = pour(utility, stores, reference, (start, end))
    expected = keys(reference)
    calls = reference.publish_calls
    if calls == 0:
        return
    fail_on_call = failure.draw(st.integers(1, calls), label="fail_on_call")
    delivered = failure.draw(st.integers(0, BATCH - 1), label="delivered")

    channel = BreakingChannel(fail_on_call, delivered)
    saved = []
    with pytest.raises(PourInterruptedError):
        pour(utility, stores, channel, (start, end), on_checkpoint=saved.append)
    before = len(channel.messages)
    checkpoint = saved[-1] if saved else None
    assert all(json.loads(json.dumps(c)) == c for c in saved)
    confirmed = (
        0
        if checkpoint is None
        else next(
            value for name, value in checkpoint["result"].items() if name.startswith("poured_")
        )
    )
    assert confirmed == (fail_on_call - 1) * BATCH

    result = pour(utility, stores, channel, (start, end), checkpoint=checkpoint)

    published = keys(channel)
    assert published[:confirmed] == expected[:confirmed]
    assert published[before:] == expected[confirmed:]
    assert sorted(set(published)) == sorted(set(expected))
    assert len(published) - len(expected) == before - confirmed <= BATCH
    assert result == expected_result


def test_checkpoints_are_saved_after_every_confirmed_batch():
    events = [
        {"aggregateId": f"a{i}", "version": 1, "type": "T", "timestamp": TIMESTAMPS[i % 6]}
        for i in range(10)
    ]
    store = InMemoryScanningEventStore("S", events)
    saved = []
    pour_event_store_events(store, BreakingChannel(), on_checkpoint=saved.append)

    assert [c["result"]["poured_event_count"] for c in saved] == [3, 6, 9, 10]
    assert saved[-1]["utility"] == "pour_event_store_events"
    assert saved[-1]["inputs"] == {
        "event_store_ids": ["S"],
        "filters": {"from": None, "to": None},
    }
    assert saved[-1]["positions"] == {
        "S": {"pour_timestamp": TIMESTAMPS[5], "aggregate_id": "a5", "version": 1}
    }


def test_a_finished_checkpoint_resumes_to_nothing():
    store = InMemoryEventStore(
        "S", [{"aggregateId": "a", "version": 1, "type": "T", "timestamp": TIMESTAMPS[0]}]
    )
    saved = []
    first = pour_event_store_events(store, BreakingChannel(), on_checkpoint=saved.append)
    channel = BreakingChannel()

    again = pour_event_store_events(store, channel, checkpoint=saved[-1])

    assert channel.messages == []
    assert again == first


STORE = InMemoryEventStore(
    "S", [{"aggregateId": "a", "version": 1, "type": "T", "timestamp": TIMESTAMPS[0]}]
)


def a_checkpoint(**changes):
    saved = []
    pour_event_store_events(STORE, BreakingChannel(), on_checkpoint=saved.append)
    return {**saved[-1], **changes}


@pytest.mark.parametrize(
    ("checkpoint", "error", "fragment"),
    [
        ("resume", InvalidPourInputError, "checkpoint must be a dict saved by this version"),
        ({"format": 1}, CheckpointMismatchError, "another version of the engine .format 1, not 2"),
        (
            a_checkpoint(result={"poured_event_count": 1}),
            InvalidPourInputError,
            "checkpoint digest must be a dict",
        ),
        (a_checkpoint(utility=3), InvalidPourInputError, "checkpoint utility must be a str"),
        (a_checkpoint(positions=[]), InvalidPourInputError, "positions must be a dict"),
        (
            a_checkpoint(positions={"S": {"pour_timestamp": TIMESTAMPS[0], "version": 1}}),
            InvalidPourInputError,
            "needs aggregate_id as str, not None",
        ),
        (
            a_checkpoint(utility="pour_event_store_aggregate_ids"),
            CheckpointMismatchError,
            "saved by pour_event_store_aggregate_ids",
        ),
        (
            a_checkpoint(inputs={"event_store_ids": ["S"], "filters": {"from": TIMESTAMPS[1]}}),
            CheckpointMismatchError,
            "cannot resume this pour",
        ),
    ],
)
def test_bad_checkpoints_are_refused_before_publishing(checkpoint, error, fragment):
    channel = BreakingChannel()
    with pytest.raises(error, match=fragment):
        pour_event_store_events(STORE, channel, checkpoint=checkpoint)
    assert channel.messages == []


def test_on_checkpoint_must_be_callable():
    channel = BreakingChannel()
    with pytest.raises(InvalidPourInputError, match="on_checkpoint must be a callable"):
        pour_event_store_events(STORE, channel, on_checkpoint="checkpoints.json")
    assert channel.messages == []


def test_listing_resumes_after_the_position_among_ties_or_repours_them():
    def listed(*pairs):
        return [{"initial_event_timestamp": t, "aggregate_id": a} for t, a in pairs]

    ties = listed(("t1", "c"), ("t1", "a"), ("t1", "b"), ("t2", "d"))
    assert list(aggregates_after(ties, ("t1", "a"))) == ties[2:]
    assert list(aggregates_after(ties, ("t1", "b"))) == ties[3:]
    # The position's aggregate is gone (the store changed): its ties are poured again.
    assert list(aggregates_after(ties, ("t1", "x"))) == ties
    assert list(aggregates_after(ties, None)) == ties
