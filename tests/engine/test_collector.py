"""The garbage collector's youngest generation runs less often while a pour runs, and only
then."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from airflow_provider_castore_dam.dam import pour_event_store_events
from airflow_provider_castore_dam.dam.collector import POUR_GC_THRESHOLD, fewer_collections
from airflow_provider_castore_dam.stores.in_memory import InMemoryEventStore

from .helpers import event


@pytest.fixture(autouse=True)
def default_threshold() -> Iterator[None]:
    saved = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    yield
    gc.set_threshold(*saved)


class ThresholdSpy:
    """A channel that records the collector's threshold at every publish call."""

    max_batch_size = 10

    def __init__(self) -> None:
        self.thresholds: list[tuple[int, int, int]] = []

    def publish_messages(self, messages: Sequence[Any], *, replay: bool) -> None:
        self.thresholds.append(gc.get_threshold())


def test_a_pour_raises_the_threshold_and_puts_it_back() -> None:
    store = InMemoryEventStore(
        "S", [event("a", v, f"2022-01-01T00:00:{v:02d}.000Z") for v in range(1, 26)]
    )
    channel = ThresholdSpy()

    result = pour_event_store_events(store, channel)

    assert result["poured_event_count"] == 25
    assert channel.thresholds == [(POUR_GC_THRESHOLD, 10, 10)] * 3
    assert gc.get_threshold() == (700, 10, 10)


def test_a_failed_pour_puts_it_back_too() -> None:
    with pytest.raises(RuntimeError), fewer_collections():
        raise RuntimeError("boom")
    assert gc.get_threshold() == (700, 10, 10)


def test_overlapping_pours_share_one_raise() -> None:
    first_in, second_out = threading.Event(), threading.Event()
    seen: list[tuple[int, int, int]] = []

    def other_pour() -> None:
        with fewer_collections():
            first_in.set()
            second_out.wait(5)
        seen.append(gc.get_threshold())

    thread = threading.Thread(target=other_pour)
    thread.start()
    first_in.wait(5)
    with fewer_collections():
        second_out.set()
        thread.join(5)
        seen.append(gc.get_threshold())
    seen.append(gc.get_threshold())

    assert seen == [(POUR_GC_THRESHOLD, 10, 10), (POUR_GC_THRESHOLD, 10, 10), (700, 10, 10)]


@pytest.mark.parametrize("threshold", [(0, 10, 10), (50_000, 5, 5)])
def test_a_threshold_of_zero_or_already_higher_is_left_alone(threshold) -> None:
    gc.set_threshold(*threshold)
    with fewer_collections():
        assert gc.get_threshold() == threshold
    assert gc.get_threshold() == threshold


def test_a_threshold_changed_during_the_pour_is_kept() -> None:
    with fewer_collections():
        gc.set_threshold(1_000, 20, 20)
    assert gc.get_threshold() == (1_000, 20, 20)
