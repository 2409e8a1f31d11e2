"""Publish calls in flight at once, against the brute-force oracle: every event once, each
aggregate's calls one confirmed after another, checkpoints only below the first gap, and a
resume after a failed call that skips nothing and repeats at most the window."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Sequence

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_castore_dam.channels import InMemoryMessageChannel
from airflow_provider_castore_dam.dam import PourInterruptedError, pour_event_store_events
from airflow_provider_castore_dam.dam.checkpoints import event_position
from airflow_provider_castore_dam.errors import InvalidPourInputError, MessageChannelError
from airflow_provider_castore_dam.partitions import Partition
from airflow_provider_castore_dam.protocols import Message
from airflow_provider_castore_dam.stores import InMemoryScanningEventStore
from tests.engine import oracle
from tests.engine.test_properties import store_events


def key(message: Message) -> tuple[str, str, int]:
    event = message["event"]
    return message["eventStoreId"], event["aggregateId"], event["version"]


class RacingChannel:
    """Calls take random short times, so they finish out of order; the ``fail_call``-th call
    (0-based, in start order) fails after confirming ``confirmed`` of its messages."""

    max_batch_size = 3

    def __init__(
        self, max_in_flight: int, seed: int, fail_call: int | None = None, confirmed: int = 0
    ) -> None:
        self.max_in_flight = max_in_flight
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._fail_call, self._confirmed = fail_call, confirmed
        self._clock = 0
        self._started = 0
        self._running = 0
        self.most_at_once = 0
        self.calls: list[tuple[int, int, list[Message]]] = []
        """(start tick, end tick, messages) of each call that confirmed all its messages."""
        self.delivered: list[Message] = []

    def _tick(self) -> int:
        self._clock += 1
        return self._clock

    def publish_messages(self, messages: Sequence[Message], *, replay: bool) -> None:
        assert replay
        with self._lock:
            started, number = self._tick(), self._started
            self._started += 1
            self._running += 1
            self.most_at_once = max(self.most_at_once, self._running)
            delay = self._random.random() / 1000
        time.sleep(delay)
        with self._lock:
            self._running -= 1
            if number == self._fail_call:
                confirmed = min(self._confirmed, len(messages))
                self.delivered += messages[:confirmed]
                raise MessageChannelError("lost", confirmed_count=confirmed)
            self.delivered += messages
            self.calls.append((started, self._tick(), list(messages)))


def assert_each_aggregate_waited(channel: RacingChannel) -> None:
    """A call holding an aggregate's event started after the previous call holding that
    aggregate had ended (was confirmed)."""
    last_end: dict[tuple[str, str], int] = {}
    for started, ended, messages in sorted(channel.calls):
        for aggregate in {key(message)[:2] for message in messages}:
            assert last_end.get(aggregate, 0) < started, f"{aggregate} in two calls at once"
            last_end[aggregate] = ended


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(store_events(), st.integers(1, 6), st.integers(0, 2**16))
def test_every_event_once_each_aggregate_in_order(events, max_in_flight, seed):
    channel = RacingChannel(max_in_flight, seed)
    positions = pour_positions(events)
    checkpoints = []

    def saved(checkpoint):
        """Gap-aware: everything up to the position is confirmed, and counted."""
        position = event_position(checkpoint["positions"]["S"], "S")
        below = {("S", a, v) for (t, a, v) in positions if (t, a, v) <= position}
        assert below <= {key(message) for message in channel.delivered}
        assert checkpoint["result"]["poured_event_count"] == len(below)
        checkpoints.append(checkpoint)

    result = pour_event_store_events(
        InMemoryScanningEventStore("S", events), channel, on_checkpoint=saved
    )

    expected = [("S", e["aggregateId"], e["version"]) for _, e in oracle.pour_order({"S": events})]
    delivered = [key(message) for message in channel.delivered]
    assert sorted(delivered) == sorted(expected)
    assert result["poured_event_count"] == len(expected)
    assert channel.most_at_once <= max_in_flight
    for aggregate in {k[:2] for k in expected}:
        versions = [k[2] for k in delivered if k[:2] == aggregate]
        assert versions == sorted(versions)
    assert_each_aggregate_waited(channel)
    if expected:
        assert checkpoints[-1]["result"]["poured_event_count"] == len(expected)


def pour_positions(events: list[dict]) -> list[tuple[str, str, int]]:
    """(pour timestamp, aggregate id, version) of each event in pour order."""
    floors: dict[str, str] = {}
    positions = []
    for event in sorted(events, key=lambda e: (e["aggregateId"], e["version"])):
        floor = max(floors.get(event["aggregateId"], ""), event["timestamp"])
        floors[event["aggregateId"]] = floor
        positions.append((floor, event["aggregateId"], event["version"]))
    return sorted(positions)


partitions = st.one_of(
    st.none(), st.integers(1, 3).flatmap(lambda n: st.tuples(st.integers(0, n - 1), st.just(n)))
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(store_events(), st.integers(2, 6), st.integers(0, 2**16), partitions, st.data())
def test_resume_after_a_failed_call_skips_nothing(events, max_in_flight, seed, partition, data):
    """With calls in flight, of the whole store or of one partition."""
    expected = [
        ("S", e["aggregateId"], e["version"])
        for _, e in oracle.pour_order({"S": events})
        if partition is None or Partition(*partition).contains(e["aggregateId"])
    ]
    calls = -(-len(expected) // RacingChannel.max_batch_size)
    fail_call = data.draw(st.integers(0, max(calls - 1, 0)))
    confirmed = data.draw(st.integers(0, 2))
    failing = RacingChannel(max_in_flight, seed, fail_call, confirmed)
    checkpoints = []
    store = InMemoryScanningEventStore("S", events)

    try:
        pour_event_store_events(
            store, failing, on_checkpoint=checkpoints.append, partition=partition
        )
        assert not expected  # no call to fail
        return
    except PourInterruptedError as error:
        assert error.result["poured_event_count"] == len(failing.delivered)
    resumed = RacingChannel(max_in_flight, seed + 1)
    result = pour_event_store_events(
        store, resumed, checkpoint=checkpoints[-1] if checkpoints else None, partition=partition
    )

    first = [key(m) for m in failing.delivered]
    second = [key(m) for m in resumed.delivered]
    assert set(first) | set(second) == set(expected)  # nothing skipped
    assert len(second) == len(set(second))
    repeated = len(set(first) & set(second))
    assert repeated <= max_in_flight * RacingChannel.max_batch_size
    assert result["poured_event_count"] == len(expected)
    # Repeats reached the channel, but the digest counts each message once.
    uninterrupted = pour_event_store_events(store, InMemoryMessageChannel(), partition=partition)
    assert result["digest"] == uninterrupted["digest"]


def test_calls_beyond_a_failure_are_counted_not_checkpointed():
    events = [
        {"aggregateId": f"a{n}", "version": 1, "type": "T", "timestamp": f"2021-01-01T00:00:0{n}Z"}
        for n in range(9)
    ]
    channel = RacingChannel(max_in_flight=3, seed=1, fail_call=0, confirmed=1)
    checkpoints = []

    with pytest.raises(PourInterruptedError) as raised:
        pour_event_store_events(
            InMemoryScanningEventStore("S", events), channel, on_checkpoint=checkpoints.append
        )

    # The calls started beside the failed first one were confirmed: counted, but a resume
    # starts before them (the first call is the gap).
    assert raised.value.result["poured_event_count"] == len(channel.delivered)
    assert all(c["result"]["poured_event_count"] == 0 for c in checkpoints)


@pytest.mark.parametrize("value", [0, -1, 257, 2.5, True, "8", None])
def test_bad_max_in_flight_fails_before_publishing(value):
    channel = RacingChannel(max_in_flight=1, seed=1)
    channel.max_in_flight = value
    events = [{"aggregateId": "a", "version": 1, "type": "T", "timestamp": "2021-01-01T00:00:00Z"}]

    with pytest.raises(InvalidPourInputError, match="max_in_flight of message channel"):
        pour_event_store_events(InMemoryScanningEventStore("S", events), channel)
    assert channel.delivered == []


class WaitingChannel:
    """Each call waits (up to 2 s) until another call runs beside it."""

    max_batch_size = 3
    max_in_flight = 3

    def __init__(self) -> None:
        self._running = 0
        self._changed = threading.Condition()
        self.most_at_once = 0
        self.calls: list[list[tuple[str, str, int]]] = []

    def publish_messages(self, messages: Sequence[Message], *, replay: bool) -> None:
        with self._changed:
            self._running += 1
            self.most_at_once = max(self.most_at_once, self._running)
            self.calls.append([key(message) for message in messages])
            self._changed.notify_all()
            self._changed.wait_for(lambda: self._running > 1, timeout=2)
            self._running -= 1
            self._changed.notify_all()


def test_a_busy_aggregate_does_not_hold_back_the_others():
    """In pour order every batch of three holds a version of "a"; the others still go in
    calls beside a's, and a's versions go in order (the later ones together, once the first
    is confirmed)."""
    events = []
    for second in range(4):
        events.append(event_at("a", second + 1, second))
        events += [event_at(f"{other}{second}", 1, second) for other in "bc"]
    channel = WaitingChannel()

    result = pour_event_store_events(InMemoryScanningEventStore("S", events), channel)

    assert result["poured_event_count"] == 12
    assert channel.most_at_once >= 2
    a_versions = [[k[2] for k in call if k[1] == "a"] for call in channel.calls]
    assert [v for v in a_versions if v] == [[1], [2, 3, 4]]


def event_at(aggregate_id: str, version: int, second: int) -> dict:
    return {
        "aggregateId": aggregate_id,
        "version": version,
        "type": "T",
        "timestamp": f"2021-01-01T00:00:0{second}.000Z",
    }
