"""PostgresEventStore on a real PostgreSQL server, tables in Castore's layout (no mocks).

Most tests share one database for the session (``postgres_session_database``), each with its
own table; tests that change database settings get a database of their own. Listings order
tied initial timestamps by row id (insertion order), so expectations are computed from the
insertion order; the in-memory store orders ties by aggregate id, so where the two are
compared the rows are inserted in that order.
"""

from __future__ import annotations

import base64
import itertools
import json
import logging
import random
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from airflow_provider_castore_dam.channels import InMemoryMessageChannel
from airflow_provider_castore_dam.dam import (
    pour_aggregate_events,
    pour_event_store_aggregate_ids,
    pour_event_store_collection_events,
    pour_event_store_events,
)
from airflow_provider_castore_dam.errors import CastoreDamError, EventStoreError
from airflow_provider_castore_dam.protocols import EventStore, TimeOrderedEventStore
from airflow_provider_castore_dam.retry import RetryPolicy
from airflow_provider_castore_dam.stores import InMemoryEventStore
from airflow_provider_castore_dam.stores.postgres import PostgresEventStore, clock_skew, cursor
from airflow_provider_castore_dam.stores.postgres import rows as row_parsing
from tests.engine import oracle
from tests.stores.castore_tables import Table, copy_events, create_castore_table, truncate

LOGGER = "airflow_provider_castore_dam.stores.postgres"
TIE = "2022-01-02T10:00:00.123Z"


def event(aggregate_id: str, version: int, timestamp: str, **extra: Any) -> dict[str, Any]:
    return {
        "aggregateId": aggregate_id,
        "version": version,
        "type": extra.pop("type", "HAPPENED"),
        "timestamp": timestamp,
        **extra,
    }


