"""Event details from the rows the queries return (``TableLayout.event_columns``)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from operator import itemgetter
from typing import Any

from airflow_provider_castore_dam.protocols import EventDetail, ScannedBatch

AGGREGATE_ID, VERSION = itemgetter(1), itemgetter(2)
"""Columns of a scan's rows."""
STORE_ID = itemgetter(6)
"""The column a joint scan adds."""

_raw_decode = json.JSONDecoder().raw_decode
"""``jsonb::text`` is compact, valid JSON with no leading blank: ``raw_decode`` parses it
without ``json.loads``'s per-call overhead (3x faster on small payloads)."""


def _json(text: str) -> Any:
    """A JSON value from PostgreSQL's text of a ``jsonb`` (stdlib parser)."""
    return _raw_decode(text)[0]


try:  # msgspec comes with Apache Airflow 3; its parser is 3x faster on small payloads.
    from msgspec import MsgspecError as _FastJsonError
    from msgspec.json import Decoder as _FastJsonDecoder
except ImportError:  # pragma: no cover - the stdlib parser does the same, slower
    _fast_json: Callable[[str], Any] = _json
    _FAST_JSON_ERRORS: tuple[type[Exception], ...] = ()
else:
    _fast_json = _FastJsonDecoder().decode
    _FAST_JSON_ERRORS = (_FastJsonError,)


def events(rows: Sequence[Sequence[Any]]) -> list[EventDetail]:
    """Event details from rows of ``TableLayout.event_columns``: SQL NULL payload or metadata
    is an absent key, any JSON value (``null`` included) is kept. When the fast parser refuses
    a value, the rows are parsed again by the standard library's parser."""
    try:
        return _events_parsed_by(rows, _fast_json)
    except _FAST_JSON_ERRORS:
        return _events_parsed_by(rows, _json)


def _events_parsed_by(
    rows: Sequence[Sequence[Any]], parse: Callable[[str], Any]
) -> list[EventDetail]:
    details: list[EventDetail] = []
    append = details.append
    for timestamp, aggregate_id, version, type_, data, metadata in rows:
        if metadata is None:  # the common cases first, each as one dict display
            if data is None:
                append(
                    {
                        "aggregateId": aggregate_id,
                        "version": version,
                        "type": type_,
                        "timestamp": timestamp,
                    }
                )
            else:
                append(
                    {
                        "aggregateId": aggregate_id,
                        "version": version,
                        "type": type_,
                        "payload": parse(data),
                        "timestamp": timestamp,
                    }
                )
            continue
        event: EventDetail = {"aggregateId": aggregate_id, "version": version, "type": type_}
        if data is not None:
            event["payload"] = parse(data)
        event["metadata"] = parse(metadata)
        event["timestamp"] = timestamp
        append(event)
    return details


def scanned(rows: Sequence[Sequence[Any]]) -> ScannedBatch:
    """Rows of the timestamp-ordered query: the pour timestamp is the event's own."""
    return ScannedBatch([row[0] for row in rows], events(rows))


def scanned_with_pour_timestamps(rows: Sequence[Sequence[Any]]) -> ScannedBatch:
    """Rows whose first column is the pour timestamp, followed by the event columns."""
    return ScannedBatch([row[0] for row in rows], events([row[1:] for row in rows]))
