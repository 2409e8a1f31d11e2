"""Publish calls in flight at once, without ever reordering an aggregate.

The window holds the messages from the oldest one not yet confirmed on, in pour order: at most
``max_calls x batch_size`` of them. A call takes the first *ready* messages of the window, up
to a batch: a message is ready when every earlier unconfirmed message of its aggregate (same
event store, same aggregate id) is in the same call. So an aggregate's messages reach the
channel in order, one confirmed call after another, while a message of a busy aggregate does
not hold back the others behind it.

Calls are confirmed in any order, but the pour only moves on over the *confirmed prefix* of
the window: the messages before the first unconfirmed one (gap-aware, as a commit handler that
checkpoints only below its lowest pending position). A crash therefore repeats at most the
window: ``max_calls`` calls' worth of messages. The window is driven from one thread; the calls
run on a pool of ``max_calls`` threads.
"""

from __future__ import annotations

from collections import deque
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


@dataclass(eq=False)
class Slot:
    """One message of the window."""

    message: Message
    key: AggregateKey
    confirmed: bool = False


@dataclass(eq=False)
class Call:
    slots: list[Slot]
    future: Future[None]
    settled: bool = field(default=False)

    @property
    def error(self) -> BaseException | None:
        return self.future.exception() if self.settled else None


class InFlightWindow:
    """Starts ``publish(batch)`` calls on worker threads, at most ``max_calls`` at once."""

    def __init__(
        self, publish: Callable[[list[Message]], None], max_calls: int, batch_size: int
    ) -> None:
        self._publish = publish
        self._max_calls = max_calls
        self._batch_size = batch_size
        self._capacity = max_calls * batch_size
        self._pool = ThreadPoolExecutor(max_calls, thread_name_prefix="castore-dam-publish")
        self._slots: deque[Slot] = deque()
        self._pending: list[Slot] = []
        """The slots not in a call yet, in pour order."""
        self._unconfirmed: dict[AggregateKey, deque[Slot]] = {}
        self._calls: list[Call] = []
        """The calls not settled yet, and the failed ones."""
        self.closed = False

    @property
    def room(self) -> int:
        """How many more messages the window takes."""
        return self._capacity - len(self._slots)

    @property
    def has_pending(self) -> bool:
        return bool(self._pending)

    def add(self, messages: Sequence[Message]) -> None:
        for message in messages:
            slot = Slot(message, aggregate_key(message))
            self._slots.append(slot)
            self._pending.append(slot)
            self._unconfirmed.setdefault(slot.key, deque()).append(slot)

    def can_start(self) -> bool:
        return sum(not call.settled for call in self._calls) < self._max_calls

    def next_batch(self, *, partial: bool) -> list[Slot]:
        """The first ready pending messages, up to a batch; with ``partial`` false, only a
        whole batch (else nothing)."""
        batch: list[Slot] = []
        taken: dict[AggregateKey, int] = {}
        for slot in self._pending:
            earlier = self._unconfirmed[slot.key]
            position = taken.get(slot.key, 0)
            if earlier[position] is slot:  # every earlier unconfirmed one is in this batch
                batch.append(slot)
                taken[slot.key] = position + 1
                if len(batch) == self._batch_size:
                    break
        if len(batch) < self._batch_size and not partial:
            return []
        return batch

    def start(self, batch: list[Slot]) -> None:
        chosen = set(map(id, batch))
        self._pending = [slot for slot in self._pending if id(slot) not in chosen]
        future = self._pool.submit(self._publish, [slot.message for slot in batch])
        self._calls.append(Call(batch, future))

    def wait_for_one(self) -> None:
        """Until at least one more call has finished."""
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
            if call.settled or not call.future.done():
                continue
            call.settled = True
            if call.future.exception() is None:
                for slot in call.slots:
                    slot.confirmed = True
                    unconfirmed = self._unconfirmed[slot.key]
                    unconfirmed.popleft()  # it was its aggregate's earliest unconfirmed one
                    if not unconfirmed:
                        del self._unconfirmed[slot.key]
        self._calls = [call for call in self._calls if not call.settled or call.error]

    def confirmed_prefix(self) -> list[Message]:
        """The messages confirmed before the first unconfirmed one, in pour order, taken out
        of the window."""
        messages: list[Message] = []
        while self._slots and self._slots[0].confirmed:
            messages.append(self._slots.popleft().message)
        return messages

    def failure(self) -> BaseException | None:
        """The error of the first failed call, if any has failed."""
        return next((call.error for call in self._calls if call.error is not None), None)

    def confirmed_beyond_prefix(self) -> int:
        """After :meth:`wait_for_all`: the messages still in the window that were confirmed
        (past a failed call), the failed calls' own confirmed messages included."""
        count = sum(slot.confirmed for slot in self._slots)
        for call in self._calls:
            if isinstance(call.error, MessageChannelError):
                count += call.error.confirmed_count
        return count

    def close(self) -> None:
        self.closed = True
        self._pool.shutdown(wait=True)