def canon(value: Any) -> str:
    """JSON text that tells 0 from false and 1 from 1.0, keys sorted."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def messages(channel: InMemoryMessageChannel) -> list[dict]:
    assert all(message.replay for message in channel.messages)
    return [message.message for message in channel.messages]


def listing_order(rows: list[tuple[str, dict]], store_id: str) -> list[dict[str, str]]:
    """Expected listing: version-1 rows by (timestamp, insertion position)."""
    initial = [
        (e["timestamp"], position, e["aggregateId"])
        for position, (sid, e) in enumerate(rows)
        if sid == store_id and e["version"] == 1
    ]
    return [
        {"aggregate_id": aggregate_id, "initial_event_timestamp": timestamp}
        for timestamp, _, aggregate_id in sorted(initial)
    ]


def scanned(store: PostgresEventStore, **bounds: Any) -> str:
    return canon([(s.pour_timestamp, s.event) for s in store.scan_events(**bounds)])


def all_pages(store: EventStore, **options: Any) -> tuple[list[dict], list[int]]:
    """Every aggregate of a listing followed page by page, and the page lengths."""
    found: list[dict] = []
    sizes: list[int] = []
    token = None
    while True:
        page = store.list_aggregate_ids(page_token=token, **options)
        found.extend(page.aggregate_ids)
        sizes.append(len(page.aggregate_ids))
        token = page.next_page_token
        if token is None:
            return found, sizes
        assert len(sizes) < 10_000


# Three aggregates share an initial millisecond (TIE), inserted out of aggregate id order.
POKEMON_ROWS: list[tuple[str, dict]] = [
    ("POKEMONS", event("pikachu", 1, "2022-01-01T00:00:00.000Z", payload={"name": "Pikachu ⚡"})),
    ("POKEMONS", event("squirtle", 1, TIE, payload={"name": "杰尼龟 🐢", "maxSafe": 2**53 - 1})),
    ("POKEMONS", event("charmander", 1, TIE, payload={"temperatureC": -273.15, "tiny": 1.5e-7})),
    ("TRAINERS", event("ash", 1, TIE, payload={"badges": 0})),
    ("POKEMONS", event("bulbasaur", 1, TIE)),
    ("POKEMONS", event("pikachu", 2, "2022-01-01T12:30:45.678Z", metadata={"by": "ash"})),
    ("POKEMONS", event("bulbasaur", 2, "2022-01-03T00:00:00.000Z", payload={"a": [1, [2, None]]})),
    ("POKEMONS", event("bulbasaur", 3, "2022-01-03T00:00:00.000Z", metadata={})),
    ("POKEMONS", event("eevee", 1, "2022-02-01T00:00:00.000Z", payload={}, metadata={"x": 1})),
    ("POKEMONS", event("magikarp", 1, "2022-03-01T00:00:00.000Z", payload=0)),
    ("POKEMONS", event("magikarp", 2, "2022-03-01T00:00:00.500Z", payload=False)),
    ("POKEMONS", event("magikarp", 3, "2022-03-01T00:00:00.501Z", payload="")),
    ("POKEMONS", event("magikarp", 4, "2022-03-01T00:00:00.502Z", payload=[])),
    ("POKEMONS", event("magikarp", 5, "2022-03-01T00:00:00.503Z", payload=None, metadata=0)),
]


@pytest.fixture
def pokemons(table: Table) -> PostgresEventStore:
    table.load(POKEMON_ROWS)
    return table.store("POKEMONS")


# --------------------------------------------------------------------------- protocol, reads


def test_is_a_time_ordered_event_store(pokemons):
    assert isinstance(pokemons, TimeOrderedEventStore)
    assert pokemons.event_store_id == "POKEMONS"


def test_listing_orders_ties_by_insertion_and_reverse_is_exact(pokemons):
    expected = listing_order(POKEMON_ROWS, "POKEMONS")
    assert [a["aggregate_id"] for a in expected] == [
        "pikachu",
        "squirtle",
        "charmander",
        "bulbasaur",
        "eevee",
        "magikarp",
    ]
    for limit in (None, 1, 2, 3, 4, 5, 6, 7):
        forward, sizes = all_pages(pokemons, limit=limit)
        assert forward == expected, limit
        if limit is not None:
            assert all(size == limit for size in sizes[:-1])
            assert 1 <= sizes[-1] <= limit  # never an empty last page
        backward, _ = all_pages(pokemons, limit=limit, reverse=True)
        assert backward == expected[::-1], limit


@pytest.mark.parametrize("limit", [None, 1, 2, 3])
def test_listing_bounds_are_inclusive(pokemons, limit):
    expected = listing_order(POKEMON_ROWS, "POKEMONS")

    def between(after, before):
        return [
            a
            for a in expected
            if (after is None or a["initial_event_timestamp"] >= after)
            and (before is None or a["initial_event_timestamp"] <= before)
        ]

    cases = [
        (TIE, None),
        (None, TIE),
        (TIE, TIE),
        (TIE, "2022-02-01T00:00:00.000Z"),
        ("2022-01-02T10:00:00.124Z", None),
        (None, "2022-01-02T10:00:00.122Z"),
        ("2030-01-01T00:00:00.000Z", None),
    ]
    for after, before in cases:
        for reverse in (False, True):
            found, _ = all_pages(
                pokemons,
                limit=limit,
                initial_event_after=after,
                initial_event_before=before,
                reverse=reverse,
            )
            want = between(after, before)
            assert found == (want[::-1] if reverse else want), (after, before, reverse)


def test_listing_bounds_accept_any_iso_form(pokemons):
    found, _ = all_pages(
        pokemons,
        initial_event_after="2022-01-02T11:00:00.123+01:00",  # = TIE
        initial_event_before="2022-01-02T10:00:00.1234Z",  # truncated to TIE
    )
    assert [a["aggregate_id"] for a in found] == ["squirtle", "charmander", "bulbasaur"]


def test_get_events_options_match_the_in_memory_store(pokemons, json_parser):
    memory = InMemoryEventStore("POKEMONS", [e for sid, e in POKEMON_ROWS if sid == "POKEMONS"])
    versions = [None, 1, 2, 3, 6]
    for aggregate_id in ("pikachu", "bulbasaur", "magikarp", "eevee", "nobody"):
        for min_version, max_version, limit, reverse in itertools.product(
            versions, versions, [None, 1, 2, 10], [False, True]
        ):
            options = {
                "min_version": min_version,
                "max_version": max_version,
                "limit": limit,
                "reverse": reverse,
            }
            assert canon(pokemons.get_events(aggregate_id, **options)) == canon(
                memory.get_events(aggregate_id, **options)
            ), (aggregate_id, options)


@pytest.fixture(params=["fast parser", "stdlib parser"])
def json_parser(request, monkeypatch):
    """With msgspec (which Airflow 3 brings) and without it."""
    if request.param == "stdlib parser":
        monkeypatch.setattr(row_parsing, "_fast_json", row_parsing._json)
        monkeypatch.setattr(row_parsing, "_FAST_JSON_ERRORS", ())
    return request.param


def test_a_value_the_fast_parser_refuses_is_read_by_the_standard_one(table):
    """msgspec refuses a number beyond a double (jsonb keeps it exactly); the whole batch is
    then parsed by the standard library's parser, which reads it as infinity, and the rest
    of the batch is unchanged."""
    rows = [
        ("S", event(f"a{i}", 1, f"2022-01-01T00:00:0{i}.000Z", payload={"n": i})) for i in range(3)
    ]
    table.load(rows)
    huge = "1" + "0" * 400 + ".5"
    table.execute(
        sql.SQL(
            "UPDATE {} SET data = jsonb_build_object('n', %s::numeric)"
            " WHERE aggregate_id::text = 'a1'"
        ).format(sql.Identifier(table.name)),
        [huge],
    )
    store = table.store("S", scan_batch_size=10)

    scanned_payloads = [s.event["payload"] for s in store.scan_events()]

    assert scanned_payloads == [{"n": 0}, {"n": float("inf")}, {"n": 2}]
    assert store.get_events("a1")[0]["payload"] == {"n": float("inf")}


def test_payload_and_metadata_null_is_absent_falsy_json_is_kept(pokemons, json_parser):
    magikarp = pokemons.get_events("magikarp")
    assert [e.get("payload", "absent") for e in magikarp] == [0, False, "", [], None]
    assert "payload" in magikarp[4] and magikarp[4]["payload"] is None  # JSON null
    assert magikarp[4]["metadata"] == 0
    assert "metadata" not in magikarp[0]
    bulbasaur = pokemons.get_events("bulbasaur")
    assert "payload" not in bulbasaur[0] and "metadata" not in bulbasaur[0]
    assert bulbasaur[2]["metadata"] == {}
    assert pokemons.get_events("eevee")[0]["payload"] == {}
    # Castore's key order, and JSON types exactly.
    assert list(pokemons.get_events("eevee")[0]) == [
        "aggregateId",
        "version",
        "type",
        "payload",
        "metadata",
        "timestamp",
    ]
    assert canon(pokemons.get_events("squirtle")[0]["payload"]) == canon(
        {"name": "杰尼龟 🐢", "maxSafe": 9007199254740991}
    )
    assert pokemons.get_events("charmander")[0]["payload"] == {
        "temperatureC": -273.15,
        "tiny": 1.5e-7,
    }


def test_store_ids_are_kept_apart(table):
    table.load(POKEMON_ROWS)
    trainers = table.store("TRAINERS")
    assert trainers.list_aggregate_ids().aggregate_ids == [
        {"aggregate_id": "ash", "initial_event_timestamp": TIE}
    ]
    assert trainers.get_events("pikachu") == []
    assert [s.event["aggregateId"] for s in trainers.scan_events()] == ["ash"]


def test_uuid_aggregate_ids(make_table):
    table = make_table(aggregate_id_type="UUID")
    ids = [str(uuid.UUID(int=i, version=4)) for i in (3, 1, 2)]
    table.load([("S", event(a, 1, TIE)) for a in ids])
    store = table.store("S")
    assert [a["aggregate_id"] for a in store.list_aggregate_ids().aggregate_ids] == ids
    # UUIDs sort as their lower-case text in the scan, the engine's tie order.
    assert [s.event["aggregateId"] for s in store.scan_events()] == sorted(ids)
    assert store.get_events(ids[0].upper())[0]["aggregateId"] == ids[0]
    assert store.get_events("{" + ids[1].replace("-", "") + "}")[0]["aggregateId"] == ids[1]
    assert store.get_events("not-a-uuid") == []
    assert store.get_events(str(uuid.uuid4())) == []


def test_schema_qualified_table(postgres_session_database):
    schema = f"castore_{uuid.uuid4().hex[:8]}"
    name = f"{schema}.events"
    create_castore_table(postgres_session_database, name)
    copy_events(postgres_session_database, [("S", event(str(uuid.uuid4()), 1, TIE))], name)
    try:
        for table in (name, (schema, "events")):
            with PostgresEventStore("S", postgres_session_database, table=table) as store:
                assert len(store.list_aggregate_ids().aggregate_ids) == 1
                assert store.table == f'"{schema}"."events"'
    finally:
        with psycopg.connect(postgres_session_database, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


def test_a_view_or_a_partitioned_table_is_read_like_a_table(table, make_table):
    table.load(POKEMON_ROWS)
    view = table.name + "_view"
    table.execute(
        sql.SQL("CREATE VIEW {} AS SELECT * FROM {} WHERE aggregate_name = 'POKEMONS'").format(
            sql.Identifier(view), sql.Identifier(table.name)
        )
    )
    parted = table.name + "_parted"
    table.execute(
        sql.SQL(
            "CREATE TABLE {parted} (LIKE {table}) PARTITION BY RANGE (timestamp);"
            " CREATE TABLE {early} PARTITION OF {parted}"
            " FOR VALUES FROM (MINVALUE) TO ('2022-02-01');"
            " CREATE TABLE {late} PARTITION OF {parted}"
            " FOR VALUES FROM ('2022-02-01') TO (MAXVALUE);"
            " INSERT INTO {parted} SELECT * FROM {table}"
        ).format(
            parted=sql.Identifier(parted),
            table=sql.Identifier(table.name),
            early=sql.Identifier(parted + "_early"),
            late=sql.Identifier(parted + "_late"),
        )
    )
    try:
        reference = table.store("POKEMONS")
        for name in (view, parted):
            with PostgresEventStore("POKEMONS", table.dsn, table=name) as store:
                assert all_pages(store, limit=2) == all_pages(reference, limit=2)
                assert scanned(store) == scanned(reference)
    finally:
        table.execute(sql.SQL("DROP VIEW {}").format(sql.Identifier(view)))
        table.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(parted)))


def test_connection_parts_instead_of_a_dsn(table):
    table.load(POKEMON_ROWS)
    params = conninfo_to_dict(table.dsn)
    parts = {key: params[key] for key in ("host", "port", "dbname", "user") if key in params}
    extra = {key: value for key, value in params.items() if key not in parts}
    with PostgresEventStore("POKEMONS", table=table.name, **parts, **extra) as store:
        assert len(store.list_aggregate_ids().aggregate_ids) == 6
    url = "postgresql://{user}@{host}:{port}/{dbname}".format(
        user=params.get("user", "postgres"),
        host=params.get("host", "127.0.0.1"),
        port=params.get("port", 5432),
        dbname=params["dbname"],
    )
    if "password" not in params:
        with PostgresEventStore("POKEMONS", url, table=table.name) as store:
            assert len(store.list_aggregate_ids().aggregate_ids) == 6


def test_microseconds_are_truncated_and_order_by_the_millisecond(table):
    table.load(
        [
            ("S", event("b", 1, "2022-01-01T00:00:00.123100Z")),
            ("S", event("a", 1, "2022-01-01T00:00:00.123900Z")),
            ("S", event("a", 2, "2022-01-01T00:00:00.123950Z")),
            ("S", event("c", 1, "2022-01-01T00:00:00.123999Z")),
        ]
    )
    store = table.store("S")
    assert store.get_events("a")[0]["timestamp"] == "2022-01-01T00:00:00.123Z"
    assert {a["initial_event_timestamp"] for a in store.list_aggregate_ids().aggregate_ids} == {
        "2022-01-01T00:00:00.123Z"
    }
    # Pour order compares the millisecond, then the aggregate id, then the version.
    scanned = [
        (s.pour_timestamp, s.event["aggregateId"], s.event["version"]) for s in store.scan_events()
    ]
    assert scanned == [
        ("2022-01-01T00:00:00.123Z", "a", 1),
        ("2022-01-01T00:00:00.123Z", "a", 2),
        ("2022-01-01T00:00:00.123Z", "b", 1),
        ("2022-01-01T00:00:00.123Z", "c", 1),
    ]
    # Inclusive bounds at millisecond precision take every row of the millisecond.
    found, _ = all_pages(
        store,
        limit=1,
        initial_event_after="2022-01-01T00:00:00.123Z",
        initial_event_before="2022-01-01T00:00:00.123Z",
    )
    assert sorted(a["aggregate_id"] for a in found) == ["a", "b", "c"]
    assert len(list(store.scan_events(to_timestamp="2022-01-01T00:00:00.123Z"))) == 4
    assert len(list(store.scan_events(from_timestamp="2022-01-01T00:00:00.123Z"))) == 4


def test_a_drop_within_a_millisecond_is_not_clock_skew(table):
    rows = [
        ("S", event("d", 1, "2022-01-01T00:00:00.123500Z")),
        ("S", event("c", 1, "2022-01-01T00:00:00.123000Z")),
        ("S", event("d", 2, "2022-01-01T00:00:00.123400Z")),  # earlier, same millisecond
        ("S", event("c", 2, "2022-01-01T00:00:00.200000Z")),
        ("S", event("d", 3, "2022-01-01T00:00:00.100000Z")),  # real skew: pours at .123
    ]
    table.load(rows)
    store = table.store("S")
    assert [
        (s.pour_timestamp, s.event["aggregateId"], s.event["version"]) for s in store.scan_events()
    ] == [
        ("2022-01-01T00:00:00.123Z", "c", 1),
        ("2022-01-01T00:00:00.123Z", "d", 1),
        ("2022-01-01T00:00:00.123Z", "d", 2),
        ("2022-01-01T00:00:00.123Z", "d", 3),
        ("2022-01-01T00:00:00.200Z", "c", 2),
    ]
    assert [s.event["version"] for s in store.scan_events(from_timestamp=TIE)] == []
    assert [
        (s.event["aggregateId"], s.event["version"])
        for s in store.scan_events(to_timestamp="2022-01-01T00:00:00.123Z")
    ] == [("c", 1), ("d", 1), ("d", 2), ("d", 3)]


def test_aggregate_ids_compare_by_code_point_whatever_the_collation(make_table):
    table = make_table(aggregate_id_type="VARCHAR(16)", aggregate_id_collation="und-x-icu")
    ids = ["b", "B", "a", "é", "z", "Z", "😀", "漢", "e"]
    table.load([("S", event(a, 1, TIE)) for a in ids])
    store = table.store("S")
    scanned = [s.event["aggregateId"] for s in store.scan_events()]
    assert scanned == sorted(ids)  # Python compares by code point
    memory = InMemoryEventStore("S", [event(a, 1, TIE) for a in ids])
    ours, theirs = InMemoryMessageChannel(), InMemoryMessageChannel()
    pour_event_store_events(store, ours)
    pour_event_store_events(memory, theirs)
    assert messages(ours) == messages(theirs)


def test_timestamp_without_time_zone_column_is_read_as_utc(make_table):
    table = make_table(timestamp_type="TIMESTAMP")
    table.load(POKEMON_ROWS)
    store = table.store("POKEMONS")
    memory = InMemoryEventStore("POKEMONS", [e for sid, e in POKEMON_ROWS if sid == "POKEMONS"])
    assert canon(store.get_events("magikarp")) == canon(memory.get_events("magikarp"))
    found, _ = all_pages(store, limit=1, initial_event_after=TIE, initial_event_before=TIE)
    assert len(found) == 3
    expected = oracle.pour_order(
        {"POKEMONS": [e for sid, e in POKEMON_ROWS if sid == "POKEMONS"]}, TIE
    )
    assert canon([s.event for s in store.scan_events(from_timestamp=TIE)]) == canon(
        [e for _, e in expected]
    )


def test_time_zone_of_the_server_does_not_matter(postgres_database):
    with psycopg.connect(postgres_database, autocommit=True) as conn:
        name = conn.execute("SELECT current_database()").fetchone()[0]
        conn.execute(
            sql.SQL("ALTER DATABASE {} SET timezone = 'Asia/Kolkata'").format(sql.Identifier(name))
        )
    create_castore_table(postgres_database, aggregate_id_type="VARCHAR(64)")
    copy_events(postgres_database, POKEMON_ROWS)
    # A row written by a client in another zone, microseconds and all.
    with psycopg.connect(postgres_database, autocommit=True) as conn:
        assert conn.execute("SHOW timezone").fetchone()[0] == "Asia/Kolkata"
        conn.execute(
            "INSERT INTO event (aggregate_name, aggregate_id, version, type, timestamp)"
            " VALUES ('POKEMONS', 'pikachu', 3, 'T', '2022-01-05 05:30:00.123456')"
        )
    # The session zone may even come from the connection string.
    dsn = make_conninfo(postgres_database, options="-c timezone=America/St_Johns")
    memory = InMemoryEventStore(
        "POKEMONS",
        [e for sid, e in POKEMON_ROWS if sid == "POKEMONS"]
        + [event("pikachu", 3, "2022-01-05T00:00:00.123Z", type="T")],
    )
    with PostgresEventStore("POKEMONS", dsn) as store:
        assert store.get_events("pikachu", min_version=3)[0]["timestamp"] == (
            "2022-01-05T00:00:00.123Z"
        )
        assert all_pages(store, limit=2)[0] == listing_order(POKEMON_ROWS, "POKEMONS")
        found, _ = all_pages(store, initial_event_after=TIE, initial_event_before=TIE)
        assert len(found) == 3
        for filters in (None, {"from": TIE, "to": "2022-01-05T00:00:00.123Z"}):
            ours, theirs = InMemoryMessageChannel(), InMemoryMessageChannel()
            result = pour_event_store_events(store, ours, filters=filters)
            expected = pour_event_store_events(memory, theirs, filters=filters)
            assert canon(messages(ours)) == canon(messages(theirs))
            assert result["poured_event_count"] == expected["poured_event_count"]
            listed = [
                a
                for a in listing_order(POKEMON_ROWS, "POKEMONS")
                if filters is None or a["initial_event_timestamp"] <= filters["to"]
            ]
            assert result["first_scanned_aggregate"] == listed[0]
            assert result["last_scanned_aggregate"] == listed[-1]


# --------------------------------------------------------------------------- pours vs engine


def skewed_rows(seed: int, aggregates: int = 60) -> list[tuple[str, dict]]:
    """Two stores, few distinct milliseconds, some aggregates with clock skew, inserted in
    (timestamp, aggregate id) order so the in-memory tie order is the row id order."""
    rnd = random.Random(seed)
    stamps = [f"2022-01-0{day}T00:00:00.00{ms}Z" for day in (1, 2, 3) for ms in range(3)]
    rows = []
    for store_id in ("A", "B"):
        for number in range(aggregates):
            aggregate_id = f"{rnd.choice('xyé漢')}{number}"
            moments = [rnd.choice(stamps) for _ in range(rnd.randint(1, 5))]
            if rnd.random() < 0.7:
                moments.sort()
            for version, moment in enumerate(moments, 1):
                extra = rnd.choice(
                    [{}, {"payload": {"n": number}}, {"payload": 0}, {"metadata": None}]
                )
                rows.append((store_id, event(aggregate_id, version, moment, **extra)))
    rows.sort(key=lambda row: (row[1]["version"] != 1, row[1]["timestamp"], row[1]["aggregateId"]))
    return rows


def assert_same_pours(pg: list[EventStore], memory: list[EventStore], **kwargs: Any) -> None:
    ours, theirs = InMemoryMessageChannel(), InMemoryMessageChannel()
    if len(pg) == 1:
        ours_result = pour_event_store_events(pg[0], ours, **kwargs)
        theirs_result = pour_event_store_events(memory[0], theirs, **kwargs)
    else:
        ours_result = pour_event_store_collection_events(pg, ours, **kwargs)
        theirs_result = pour_event_store_collection_events(memory, theirs, **kwargs)
    assert canon(messages(ours)) == canon(messages(theirs)), kwargs
    assert ours_result == theirs_result, kwargs


@pytest.mark.parametrize("max_pool_size", [4, 1])
def test_scan_pours_exactly_what_the_merge_path_pours(table, max_pool_size):
    rows = skewed_rows(seed=3)
    table.load(rows)
    stores = [table.store(s, max_pool_size=max_pool_size) for s in ("A", "B")]
    memory = [InMemoryEventStore(s, [e for sid, e in rows if sid == s]) for s in ("A", "B")]
    assert not isinstance(memory[0], TimeOrderedEventStore)
    stamps = sorted({e["timestamp"] for _, e in rows})
    bounds = [None, stamps[0], stamps[3], stamps[4], stamps[-1]]
    for start, end in itertools.product(bounds, bounds):
        if start is not None and end is not None and start > end:
            continue
        filters = {"from": start, "to": end}
        assert_same_pours(stores[:1], memory[:1], filters=filters)
        assert_same_pours(stores, memory, filters=filters)


def test_scan_switches_to_the_skew_query_at_the_first_skewed_event(table):
    rows = [
        ("S", event("a", 1, "2022-01-01T00:00:00.000Z")),
        ("S", event("b", 1, "2022-01-01T00:00:00.001Z")),
        ("S", event("a", 2, "2022-01-03T00:00:00.000Z")),
        ("S", event("a", 3, "2022-01-02T00:00:00.000Z")),  # skew: placed at 01-03
        ("S", event("b", 2, "2022-01-02T00:00:00.000Z")),
        ("S", event("b", 3, "2022-01-01T12:00:00.000Z")),  # skew: placed at 01-02
        ("S", event("c", 1, "2022-01-02T00:00:00.000Z")),
        ("S", event("a", 4, "2022-01-02T12:00:00.000Z")),  # skew: placed at 01-03
    ]
    table.load(rows)
    store = table.store("S")
    scanned = [
        (s.pour_timestamp, s.event["aggregateId"], s.event["version"]) for s in store.scan_events()
    ]
    assert scanned == [
        ("2022-01-01T00:00:00.000Z", "a", 1),
        ("2022-01-01T00:00:00.001Z", "b", 1),
        ("2022-01-02T00:00:00.000Z", "b", 2),
        ("2022-01-02T00:00:00.000Z", "b", 3),
        ("2022-01-02T00:00:00.000Z", "c", 1),
        ("2022-01-03T00:00:00.000Z", "a", 2),
        ("2022-01-03T00:00:00.000Z", "a", 3),
        ("2022-01-03T00:00:00.000Z", "a", 4),
    ]
    events = [e for _, e in rows]
    for start, end in itertools.product(
        [None, "2022-01-01T06:00:00.000Z", "2022-01-02T00:00:00.000Z", "2022-01-03T00:00:00.000Z"],
        [None, "2022-01-01T12:00:00.000Z", "2022-01-02T06:00:00.000Z", "2022-01-03T00:00:00.000Z"],
    ):
        if start is not None and end is not None and start > end:
            continue
        got = [s.event for s in store.scan_events(from_timestamp=start, to_timestamp=end)]
        want = [e for _, e in oracle.pour_order({"S": events}, start, end)]
        assert canon(got) == canon(want), (start, end)
    # A skewed event keeps its own timestamp; only its place in the pour moves.
    assert store.get_events("b", min_version=3)[0]["timestamp"] == "2022-01-01T12:00:00.000Z"


@pytest.fixture(params=["chunked", "fetch-per-batch"])
def fetching(request, monkeypatch):
    """Both ways the scan reads its cursor: streamed FETCHes (libpq 17+) or one per batch."""
    monkeypatch.setattr(cursor, "CHUNKED_ROWS", request.param == "chunked")
    return request.param


@pytest.mark.parametrize("max_pool_size", [4, 1])
def test_skew_in_the_middle_of_a_long_scan(table, max_pool_size, fetching):
    rows = [
        (
            "S",
            event(f"a{i:04}", version, f"2022-01-01T00:{i // 60 % 60:02}:{i % 60:02}.00{version}Z"),
        )
        for i in range(1500)
        for version in (1, 2)
    ]
    # Aggregate a0700's version 3 goes back before everything from minute 5 on.
    rows.append(("S", event("a0700", 3, "2022-01-01T00:05:00.000Z")))
    table.load(rows)
    store = table.store("S", scan_batch_size=37, max_pool_size=max_pool_size)
    events = [e for _, e in rows]
    for start, end in ((None, None), ("2022-01-01T00:06:00.000Z", "2022-01-01T00:20:00.000Z")):
        got = [s.event for s in store.scan_events(from_timestamp=start, to_timestamp=end)]
        want = [e for _, e in oracle.pour_order({"S": events}, start, end)]
        assert canon(got) == canon(want)


def test_the_skew_check_can_be_skipped_for_monotonic_tables(table):
    rows = skewed_rows(seed=9, aggregates=30)
    table.load(rows)
    trusting = table.store("A", check_clock_skew=False)
    events = [e for sid, e in rows if sid == "A"]
    got = [s.event for s in trusting.scan_events()]
    # Each event at its own timestamp: the skewed ones come out of version order.
    by_timestamp = sorted(events, key=lambda e: (e["timestamp"], e["aggregateId"], e["version"]))
    assert canon(got) == canon(by_timestamp)
    assert canon(got) != canon([e for _, e in oracle.pour_order({"A": events})])
    with pytest.raises(EventStoreError, match="check_clock_skew"):
        PostgresEventStore("A", table.dsn, check_clock_skew="no")


def test_a_scan_closed_early_releases_its_connections(table, fetching):
    rows = [("S", event(f"a{i:04}", 1, f"2022-01-01T00:00:{i % 60:02}.000Z")) for i in range(3000)]
    table.load(rows)
    store = table.store("S", max_pool_size=2, pool_timeout=5, scan_batch_size=100)
    for _ in range(5):
        scan = store.scan_events()
        assert len(list(itertools.islice(scan, 3))) == 3
        scan.close()
    assert sum(1 for _ in store.scan_events()) == 3000
    assert not [t for t in threading.enumerate() if t.name == "castore-dam-skew-check"]
    with psycopg.connect(table.dsn, autocommit=True) as conn:
        busy = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND application_name = 'airflow-provider-castore-dam' AND state <> 'idle'"
        ).fetchone()[0]
    assert busy == 0


EARLY = "1999-01-01T00:00:00.000Z"
"""A lower bound before every event: a bounded scan cannot see skew by itself (an event's
previous version may be before the bound), so it runs the SQL clock-skew check."""


def test_an_unbounded_scan_finds_skew_by_itself(table, caplog):
    rows = skewed_rows(seed=7, aggregates=20)
    table.load(rows)
    store = table.store("A")
    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        events = list(store.scan_events())
    assert not any("clock-skew check" in r.getMessage() for r in caplog.records)
    expected = oracle.pour_order({"A": [e for s, e in rows if s == "A"]})
    assert canon([(s.pour_timestamp, s.event) for s in events]) == canon(
        [(pour_timestamp(e, expected), e) for _, e in expected]
    )


def pour_timestamp(event, expected):
    """The pour timestamp the oracle gives ``event``: the running maximum of its aggregate."""
    earlier = [
        e["timestamp"]
        for _, e in expected
        if e["aggregateId"] == event["aggregateId"] and e["version"] <= event["version"]
    ]
    return max(earlier)


def test_the_skew_check_runs_beside_the_scan_on_the_same_snapshot(table, caplog):
    rows = skewed_rows(seed=7, aggregates=20)
    table.load(rows)
    store = table.store("A")
    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        scan = store.scan_events(from_timestamp=EARLY)
        first = next(scan)
        # Rows written once the scan started are not seen by it, nor by its check.
        table.load([("A", event("zz", 1, "2000-01-01T00:00:00.000Z"))])
        table.load([("A", event(rows[0][1]["aggregateId"], 99, "2000-01-01T00:00:00.000Z"))])
        events = [first, *scan]
    assert any("check on a second connection" in r.getMessage() for r in caplog.records)
    expected = oracle.pour_order({"A": [e for s, e in rows if s == "A"]})
    assert canon([s.event for s in events]) == canon([e for _, e in expected])


def test_without_snapshot_export_the_check_runs_first(postgres_database, caplog):
    create_castore_table(postgres_database, aggregate_id_type="VARCHAR(64)")
    rows = skewed_rows(seed=8, aggregates=20)
    copy_events(postgres_database, rows)
    role = f"reader_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(postgres_database, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
        conn.execute(sql.SQL("GRANT SELECT ON event TO {}").format(sql.Identifier(role)))
        conn.execute("REVOKE EXECUTE ON FUNCTION pg_catalog.pg_export_snapshot() FROM PUBLIC")
    try:
        with (
            caplog.at_level(logging.INFO, logger=LOGGER),
            PostgresEventStore("A", make_conninfo(postgres_database, user=role)) as store,
        ):
            for _ in range(2):
                got = [s.event for s in store.scan_events(from_timestamp=EARLY)]
                expected = oracle.pour_order({"A": [e for s, e in rows if s == "A"]})
                assert canon(got) == canon([e for _, e in expected])
        notes = [
            r.getMessage() for r in caplog.records if "cannot share a snapshot" in r.getMessage()
        ]
        assert len(notes) == 1  # remembered: the second scan does not try again
    finally:
        with psycopg.connect(postgres_database, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


@pytest.mark.parametrize("max_pool_size", [4, 2, 1])
def test_scan_infos_are_known_before_the_first_batch_is_published(table, max_pool_size):
    """With a second connection the listings run beside the scan; with one, before it."""
    table.load(POKEMON_ROWS)
    store = table.store("POKEMONS", max_pool_size=max_pool_size, scan_batch_size=2)
    assert store.lists_beside_scans is (max_pool_size > 1)
    checkpoints: list[dict] = []

    result = pour_event_store_events(
        store, InMemoryMessageChannel(), on_checkpoint=checkpoints.append
    )

    assert result["first_scanned_aggregate"]["aggregate_id"] == "pikachu"
    assert result["last_scanned_aggregate"]["aggregate_id"] == "magikarp"
    assert checkpoints and all(
        checkpoint["result"][edge] == result[edge]
        for checkpoint in checkpoints
        for edge in ("first_scanned_aggregate", "last_scanned_aggregate")
    )


def test_two_scans_at_once_share_a_small_pool(table):
    rows = skewed_rows(seed=5, aggregates=30)
    table.load(rows)
    store = table.store("A", max_pool_size=2, pool_timeout=10)
    alone = scanned(store)
    first, second = store.scan_events(), store.scan_events()
    head = [next(first), next(second)]  # the second scan finds no third connection
    rest = list(first), list(second)
    both = [[head[0], *rest[0]], [head[1], *rest[1]]]
    for events in both:
        assert canon([(s.pour_timestamp, s.event) for s in events]) == alone


def test_thousand_aggregates_with_heavy_ties_are_poured_once_by_every_utility(table):
    rnd = random.Random(11)
    stamps = [f"2022-05-05T05:05:05.00{i}Z" for i in range(4)]
    rows = []
    for store_id, count in (("POKEMONS", 1200), ("TRAINERS", 300)):
        for number in range(count):
            aggregate_id = f"{store_id[0]}{rnd.randrange(10**9):09}-{number}"
            for version in range(1, rnd.randint(1, 3) + 1):
                rows.append(
                    (
                        store_id,
                        event(
                            aggregate_id, version, stamps[min(3, version - 1 + rnd.randrange(2))]
                        ),
                    )
                )
    rnd.shuffle(rows)  # ids in random order: ties in the listing follow them
    table.load(rows)
    pokemons, trainers = table.store("POKEMONS"), table.store("TRAINERS")
    by_store = {s: [e for sid, e in rows if sid == s] for s in ("POKEMONS", "TRAINERS")}
    expected_listing = listing_order(rows, "POKEMONS")
    assert len(expected_listing) == 1200

    for limit, reverse in ((7, False), (7, True), (1000, False), (None, True), (1, False)):
        channel = InMemoryMessageChannel()
        result = pour_event_store_aggregate_ids(
            pokemons, channel, options={"limit": limit, "reverse": reverse}
        )
        poured = [(m["aggregateId"], m["initialEventTimestamp"]) for m in messages(channel)]
        want = [(a["aggregate_id"], a["initial_event_timestamp"]) for a in expected_listing]
        assert poured == (want[::-1] if reverse else want)
        assert result["poured_aggregate_id_count"] == 1200

    channel = InMemoryMessageChannel()
    result = pour_event_store_events(pokemons, channel)
    poured = messages(channel)
    assert len(poured) == len(by_store["POKEMONS"]) == result["poured_event_count"]
    assert Counter((m["event"]["aggregateId"], m["event"]["version"]) for m in poured) == Counter(
        (e["aggregateId"], e["version"]) for e in by_store["POKEMONS"]
    )
    want = oracle.pour_order({"POKEMONS": by_store["POKEMONS"]})
    assert canon([m["event"] for m in poured]) == canon([e for _, e in want])
    assert result["first_scanned_aggregate"] == expected_listing[0]
    assert result["last_scanned_aggregate"] == expected_listing[-1]

    channel = InMemoryMessageChannel()
    result = pour_event_store_collection_events([trainers, pokemons], channel)
    want = oracle.pour_order(by_store)
    assert [
        (m["eventStoreId"], m["event"]["aggregateId"], m["event"]["version"])
        for m in messages(channel)
    ] == [(s, e["aggregateId"], e["version"]) for s, e in want]
    assert result["poured_event_count"] == len(rows)

    channel = InMemoryMessageChannel()
    for aggregate in expected_listing:
        pour_aggregate_events(pokemons, channel, aggregate["aggregate_id"])
    assert Counter(
        (m["event"]["aggregateId"], m["event"]["version"]) for m in messages(channel)
    ) == Counter((e["aggregateId"], e["version"]) for e in by_store["POKEMONS"])


# --------------------------------------------------------------------------- properties

PROPERTY_STAMPS = [f"2021-01-01T00:00:00.00{i}Z" for i in range(5)]
PAYLOADS = st.sampled_from(
    [{"absent": True}, None, 0, False, "", {}, [], 1.5, -0.25, "é⚡", {"a": [1, None, True]}, 2**53]
)


@st.composite
def property_rows(draw: st.DrawFn) -> list[tuple[str, dict]]:
    rows = []
    for store_id in ("A", "B"):
        ids = draw(st.sets(st.text(alphabet="abZé漢😀", min_size=1, max_size=3), max_size=8))
        for aggregate_id in sorted(ids):
            moments = draw(st.lists(st.sampled_from(PROPERTY_STAMPS), min_size=1, max_size=4))
            if draw(st.booleans()):
                moments.sort()
            for version, moment in enumerate(moments, 1):
                extra = {}
                for key in ("payload", "metadata"):
                    value = draw(PAYLOADS)
                    if value != {"absent": True}:
                        extra[key] = value
                rows.append((store_id, event(aggregate_id, version, moment, **extra)))
    return draw(st.permutations(rows))


@pytest.fixture(scope="module")
def property_table(postgres_session_database: str) -> Iterator[Table]:
    table = Table(
        postgres_session_database, f"event_{uuid.uuid4().hex[:10]}", aggregate_id_type="VARCHAR(16)"
    )
    yield table
    table.close()


@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    rows=property_rows(),
    limit=st.integers(1, 4),
    bounds=st.tuples(*[st.one_of(st.none(), st.sampled_from(PROPERTY_STAMPS))] * 2),
    reverse=st.booleans(),
    versions=st.tuples(
        st.one_of(st.none(), st.integers(1, 4)), st.one_of(st.none(), st.integers(1, 4))
    ),
    events_limit=st.one_of(st.none(), st.integers(1, 3)),
)
def test_store_matches_the_in_memory_store_and_the_oracle(
    property_table, rows, limit, bounds, reverse, versions, events_limit
):
    truncate(property_table.dsn, [property_table.name])
    property_table.load(rows)
    start, end = (
        sorted(bounds, key=lambda b: (b is not None, b)) if None in bounds else sorted(bounds)
    )
    if not property_table.stores:
        property_table.store("A", scan_batch_size=3)
        property_table.store("B", scan_batch_size=3)
    stores = property_table.stores
    by_store = {s: [e for sid, e in rows if sid == s] for s in ("A", "B")}
    memory = {s: InMemoryEventStore(s, events) for s, events in by_store.items()}

    for store in stores:
        store_id = store.event_store_id
        expected = [
            a
            for a in listing_order(rows, store_id)
            if (start is None or a["initial_event_timestamp"] >= start)
            and (end is None or a["initial_event_timestamp"] <= end)
        ]
        found, _ = all_pages(
            store, limit=limit, initial_event_after=start, initial_event_before=end, reverse=reverse
        )
        assert found == (expected[::-1] if reverse else expected)

        min_version, max_version = versions
        for aggregate_id in {e["aggregateId"] for e in by_store[store_id]}:
            options = {
                "min_version": min_version,
                "max_version": max_version,
                "limit": events_limit,
                "reverse": reverse,
            }
            assert canon(store.get_events(aggregate_id, **options)) == canon(
                memory[store_id].get_events(aggregate_id, **options)
            )

        want = oracle.pour_order({store_id: by_store[store_id]}, start, end)
        got = list(store.scan_events(from_timestamp=start, to_timestamp=end))
        assert canon([s.event for s in got]) == canon([e for _, e in want])
        assert all(s.pour_timestamp >= s.event["timestamp"] for s in got)

    channel = InMemoryMessageChannel()
    result = pour_event_store_collection_events(stores, channel, filters={"from": start, "to": end})
    want = oracle.pour_order(by_store, start, end)
    assert canon(messages(channel)) == canon([{"eventStoreId": s, "event": e} for s, e in want])
    assert result["poured_event_count"] == len(want)


# --------------------------------------------------------------------------- injection


def test_a_hostile_table_name_is_quoted_never_executed(table):
    table.load(POKEMON_ROWS)
    victim = table.name
    for name in (
        f"{victim}; DROP TABLE {victim}",
        f'{victim}"; DROP TABLE {victim}; --',
        f"{victim}' OR '1'='1",
    ):
        channel = InMemoryMessageChannel()
        store = PostgresEventStore("POKEMONS", table.dsn, table=name)
        with store, pytest.raises(EventStoreError, match="does not exist"):
            pour_event_store_events(store, channel)
        assert channel.messages == []
    assert table.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(victim))) == [
        (len(POKEMON_ROWS),)
    ]


def test_a_table_whose_name_needs_quoting_is_read(postgres_session_database):
    name = f'Event "{uuid.uuid4().hex[:6]}"; DROP TABLE x'
    create_castore_table(postgres_session_database, name, aggregate_id_type="VARCHAR(64)")
    try:
        copy_events(postgres_session_database, POKEMON_ROWS, name)
        with PostgresEventStore("POKEMONS", postgres_session_database, table=name) as store:
            assert len(store.list_aggregate_ids().aggregate_ids) == 6
            assert len(list(store.scan_events())) == 13
    finally:
        with psycopg.connect(postgres_session_database, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(name)))


def test_hostile_values_are_parameters(pokemons, table):
    hostile = "POKEMONS' OR '1'='1"
    with PostgresEventStore(hostile, table.dsn, table=table.name) as store:
        assert store.list_aggregate_ids().aggregate_ids == []
        assert list(store.scan_events()) == []
    assert pokemons.get_events("pikachu' OR '1'='1") == []
    assert pokemons.get_events("pikachu'; DROP TABLE x; --") == []


def test_page_tokens_are_validated(pokemons):
    page = pokemons.list_aggregate_ids(limit=2)
    assert page.next_page_token is not None
    assert (
        len(pokemons.list_aggregate_ids(limit=2, page_token=page.next_page_token).aggregate_ids)
        == 2
    )

    def token(document: Any) -> str:
        return base64.urlsafe_b64encode(json.dumps(document).encode()).decode()

    for bad in (
        "",
        "not a token",
        "'; DROP TABLE event; --",
        token(["pg1", "f", "2022-01-01T00:00:00.000000Z'); DROP TABLE x; --", 1]),
        token(["pg1", "f", "2022-13-01T00:00:00.000000Z", 1]),
        token(["pg1", "f", "2022-01-01T00:00:00.000000Z", "1; DROP TABLE x"]),
        token(["pg1", "f", "2022-01-01T00:00:00.000000Z", True]),
        token(["pg1", "f", "2022-01-01T00:00:00.000000Z", 2**70]),
        token(["pg0", "f", "2022-01-01T00:00:00.000000Z", 1]),
        token({"lastEvaluatedKey": {"aggregateId": "x"}}),
        "x" * 500,
    ):
        with pytest.raises(EventStoreError, match="malformed page token"):
            pokemons.list_aggregate_ids(limit=2, page_token=bad)
    with pytest.raises(EventStoreError, match="forward listing"):
        pokemons.list_aggregate_ids(limit=2, page_token=page.next_page_token, reverse=True)


# --------------------------------------------------------------------------- bad input


POURS = {
    "aggregate_ids": lambda store, channel: pour_event_store_aggregate_ids(store, channel),
    "aggregate_events": lambda store, channel: pour_aggregate_events(store, channel, "pikachu"),
    "store_events": lambda store, channel: pour_event_store_events(store, channel),
    "collection": lambda store, channel: pour_event_store_collection_events([store], channel),
}


def assert_refused(store: PostgresEventStore, match: str) -> None:
    for pour in POURS.values():
        channel = InMemoryMessageChannel()
        with pytest.raises(EventStoreError, match=match):
            pour(store, channel)
        assert channel.messages == []


def test_missing_table(table):
    with PostgresEventStore("POKEMONS", table.dsn, table="no_such_table") as store:
        assert_refused(store, r'table "no_such_table" does not exist at .*search_path')
    with PostgresEventStore("POKEMONS", table.dsn, table="nowhere.event") as store:
        assert_refused(store, r'table "nowhere"."event" does not exist')


def test_missing_table_suggests_the_folded_name(table):
    upper = table.name.upper()
    store = PostgresEventStore("POKEMONS", table.dsn, table=upper)
    with store, pytest.raises(EventStoreError, match=f"{table.name} exists: Castore splices"):
        store.validate()


def test_table_without_castores_columns(table):
    table.execute(
        sql.SQL("CREATE TABLE {} (id int, aggregate_name text, payload jsonb)").format(
            sql.Identifier(table.name + "_x")
        )
    )
    try:
        with PostgresEventStore("POKEMONS", table.dsn, table=table.name + "_x") as store:
            assert_refused(
                store,
                "not in Castore's layout: missing column\\(s\\) aggregate_id, version, type, "
                "data, metadata, timestamp \\(it has id, aggregate_name, payload\\)",
            )
    finally:
        table.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(table.name + "_x")))


def test_table_with_wrong_column_types(table):
    name = table.name + "_t"
    table.execute(
        sql.SQL(
            "CREATE TABLE {} (id bigint, aggregate_name text, aggregate_id text, version text,"
            " type text, data jsonb, metadata text, timestamp text)"
        ).format(sql.Identifier(name))
    )
    try:
        with PostgresEventStore("POKEMONS", table.dsn, table=name) as store:
            assert_refused(
                store,
                "column version is text, expected bigint or integer or smallint; column timestamp"
                " is text, expected timestamp .*; column metadata is text, expected json or jsonb",
            )
    finally:
        table.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(name)))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_server_fails_fast():
    # A refused connection is retried (see tests/retries): here without waits in between.
    started = time.monotonic()
    with PostgresEventStore(
        "POKEMONS",
        host="127.0.0.1",
        port=free_port(),
        user="postgres",
        dbname="x",
        retry_policy=RetryPolicy(max_attempts=2, initial_backoff_seconds=0, max_backoff_seconds=0),
    ) as store:
        assert_refused(
            store,
            r"cannot connect to PostgreSQL at host=127.0.0.1 port=\d+ .*unreachable.*"
            r"\(gave up after 2 attempts\)",
        )
    assert time.monotonic() - started < 10


def test_silent_server_times_out(postgres_server):
    """A server that accepts the connection and never answers (a black hole on loopback)."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        started = time.monotonic()
        store = PostgresEventStore(
            "POKEMONS",
            host="127.0.0.1",
            port=port,
            connect_timeout=2,
            dbname="x",
            retry_policy=RetryPolicy(max_attempts=1),  # a timeout is retried: once is enough
        )
        with store, pytest.raises(EventStoreError, match=rf"cannot connect to .*port={port}"):
            store.validate()
        assert 1.5 < time.monotonic() - started < 8


