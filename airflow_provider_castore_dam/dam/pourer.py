"""Publishing poured messages: batches sized to the channel, paced to the rate limit."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

from airflow_provider_castore_dam.dam.inputs import parse_message_channel
from airflow_provider_castore_dam.dam.progress import PourProgress
from airflow_provider_castore_dam.errors import MessageChannelError, PourStoppedError
from airflow_provider_castore_dam.protocols import Message, MessageChannel


def batch_size_for(rate_limit: float | None, max_batch_size: int) -> int:
    """The largest batch that keeps every one-second window within ``rate_limit`` + 1.

    Batches of ``n`` sent ``n / rate`` seconds apart put up to ``ceil(rate / n) * n`` messages
    in one window, so ``n`` must make that product at most ``floor(rate) + 1``.
    """
    if rate_limit is None:
        return max_batch_size
    ceiling = math.floor(rate_limit) + 1
    for size in range(max_batch_size, 1, -1):
        if math.ceil(rate_limit / size) * size <= ceiling:
            return size
    return 1


class Pacer:
    """Spaces publish calls: after a call of ``n`` messages, the next waits ``n / rate`` s."""

    def __init__(
        self,
        rate_limit: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._rate_limit = rate_limit
        self._clock = clock
        self._sleep = sleep
        self._next_start: float | None = None

    def wait(self, count: int) -> None:
        now = self._clock()
        if self._next_start is not None and now < self._next_start:
            self._sleep(self._next_start - now)
            now = self._clock()
        self._next_start = now + count / self._rate_limit


class MessagePourer:
    """Collects messages into batches and publishes them as replays.

    ``poured_count``, ``first_poured`` and ``last_poured`` only reflect messages the channel
    confirmed; ``poured_count`` starts at ``already_poured`` (a resumed pour's). After each
    publish call the channel confirmed whole, ``on_confirmed`` gets its message count.
    """

    def __init__(
        self,
        channel: MessageChannel,
        rate_limit: float | None,
        progress: PourProgress | None = None,
        *,
        already_poured: int = 0,
        on_confirmed: Callable[[int], None] | None = None,
    ) -> None:
        self._channel = parse_message_channel(channel)
        self._progress = progress
        self._batch_size = batch_size_for(rate_limit, channel.max_batch_size)
        self._pacer = None if rate_limit is None else Pacer(rate_limit)
        self._batch: list[Message] = []
        self._on_confirmed = on_confirmed
        self.poured_count = already_poured
        self.first_poured: Message | None = None
        self.last_poured: Message | None = None

    def pour(self, message: Message) -> None:
        self._batch.append(message)
        if len(self._batch) >= self._batch_size:
            self.flush()

    def pour_many(self, messages: Sequence[Message]) -> None:
        pending = self._batch + list(messages) if self._batch else list(messages)
        size, start = self._batch_size, 0
        while len(pending) - start >= size:
            self._batch = pending[start : start + size]
            start += size
            self.flush()
        self._batch = pending[start:]

    def flush(self) -> None:
        if not self._batch:
            return
        batch, self._batch = self._batch, []
        if self._progress is not None and self._progress.stopped:
            raise PourStoppedError(f"pour stopped on request after {self.poured_count} messages")
        if self._pacer is not None:
            self._pacer.wait(len(batch))
        try:
            self._channel.publish_messages(batch, replay=True)
        except MessageChannelError as error:
            # Which of the call's messages were confirmed is not known in order, so
            # on_confirmed is not told: a resumed pour publishes this call again, whole.
            self.poured_count += error.confirmed_count
            raise
        self.poured_count += len(batch)
        self.first_poured = self.first_poured or batch[0]
        self.last_poured = batch[-1]
        if self._on_confirmed is not None:
            self._on_confirmed(len(batch))
        if self._progress is not None:
            self._progress.record(self.poured_count)
