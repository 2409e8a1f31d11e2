"""A message channel that keeps what it receives, for tests, the demo and dry runs."""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from dataclasses import dataclass

from airflow_provider_castore_dam.protocols import Message


@dataclass(frozen=True)
class PublishedMessage:
    message: Message
    replay: bool
    published_at: float
    """``time.monotonic()`` when the batch holding the message was published."""


class InMemoryMessageChannel:
    """Records every published message, in order, as :class:`PublishedMessage` in ``.messages``."""

    def __init__(self, max_batch_size: int = 10) -> None:
        self._max_batch_size = max_batch_size
        self.messages: list[PublishedMessage] = []
        self.publish_calls = 0

    @property
    def max_batch_size(self) -> int:
        return self._max_batch_size

    def publish_messages(self, messages: Sequence[Message], *, replay: bool) -> None:
        if len(messages) > self._max_batch_size:
            raise ValueError(
                f"{len(messages)} messages exceed the batch size {self._max_batch_size}"
            )
        published_at = time.monotonic()
        self.publish_calls += 1
        self.messages.extend(
            PublishedMessage(copy.deepcopy(message), replay, published_at) for message in messages
        )