def test_bad_credentials(postgres_server, table):
    params = conninfo_to_dict(table.dsn)
    dsn = make_conninfo(table.dsn, user=f"nobody_{uuid.uuid4().hex[:6]}", password="wrong")
    with PostgresEventStore("POKEMONS", dsn, table=table.name) as store:
        assert_refused(store, "authentication failed")
        with pytest.raises(EventStoreError) as raised:
            store.validate()
        assert "wrong" not in str(raised.value)  # never the password
    dsn = make_conninfo(table.dsn, dbname=f"{params['dbname']}_missing")
    with PostgresEventStore("POKEMONS", dsn, table=table.name) as store:
        assert_refused(store, "database does not exist")


def test_no_select_privilege(table):
    role = f"reader_{uuid.uuid4().hex[:6]}"
    table.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
    try:
        with PostgresEventStore(
            "POKEMONS", make_conninfo(table.dsn, user=role), table=table.name
        ) as store:
            assert_refused(store, f"user '{role}' may not SELECT from table")
    finally:
        table.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_wrong_event_store_id_warns_once_and_pours_nothing(pokemons, table, caplog):
    store = PostgresEventStore("POKEMON", table.dsn, table=table.name)
    with caplog.at_level(logging.WARNING, logger=LOGGER), store:
        for pour in POURS.values():
            channel = InMemoryMessageChannel()
            result = pour(store, channel)
            assert channel.messages == []
            count = result.get("poured_event_count", result.get("poured_aggregate_id_count"))
            assert count == 0
    warnings = [r for r in caplog.records if r.name.startswith(LOGGER)]
    assert len(warnings) == 1
    assert "event store 'POKEMON' has no aggregates" in warnings[0].getMessage()
    assert "Event store ids found in the table: POKEMONS, TRAINERS" in warnings[0].getMessage()


