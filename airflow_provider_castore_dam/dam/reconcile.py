"""Reconciliation: did a pour confirm exactly what its source holds, and does a queue hold
exactly that?

:func:`reconcile_pour` takes a pour's result, whose ``digest`` names the pour (utility and
normalised inputs) and what the channel confirmed (:mod:`.digest`), and:

1. pours the same stores again with the same inputs into a channel that publishes nothing
   (a dry run), which gives the source's digest now;
2. compares it with the pour's, per event store: count and hash;
3. when given the keys of the messages a queue holds (``delivered``, e.g.
   :func:`~airflow_provider_castore_dam.channels.sqs_audit.sqs_message_keys`), sorts them and
   the dry run's keys (with bounded memory: :mod:`~airflow_provider_castore_dam.external_sort`)
   and walks both, naming the messages missing from the queue, those it holds that the source
   does not (extra), and those it holds more than once (duplicated).

The source must not have changed since the pour: reconcile a pour bounded by ``filters.to``,
or of a store that is no longer written (the source of a migration).
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterable, Iterator, Mapping, Sequence
from operator import itemgetter
from typing import Any, TypedDict

from airflow_provider_castore_dam.dam.digest import Digest, StoreDigest, parse_store_digests
from airflow_provider_castore_dam.dam.pour_aggregate_events import pour_aggregate_events
from airflow_provider_castore_dam.dam.pour_event_store_aggregate_ids import (
    pour_event_store_aggregate_ids,
)
from airflow_provider_castore_dam.dam.pour_event_store_collection_events import (
    pour_event_store_collection_events,
)
from airflow_provider_castore_dam.dam.pour_event_store_events import pour_event_store_events
from airflow_provider_castore_dam.errors import CastoreDamError, InvalidPourInputError
from airflow_provider_castore_dam.external_sort import Spool, external_sort
from airflow_provider_castore_dam.protocols import (
    EventStore,
    Message,
    MessageKey,
    message_key,
)

DEFAULT_MAX_REPORTED = 20
_SPOOL_CHUNK = 1_000
_EMPTY = StoreDigest(count=0, hash=f"{0:032x}")


class MessageName(TypedDict):
    aggregate_id: str
    version: int | None


class DeliveredCounts(TypedDict):
    count: int
    """Messages the queue held, each copy counted."""
    distinct: StoreDigest
    """The digest of the distinct messages (duplicates removed)."""


class StoreReconciliation(TypedDict):
    source: StoreDigest
    poured: StoreDigest
    delivered: DeliveredCounts | None
    missing_count: int
    extra_count: int
    duplicated_count: int
    """Extra copies: a message held three times counts 2."""
    missing: list[MessageName]
    extra: list[MessageName]
    duplicated: list[MessageName]
    matches: bool


class Reconciliation(TypedDict):
    utility: str
    event_stores: dict[str, StoreReconciliation]
    matches: bool


class ReconciliationError(CastoreDamError):
    """A pour does not match its source, or a queue does not hold what the pour confirmed;
    ``reconciliation`` holds the whole report."""

    def __init__(self, message: str, *, reconciliation: Reconciliation) -> None:
        super().__init__(message)
        self.reconciliation = reconciliation


def reconcile_pour(
    pour_result: Mapping[str, Any],
    event_stores: Sequence[EventStore],
    *,
    delivered: Iterable[MessageKey] | None = None,
    allow_duplicates: bool = False,
    max_reported: int = DEFAULT_MAX_REPORTED,
) -> Reconciliation:
    """Compare a pour's digest with a dry run of the same pour over ``event_stores`` (those
    the pour read, by id), and with the ``delivered`` message keys when given. Duplicated
    deliveries count as a mismatch unless ``allow_duplicates`` (a resumed pour delivers up to
    its window again, see docs/delivery.md). Returns the report; raises nothing on mismatch
    (see :func:`raise_on_mismatch`)."""
    utility, inputs, poured = parse_pour_digest(pour_result)
    stores = _stores_by_id(event_stores, inputs)
    limit = _max_reported(max_reported)
    if not isinstance(allow_duplicates, bool):
        raise InvalidPourInputError(
            f"allow_duplicates must be true or false, not {allow_duplicates!r}"
        )
    spool = _KeySpool()
    try:
        source = _dry_run(utility, inputs, stores, spool)
        reports = {
            store_id: _compare_digests(source.get(store_id), poured[store_id])
            for store_id in poured
        }
        if delivered is not None:
            _compare_keys(spool.keys(), delivered, reports, limit, allow_duplicates)
    finally:
        spool.close()
    return Reconciliation(
        utility=utility,
        event_stores=reports,
        matches=all(report["matches"] for report in reports.values()),
    )


def raise_on_mismatch(reconciliation: Reconciliation) -> None:
    """Raise :class:`ReconciliationError` naming every store that does not match: its counts
    and its first missing, extra and duplicated messages."""
    lines = []
    for store_id, report in reconciliation["event_stores"].items():
        if report["matches"]:
            continue
        lines.append(f"{store_id}: {describe_counts(report)}")
        for kind, names in (
            ("missing", report["missing"]),
            ("extra", report["extra"]),
            ("duplicated", report["duplicated"]),
        ):
            if names:
                shown = ", ".join(f"{n['aggregate_id']!r} v{n['version']}" for n in names)
                lines.append(f"  {kind}: {shown}")
    if lines:
        raise ReconciliationError(
            "reconciliation failed:\n" + "\n".join(lines), reconciliation=reconciliation
        )


def describe_counts(report: StoreReconciliation) -> str:
    text = f"source {report['source']['count']}, poured {report['poured']['count']}"
    if report["source"]["hash"] != report["poured"]["hash"]:
        text += " (digests differ)"
    delivered = report["delivered"]
    if delivered is not None:
        text += (
            f", delivered {delivered['count']} ({report['missing_count']} missing, "
            f"{report['extra_count']} extra, {report['duplicated_count']} duplicated)"
        )
    return text


def parse_pour_digest(
    pour_result: object,
) -> tuple[str, dict[str, Any], dict[str, StoreDigest]]:
    """The utility, inputs and per-store digests of a pour's result."""
    digest = pour_result.get("digest") if isinstance(pour_result, Mapping) else None
    if not isinstance(digest, Mapping):
        raise InvalidPourInputError(
            "pour_result must be a pour's result with its digest (what a pour returns, or "
            f"its task's XCom), not {str(pour_result)[:200]}"
        )
    utility, inputs = digest.get("utility"), digest.get("inputs")
    if utility not in _DRY_RUNS or not isinstance(inputs, Mapping):
        raise InvalidPourInputError(
            f"the pour result's digest names no pour this engine knows: {str(digest)[:200]}"
        )
    return str(utility), dict(inputs), parse_store_digests(digest.get("event_stores"))


