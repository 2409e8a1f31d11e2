"""A channel that logs each message its channel confirmed: per-message logging, opt in."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from airflow_provider_castore_dam.protocols import Message, MessageChannel


class LoggedMessageChannel:
    """``channel``, calling ``log(message, replay)`` for each message once the channel
    confirmed its call (from the thread that made it, when calls run at once). Everything
    else (batch size, calls in flight, repeats, ``close``) is the channel's own."""

    def __init__(self, channel: MessageChannel, log: Callable[[Message, bool], None]) -> None:
        self._channel = channel
        self._log = log

    @property
    def max_batch_size(self) -> int:
        return self._channel.max_batch_size

    def __getattr__(self, name: str) -> Any:
        return getattr(self._channel, name)

    def publish_messages(self, messages: Sequence[Message], *, replay: bool) -> None:
        self._channel.publish_messages(messages, replay=replay)
        for message in messages:
            self._log(message, replay)