@pytest.mark.parametrize(
    "options, match",
    [
        ({"table": "a.b.c"}, "'table' or 'schema.table'"),
        ({"table": ""}, "'table' or 'schema.table'"),
        ({"max_pool_size": 0}, "max_pool_size must be a positive integer"),
        ({"min_pool_size": 3, "max_pool_size": 2}, "min_pool_size 3 is above max_pool_size 2"),
        ({"default_page_size": -1}, "default_page_size"),
    ],
)
def test_bad_constructor_arguments(options, match):
    with pytest.raises(EventStoreError, match=match):
        PostgresEventStore("POKEMONS", "host=127.0.0.1", **options)
    with pytest.raises(EventStoreError, match="event_store_id"):
        PostgresEventStore("", "host=127.0.0.1")
    with pytest.raises(EventStoreError, match="invalid PostgreSQL connection string"):
        PostgresEventStore("S", "host=127.0.0.1 nonsense")


def test_bad_read_arguments(pokemons):
    for kwargs in ({"limit": 0}, {"limit": True}, {"limit": "3"}):
        with pytest.raises(EventStoreError, match="limit must be a positive integer"):
            pokemons.list_aggregate_ids(**kwargs)
    with pytest.raises(EventStoreError, match="min_version"):
        pokemons.get_events("pikachu", min_version=0)
    with pytest.raises(CastoreDamError, match="initial_event_after"):
        pokemons.list_aggregate_ids(initial_event_after="yesterday")


