"""Conformance with Castore 2.4.2's own PostgreSQL adapter.

``write_stores.mjs`` writes two event stores into a PostgreSQL table through Castore itself and
prints what Castore's ``getEvents`` and ``listAggregateIds`` return for a set of options. The
same table is then read with :class:`PostgresEventStore`; the answers must be equal, except
where Castore is documented wrong (``/work/shared/docs/castore-formats.md``):

- falsy payloads: Castore drops ``payload: 0`` on read; we keep it (only SQL NULL is absent);
- paging: Castore pages on ``timestamp > last``, so aggregates tied across a page boundary are
  lost; we page on ``(timestamp, id)``;
- bounds: Castore's ``initialEventAfter``/``initialEventBefore`` are exclusive; ours inclusive;
- tie order: Castore leaves it to the server; ours is the row id (insertion order).

For each defect the test checks that Castore's output does show it AND that ours is right.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from airflow_provider_castore_dam.channels import InMemoryMessageChannel
from airflow_provider_castore_dam.dam import pour_event_store_collection_events
from airflow_provider_castore_dam.stores.postgres import PostgresEventStore
from tests.engine import oracle
from tests.infra import PostgresServer
from tests.interop.node import run_castore

TIE = "2022-01-02T10:00:00.123Z"
MAGIKARP = "00000000-0000-4000-8000-000000000006"
LIST_OPTIONS = {
    "limit": "limit",
    "reverse": "reverse",
    "initialEventAfter": "initial_event_after",
    "initialEventBefore": "initial_event_before",
}
EVENT_OPTIONS = {
    "minVersion": "min_version",
    "maxVersion": "max_version",
    "limit": "limit",
    "reverse": "reverse",
}
# Option sets where Castore's POKEMONS listing is expected to be wrong, and why.
POKEMONS_LISTING_DEFECTS = {
    "limit2": "tie loss",
    "limit2Reverse": "tie loss",
    "limit1": "tie loss",
    "initialEventAfterTie": "exclusive bound",
    "initialEventBeforeTie": "exclusive bound",
    "betweenTieAndEevee": "exclusive bound",
}


def canon(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def js_falsy(value: Any) -> bool:
    """What ``!value`` is true for in JavaScript, among JSON values."""
    return (
        value is None
        or value is False
        or value == ""
        or (type(value) in (int, float) and value == 0)
    )


def node_url(dsn: str) -> str:
    """postgres.js takes URLs, not libpq key=value strings."""
    params = conninfo_to_dict(dsn)
    auth = quote(str(params.get("user", "postgres")), safe="")
    if params.get("password"):
        auth += ":" + quote(str(params["password"]), safe="")
    host = params.get("host", "127.0.0.1")
    url = f"postgresql://{auth}@{host}:{params.get('port', 5432)}/{params['dbname']}"
    return url + ("?sslmode=disable" if params.get("sslmode") == "disable" else "")


@pytest.fixture(scope="module")
def castore(postgres_server: PostgresServer) -> Iterator[tuple[dict[str, Any], str]]:
    """Castore's output and the DSN of the database it wrote; node runs once per module."""
    with postgres_server.temporary_database("castore_interop") as dsn:
        output = run_castore(
            "write_stores.mjs", env={"BACKENDS": "postgres", "PG_DSN": node_url(dsn)}
        )
        assert "error" not in output["postgres"], output["postgres"]
        yield output, dsn


@pytest.fixture(scope="module")
def stores(castore: tuple[dict[str, Any], str]) -> Iterator[dict[str, PostgresEventStore]]:
    output, dsn = castore
    opened = {store_id: PostgresEventStore(store_id, dsn) for store_id in output["eventStoreIds"]}
    yield opened
    for store in opened.values():
        store.close()


def written(output: dict[str, Any], store_id: str) -> list[dict[str, Any]]:
    return [entry["event"] for entry in output["written"] if entry["eventStoreId"] == store_id]


def our_listing(store: PostgresEventStore, options: dict[str, Any]) -> list[dict[str, str]]:
    arguments = {LIST_OPTIONS[key]: value for key, value in options.items()}
    found: list[dict[str, str]] = []
    token = None
    while True:
        page = store.list_aggregate_ids(page_token=token, **arguments)
        found.extend(
            {
                "aggregateId": a["aggregate_id"],
                "initialEventTimestamp": a["initial_event_timestamp"],
            }
            for a in page.aggregate_ids
        )
        token = page.next_page_token
        if token is None:
            return found


def row_ids(dsn: str) -> dict[tuple[str, str], int]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT aggregate_name, aggregate_id::text, id FROM event WHERE version = 1"
        ).fetchall()
    return {(name, aggregate_id): row_id for name, aggregate_id, row_id in rows}


