"""What each pour returns: plain dicts of JSON types, ready for XCom or ``json.dumps``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypedDict

from airflow_provider_castore_dam.dam.digest import PourDigest, combined_pour_digest
from airflow_provider_castore_dam.protocols import EventDetail, ScannedAggregate


class ScanInfos(TypedDict):
    first_scanned_aggregate: ScannedAggregate | None
    last_scanned_aggregate: ScannedAggregate | None


class AggregateIdsPourResult(ScanInfos):
    poured_aggregate_id_count: int
    digest: PourDigest


class AggregateEventsPourResult(TypedDict):
    poured_event_count: int
    first_poured_event: EventDetail | None
    last_poured_event: EventDetail | None
    digest: PourDigest


class EventStoreEventsPourResult(ScanInfos):
    poured_event_count: int
    digest: PourDigest


class CollectionEventsPourResult(TypedDict):
    poured_event_count: int
    scans: dict[str, ScanInfos]
    digest: PourDigest


def empty_scan_infos() -> ScanInfos:
    return {"first_scanned_aggregate": None, "last_scanned_aggregate": None}


def record_scanned(scan_infos: ScanInfos, aggregate: ScannedAggregate) -> None:
    if scan_infos["first_scanned_aggregate"] is None:
        scan_infos["first_scanned_aggregate"] = aggregate
    scan_infos["last_scanned_aggregate"] = aggregate


def combine_partition_results(results: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One result for the partitions of one pour (of ``pour_event_store_events`` or
    ``pour_event_store_collection_events``): counts and digests add up; the first and last
    scanned aggregates are the earliest and latest by (initial event timestamp, aggregate id)."""
    if not results:
        raise ValueError("no partition results to combine")
    combined: dict[str, Any] = {
        "poured_event_count": sum(int(result["poured_event_count"]) for result in results)
    }
    if all("digest" in result for result in results):
        combined["digest"] = combined_pour_digest([result["digest"] for result in results])
    if "scans" in results[0]:
        store_ids = sorted({store_id for result in results for store_id in result["scans"]})
        combined["scans"] = {
            store_id: _combined_scan_infos(
                [result["scans"][store_id] for result in results if store_id in result["scans"]]
            )
            for store_id in store_ids
        }
    else:
        combined.update(_combined_scan_infos(results))
    return combined


def _combined_scan_infos(infos: Sequence[Mapping[str, Any]]) -> ScanInfos:
    def place(aggregate: ScannedAggregate) -> tuple[str, str]:
        return aggregate["initial_event_timestamp"], aggregate["aggregate_id"]

    firsts = [info["first_scanned_aggregate"] for info in infos if info["first_scanned_aggregate"]]
    lasts = [info["last_scanned_aggregate"] for info in infos if info["last_scanned_aggregate"]]
    return {
        "first_scanned_aggregate": min(firsts, key=place, default=None),
        "last_scanned_aggregate": max(lasts, key=place, default=None),
    }
