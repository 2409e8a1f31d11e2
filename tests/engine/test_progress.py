from __future__ import annotations

import threading

import pytest

from airflow_provider_castore_dam.channels import InMemoryMessageChannel
from airflow_provider_castore_dam.dam import (
    PourInterruptedError,
    PourProgress,
    pour_event_store_events,
)
from airflow_provider_castore_dam.errors import PourStoppedError
from airflow_provider_castore_dam.stores import InMemoryEventStore
from tests.engine.helpers import event

STORE = InMemoryEventStore(
    "S", [event(f"a{i:03d}", 1, f"2021-01-01T00:00:{i % 60:02d}.000Z") for i in range(100)]
)


def test_progress_is_reported_with_confirmed_counts():
    ticks = iter(range(1000))
    reports = []
    progress = PourProgress(reports.append, interval=3, clock=lambda: float(next(ticks)))

    result = pour_event_store_events(STORE, InMemoryMessageChannel(), progress=progress)

    assert result["poured_event_count"] == 100
    # the clock ticks once per confirmed batch of 10, a report every 3 ticks
    assert [report.poured_count for report in reports] == [30, 60, 90]
    assert reports[0].elapsed_seconds == 3.0
    assert reports[0].rate == 10.0


def test_stop_ends_the_pour_cleanly_between_two_batches():
    progress = PourProgress()
    channel = InMemoryMessageChannel()

    class StoppingChannel(InMemoryMessageChannel):
        def publish_messages(self, messages, *, replay):
            channel.publish_messages(messages, replay=replay)
            if len(channel.messages) == 30:
                threading.Thread(target=progress.stop).start()
                threading.Event().wait(0.05)

    with pytest.raises(PourInterruptedError) as raised:
        pour_event_store_events(STORE, StoppingChannel(), progress=progress)

    assert raised.value.result["poured_event_count"] == 30 == len(channel.messages)
    assert isinstance(raised.value.__cause__, PourStoppedError)
    assert "stopped on request" in str(raised.value)