def test_closed_store(table):
    table.load(POKEMON_ROWS)
    with table.store() as store:
        assert store.get_events("pikachu")
    with pytest.raises(EventStoreError, match="is closed"):
        store.get_events("pikachu")
    assert "password" not in repr(store)


def test_connections_are_read_only(pokemons, table):
    pokemons.validate()
    pool = pokemons._connections.pool
    with pool.connection() as conn, pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        conn.execute(sql.SQL("DELETE FROM {}").format(sql.Identifier(table.name)))


@pytest.mark.parametrize("max_pool_size", [4, 1])
def test_an_aggregate_forgotten_by_the_unbounded_scan_takes_the_safe_path(
    table, monkeypatch, caplog, max_pool_size
):
    """Beyond TRACKED_AGGREGATES the scan forgets the least recently seen aggregates; when one
    comes back, the clock-skew query checks the rest (or, with a pool of one, the skew-safe
    tail query reads it): same order, nothing lost."""
    monkeypatch.setattr(clock_skew, "TRACKED_AGGREGATES", 3)
    rows = [("S", event(f"a{i}", 1, f"2022-01-01T00:00:0{i}.000Z")) for i in range(6)] + [
        ("S", event("a0", 2, "2022-01-01T00:00:07.000Z")),
        ("S", event("a5", 2, "2022-01-01T00:00:08.000Z")),
    ]
    table.load(rows)
    store = table.store("S", scan_batch_size=2)

    got = [
        (s.pour_timestamp, s.event["aggregateId"], s.event["version"]) for s in store.scan_events()
    ]

    assert got == [(e["timestamp"], e["aggregateId"], e["version"]) for _, e in rows]


@pytest.mark.parametrize("tracked", [1, 2, 5])
@pytest.mark.parametrize("max_pool_size", [4, 1])
def test_skew_after_forgotten_aggregates_is_still_placed_right(
    table, monkeypatch, tracked, max_pool_size
):
    monkeypatch.setattr(clock_skew, "TRACKED_AGGREGATES", tracked)
    rows = skewed_rows(seed=12, aggregates=25)
    table.load(rows)
    store = table.store("A", scan_batch_size=7, max_pool_size=max_pool_size)
    expected = oracle.pour_order({"A": [e for s, e in rows if s == "A"]})

    got = [(s.pour_timestamp, s.event) for s in store.scan_events()]

    assert canon(got) == canon([(pour_timestamp(e, expected), e) for _, e in expected])