# --------------------------------------------------------------------------- the dry run


class _KeySpool:
    """A channel that publishes nothing and spools the keys of what it is given to a
    temporary file, to be read back in the same order (bounded memory at any size)."""

    max_batch_size = _SPOOL_CHUNK

    def __init__(self) -> None:
        self._spool: Spool[MessageKey] = Spool(prefix="castore-dam-keys-")

    def publish_messages(self, messages: Sequence[Message], *, replay: bool) -> None:
        self._spool.write([message_key(message) for message in messages])

    def keys(self) -> Iterator[MessageKey]:
        return iter(self._spool)

    def close(self) -> None:
        self._spool.close()


def _transforms(inputs: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "transform": inputs.get("transform"),
        "rename_event_stores": inputs.get("rename_event_stores"),
    }


def _one(stores: Mapping[str, EventStore]) -> EventStore:
    return next(iter(stores.values()))


_DRY_RUNS: dict[str, Any] = {
    "pour_event_store_events": lambda stores, inputs, channel: pour_event_store_events(
        _one(stores),
        channel,
        inputs["filters"],
        partition=inputs.get("partition"),
        **_transforms(inputs),
    ),
    "pour_event_store_collection_events": lambda stores, inputs, channel: (
        pour_event_store_collection_events(
            list(stores.values()),
            channel,
            inputs["filters"],
            partition=inputs.get("partition"),
            **_transforms(inputs),
        )
    ),
    "pour_event_store_aggregate_ids": lambda stores, inputs, channel: (
        pour_event_store_aggregate_ids(
            _one(stores), channel, inputs["options"], filters=inputs.get("filters")
        )
    ),
    "pour_aggregate_events": lambda stores, inputs, channel: pour_aggregate_events(
        _one(stores),
        channel,
        inputs["aggregate_id"],
        inputs["options"],
        inputs["filters"],
        **_transforms(inputs),
    ),
}


