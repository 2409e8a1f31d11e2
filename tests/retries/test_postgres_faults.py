"""PostgresEventStore through real faults: connections reset mid-stream by a TCP proxy,
refused at connect time, backends terminated by the server; and permanent errors.

Every pour goes through the proxy (loopback) to the test server; the expected messages come
from the brute-force oracle. A cut scan must resume strictly after the last event it delivered:
the channel receives every event exactly once, in pour order.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import make_conninfo
from psycopg_pool import PoolTimeout

from airflow_provider_castore_dam.channels import InMemoryMessageChannel
from airflow_provider_castore_dam.dam import (
    pour_aggregate_events,
    pour_event_store_aggregate_ids,
    pour_event_store_collection_events,
    pour_event_store_events,
)
from airflow_provider_castore_dam.errors import EventStoreError
from airflow_provider_castore_dam.retry import RetryPolicy, attempts_made
from airflow_provider_castore_dam.stores.postgres import PostgresEventStore, cursor
from airflow_provider_castore_dam.stores.postgres.connection import postgres_failure
from tests.engine import oracle
from tests.infra import skip_unless_ci
from tests.retries.helpers import FAST, assert_retry_lines, attempt_numbers, canon, retry_lines
from tests.retries.tcp_proxy import FaultProxy
from tests.stores.castore_tables import copy_events, create_castore_table

STORE = "POKEMONS"
AGGREGATES = 150
VERSIONS = 4
BIG = "big-one"  # an aggregate of many versions, for get_events


def _stamp(second: int, millis: int) -> str:
    return (
        f"2022-01-01T{second // 3600:02d}:{second // 60 % 60:02d}:{second % 60:02d}.{millis:03d}Z"
    )


def _rows() -> list[tuple[str, dict[str, Any]]]:
    """Five aggregates share each initial millisecond; versions follow a second apart; every
    37th aggregate's last version goes back in time (clock skew: the scan's skewed tail query
    takes over there); another store's rows are interleaved; payloads of ~300 bytes."""
    rows: list[tuple[str, dict[str, Any]]] = []
    for n in range(AGGREGATES):
        aggregate_id = f"ポケモン-{n:03d}" if n % 11 == 4 else f"pokemon-{n:03d}"
        for version in range(1, VERSIONS + 1):
            second = 100 + 10 * (n // 5) + 2 * version
            if n % 37 == 5 and version == VERSIONS:
                second -= 30  # earlier than version 3
            event = {
                "aggregateId": aggregate_id,
                "version": version,
                "type": "LEVELLED_UP" if version > 1 else "APPEARED",
                "timestamp": _stamp(second, 7 * (n % 3)),
                "payload": {"n": n, "version": version, "text": "é" * 20 + "x" * 250},
            }
            if version == 2:
                event["metadata"] = {"by": "ash"}
            rows.append((STORE, event))
            if n % 10 == 0:
                rows.append(("TRAINERS", {**event, "aggregateId": f"trainer-{n}"}))
    rows.append((STORE, {"aggregateId": BIG, "version": 1, "type": "T", "timestamp": _stamp(5, 0)}))
    rows.extend(
        (STORE, {"aggregateId": BIG, "version": v, "type": "T", "timestamp": _stamp(5, 1)})
        for v in range(2, 301)
    )
    return rows


ROWS = _rows()
EVENTS = [event for store_id, event in ROWS if store_id == STORE]
LATEST = {(s, e["aggregateId"], e["version"]): e["timestamp"] for s, e in ROWS}
MONOTONIC_ROWS = [  # without the skewed versions: a joint scan of both stores reads them all
    (s, e)
    for s, e in ROWS
    if e["timestamp"] >= LATEST.get((s, e["aggregateId"], e["version"] - 1), "")
]


def expected(start: str | None = None, end: str | None = None) -> list[dict[str, Any]]:
    return [
        {"eventStoreId": STORE, "event": e}
        for _, e in oracle.pour_order({STORE: EVENTS}, start, end)
    ]


@pytest.fixture(scope="module")
def table_dsn(postgres_server) -> Iterator[tuple[str, str]]:
    with postgres_server.temporary_database("castore_faults") as dsn:
        create_castore_table(dsn, "event", aggregate_id_type="VARCHAR(64)")
        copy_events(dsn, ROWS, "event")
        create_castore_table(dsn, "monotonic", aggregate_id_type="VARCHAR(64)")
        copy_events(dsn, MONOTONIC_ROWS, "monotonic")
        yield dsn, "event"


@pytest.fixture
def open_store(table_dsn, pg_proxy) -> Iterator[Callable[..., PostgresEventStore]]:
    """Stores that connect through the proxy (fast retries unless told otherwise)."""
    dsn, table = table_dsn
    stores: list[PostgresEventStore] = []

    def open_(**options: Any) -> PostgresEventStore:
        options.setdefault("retry_policy", FAST)
        options.setdefault("pool_timeout", 10)
        conninfo = options.pop("conninfo", None) or make_conninfo(
            dsn, host="127.0.0.1", port=pg_proxy.port
        )
        store_id = options.pop("event_store_id", STORE)
        store = PostgresEventStore(store_id, conninfo, table=options.pop("table", table), **options)
        stores.append(store)
        return store

    yield open_
    for store in stores:
        store.close()


@pytest.fixture(params=["chunked", "fetch-per-batch"])
def fetching(request, monkeypatch):
    """Both ways the scan reads its rows: one streamed query (libpq 17+) or a FETCH a batch."""
    if request.param == "chunked" and not cursor.CHUNKED_ROWS:
        skip_unless_ci("libpq older than 17 cannot stream in chunks")
    monkeypatch.setattr(cursor, "CHUNKED_ROWS", request.param == "chunked")
    return request.param


class HookedChannel(InMemoryMessageChannel):
    """An in-memory channel that runs ``hooks[n]`` after its n-th publish call (1-based)."""

    def __init__(self, hooks: dict[int, Callable[[], Any]]) -> None:
        super().__init__()
        self._hooks = hooks

    def publish_messages(self, messages, *, replay):
        super().publish_messages(messages, replay=replay)
        hook = self._hooks.get(self.publish_calls)
        if hook is not None:
            hook()


def published(channel: InMemoryMessageChannel) -> list[dict[str, Any]]:
    assert all(message.replay for message in channel.messages)
    return [message.message for message in channel.messages]


def assert_exactly(channel: InMemoryMessageChannel, want: list[dict[str, Any]]) -> None:
    got = published(channel)
    assert len(got) == len(want)
    assert canon(got) == canon(want)  # same events, same order: none lost, none twice


def scan_bytes(
    open_store, proxy: FaultProxy, batch_size: int, pool: int = 4, **filters: Any
) -> int:
    """Bytes the server sends for a whole fault-free pour, after validation."""
    store = open_store(scan_batch_size=batch_size, max_pool_size=pool)
    store.validate()
    before = proxy.to_client_bytes
    channel = InMemoryMessageChannel()
    pour_event_store_events(store, channel, filters=filters or None)
    assert_exactly(channel, expected(filters.get("from"), filters.get("to")))
    return proxy.to_client_bytes - before


# --------------------------------------------------------------------------- transient


@pytest.mark.parametrize("fraction", [0.05, 0.5, 0.9])
def test_scan_cut_mid_stream_resumes_after_the_last_delivered_event(
    open_store, pg_proxy, fetching, fraction, caplog
):
    # one connection: the listings run before the scan, not beside it, so the cut lands on
    # the scan at the same place every time
    total = scan_bytes(open_store, pg_proxy, 40, pool=1)
    store = open_store(scan_batch_size=40, max_pool_size=1)
    store.validate()
    caplog.clear()
    pg_proxy.cut_after(int(total * fraction))
    resets = pg_proxy.resets
    channel = InMemoryMessageChannel()

    result = pour_event_store_events(store, channel)

    assert_exactly(channel, expected())
    assert result["poured_event_count"] == len(EVENTS)
    assert pg_proxy.resets > resets  # the connection really was cut
    lines = assert_retry_lines(
        caplog,
        count=1,
        operation='scanning events from table "public"."event" at host=127.0.0.1',
        reasons=["OperationalError"],
    )
    assert attempt_numbers(lines) == [1]


@pytest.mark.parametrize("fraction", [0.1, 0.6])
def test_a_joint_scan_cut_mid_stream_hands_over_without_loss(
    open_store, pg_proxy, fraction, caplog
):
    stores = [
        open_store(event_store_id=store_id, table="monotonic", scan_batch_size=40)
        for store_id in (STORE, "TRAINERS")
    ]
    for store in stores:
        store.validate()
    channel = InMemoryMessageChannel()
    before = pg_proxy.to_client_bytes
    pour_event_store_collection_events(stores, channel)
    want = [
        {"eventStoreId": store_id, "event": e}
        for store_id, e in oracle.pour_order(
            {s: [e for sid, e in MONOTONIC_ROWS if sid == s] for s in (STORE, "TRAINERS")}
        )
    ]
    assert_exactly(channel, want)
    total = pg_proxy.to_client_bytes - before
    caplog.clear()
    pg_proxy.cut_after(int(total * fraction))
    resets = pg_proxy.resets
    channel = InMemoryMessageChannel()

    with caplog.at_level(logging.INFO, logger="airflow_provider_castore_dam.dam.ordering"):
        result = pour_event_store_collection_events(stores, channel)

    assert pg_proxy.resets > resets
    assert_exactly(channel, want)
    assert result["poured_event_count"] == len(want)
    handovers = [r.getMessage() for r in caplog.records if "handed over" in r.getMessage()]
    assert len(handovers) == 1 and "joint scan of" in handovers[0]


def test_scan_with_bounds_resumes_within_them(open_store, pg_proxy, caplog):
    bounds = {"from": _stamp(195, 0), "to": _stamp(350, 0)}
    total = scan_bytes(open_store, pg_proxy, 25, **bounds)
    store = open_store(scan_batch_size=25)
    store.validate()
    caplog.clear()
    pg_proxy.cut_after(total // 2)
    channel = InMemoryMessageChannel()

    pour_event_store_events(store, channel, filters=bounds)

    want = expected(bounds["from"], bounds["to"])
    assert 100 < len(want) < len(EVENTS) - 100
    assert_exactly(channel, want)
    assert_retry_lines(caplog, count=1, operation="scanning events", reasons=["OperationalError"])


def test_resets_between_batches_resume_each_time(open_store, pg_proxy, monkeypatch, caplog):
    monkeypatch.setattr(cursor, "CHUNKED_ROWS", False)  # a FETCH per batch
    # one connection: no read-ahead beside a background clock-skew check, so every reset
    # lands on a cursor still open
    store = open_store(scan_batch_size=30, max_pool_size=1)
    store.validate()
    caplog.clear()
    cut: list[int] = []

    def reset() -> None:
        cut.append(pg_proxy.reset_all())

    # publish calls 1-31 are the first batch (big-one's 300 versions share a millisecond)
    channel = HookedChannel({40: reset, 60: reset, 80: reset})

    pour_event_store_events(store, channel)

    assert cut == [1, 1, 1]  # the scan's connection, each time
    assert_exactly(channel, expected())
    lines = assert_retry_lines(
        caplog, count=3, operation="scanning events", reasons=["OperationalError"]
    )
    assert attempt_numbers(lines) == [1, 1, 1]  # progress in between: each a first retry


def test_backend_terminated_by_the_server_resumes(open_store, table_dsn, monkeypatch, caplog):
    monkeypatch.setattr(cursor, "CHUNKED_ROWS", False)
    name = f"faults-{uuid.uuid4().hex[:8]}"
    store = open_store(scan_batch_size=30, max_pool_size=1, application_name=name)
    store.validate()
    caplog.clear()

    def terminate() -> None:
        with psycopg.connect(table_dsn[0], autocommit=True) as admin:
            killed = admin.execute(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE application_name = %s AND state <> 'idle'",
                (name,),
            ).fetchone()[0]
        assert killed == 1

    channel = HookedChannel({5: terminate})
    pour_event_store_events(store, channel)

    assert_exactly(channel, expected())
    assert_retry_lines(
        caplog,
        count=1,
        operation="scanning events",
        reasons=["AdminShutdown (57P01)", "OperationalError"],
    )


def test_refused_connections_at_connect_time_are_retried(open_store, pg_proxy, caplog):
    store = open_store()
    pg_proxy.refuse(2)
    channel = InMemoryMessageChannel()

    pour_event_store_events(store, channel)

    assert pg_proxy.refused == 2
    assert_exactly(channel, expected())
    lines = assert_retry_lines(
        caplog,
        count=2,
        operation=f"connecting to PostgreSQL at host=127.0.0.1 port={pg_proxy.port}",
        reasons=["OperationalError: connection failed"],
    )
    assert attempt_numbers(lines) == [1, 2]


def test_connect_retries_are_bounded(open_store, pg_proxy, caplog):
    policy = RetryPolicy(max_attempts=3, initial_backoff_seconds=0.001, max_backoff_seconds=0.01)
    store = open_store(retry_policy=policy)
    pg_proxy.refuse(100)
    channel = InMemoryMessageChannel()

    with pytest.raises(EventStoreError) as raised:
        pour_event_store_events(store, channel)

    assert pg_proxy.refused == 3
    message = str(raised.value)
    assert "cannot connect to PostgreSQL" in message and "unreachable" in message
    assert (  # libpq's own words, as the reset reached it
        "Connection reset by peer" in message
        or "server closed the connection unexpectedly" in message
    )
    assert message.endswith("(gave up after 3 attempts)")
    assert published(channel) == []
    assert attempt_numbers(retry_lines(caplog)) == [1, 2]


def test_retry_seconds_bound_connect_retries(open_store, pg_proxy, caplog):
    policy = RetryPolicy(
        max_attempts=None, max_seconds=0.3, initial_backoff_seconds=0.02, max_backoff_seconds=0.05
    )
    store = open_store(retry_policy=policy)
    pg_proxy.refuse(1000)
    started = time.monotonic()

    with pytest.raises(EventStoreError, match="gave up after"):
        store.validate()

    assert 0.3 <= time.monotonic() - started < 3
    assert len(retry_lines(caplog)) == pg_proxy.refused - 1 >= 3


def test_listing_page_cut_is_retried(open_store, pg_proxy, caplog):
    store = open_store()
    store.validate()
    caplog.clear()
    channel = HookedChannel({1: lambda: pg_proxy.cut_after(300)})  # inside the next page

    pour_event_store_aggregate_ids(store, channel, options={"limit": 40})

    listing = oracle.listing(EVENTS)
    want = [
        {
            "eventStoreId": STORE,
            "aggregateId": row["aggregate_id"],
            "initialEventTimestamp": row["initial_event_timestamp"],
        }
        for row in listing
    ]
    got = published(channel)
    assert len(got) == AGGREGATES + 1
    # ties of initial timestamps are listed by row id: compare as sets, then the order
    assert sorted(map(canon, got)) == sorted(map(canon, want))
    stamps = [message["initialEventTimestamp"] for message in got]
    assert stamps == sorted(stamps)
    assert_retry_lines(
        caplog, count=1, operation="listing aggregates from table", reasons=["OperationalError"]
    )


def test_aggregate_events_cut_is_retried(open_store, pg_proxy, caplog):
    store = open_store()
    store.validate()
    caplog.clear()
    pg_proxy.cut_after(2000)
    channel = InMemoryMessageChannel()

    result = pour_aggregate_events(store, channel, BIG)

    want = [{"eventStoreId": STORE, "event": e} for e in EVENTS if e["aggregateId"] == BIG]
    assert_exactly(channel, want)
    assert result["poured_event_count"] == 300
    assert_retry_lines(
        caplog, count=1, operation=f"reading aggregate {BIG!r}", reasons=["OperationalError"]
    )


# --------------------------------------------------------------------------- permanent


POURS = {
    "store_events": lambda store, channel: pour_event_store_events(store, channel),
    "aggregate_ids": lambda store, channel: pour_event_store_aggregate_ids(store, channel),
    "aggregate_events": lambda store, channel: pour_aggregate_events(store, channel, BIG),
}


@pytest.mark.parametrize("pour", POURS)
def test_undefined_table_fails_fast(postgres_server, pg_proxy, pour, caplog):
    with postgres_server.temporary_database("castore_faults_gone") as dsn:
        create_castore_table(dsn, "event", aggregate_id_type="VARCHAR(64)")
        copy_events(dsn, ROWS[:50], "event")
        conninfo = make_conninfo(dsn, host="127.0.0.1", port=pg_proxy.port)
        with PostgresEventStore(STORE, conninfo, retry_policy=FAST) as store:
            store.validate()
            with psycopg.connect(dsn, autocommit=True) as admin:
                admin.execute("ALTER TABLE event RENAME TO event_moved")
            channel = InMemoryMessageChannel()
            started = time.monotonic()

            with pytest.raises(EventStoreError) as raised:
                POURS[pour](store, channel)

            assert time.monotonic() - started < 2
            assert 'relation "public.event" does not exist' in str(raised.value)
            assert "gave up" not in str(raised.value)
            assert isinstance(raised.value.__cause__, psycopg.errors.UndefinedTable)
            assert attempts_made(raised.value.__cause__) == 1
            assert published(channel) == []
            assert retry_lines(caplog) == []


@pytest.mark.parametrize(
    ("change", "service_message"),
    [
        ({"user": "nobody_{tag}"}, 'role "nobody_{tag}" does not exist'),
        ({"dbname": "missing_{tag}"}, 'database "missing_{tag}" does not exist'),
    ],
)
def test_refused_credentials_and_missing_database_fail_fast(
    open_store, table_dsn, pg_proxy, change, service_message, caplog
):
    tag = uuid.uuid4().hex[:6]
    params = {key: value.format(tag=tag) for key, value in change.items()}
    conninfo = make_conninfo(table_dsn[0], host="127.0.0.1", port=pg_proxy.port, **params)
    store = open_store(conninfo=conninfo)
    channel = InMemoryMessageChannel()

    with pytest.raises(EventStoreError) as raised:
        pour_event_store_events(store, channel)

    assert service_message.format(tag=tag) in str(raised.value)
    assert pg_proxy.accepted == 1  # one attempt
    assert published(channel) == []
    assert retry_lines(caplog) == []


# --------------------------------------------------------------------------- classification


@pytest.mark.parametrize(
    ("error", "retryable"),
    [
        (psycopg.OperationalError("consuming input failed: server closed the connection"), True),
        (psycopg.OperationalError("connection failed: Connection refused"), True),
        (psycopg.OperationalError("connection failed: timeout expired"), True),
        (psycopg.errors.AdminShutdown("terminating connection"), True),
        (psycopg.errors.CannotConnectNow("the database system is starting up"), True),
        (psycopg.errors.TooManyConnections("sorry, too many clients already"), True),
        (psycopg.errors.SerializationFailure("could not serialize access"), True),
        (psycopg.errors.DeadlockDetected("deadlock detected"), True),
        (psycopg.errors.ConnectionFailure("connection failure"), True),
        (psycopg.OperationalError('FATAL: password authentication failed for user "x"'), False),
        (psycopg.OperationalError('FATAL: role "x" does not exist'), False),
        (psycopg.OperationalError('FATAL: database "x" does not exist'), False),
        (psycopg.OperationalError("FATAL: no pg_hba.conf entry for host"), False),
        (psycopg.OperationalError('could not translate host name "db": Name or service'), False),
        (
            psycopg.OperationalError(
                'could not translate host name "db": Temporary failure in name resolution'
            ),
            True,
        ),
        (psycopg.errors.UndefinedTable('relation "event" does not exist'), False),
        (psycopg.errors.SyntaxError("syntax error at or near"), False),
        (psycopg.errors.InsufficientPrivilege("permission denied for table event"), False),
        (psycopg.errors.QueryCanceled("canceling statement due to statement timeout"), False),
        (PoolTimeout("couldn't get a connection after 30 sec"), False),
        (ValueError("not a database error"), False),
    ],
)
def test_postgres_errors_are_classified(error, retryable):
    failure = postgres_failure(error)
    assert failure.retryable is retryable
    assert str(error).split(":")[0] in failure.message
