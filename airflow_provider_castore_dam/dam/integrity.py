"""The integrity check: one pass over a store's events as stored, counting them and finding
what would make Castore's reads, or a pour, go wrong.

Defect kinds (``DEFECT_KINDS``), each reported with the aggregate id and the versions involved:

- ``version_gap``: versions ``[a, b]`` follow each other with ``b > a + 1``.
- ``duplicated_version``: ``[v]`` is stored more than once (one defect per extra copy).
- ``first_version_not_1``: ``[v]``, the aggregate's lowest version, is not 1.
- ``clock_skew``: ``[a, b]``, ``b > a``, and ``b``'s timestamp is earlier than ``a``'s (``a``
  holds the latest timestamp of the versions before ``b``).
- ``unparseable_timestamp``: ``[v]``'s timestamp is absent or not ISO 8601 with a zone.
- ``missing_type``: ``[v]`` has no event type (absent or empty).
- ``unlisted_aggregate``: ``[1]`` exists but the store's aggregate listing does not see it
  (DynamoDB: the item lacks the ``initialEvents`` index keys), so Castore never lists it.

Stores that can read their events as stored (:class:`AuditableEventStore`) are read once with
bounded memory; any other store is read through its listing and ``get_events``, one aggregate
at a time, which cannot see unlisted aggregates.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypedDict

from airflow_provider_castore_dam.dam.inputs import (
    GetEventsOptions,
    ListAggregateIdsOptions,
    TimeRange,
    parse_event_store,
    parse_filters,
)
from airflow_provider_castore_dam.dam.reading import iter_aggregate_events, iter_aggregate_ids
from airflow_provider_castore_dam.errors import CastoreDamError, InvalidPourInputError
from airflow_provider_castore_dam.protocols import AuditableEventStore, EventStore, StoredEvent
from airflow_provider_castore_dam.timestamps import in_castore_form, normalize_timestamp

DEFECT_KINDS = (
    "version_gap",
    "duplicated_version",
    "first_version_not_1",
    "clock_skew",
    "unparseable_timestamp",
    "missing_type",
    "unlisted_aggregate",
)
DEFAULT_MAX_REPORTED_DEFECTS = 100


class Defect(TypedDict):
    kind: str
    aggregate_id: str
    versions: list[int]
    detail: str


class IntegrityReport(TypedDict):
    """What the check found in one event store (JSON types, ready for XCom)."""

    event_store_id: str
    aggregate_count: int
    event_count: int
    by_event_type: dict[str, int]
    defect_count: int
    defect_counts: dict[str, int]
    """Per defect kind, every kind present (0 when none)."""
    defects: list[Defect]
    """The first ``max_reported_defects`` defects, in the order the read found them."""
    listing_checked: bool
    """Whether unlisted aggregates could be found (the store was read as stored)."""


class IntegrityCheckError(CastoreDamError):
    """The check found defects of the kinds it was asked to fail on; ``reports`` holds every
    store's report."""

    def __init__(self, message: str, *, reports: dict[str, IntegrityReport]) -> None:
        super().__init__(message)
        self.reports = reports


def check_event_store_integrity(
    event_store: EventStore,
    filters: Mapping[str, Any] | None = None,
    *,
    max_reported_defects: int = DEFAULT_MAX_REPORTED_DEFECTS,
) -> IntegrityReport:
    """Count ``event_store``'s aggregates and events (per event type) and find its defects.

    ``filters``: ``from`` and ``to`` (inclusive), as for a pour: only aggregates whose first
    stored event's timestamp lies within them are checked, every one of their events. An
    aggregate whose first timestamp does not parse is always checked.
    """
    event_store = parse_event_store(event_store)
    time_range = parse_filters(filters)
    limit = parse_max_reported_defects(max_reported_defects)
    tally = _Tally(event_store.event_store_id, limit)
    if isinstance(event_store, AuditableEventStore):
        batches: Iterable[list[StoredEvent]] = event_store.audit_events()
        listing_checked = True
    else:
        batches = _listed_events(event_store, time_range)
        listing_checked = False
    try:
        _check(batches, time_range, tally)
    finally:
        close = getattr(batches, "close", None)
        if close is not None:
            close()
    return tally.report(listing_checked)


