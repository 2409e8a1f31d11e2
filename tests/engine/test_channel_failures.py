from __future__ import annotations

import pytest

from airflow_provider_castore_dam.channels import InMemoryMessageChannel
from airflow_provider_castore_dam.dam import (
    PourInterruptedError,
    pour_aggregate_events,
    pour_event_store_aggregate_ids,
    pour_event_store_events,
)
from airflow_provider_castore_dam.errors import MessageChannelError
from airflow_provider_castore_dam.stores import InMemoryEventStore
from tests.engine.helpers import event


class FailingChannel(InMemoryMessageChannel):
    """Confirms every call before ``fail_on_call``, then only ``confirmed`` messages of it."""

    def __init__(self, fail_on_call: int, confirmed: int) -> None:
        super().__init__(max_batch_size=10)
        self.fail_on_call = fail_on_call
        self.confirmed = confirmed

    def publish_messages(self, messages, *, replay):
        if self.publish_calls + 1 == self.fail_on_call:
            self.publish_calls += 1
            super().publish_messages(messages[: self.confirmed], replay=replay)
            self.publish_calls -= 1
            raise MessageChannelError("throttled", confirmed_count=self.confirmed)
        super().publish_messages(messages, replay=replay)


STORE = InMemoryEventStore(
    "S", [event(f"a{i:03d}", 1, f"2021-01-01T00:00:{i:02d}.000Z") for i in range(35)]
)


def test_store_pour_reports_only_confirmed_messages():
    channel = FailingChannel(fail_on_call=3, confirmed=4)

    with pytest.raises(PourInterruptedError) as raised:
        pour_event_store_events(STORE, channel)

    assert raised.value.result["poured_event_count"] == 24 == len(channel.messages)
    assert "throttled" in str(raised.value)
    assert isinstance(raised.value.__cause__, MessageChannelError)


def test_aggregate_ids_pour_reports_only_confirmed_messages():
    channel = FailingChannel(fail_on_call=1, confirmed=0)

    with pytest.raises(PourInterruptedError) as raised:
        pour_event_store_aggregate_ids(STORE, channel)

    assert raised.value.result["poured_aggregate_id_count"] == 0
    assert channel.messages == []


def test_aggregate_pour_keeps_first_and_last_of_confirmed_batches():
    store = InMemoryEventStore(
        "S", [event("a", v, "2021-01-01T00:00:00.000Z") for v in range(1, 26)]
    )
    channel = FailingChannel(fail_on_call=2, confirmed=3)

    with pytest.raises(PourInterruptedError) as raised:
        pour_aggregate_events(store, channel, "a")

    result = raised.value.result
    assert result["poured_event_count"] == 13
    assert result["first_poured_event"]["version"] == 1
    assert result["last_poured_event"]["version"] == 10