def _dry_run(
    utility: str, inputs: Mapping[str, Any], stores: Mapping[str, EventStore], spool: _KeySpool
) -> dict[str, StoreDigest]:
    try:
        result = _DRY_RUNS[utility](stores, inputs, spool)
    except KeyError as error:
        raise InvalidPourInputError(
            f"the pour result's digest lacks input {error} of {utility}"
        ) from error
    return dict(result["digest"]["event_stores"])


def _stores_by_id(
    event_stores: Sequence[EventStore], inputs: Mapping[str, Any]
) -> dict[str, EventStore]:
    """The stores in the order of the pour's inputs; exactly those the pour read."""
    wanted = inputs.get("event_store_ids") or [inputs.get("event_store_id")]
    given = {getattr(store, "event_store_id", None): store for store in event_stores}
    if sorted(map(str, given)) != sorted(map(str, wanted)):
        raise InvalidPourInputError(
            f"the pour read event stores {wanted}; reconcile it with exactly those, not "
            f"{sorted(map(str, given))}"
        )
    return {store_id: given[store_id] for store_id in wanted}


def _max_reported(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidPourInputError(f"max_reported must be an integer of at least 0, not {value!r}")
    return value


# --------------------------------------------------------------------------- comparing


def _compare_digests(source: StoreDigest | None, poured: StoreDigest) -> StoreReconciliation:
    source = source or _EMPTY
    return StoreReconciliation(
        source=source,
        poured=poured,
        delivered=None,
        missing_count=0,
        extra_count=0,
        duplicated_count=0,
        missing=[],
        extra=[],
        duplicated=[],
        matches=source == poured,
    )


SortKey = tuple[str, str, int]
"""A message key with version 0 for aggregate-exists messages (None does not sort)."""


def _sort_key(key: MessageKey) -> SortKey:
    return key[0], key[1], key[2] or 0


def _identity(key: SortKey) -> SortKey:
    return key


def _compare_keys(
    source: Iterable[MessageKey],
    delivered: Iterable[MessageKey],
    reports: dict[str, StoreReconciliation],
    limit: int,
    allow_duplicates: bool,
) -> None:
    """Walk the source's and the delivered keys in key order, with the copies of each."""
    counts = dict.fromkeys(reports, 0)
    distinct = Digest(reports)
    for key, in_source, in_queue in _copies(source, delivered):
        store_id = key[0]
        if store_id not in reports:  # a store the pour did not read
            reports[store_id] = _compare_digests(None, _EMPTY)
            counts[store_id] = 0
        report = reports[store_id]
        counts[store_id] += in_queue
        if in_queue:
            distinct.add_key(key)
        name = MessageName(aggregate_id=key[1], version=key[2] or None)
        if not in_queue:
            report["missing_count"] += in_source
            _name(report["missing"], name, limit)
        elif not in_source:
            report["extra_count"] += in_queue
            _name(report["extra"], name, limit)
        elif in_queue > in_source:
            report["duplicated_count"] += in_queue - in_source
            _name(report["duplicated"], name, limit)
    digests = distinct.as_json()
    for store_id, report in reports.items():
        report["delivered"] = DeliveredCounts(count=counts[store_id], distinct=digests[store_id])
        report["matches"] = (
            report["matches"]
            and not report["missing_count"]
            and not report["extra_count"]
            and (allow_duplicates or not report["duplicated_count"])
            and digests[store_id] == report["poured"]
        )


def _name(names: list[MessageName], name: MessageName, limit: int) -> None:
    if len(names) < limit:
        names.append(name)


def _copies(
    source: Iterable[MessageKey], delivered: Iterable[MessageKey]
) -> Iterator[tuple[SortKey, int, int]]:
    """(key, copies in the source, copies delivered) of every key of either, in key order."""
    tagged = heapq.merge(
        ((key, 0) for key in external_sort(map(_sort_key, source), key=_identity)),
        ((key, 1) for key in external_sort(map(_sort_key, delivered), key=_identity)),
    )
    for key, group in itertools.groupby(tagged, key=itemgetter(0)):
        tags = [tag for _, tag in group]
        yield key, tags.count(0), tags.count(1)
