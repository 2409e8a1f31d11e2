"""Fixtures of the bad-input suite: the demo stores, an in-memory channel, and for the Airflow
layer a real SQS queue on the moto server that must stay empty."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from tests.airflow.conftest import aws  # noqa: F401  (the moto server behind aws_default)
from tests.airflow.connections import (
    event_store_connection,
    message_channel_connection,
    set_connection,
)
from tests.channels.aws import receive_all
from tests.engine.conftest import channel, pokemons, trainers  # noqa: F401
from tests.infra import MotoServer

EVENT_STORE_CONN = "castore_event_store_default"
MESSAGE_CHANNEL_CONN = "castore_message_channel_default"


@dataclass
class Queue:
    """A real SQS queue on the moto server, behind ``castore_message_channel_default``."""

    url: str
    sqs: Any

    def received(self) -> list[dict[str, Any]]:
        return receive_all(self.sqs, self.url)


@pytest.fixture(scope="session")
def sqs_client(moto_server: MotoServer) -> Any:
    """One SQS client for the session (making a client takes a quarter of a second)."""
    return moto_server.client("sqs")


@pytest.fixture
def queue(monkeypatch: pytest.MonkeyPatch, aws: MotoServer, sqs_client: Any) -> Queue:  # noqa: F811
    sqs = sqs_client
    url = sqs.create_queue(QueueName="replays")["QueueUrl"]
    set_connection(
        monkeypatch, MESSAGE_CHANNEL_CONN, **message_channel_connection("sqs", queue_url=url)
    )
    return Queue(url, sqs)


@pytest.fixture
def demo_store(monkeypatch: pytest.MonkeyPatch) -> None:
    """``castore_event_store_default``: the demo stores POKEMONS and TRAINERS, in memory."""
    set_connection(monkeypatch, EVENT_STORE_CONN, **event_store_connection("in-memory-demo"))
