"""Publish calls in flight at once, in pour order, without ever reordering an aggregate.

A window holds the calls from the oldest one not yet confirmed to the newest one started, at
most ``size`` of them. A call starts only when none of the unconfirmed calls before it holds
a message of one of its aggregates (same event store, same aggregate id), so an aggregate's
messages reach the channel one confirmed call after another, in order.

Calls are confirmed in any order, but the pour only moves on over the *confirmed prefix*: the
calls before the first unconfirmed one (gap-aware, as a commit handler that checkpoints only
below its lowest pending position). A crash therefore repeats at most the window: ``size``
calls. The window is driven from one thread; the calls run on a pool of ``size`` threads.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from airflow_provider_castore_dam.errors import MessageChannelError
from airflow_provider_castore_dam.protocols import Message

AggregateKey = tuple[str, str]


def aggregate_key(message: Message) -> AggregateKey:
    """(event store id, aggregate id) of a notification or aggregate-exists message."""
    event = message.get("event")
    aggregate_id = event["aggregateId"] if event is not None else message["aggregateId"]
    return message["eventStoreId"], aggregate_id


@dataclass
class Call:
    batch: list[Message]
    keys: set[AggregateKey]
    future: Future[None]
    settled: bool = field(default=False)


class InFlightWindow:
    """Starts ``publish(batch)`` calls on worker threads, at most ``size`` in the window."""

    def __init__(self, publish: Callable[[list[Message]], None], size: int) -> None:
        self._publish = publish
        self._size = size
        self._pool = ThreadPoolExecutor(size, thread_name_prefix="castore-dam-publish")
        self._calls: deque[Call] = deque()
        self._unconfirmed_keys: Counter[AggregateKey] = Counter()
        self._closed = False

    def __len__(self) -> int:
        return len(self._calls)

    def blocks(self, keys: set[AggregateKey]) -> bool:
        """Whether a call of ``keys`` must wait: the window is full, or an unconfirmed call
        holds one of its aggregates."""
        if len(self._calls) >= self._size:
            return True
        return any(key in self._unconfirmed_keys for key in keys)

    def start(self, batch: list[Message], keys: set[AggregateKey]) -> None:
        self._unconfirmed_keys.update(keys)
        self._calls.append(Call(batch, keys, self._pool.submit(self._publish, batch)))

    @property
    def closed(self) -> bool:
        return self._closed

    def wait_for_one(self) -> None:
        """Until at least one more call of the window has finished."""
        running = [call.future for call in self._calls if not call.settled]
        if running and not any(future.done() for future in running):
            wait(running, return_when=FIRST_COMPLETED)
        self.poll()

    def wait_for_all(self) -> None:
        wait([call.future for call in self._calls])
        self.poll()

    def poll(self) -> None:
        """Take note of the calls that finished, without waiting."""
        for call in self._calls:
            if not call.settled and call.future.done():
                call.settled = True
                if call.future.exception() is None:
                    self._release(call.keys)

    def _release(self, keys: set[AggregateKey]) -> None:
        for key in keys:
            self._unconfirmed_keys[key] -= 1
            if not self._unconfirmed_keys[key]:
                del self._unconfirmed_keys[key]

    def confirmed_prefix(self) -> list[list[Message]]:
        """The batches of the calls confirmed before the first unconfirmed or failed one, in
        pour order, taken out of the window."""
        batches: list[list[Message]] = []
        while self._calls and self._calls[0].settled:
            if self._calls[0].future.exception() is not None:
                break
            batches.append(self._calls.popleft().batch)
        return batches

    def failure(self) -> BaseException | None:
        """The error of the first failed call in pour order, if any has failed."""
        for call in self._calls:
            if call.settled and call.future.exception() is not None:
                return call.future.exception()
        return None

    def confirmed_beyond_prefix(self) -> int:
        """After :meth:`wait_for_all`: the messages confirmed by the calls still in the window
        (after a failed one), the failed calls' own confirmed messages included."""
        count = 0
        for call in self._calls:
            error = call.future.exception()
            if error is None:
                count += len(call.batch)
            elif isinstance(error, MessageChannelError):
                count += error.confirmed_count
        return count

    def close(self) -> None:
        self._closed = True
        self._pool.shutdown(wait=True)


def batch_keys(batch: Sequence[Message]) -> set[AggregateKey]:
    return {aggregate_key(message) for message in batch}
