"""The SQL of time-ordered scans: events in timestamp order, the clock-skew check, and the
skew-safe tail."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg import sql

from airflow_provider_castore_dam.selection import Selection
from airflow_provider_castore_dam.stores.postgres.layout import (
    EVENT_COLUMNS,
    TableLayout,
    millis_bound,
)


def scan_query(
    layout: TableLayout,
    event_store_id: str,
    start: str | None,
    end: str | None,
    store_ids: Sequence[str] | None = None,
    selection: Selection | None = None,
) -> tuple[sql.Composed, dict[str, Any]]:
    """The store's events between the bounds, in ``(timestamp, aggregate_id, version)``
    order (timestamps cut to the millisecond). With ``store_ids``, the events of those
    stores in ``(timestamp, store id, aggregate_id, version)`` order, each row ending with
    its store id. With ``selection``, only its aggregates' events."""
    conditions: list[sql.Composable] = [sql.SQL("aggregate_name = %(store)s")]
    params: dict[str, Any] = {"store": event_store_id}
    store = sql.SQL("")
    if store_ids is not None:
        conditions = [sql.SQL("aggregate_name = ANY(%(stores)s)")]
        params = {"stores": list(store_ids)}
        store = sql.SQL('aggregate_name COLLATE "C" AS pour_s, ')
    conditions += layout.within(start, end, params)
    conditions += layout.selected_aggregates(selection, params)
    conditions += layout.selected_types(selection, params)
    order = sql.SQL("pour_t, pour_s, pour_a, version" if store_ids else "pour_t, pour_a, version")
    # Sort the rows as stored, format them after: the sort (which must end before the
    # first row) stays small, and the formatting happens while Python reads earlier rows.
    # OFFSET 0 keeps the subquery as is; the outer ORDER BY is already satisfied.
    query = sql.SQL(
        "SELECT {columns}{store_column} FROM ("
        " SELECT {raw}, {millis} AS pour_t, {store}{aggregate} AS pour_a FROM {table}"
        " WHERE {conditions} ORDER BY {order} OFFSET 0"
        ") s ORDER BY {order}"
    ).format(
        columns=layout.event_columns,
        store_column=sql.SQL(", pour_s::text" if store_ids else ""),
        raw=sql.SQL(", ").join(map(sql.Identifier, EVENT_COLUMNS)),
        millis=layout.millis,
        store=store,
        aggregate=layout.aggregate_order,
        table=layout.table,
        conditions=sql.SQL(" AND ").join(conditions),
        order=order,
    )
    return query, params


def skew_query(layout: TableLayout, since: bool = False) -> sql.Composed:
    """The earliest timestamp, cut to the millisecond, of an event that is earlier than
    the previous version of its aggregate, or NULL.

    That is also the earliest event earlier than *any* previous version (take the first
    drop below it on the way from that version), so every event in an earlier
    millisecond pours at its own timestamp. Raw timestamps are compared: a drop within a
    millisecond only makes the boundary earlier than needed, never later.

    With ``since``, only events from ``%(since)s`` on are compared, for a scan that saw
    none before it: an event there that is earlier than its previous version has that
    version there too.
    """
    timestamp = sql.Identifier("timestamp")
    since_condition = (
        sql.SQL(" AND {} >= {}").format(timestamp, layout.bound("since")) if since else sql.SQL("")
    )
    return sql.SQL(
        "SELECT {text} FROM (SELECT {timestamp} AS ts, lag({timestamp}) OVER "
        "(PARTITION BY aggregate_id ORDER BY version) AS previous FROM {table} "
        "WHERE aggregate_name = %(store)s{since}) s WHERE ts < previous"
    ).format(
        since=since_condition,
        text=layout.text_of(
            sql.SQL("date_trunc('milliseconds', {})").format(layout.utc(sql.SQL("min(ts)")))
        ),
        timestamp=timestamp,
        table=layout.table,
    )


def skewed_tail_query(
    layout: TableLayout,
    event_store_id: str,
    skew_from: str,
    start: str | None,
    end: str | None,
    selection: Selection | None = None,
) -> tuple[sql.Composed, dict[str, Any]]:
    """Events from ``skew_from`` on (of ``selection``'s aggregates only, when given), placed
    at the running maximum of their aggregate's timestamps (earlier events do not change it:
    they are all before ``skew_from``), within the bounds, in pour order; each row starts
    with its pour timestamp."""
    params: dict[str, Any] = {"store": event_store_id, "skew_from": skew_from}
    # Types after the running maximum: an event left out still places the ones after it.
    filters = layout.selected_types(selection, params)
    if start is not None:
        filters.append(sql.SQL("pour >= {}").format(millis_bound("start")))
        params["start"] = start
    if end is not None:
        filters.append(sql.SQL("pour <= {}").format(millis_bound("end")))
        params["end"] = end
    inner_columns = sql.SQL(", ").join(
        [
            sql.SQL("{} AS t").format(layout.millis),
            *(
                sql.Identifier(column)
                for column in ("aggregate_id", "version", "type", "data", "metadata")
            ),
            sql.SQL("{} AS utc").format(layout.utc_timestamp),
        ]
    )
    query = sql.SQL(
        "SELECT {pour_text}, {columns} FROM ("
        " SELECT *, max(t) OVER (PARTITION BY aggregate_id ORDER BY version"
        " ROWS UNBOUNDED PRECEDING) AS pour FROM ("
        "  SELECT {inner_columns} FROM {table}"
        "  WHERE aggregate_name = %(store)s AND {timestamp} >= {skew_from}{selection}) r) s"
        " {where} ORDER BY pour, {aggregate}, version"
    ).format(
        pour_text=layout.text_of(sql.Identifier("pour")),
        columns=sql.SQL(", ").join(
            [
                layout.text_of(sql.Identifier("utc")),
                sql.SQL("aggregate_id::text"),
                sql.Identifier("version"),
                sql.SQL("type::text"),
                layout.json_text("data"),
                layout.json_text("metadata"),
            ]
        ),
        inner_columns=inner_columns,
        table=layout.table,
        timestamp=sql.Identifier("timestamp"),
        skew_from=layout.bound("skew_from"),
        selection=sql.SQL("").join(
            sql.SQL(" AND ") + condition
            for condition in layout.selected_aggregates(selection, params)
        ),
        where=sql.SQL("WHERE ") + sql.SQL(" AND ").join(filters) if filters else sql.SQL(""),
        aggregate=layout.aggregate_order,
    )
    return query, params
