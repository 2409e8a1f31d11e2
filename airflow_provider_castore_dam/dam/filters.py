"""A pour's ``filters``: timestamps (``from``, ``to``), event types and aggregate ids.

- ``event_types``: a list of types to pour (``["APPEARED", "CAUGHT"]``), or
  ``{"include": [...], "exclude": [...]}`` (either or both).
- ``aggregate_ids``: a list of ids, or ``{"file": path}``: a text file of ids, one a line
  (blank lines and surrounding spaces ignored).

Each utility takes the keys that mean something for it (:data:`EVENT_POUR_KEYS` and the
others); any other key, an empty list, an empty id or type, or an unreadable file fails
before anything is read. The normalised filters (:meth:`PourFilters.as_json`) go into the
pour's checkpoints and digest: lists sorted; a file as its path, id count and the SHA-256 of
its sorted ids, so that a resume or a reconciliation reading a changed file is refused.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airflow_provider_castore_dam.dam.inputs import TimeRange, parse_filters
from airflow_provider_castore_dam.errors import InvalidPourInputError
from airflow_provider_castore_dam.partitions import Partition
from airflow_provider_castore_dam.selection import Selection

EVENT_POUR_KEYS = ("from", "to", "event_types", "aggregate_ids")
AGGREGATE_EVENTS_KEYS = ("from", "to", "event_types")
AGGREGATE_IDS_KEYS = ("aggregate_ids",)


@dataclass(frozen=True)
class PourFilters:
    time_range: TimeRange
    event_types: frozenset[str] | None = None
    excluded_event_types: frozenset[str] = frozenset()
    aggregate_ids: frozenset[str] | None = None
    aggregate_ids_json: Any = None
    """How ``aggregate_ids`` are recorded: the sorted list, or the file's record."""

    def selection(self, partition: Partition | None = None) -> Selection | None:
        """What a store reads, with the partition, if any; None for everything."""
        selection = Selection(
            partition, self.aggregate_ids, self.event_types, self.excluded_event_types
        )
        if not (selection.selects_aggregates or selection.selects_types):
            return None
        return selection

    def as_json(self) -> dict[str, Any]:
        """The normalised filters; keys not given are left out but ``from`` and ``to``."""
        recorded: dict[str, Any] = dict(self.time_range.as_json())
        types: dict[str, list[str]] = {}
        if self.event_types is not None:
            types["include"] = sorted(self.event_types)
        if self.excluded_event_types:
            types["exclude"] = sorted(self.excluded_event_types)
        if types:
            recorded["event_types"] = types
        if self.aggregate_ids_json is not None:
            recorded["aggregate_ids"] = self.aggregate_ids_json
        return recorded


def parse_pour_filters(filters: object, allowed: Sequence[str] = EVENT_POUR_KEYS) -> PourFilters:
    """``filters`` checked against the keys ``allowed`` for the utility."""
    if filters is not None and not isinstance(filters, Mapping):
        raise InvalidPourInputError(
            f"filters must be a mapping, not {type(filters).__name__} {repr(filters)[:100]}"
        )
    values = dict(filters or {})
    unknown = sorted(set(values) - set(allowed))
    if unknown:
        raise InvalidPourInputError(
            f"unknown filters key(s) {unknown}; allowed here: {', '.join(allowed)}"
        )
    time_range = parse_filters({k: values[k] for k in ("from", "to") if k in values})
    included, excluded = _event_types(values.get("event_types"))
    aggregate_ids, recorded = _aggregate_ids(values.get("aggregate_ids"))
    return PourFilters(time_range, included, excluded, aggregate_ids, recorded)


def _names(value: object, name: str) -> frozenset[str]:
    if (
        isinstance(value, (str, bytes, Mapping))
        or not isinstance(value, Sequence)
        or not value
        or not all(isinstance(item, str) and item for item in value)
    ):
        raise InvalidPourInputError(
            f"{name} must be a non-empty list of non-empty strings, not {str(value)[:100]}"
        )
    return frozenset(value)


def _event_types(value: object) -> tuple[frozenset[str] | None, frozenset[str]]:
    if value is None:
        return None, frozenset()
    if not isinstance(value, Mapping):
        return _names(value, "filters.event_types"), frozenset()
    unknown = sorted(set(value) - {"include", "exclude"})
    if unknown or not value:
        raise InvalidPourInputError(
            "filters.event_types must be a list of types or {'include': [...], 'exclude': "
            f"[...]}}, not {dict(value)}"
        )
    included = value.get("include")
    excluded = value.get("exclude")
    return (
        None if included is None else _names(included, "filters.event_types.include"),
        frozenset() if excluded is None else _names(excluded, "filters.event_types.exclude"),
    )


def _aggregate_ids(value: object) -> tuple[frozenset[str] | None, Any]:
    if value is None:
        return None, None
    if not isinstance(value, Mapping):
        ids = _names(value, "filters.aggregate_ids")
        return ids, sorted(ids)
    if "file" not in value or set(value) - {"file", "count", "sha256"}:
        raise InvalidPourInputError(
            f"filters.aggregate_ids must be a list of ids or {{'file': path}}, not {dict(value)}"
        )
    path = value["file"]
    ids = _read_ids(path)
    fingerprint = _fingerprint(ids)
    if value.get("sha256", fingerprint) != fingerprint:
        raise InvalidPourInputError(
            f"filters.aggregate_ids file {path!r} changed since the pour that recorded it "
            f"({value.get('count')} ids then, {len(ids)} now): it cannot be resumed or "
            "reconciled with other ids"
        )
    return ids, {"file": str(path), "count": len(ids), "sha256": fingerprint}


def _read_ids(path: object) -> frozenset[str]:
    if not isinstance(path, (str, Path)) or not str(path):
        raise InvalidPourInputError(f"filters.aggregate_ids.file must be a path, not {path!r}")
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise InvalidPourInputError(
            f"cannot read the aggregate ids of filters.aggregate_ids.file {str(path)!r}: {error}"
        ) from error
    ids = frozenset(line.strip() for line in lines if line.strip())
    if not ids:
        raise InvalidPourInputError(f"filters.aggregate_ids.file {str(path)!r} holds no id")
    return ids


def _fingerprint(ids: frozenset[str]) -> str:
    return hashlib.sha256("\n".join(sorted(ids)).encode("utf-8")).hexdigest()