def test_get_events_equal_castores_except_dropped_falsy_payloads(castore, stores):
    output, _ = castore
    dropped = 0
    for store_id, store in stores.items():
        sent = {(e["aggregateId"], e["version"]): e for e in written(output, store_id)}
        for aggregate_id, by_options in output["postgres"][store_id]["getEvents"].items():
            for name, theirs in by_options.items():
                assert not isinstance(theirs, dict), (aggregate_id, name, theirs)
                options = output["getEventsOptionSets"][name]
                ours = store.get_events(
                    aggregate_id, **{EVENT_OPTIONS[key]: value for key, value in options.items()}
                )
                assert len(ours) == len(theirs), (aggregate_id, name)
                for our_event, their_event in zip(ours, theirs, strict=True):
                    original = sent[(our_event["aggregateId"], our_event["version"])]
                    if "payload" in original and js_falsy(original["payload"]):
                        # Castore defect: a falsy payload is dropped on read.
                        assert "payload" not in their_event
                        assert our_event["payload"] == original["payload"]
                        assert canon(our_event["payload"]) == canon(original["payload"])
                        their_event = {**their_event, "payload": original["payload"]}
                        dropped += 1
                    assert canon(our_event) == canon(their_event), (aggregate_id, name)
                    assert list(our_event) == [
                        key
                        for key in ("aggregateId", "version", "type", "payload", "metadata")
                        if key in our_event
                    ] + ["timestamp"]
    assert dropped > 0  # the defect was seen, so the branch above was exercised


def test_listing_equals_castores_except_tie_loss_and_exclusive_bounds(castore, stores):
    output, dsn = castore
    ids = row_ids(dsn)
    defects_seen = set()
    for store_id, store in stores.items():
        listings = output["postgres"][store_id]["listAggregateIds"]
        for name, options in output["listAggregateIdsOptionSets"].items():
            theirs = listings[name]["aggregateIds"]
            ours = our_listing(store, options)
            after = options.get("initialEventAfter")
            before = options.get("initialEventBefore")
            reverse = options.get("reverse", False)

            # Ours: every aggregate in the inclusive range, by (timestamp, row id).
            everything = our_listing(store, {})
            inclusive = [
                a
                for a in everything
                if (after is None or a["initialEventTimestamp"] >= after)
                and (before is None or a["initialEventTimestamp"] <= before)
            ]
            assert ours == (inclusive[::-1] if reverse else inclusive), (store_id, name)
            keys = [(a["initialEventTimestamp"], ids[(store_id, a["aggregateId"])]) for a in ours]
            assert keys == sorted(keys, reverse=reverse)

            # Castore's timestamps are ordered; its tie order is the server's.
            stamps = [a["initialEventTimestamp"] for a in theirs]
            assert stamps == sorted(stamps, reverse=reverse)
            defect = POKEMONS_LISTING_DEFECTS.get(name) if store_id == "POKEMONS" else None
            if defect is None:
                assert sorted(map(canon, theirs)) == sorted(map(canon, ours)), (store_id, name)
                assert [a["initialEventTimestamp"] for a in ours] == stamps
                continue
            defects_seen.add(defect)
            missing = [a for a in ours if a not in theirs]
            assert missing, f"{name}: Castore's {defect} did not show"
            assert all(a in ours for a in theirs)
            if defect == "exclusive bound":
                assert {a["initialEventTimestamp"] for a in missing} <= {after, before}
                assert len(theirs) == len(
                    [a for a in ours if a["initialEventTimestamp"] not in (after, before)]
                )
            else:  # tie loss: only aggregates sharing an initial timestamp go missing
                assert {a["initialEventTimestamp"] for a in missing} == {TIE}
                assert any(a["initialEventTimestamp"] == TIE for a in theirs)
    assert defects_seen == {"tie loss", "exclusive bound"}


def test_everything_castore_wrote_is_poured_once_in_pour_order(castore, stores):
    output, _ = castore
    events = {store_id: written(output, store_id) for store_id in stores}
    channel = InMemoryMessageChannel()
    result = pour_event_store_collection_events(list(stores.values()), channel)
    expected = oracle.pour_order(events)
    assert [
        (
            m.message["eventStoreId"],
            m.message["event"]["aggregateId"],
            m.message["event"]["version"],
        )
        for m in channel.messages
    ] == [(s, e["aggregateId"], e["version"]) for s, e in expected]
    assert canon([m.message["event"] for m in channel.messages]) == canon([e for _, e in expected])
    assert result["poured_event_count"] == len(output["written"])
    magikarp = [
        m.message["event"]
        for m in channel.messages
        if m.message["event"]["aggregateId"] == MAGIKARP
    ]
    assert magikarp[1]["payload"] == 0
