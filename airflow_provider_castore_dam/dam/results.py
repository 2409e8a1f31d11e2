"""What each pour returns: plain dicts of JSON types, ready for XCom or ``json.dumps``."""

from __future__ import annotations

from typing import TypedDict

from airflow_provider_castore_dam.protocols import EventDetail, ScannedAggregate


class ScanInfos(TypedDict):
    first_scanned_aggregate: ScannedAggregate | None
    last_scanned_aggregate: ScannedAggregate | None


class AggregateIdsPourResult(ScanInfos):
    poured_aggregate_id_count: int


class AggregateEventsPourResult(TypedDict):
    poured_event_count: int
    first_poured_event: EventDetail | None
    last_poured_event: EventDetail | None


class EventStoreEventsPourResult(ScanInfos):
    poured_event_count: int


class CollectionEventsPourResult(TypedDict):
    poured_event_count: int
    scans: dict[str, ScanInfos]


def empty_scan_infos() -> ScanInfos:
    return {"first_scanned_aggregate": None, "last_scanned_aggregate": None}


def record_scanned(scan_infos: ScanInfos, aggregate: ScannedAggregate) -> None:
    if scan_infos["first_scanned_aggregate"] is None:
        scan_infos["first_scanned_aggregate"] = aggregate
    scan_infos["last_scanned_aggregate"] = aggregate
