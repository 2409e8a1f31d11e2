"""Assets: what a pour updates, and the counts its asset events carry.

A pour operator's ``outlets`` get, on success, the pour's counts as the asset event's extra
(what ``Metadata`` attaches), so a DAG scheduled on the asset reads them from its triggering
events (or ``inlet_events``). A channel's default asset is
``castore://<message channel connection id>[/<queue or bus name>]``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from airflow.sdk import Asset

SCHEME = "castore"


def channel_asset(message_channel_conn_id: str, target: str | None = None) -> Asset:
    """The default asset of pours to a message channel connection: ``target`` (the queue or
    bus name, or anything that tells pours to the same connection apart) is the URI's path."""
    path = "" if not target else f"/{target.strip('/')}"
    return Asset(uri=f"{SCHEME}://{message_channel_conn_id}{path}")


def poured_count(result: Mapping[str, Any]) -> int:
    """The messages a pour's result says it poured, whichever utility it was."""
    return int(result.get("poured_event_count", result.get("poured_aggregate_id_count", 0)))


def asset_extra(result: Mapping[str, Any]) -> dict[str, Any]:
    """What an asset event of a pour carries: its utility, whether it was a dry run, the
    messages poured, and per event store the count and hash of its digest."""
    digest = result.get("digest", {})
    return {
        "utility": digest.get("utility"),
        "dry_run": "dry_run" in result,
        "poured_count": poured_count(result),
        "event_stores": dict(digest.get("event_stores", {})),
    }


def attach_to_outlets(outlets: Iterable[Any], outlet_events: Any, extra: Mapping[str, Any]) -> int:
    """Add ``extra`` to the events of the asset ``outlets``; how many got it."""
    attached = 0
    for outlet in outlets:
        if isinstance(outlet, Asset) and outlet_events is not None:
            outlet_events[outlet].extra.update(extra)
            attached += 1
    return attached
