"""What the event store destinations share (a store written to as a message channel, for
migrations): checking the messages, the conflict policy, and repeats after a resume.

A destination is a message channel (``publish_messages``) that writes each notification
message's event into a Castore event store table, under the message's ``eventStoreId``,
exactly as Castore's adapter for that table writes it. When an event's (store, aggregate,
version) is already there, the conflict policy decides:

- ``fail`` (default): the migration stops, naming the event
  (:class:`~airflow_provider_castore_dam.errors.EventAlreadyExistsError`);
- ``skip_identical``: an identical event (type, payload, metadata and timestamp to the
  millisecond) is left as it is; a different one fails as above;
- ``overwrite``: the event replaces what is there (Castore's ``force``).

A resumed pour publishes again at most its window of messages (``max_in_flight`` calls,
see docs/delivery.md), which the interrupted try may have written already: the engine tells
the destination (:meth:`Repeats.expect`), which then takes an identical event among those
as written, whatever the policy.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

from airflow_provider_castore_dam.errors import EventAlreadyExistsError, InvalidPourInputError
from airflow_provider_castore_dam.protocols import EventDetail, Message, check_max_in_flight
from airflow_provider_castore_dam.retry import RetryPolicy
from airflow_provider_castore_dam.timestamps import normalize_timestamp

CONFLICT_POLICIES = ("fail", "skip_identical", "overwrite")


def parse_conflict_policy(value: object) -> str:
    if value not in CONFLICT_POLICIES:
        raise InvalidPourInputError(
            f"conflict must be one of {', '.join(CONFLICT_POLICIES)}, not {value!r}"
        )
    return str(value)


@dataclass(frozen=True)
class Written:
    """One event to write: its store, the event detail, and its place in the call."""

    event_store_id: str
    event: EventDetail
    position: int

    @property
    def key(self) -> tuple[str, str, int]:
        return self.event_store_id, self.event["aggregateId"], self.event["version"]


def events_to_write(messages: Sequence[Message]) -> list[Written]:
    """The events of ``messages``, checked as an event store can hold them; an
    aggregate-exists message, or an event without a positive integer version, a non-empty
    type or a timestamp, is refused (the pour stops before this call writes anything)."""
    written = []
    for position, message in enumerate(messages):
        event = message.get("event")
        store_id = message.get("eventStoreId")
        if not isinstance(event, dict) or not isinstance(store_id, str) or not store_id:
            raise InvalidPourInputError(
                "an event store destination takes notification messages (eventStoreId and "
                f"event), not {str(message)[:200]}"
            )
        version = event.get("version")
        if (
            not isinstance(event.get("aggregateId"), str)
            or not event["aggregateId"]
            or isinstance(version, bool)
            or not isinstance(version, int)
            or version < 1
            or not isinstance(event.get("type"), str)
            or not event["type"]
        ):
            raise InvalidPourInputError(
                "an event store holds events with an aggregateId, a positive integer version "
                f"and a type, not {str(event)[:200]}"
            )
        timestamp = normalize_timestamp(event.get("timestamp"), "event timestamp")
        written.append(Written(store_id, {**event, "timestamp": timestamp}, position))
    return written


def without_duplicates(events: list[Written]) -> list[Written]:
    """``events`` with a key given twice kept once: the first when both are identical (the
    same message poured twice), refused when they differ."""
    seen: dict[tuple[str, str, int], Written] = {}
    kept = []
    for written in events:
        first = seen.get(written.key)
        if first is None:
            seen[written.key] = written
            kept.append(written)
        elif first.event != written.event:
            raise already_exists(written, "is written twice in one call, differently")
    return kept


def already_exists(written: Written, why: str) -> EventAlreadyExistsError:
    store_id, aggregate_id, version = written.key
    return EventAlreadyExistsError(
        f"event {version} of aggregate {aggregate_id!r} of event store {store_id!r} {why}",
        event_store_id=store_id,
        aggregate_id=aggregate_id,
        version=version,
    )


class Repeats:
    """How many of the next messages may be repeats of the interrupted try's writes (calls
    may run on several threads at once)."""

    def __init__(self) -> None:
        self._remaining = 0
        self._lock = threading.Lock()

    def expect(self, count: int) -> None:
        with self._lock:
            self._remaining = max(0, int(count))

    def take(self, count: int) -> bool:
        """Whether a call of ``count`` messages is within the repeats; counts them off."""
        with self._lock:
            within = self._remaining > 0
            self._remaining = max(0, self._remaining - count)
            return within


def settle_conflict(written: Written, identical: bool, policy: str, repeats_allowed: bool) -> None:
    """For an event already in the store: returns when the stored one may stay (the write is
    skipped), raises when the policy does not let the write go on. ``overwrite`` never gets
    here."""
    if identical and (policy == "skip_identical" or repeats_allowed):
        return
    if not identical:
        reason = "is already in the store with other content"
        if policy == "fail":
            reason = "is already in the store (conflict policy 'fail')"
    else:
        reason = (
            "is already in the store, identical (conflict policy 'fail'; "
            "'skip_identical' takes it as written)"
        )
    raise already_exists(written, reason)


class EventStoreDestination:
    """The message channel side of a destination: the conflict policy, the calls in flight,
    the retry policy and the repeats; a store's destination writes the events
    (:meth:`_write_events`)."""

    max_batch_size: int

    def __init__(self, conflict: str, max_in_flight: int, retry_policy: RetryPolicy | None) -> None:
        self._conflict = parse_conflict_policy(conflict)
        self.max_in_flight = check_max_in_flight(max_in_flight)
        self._retry_policy = retry_policy or RetryPolicy()
        self._repeats = Repeats()

    def expect_repeats(self, count: int) -> None:
        """The next ``count`` messages may repeat writes of an interrupted try."""
        self._repeats.expect(count)

    def publish_messages(self, messages: Sequence[Message], *, replay: bool) -> None:
        events = without_duplicates(events_to_write(messages))
        self._write_events(events, repeats_allowed=self._repeats.take(len(messages)))

    def _write_events(self, events: list[Written], repeats_allowed: bool) -> None:
        raise NotImplementedError
