"""Publishing poured messages: batches sized to the channel, paced to the rate limit."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

from airflow_provider_castore_dam.dam.digest import Digest
from airflow_provider_castore_dam.dam.in_flight import InFlightWindow
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
    """Collects messages into batches and publishes them as replays, up to the channel's
    ``max_in_flight`` publish calls at once (see :mod:`.in_flight`; 1 when it has none).

    ``poured_count``, ``first_poured``, ``last_poured`` and ``digest`` only reflect messages the
    channel confirmed; ``poured_count`` starts at ``already_poured`` and ``digest`` at the
    digest given (a resumed pour's). ``digest`` covers the confirmed prefix of the pour, what a
    resumed pour never publishes again (see :mod:`.in_flight`). Whenever the
    confirmed prefix of the pour grows, ``on_confirmed`` gets the number of messages it grew
    by. Use it as a context manager: leaving it, even on an error, waits for the calls in
    flight and counts what they confirmed.
    """

    def __init__(
        self,
        channel: MessageChannel,
        rate_limit: float | None,
        progress: PourProgress | None = None,
        *,
        already_poured: int = 0,
        digest: Digest | None = None,
        on_confirmed: Callable[[int], None] | None = None,
    ) -> None:
        self._channel = parse_message_channel(channel)
        self._progress = progress
        self._batch_size = batch_size_for(rate_limit, channel.max_batch_size)
        self._pacer = None if rate_limit is None else Pacer(rate_limit)
        self._batch: list[Message] = []
        self._on_confirmed = on_confirmed
        in_flight = channel_max_in_flight(self._channel)
        self._window = (
            None if in_flight == 1 else InFlightWindow(self._publish, in_flight, self._batch_size)
        )
        self._in_order_count = already_poured
        self.digest = digest or Digest()
        self._unordered_count = 0
        """Messages confirmed after a failed call: counted, never checkpointed."""
        self.first_poured: Message | None = None
        self.last_poured: Message | None = None

    @property
    def window(self) -> int:
        """The most messages a resumed pour publishes again: ``max_in_flight`` calls."""
        return channel_max_in_flight(self._channel) * self._batch_size

    @property
    def poured_count(self) -> int:
        return self._in_order_count + self._unordered_count

    def __enter__(self) -> MessagePourer:
        return self

    def __exit__(self, *_: object) -> None:
        self._drain()

    def pour(self, message: Message) -> None:
        if self._window is not None:
            self._fill([message])
            return
        self._batch.append(message)
        if len(self._batch) >= self._batch_size:
            batch, self._batch = self._batch, []
            self._publish_now(batch)

    def pour_many(self, messages: Sequence[Message]) -> None:
        if self._window is not None:
            self._fill(messages)
            return
        self._batch.extend(messages)
        if len(self._batch) < self._batch_size:
            return
        pending, self._batch = self._batch, []
        size, start = self._batch_size, 0
        while len(pending) - start >= size:
            self._publish_now(pending[start : start + size])
            start += size
        self._batch = pending[start:]

    def flush(self) -> None:
        """Publish what is batched, then wait until every call in flight is confirmed."""
        if self._window is not None:
            while self._window.has_pending:
                self._start_calls(partial=True)
                if self._window.has_pending:
                    self._wait()
        elif self._batch:
            batch, self._batch = self._batch, []
            self._publish_now(batch)
        self._drain()
        self._raise_failure()

    def _publish_now(self, batch: list[Message]) -> None:
        """One call at a time: publish, then count."""
        self._start_call(batch)
        self._publish(batch)
        self._confirm(batch)

    def _fill(self, messages: Sequence[Message]) -> None:
        """Put ``messages`` in the window, starting calls of whole batches as they fill."""
        assert self._window is not None
        start = 0
        while start < len(messages):
            room = self._window.room
            if room:
                self._window.add(messages[start : start + room])
                start += room
                self._start_calls(partial=False)
            else:  # the window is full: what is pending must go, then wait for room
                self._start_calls(partial=True)
                self._wait()

    def _start_calls(self, *, partial: bool) -> None:
        assert self._window is not None
        while self._window.can_start():
            batch = self._window.next_batch(partial=partial)
            if not batch:
                break
            self._start_call(batch)
            self._window.start(batch)
        self._window.poll()
        self._move_on()

    def _wait(self) -> None:
        assert self._window is not None
        self._window.wait_for_one()
        self._move_on()

    def _start_call(self, batch: Sequence[object]) -> None:
        if self._progress is not None and self._progress.stopped:
            self._drain()
            raise PourStoppedError(f"pour stopped on request after {self.poured_count} messages")
        if self._pacer is not None:
            self._pacer.wait(len(batch))

    def _publish(self, batch: list[Message]) -> None:
        try:
            self._channel.publish_messages(batch, replay=True)
        except MessageChannelError as error:
            if self._window is None:
                # Which of the call's messages were confirmed is not known in order, so
                # on_confirmed is not told: a resumed pour publishes this call again, whole.
                self._unordered_count += error.confirmed_count
            raise

    def _move_on(self) -> None:
        """Take the window's confirmed prefix; on a failed call, wait for the others and
        raise its error."""
        assert self._window is not None
        self._confirm(self._window.confirmed_prefix())
        if self._window.failure() is not None:
            self._drain()
            self._raise_failure()

    def _confirm(self, messages: list[Message]) -> None:
        if not messages:
            return
        self._in_order_count += len(messages)
        self.digest.add_messages(messages)
        self.first_poured = self.first_poured or messages[0]
        self.last_poured = messages[-1]
        if self._on_confirmed is not None:
            self._on_confirmed(len(messages))
        if self._progress is not None:
            self._progress.record(self.poured_count)

    def _drain(self) -> None:
        """Wait for every call in flight and count what they confirmed; no call starts after."""
        window = self._window
        if window is None or window.closed:
            return
        window.wait_for_all()
        self._confirm(window.confirmed_prefix())
        self._unordered_count += window.confirmed_beyond_prefix()
        window.close()

    def _raise_failure(self) -> None:
        failure = None if self._window is None else self._window.failure()
        if failure is not None:
            raise failure


def channel_max_in_flight(channel: MessageChannel) -> int:
    """The channel's ``max_in_flight`` (checked by ``parse_message_channel``), else 1."""
    return int(getattr(channel, "max_in_flight", 1))
