"""Listing aggregates by their initial event, with keyset page tokens."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import re
from typing import Any

from psycopg import sql

from airflow_provider_castore_dam.errors import EventStoreError
from airflow_provider_castore_dam.protocols import AggregateIdsPage, ScannedAggregate
from airflow_provider_castore_dam.stores.postgres.event_table import EventTable
from airflow_provider_castore_dam.stores.postgres.layout import EXACT_TIMESTAMP

INT64_MAX = 2**63 - 1
_TOKEN_VERSION = "pg1"
_EXACT_TIMESTAMP_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z")


def list_aggregates(
    table: EventTable,
    *,
    size: int,
    after: str | None,
    before: str | None,
    last: tuple[str, int] | None,
    reverse: bool,
) -> AggregateIdsPage:
    """One page of ``size`` aggregates ordered by initial event ``(timestamp, id)``, with
    normalized inclusive bounds, after the row ``last`` (a decoded page token)."""
    layout = table.layout
    conditions: list[sql.Composable] = [sql.SQL("aggregate_name = %(store)s AND version = 1")]
    params: dict[str, Any] = {"store": table.event_store_id, "limit": size + 1}
    timestamp = sql.Identifier("timestamp")
    conditions += layout.within(after, before, params)
    if last is not None:
        conditions.append(
            sql.SQL("({}, id) {} ({}, %(last_id)s)").format(
                timestamp, sql.SQL("<" if reverse else ">"), layout.bound("last_timestamp")
            )
        )
        params["last_timestamp"], params["last_id"] = last
    direction = sql.SQL("DESC" if reverse else "ASC")
    query = sql.SQL(
        "SELECT aggregate_id::text, {text}, {exact}, id FROM {table} WHERE {conditions} "
        "ORDER BY {timestamp} {direction}, id {direction} LIMIT %(limit)s"
    ).format(
        text=layout.text_of(layout.utc_timestamp),
        exact=layout.text_of(layout.utc_timestamp, EXACT_TIMESTAMP),
        table=layout.table,
        conditions=sql.SQL(" AND ").join(conditions),
        timestamp=timestamp,
        direction=direction,
    )
    rows = table.fetch_all("listing aggregates", query, params)
    page = rows[:size]
    next_token = None
    if len(rows) > size:
        _, _, exact, row_id = page[-1]
        next_token = encode_page_token(reverse, exact, row_id)
    return AggregateIdsPage(
        aggregate_ids=[
            ScannedAggregate(aggregate_id=aggregate_id, initial_event_timestamp=initial)
            for aggregate_id, initial, _, _ in page
        ],
        next_page_token=next_token,
    )


def encode_page_token(reverse: bool, exact_timestamp: str, row_id: int) -> str:
    document = json.dumps([_TOKEN_VERSION, "r" if reverse else "f", exact_timestamp, row_id])
    return base64.urlsafe_b64encode(document.encode()).decode().rstrip("=")


def decode_page_token(token: object, reverse: bool) -> tuple[str, int]:
    """``(exact timestamp, id)`` of the last row of the previous page; anything but a token
    this store made for a listing in the same direction raises :class:`EventStoreError`."""
    if not isinstance(token, str) or len(token) > 200:
        raise EventStoreError(f"malformed page token {token!r}")
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        document = json.loads(raw)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise EventStoreError(f"malformed page token {token!r}") from None
    if not (
        isinstance(document, list)
        and len(document) == 4
        and document[0] == _TOKEN_VERSION
        and document[1] in ("f", "r")
        and isinstance(document[2], str)
        and _EXACT_TIMESTAMP_RE.fullmatch(document[2])
        and type(document[3]) is int
        and -INT64_MAX - 1 <= document[3] <= INT64_MAX
    ):
        raise EventStoreError(f"malformed page token {token!r}")
    try:
        dt.datetime.strptime(document[2], "%Y-%m-%dT%H:%M:%S.%fZ")
    except ValueError:
        raise EventStoreError(f"malformed page token {token!r}") from None
    if (document[1] == "r") != reverse:
        made = "a reverse" if document[1] == "r" else "a forward"
        raise EventStoreError(
            f"page token {token!r} comes from {made} listing; pass the same reverse value"
        )
    return document[2], document[3]
