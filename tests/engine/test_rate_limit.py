from __future__ import annotations

import bisect
import math

import pytest

from airflow_provider_castore_dam.channels import InMemoryMessageChannel
from airflow_provider_castore_dam.dam import pour_event_store_events
from airflow_provider_castore_dam.dam.pourer import Pacer, batch_size_for
from airflow_provider_castore_dam.stores import InMemoryEventStore
from tests.engine.helpers import event


def busiest_second(times: list[float]) -> int:
    """Most messages published within any window [t, t + 1s)."""
    times = sorted(times)
    return max(bisect.bisect_left(times, start + 1.0) - index for index, start in enumerate(times))


@pytest.mark.parametrize(
    ("rate_limit", "max_batch_size"), [(40, 10), (25, 10), (13, 10), (7.5, 10), (40, 1)]
)
def test_rate_limit_holds_in_every_second_and_is_used_fully(rate_limit, max_batch_size):
    count = math.ceil(rate_limit * 2.5)
    store = InMemoryEventStore(
        "RATE", [event(f"a{i:04d}", 1, "2021-01-01T00:00:00.000Z") for i in range(count)]
    )
    channel = InMemoryMessageChannel(max_batch_size=max_batch_size)

    result = pour_event_store_events(store, channel, rate_limit=rate_limit)

    times = [message.published_at for message in channel.messages]
    assert result["poured_event_count"] == len(times) == count
    assert busiest_second(times) <= math.floor(rate_limit) + 1
    # Batches start `batch / rate_limit` apart, so the last one starts once every message before
    # it has had its share of time; >= 95 % of the limit means at most 1/0.95 of that span.
    batch = batch_size_for(rate_limit, max_batch_size)
    ideal_span = batch * ((count - 1) // batch) / rate_limit
    assert ideal_span >= 2.0
    assert ideal_span <= times[-1] - times[0] <= ideal_span / 0.95


@pytest.mark.parametrize(
    ("rate_limit", "max_batch_size", "expected"),
    [
        (None, 10, 10),
        (1000, 10, 10),
        (100, 10, 10),
        (25, 10, 5),
        (13, 10, 7),
        (7.5, 10, 8),
        (0.5, 10, 1),
        (3, 1, 1),
    ],
)
def test_batch_size_keeps_windows_within_the_limit(rate_limit, max_batch_size, expected):
    size = batch_size_for(rate_limit, max_batch_size)

    assert size == expected
    if rate_limit is not None:
        assert math.ceil(rate_limit / size) * size <= math.floor(rate_limit) + 1


def test_pacer_spaces_calls_by_their_size():
    now = [0.0]
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds

    pacer = Pacer(10, clock=lambda: now[0], sleep=sleep)
    for _ in range(3):
        pacer.wait(5)

    assert sleeps == [0.5, 0.5]
    assert now[0] == 1.0