def parse_max_reported_defects(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidPourInputError(
            f"max_reported_defects must be an integer of at least 0, not {value!r}"
        )
    return value


def parse_fail_on(value: object) -> frozenset[str]:
    """The defect kinds that fail a check: ``"any"`` (all), ``"never"`` (none), or a list of
    kinds from :data:`DEFECT_KINDS`."""
    if value == "any":
        return frozenset(DEFECT_KINDS)
    if value == "never":
        return frozenset()
    if isinstance(value, str) or not isinstance(value, Collection) or not value:
        raise InvalidPourInputError(
            f"fail_on must be 'any', 'never' or a non-empty list of defect kinds, not {value!r}"
        )
    unknown = sorted(str(kind) for kind in value if kind not in DEFECT_KINDS)
    if unknown:
        raise InvalidPourInputError(
            f"unknown defect kind(s) {unknown} in fail_on; kinds: {', '.join(DEFECT_KINDS)}"
        )
    return frozenset(str(kind) for kind in value)


def raise_on_defects(reports: Mapping[str, IntegrityReport], fail_on: frozenset[str]) -> None:
    """Raise :class:`IntegrityCheckError` when a report counts a defect of a ``fail_on`` kind,
    naming each such store, its counts per kind and its first reported defects of those kinds."""
    lines = []
    for store_id, report in reports.items():
        failing = {k: n for k, n in report["defect_counts"].items() if k in fail_on and n}
        if not failing:
            continue
        counts = ", ".join(f"{n} {kind}" for kind, n in failing.items())
        lines.append(f"{store_id}: {counts}")
        lines += [
            f"  {defect_line(defect)}" for defect in report["defects"] if defect["kind"] in failing
        ][:10]
    if lines:
        raise IntegrityCheckError(
            "integrity check failed:\n" + "\n".join(lines), reports=dict(reports)
        )


def defect_line(defect: Defect) -> str:
    versions = ", ".join(map(str, defect["versions"]))
    return (
        f"{defect['kind']} in {defect['aggregate_id']!r} (versions {versions}): {defect['detail']}"
    )


# --------------------------------------------------------------------------- the pass


@dataclass
class _Tally:
    event_store_id: str
    max_reported: int
    aggregate_count: int = 0
    event_count: int = 0
    by_event_type: Counter[str] = field(default_factory=Counter)
    defect_counts: Counter[str] = field(default_factory=Counter)
    defects: list[Defect] = field(default_factory=list)

    def defect(self, kind: str, aggregate_id: str, versions: list[int], detail: str) -> None:
        self.defect_counts[kind] += 1
        if len(self.defects) < self.max_reported:
            self.defects.append(
                Defect(kind=kind, aggregate_id=aggregate_id, versions=versions, detail=detail)
            )

    def report(self, listing_checked: bool) -> IntegrityReport:
        return IntegrityReport(
            event_store_id=self.event_store_id,
            aggregate_count=self.aggregate_count,
            event_count=self.event_count,
            by_event_type=dict(sorted(self.by_event_type.items())),
            defect_count=sum(self.defect_counts.values()),
            defect_counts={kind: self.defect_counts[kind] for kind in DEFECT_KINDS},
            defects=self.defects,
            listing_checked=listing_checked,
        )


@dataclass
class _Aggregate:
    """Where the pass stands in the aggregate being read."""

    aggregate_id: str
    checked: bool
    version: int
    latest_timestamp: str | None = None
    latest_version: int = 0


def _check(batches: Iterable[list[StoredEvent]], time_range: TimeRange, tally: _Tally) -> None:
    current: _Aggregate | None = None
    for batch in batches:
        for event in batch:
            timestamp = castore_timestamp(event.timestamp)
            if current is None or event.aggregate_id != current.aggregate_id:
                current = _first_event(event, timestamp, time_range, tally)
            elif current.checked:
                _next_event(current, event, tally)
            if current.checked:
                _event(current, event, timestamp, tally)


def _first_event(
    event: StoredEvent, timestamp: str | None, time_range: TimeRange, tally: _Tally
) -> _Aggregate:
    checked = timestamp is None or time_range.contains(timestamp)
    aggregate = _Aggregate(event.aggregate_id, checked, event.version)
    if not checked:
        return aggregate
    tally.aggregate_count += 1
    if event.version != 1:
        tally.defect(
            "first_version_not_1", event.aggregate_id, [event.version], "no version 1 is stored"
        )
    elif not event.listed:
        tally.defect(
            "unlisted_aggregate",
            event.aggregate_id,
            [1],
            "its version 1 is not in the initialEvents index: Castore's listing never sees it",
        )
    return aggregate


def _next_event(aggregate: _Aggregate, event: StoredEvent, tally: _Tally) -> None:
    previous, version = aggregate.version, event.version
    if version == previous:
        tally.defect("duplicated_version", event.aggregate_id, [version], "stored more than once")
    elif version > previous + 1:
        missing = (
            str(previous + 1) if version == previous + 2 else f"{previous + 1} to {version - 1}"
        )
        tally.defect(
            "version_gap", event.aggregate_id, [previous, version], f"versions {missing} missing"
        )
    aggregate.version = version


def _event(aggregate: _Aggregate, event: StoredEvent, timestamp: str | None, tally: _Tally) -> None:
    tally.event_count += 1
    if event.type:
        tally.by_event_type[event.type] += 1
    else:
        tally.defect("missing_type", event.aggregate_id, [event.version], "the event has no type")
    if timestamp is None:
        tally.defect(
            "unparseable_timestamp",
            event.aggregate_id,
            [event.version],
            "the event has no timestamp"
            if event.timestamp is None
            else f"timestamp {event.timestamp!r} is not an ISO 8601 timestamp with a time zone",
        )
        return
    latest = aggregate.latest_timestamp
    if latest is not None and timestamp < latest and event.version > aggregate.latest_version:
        tally.defect(
            "clock_skew",
            event.aggregate_id,
            [aggregate.latest_version, event.version],
            f"version {event.version} at {timestamp} is earlier than version "
            f"{aggregate.latest_version} at {latest}",
        )
    elif latest is None or timestamp > latest:
        aggregate.latest_timestamp, aggregate.latest_version = timestamp, event.version


def castore_timestamp(stored: str | None) -> str | None:
    """A stored timestamp in Castore's form, or ``None`` when it does not parse."""
    if stored is None:
        return None
    if in_castore_form(stored):
        return stored
    try:
        return normalize_timestamp(stored, "timestamp")
    except InvalidPourInputError:
        return None


def _listed_events(store: EventStore, time_range: TimeRange) -> Iterator[list[StoredEvent]]:
    """A store that cannot read itself as stored, read aggregate by aggregate from its
    listing (bounded to ``time_range`` by initial event)."""
    options = ListAggregateIdsOptions(
        initial_event_after=time_range.start, initial_event_before=time_range.end
    )
    for aggregate in iter_aggregate_ids(store, options):
        events = iter_aggregate_events(store, aggregate["aggregate_id"], GetEventsOptions())
        yield [
            StoredEvent(
                aggregate["aggregate_id"],
                event["version"],
                event.get("type"),
                event.get("timestamp"),
            )
            for event in events
        ]
