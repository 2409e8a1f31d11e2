"""What the pour engine needs from an event store and a message channel, and nothing more.

Stores (``stores/``) and channels (``channels/``) implement these protocols; the engine (``dam/``)
only ever talks to them through these methods.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Generator, Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol, TypedDict, runtime_checkable

from airflow_provider_castore_dam.errors import InvalidPourInputError
from airflow_provider_castore_dam.selection import Selection

EventDetail = dict[str, Any]
"""A Castore event detail, camelCase keys exactly as stored: ``aggregateId``, ``version``,
``type``, ``timestamp`` and, when present, ``payload``, ``metadata``."""

Message = dict[str, Any]
"""A Castore message: ``{"eventStoreId", "event"}`` (notification) or
``{"eventStoreId", "aggregateId", "initialEventTimestamp"}`` (aggregate exists)."""

MessageKey = tuple[str, str, "int | None"]
"""What names a message: (event store id, aggregate id, version), with no version (None) for an
aggregate-exists message."""


def message_key(message: Message) -> MessageKey:
    """The key of a notification or aggregate-exists message."""
    event = message.get("event")
    if event is None:
        return message["eventStoreId"], message["aggregateId"], None
    return message["eventStoreId"], event["aggregateId"], event["version"]


class ScannedAggregate(TypedDict):
    aggregate_id: str
    initial_event_timestamp: str


@dataclass(frozen=True)
class AggregateIdsPage:
    aggregate_ids: list[ScannedAggregate]
    next_page_token: str | None = None


class ScannedEvent(NamedTuple):
    """An event of a time-ordered scan with the timestamp that places it in the pour order.

    ``pour_timestamp`` is the event's timestamp, or the latest timestamp among the earlier
    versions of its aggregate when that is later (clock skew), so an aggregate's events stay
    in version order.
    """

    pour_timestamp: str
    event: EventDetail


ScanPosition = tuple[str, str, int]
"""(pour timestamp, aggregate id, version): an event's place in a scan's pour order."""


@dataclass(slots=True)
class ScannedBatch:
    """Consecutive events of a time-ordered scan, in pour order, with their pour timestamps
    (``pour_timestamps[i]`` is ``events[i]``'s, as in :class:`ScannedEvent`).

    Two parallel lists rather than a list of pairs: a pour handles millions of events, and
    one object less per event is a tenth of a PostgreSQL pour's time."""

    pour_timestamps: list[str] = field(default_factory=list)
    events: list[EventDetail] = field(default_factory=list)

    @classmethod
    def of(cls, scanned: Iterable[ScannedEvent]) -> ScannedBatch:
        batch = cls()
        for pour_timestamp, event in scanned:
            batch.pour_timestamps.append(pour_timestamp)
            batch.events.append(event)
        return batch

    def __len__(self) -> int:
        return len(self.events)

    def __getitem__(self, index: slice) -> ScannedBatch:
        return ScannedBatch(self.pour_timestamps[index], self.events[index])

    def extend(self, other: ScannedBatch) -> None:
        self.pour_timestamps += other.pour_timestamps
        self.events += other.events

    def scanned_events(self) -> Iterator[ScannedEvent]:
        return map(ScannedEvent._make, zip(self.pour_timestamps, self.events, strict=True))

    def position(self, index: int) -> ScanPosition:
        event = self.events[index]
        return self.pour_timestamps[index], event["aggregateId"], event["version"]

    def count_before(self, pour_timestamp: str) -> int:
        """How many events come before ``pour_timestamp`` (they are the first ones)."""
        return bisect.bisect_left(self.pour_timestamps, pour_timestamp)

    def after(self, position: ScanPosition) -> ScannedBatch:
        """The events that come strictly after ``position``."""
        index = self.count_before(position[0])
        while index < len(self) and self.position(index) <= position:
            index += 1
        return self[index:]


def resume_scan(
    open_scan: Callable[[str | None], Iterator[ScannedBatch]],
    start: str | None,
    position: ScanPosition | None,
) -> Generator[ScannedBatch, None, None]:
    """A time-ordered scan from ``start`` that skips what was already delivered: every event
    up to and including ``position`` (nothing when it is None).

    ``open_scan(from_timestamp)`` is called now, from the later of ``start`` and
    ``position``'s pour timestamp (a scan from a timestamp places events exactly as a scan
    from the first event does); the events of that millisecond up to ``position`` are
    dropped. The batches are non-empty; closing the result closes the scan."""
    from_timestamp = start
    if position is not None and (start is None or position[0] > start):
        from_timestamp = position[0]
    return _batches_after(open_scan(from_timestamp), position)


def _batches_after(
    scan: Iterator[ScannedBatch], position: ScanPosition | None
) -> Generator[ScannedBatch, None, None]:
    try:
        for batch in scan:
            if position is not None and batch and batch.position(0) <= position:
                batch = batch.after(position)
            if batch:
                yield batch
    finally:
        close = getattr(scan, "close", None)
        if close is not None:
            close()


class EventStore(Protocol):
    """The read side of a Castore event store."""

    @property
    def event_store_id(self) -> str: ...

    def list_aggregate_ids(
        self,
        *,
        limit: int | None = None,
        page_token: str | None = None,
        initial_event_after: str | None = None,
        initial_event_before: str | None = None,
        reverse: bool = False,
    ) -> AggregateIdsPage:
        """One page of aggregates ordered by initial event timestamp (ties in a fixed order).

        Bounds are inclusive timestamps in Castore's form. ``page_token`` comes from the
        previous page, called with the same other arguments; paging never skips or repeats
        an aggregate.
        """
        ...

    def get_events(
        self,
        aggregate_id: str,
        *,
        min_version: int | None = None,
        max_version: int | None = None,
        limit: int | None = None,
        reverse: bool = False,
    ) -> list[EventDetail]:
        """Events of one aggregate in version order (descending with ``reverse``)."""
        ...


@runtime_checkable
class TimeOrderedEventStore(EventStore, Protocol):
    """An event store that can stream all its events in pour order by itself.

    Pours read such stores from worker threads where that saves time: they list every
    store's first and last aggregates at the same time (``list_aggregate_ids`` must allow
    concurrent calls), and a collection pour reads every store's first batch at once (a scan
    may then go on in another thread, never in two at once). A store whose optional
    attribute ``lists_beside_scans`` is true can also list while its scan is open: the
    listings then run while the scans read their first batches.
    """

    def scan_event_batches(
        self,
        *,
        from_timestamp: str | None = None,
        to_timestamp: str | None = None,
        selection: Selection | None = None,
    ) -> Iterator[ScannedBatch]:
        """Every event whose pour timestamp lies within the inclusive bounds (and, with
        ``selection``, that it selects: see :mod:`airflow_provider_castore_dam.selection`,
        pour timestamps then computed over the selected events), streamed in
        ``(pour_timestamp, aggregate_id, version)`` order with bounded memory, in non-empty
        batches (they keep the per-event work of long pours small). Closing the iterator
        releases what the scan holds."""
        ...


class JointScanBatch(NamedTuple):
    """Consecutive events of a joint scan of several stores, in pour order:
    ``event_store_ids[i]`` is the store of ``scanned.events[i]``."""

    event_store_ids: list[str]
    scanned: ScannedBatch


class ScanHandover(Exception):
    """A joint scan stopped early, after the last event it yielded; each store's own scan
    takes over from its last yielded event (from its start if it had none yet)."""


@runtime_checkable
class JointlyScannableEventStore(TimeOrderedEventStore, Protocol):
    """A time-ordered store that can scan itself together with other such stores in one
    read (PostgreSQL stores sharing a table: one query instead of one per store)."""

    @property
    def joint_scan_key(self) -> Hashable | None:
        """Stores with equal keys (never None) can be scanned jointly."""
        ...

    def scan_jointly(
        self,
        stores: Sequence[JointlyScannableEventStore],
        *,
        to_timestamp: str | None = None,
        selection: Selection | None = None,
    ) -> Iterator[JointScanBatch]:
        """The events of ``stores`` (all sharing this store's key) whose pour timestamps are
        not after ``to_timestamp`` (those ``selection`` selects, when given), in pour
        order across the stores, in non-empty batches.

        It may stop with :class:`ScanHandover` at any point it cannot go on by itself (clock
        skew, a transient error...); what it yielded before is final. Closing the iterator
        releases what the scan holds."""
        ...


@runtime_checkable
class PrefetchingEventStore(EventStore, Protocol):
    """An event store that can start fetching several aggregates' events ahead of need.

    ``prefetch_events(ids, **options)`` returns at once; a later ``get_events(id, **options)``
    with the same arguments returns the prefetched events (or raises the prefetch's error).
    Prefetching is only a hint: the store may drop prefetched results, never serves them for
    other arguments, and ``get_events`` stays correct whether or not it was called.
    """

    def prefetch_events(
        self,
        aggregate_ids: Iterable[str],
        *,
        min_version: int | None = None,
        max_version: int | None = None,
        limit: int | None = None,
        reverse: bool = False,
    ) -> None: ...


class StoredEvent(NamedTuple):
    """An event as its store holds it, read without the checks a pour makes (for the
    integrity check, :mod:`airflow_provider_castore_dam.dam.integrity`).

    ``type`` and ``timestamp`` are the stored text (``None`` when absent or not text); a
    timestamp is in Castore's form where the store formats it (PostgreSQL), as stored
    otherwise (DynamoDB). ``listed`` is false for an aggregate's version-1 event that the
    store's aggregate listing cannot see (DynamoDB: the item lacks the ``initialEvents``
    index keys); it is true for every other event.
    """

    aggregate_id: str
    version: int
    type: str | None
    timestamp: str | None
    listed: bool = True


@runtime_checkable
class AuditableEventStore(EventStore, Protocol):
    """An event store that can read all its events as stored, in one pass."""

    def audit_events(self) -> Iterator[list[StoredEvent]]:
        """Every event of the store, in non-empty batches, with bounded memory. The events of
        one aggregate come one after another, in ascending version order (a duplicated version
        once per stored copy); aggregates come in any order. Items that are not events of this
        store at all (no aggregate id, no integer version) are not yielded. Closing the
        iterator releases what the read holds."""
        ...


MAX_IN_FLIGHT = 256
"""The most publish calls a channel may have in flight (a pour runs each on its own thread)."""


def check_max_in_flight(value: object, name: str = "max_in_flight") -> int:
    """``value`` if it is a valid ``max_in_flight``: an integer from 1 to :data:`MAX_IN_FLIGHT`."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_IN_FLIGHT:
        shown = repr(value) if len(repr(value)) <= 100 else repr(value)[:97] + "..."
        raise InvalidPourInputError(
            f"{name} must be an integer from 1 to {MAX_IN_FLIGHT}, not {shown}"
        )
    return value


class MessageChannel(Protocol):
    """The write side: where poured messages go.

    A channel whose calls may run at once has an optional attribute ``max_in_flight`` (an
    int, 1 to 256): the pour then makes up to that many ``publish_messages`` calls at the
    same time, from worker threads, never two holding the same aggregate (see
    :mod:`airflow_provider_castore_dam.dam.in_flight`). Without it, calls are one at a time.

    A channel that refuses what it already holds (an event store destination) has an optional
    method ``expect_repeats(count)``: a resumed pour calls it first, with the most messages
    it may publish again (its window), which the channel then takes as already written.
    """

    @property
    def max_batch_size(self) -> int:
        """Most messages one ``publish_messages`` call accepts."""
        ...

    def publish_messages(self, messages: Sequence[Message], *, replay: bool) -> None:
        """Publish messages in order; return only once the channel confirmed every one.

        Raises :class:`~airflow_provider_castore_dam.errors.MessageChannelError` (with the
        number of confirmed messages) when some could not be confirmed.
        """
        ...
