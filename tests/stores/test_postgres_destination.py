"""PostgresEventStoreDestination on the real PostgreSQL server: a store poured into another
table holds exactly the source's rows, the conflict policies, a resumed migration, a dropped
connection retried, and bad messages refused before anything is written."""

from __future__ import annotations

import json

import psycopg
import pytest
from psycopg import sql

from airflow_provider_castore_dam.dam import (
    PourInterruptedError,
    pour_event_store_collection_events,
    pour_event_store_events,
)
from airflow_provider_castore_dam.errors import EventAlreadyExistsError, InvalidPourInputError
from airflow_provider_castore_dam.retry import RetryPolicy
from airflow_provider_castore_dam.stores.postgres.destination import (
    APPLICATION_NAME,
    PostgresEventStoreDestination,
)
from tests.stores.test_postgres_joint_scan import STORES, monotonic_rows, skew
from tests.stores.test_postgres_store import canon, event

T0 = "2022-01-01T10:00:00.000Z"
T1 = "2022-01-01T11:00:00.000Z"
FAST = RetryPolicy(max_attempts=5, initial_backoff_seconds=0.01, max_backoff_seconds=0.05)


def rows_of(table, store_id: str | None = None) -> list[tuple]:
    """Castore's columns of every row (of ``store_id``), in insertion (id) order."""
    where = sql.SQL("") if store_id is None else sql.SQL(" WHERE aggregate_name = %(s)s")
    return table.execute(
        sql.SQL(
            "SELECT aggregate_name, aggregate_id::text, version, type, data::text,"
            " metadata::text, to_char(timestamp AT TIME ZONE 'UTC',"
            ' \'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"\') FROM {}{} ORDER BY id'
        ).format(sql.Identifier(table.name), where),
        {"s": store_id},
    )


def destination(table, **options) -> PostgresEventStoreDestination:
    return PostgresEventStoreDestination(table.dsn, table=table.name, retry_policy=FAST, **options)


def sorted_rows(rows):
    return sorted(rows, key=lambda row: (row[0], row[1], row[2]))


@pytest.mark.parametrize("skewed", [False, True], ids=["in-order", "clock-skew"])
def test_a_store_poured_into_another_table_holds_the_same_rows(make_table, skewed):
    source, target = make_table(), make_table()
    rows = monotonic_rows(seed=4)
    source.load(skew(rows, "A") if skewed else rows)

    with destination(target, batch_size=7) as written:
        result = pour_event_store_collection_events([source.store(s) for s in STORES], written)

    assert sorted_rows(rows_of(target)) == sorted_rows(rows_of(source))
    assert result["poured_event_count"] == len(rows_of(source))
    # Read back with the store: the same events, in the same pour order.
    for store_id in STORES:
        assert canon(list(_events(target.store(store_id)))) == canon(
            list(_events(source.store(store_id)))
        )


def _events(store):
    for batch in store.scan_event_batches():
        yield from batch.events


def test_payloads_as_castore_writes_them(make_table):
    source, target = make_table(), make_table()
    source.load(
        [
            ("S", event("a", 1, T0, payload={"n": 1}, metadata={"by": "me"})),
            ("S", event("a", 2, T0)),
            ("S", event("a", 3, T1, payload=0, metadata=False)),
            ("S", event("a", 4, T1, payload="", metadata=[])),
        ]
    )

    with destination(target) as written:
        pour_event_store_events(source.store("S"), written)

    assert [row[3:6] for row in rows_of(target)] == [
        ("HAPPENED", '{"n": 1}', '{"by": "me"}'),
        ("HAPPENED", None, None),  # absent: NULL, as Castore writes it
        ("HAPPENED", "0", "false"),
        ("HAPPENED", '""', "[]"),
    ]


def seeded(make_table, existing: list[tuple[str, dict]]):
    source, target = make_table(), make_table()
    source.load(
        [("S", event("a", v, T0, payload={"v": v})) for v in (1, 2, 3)]
        + [("S", event("b", 1, T1, payload={"v": 1}))]
    )
    target.load(existing)
    return source, target


def test_fail_stops_at_an_existing_event_naming_it_and_writes_nothing_of_its_call(make_table):
    source, target = seeded(make_table, [("S", event("a", 2, T0, payload={"v": 2}))])

    with (
        destination(target, batch_size=2, max_in_flight=1) as written,
        pytest.raises(PourInterruptedError) as raised,
    ):
        pour_event_store_events(source.store("S"), written)

    cause = raised.value.__cause__
    assert isinstance(cause, EventAlreadyExistsError)
    assert (cause.event_store_id, cause.aggregate_id, cause.version) == ("S", "a", 2)
    assert "event 2 of aggregate 'a' of event store 'S' is already in the store" in str(cause)
    assert raised.value.result["poured_event_count"] == 0  # the first call held a/2
    assert [row[1:3] for row in rows_of(target)] == [("a", 2)]


def test_skip_identical_keeps_identical_events_and_fails_on_different_ones(make_table):
    same = ("S", event("a", 2, T0, payload={"v": 2}))
    source, target = seeded(make_table, [same])

    with destination(target, conflict="skip_identical") as written:
        result = pour_event_store_events(source.store("S"), written)

    assert result["poured_event_count"] == 4
    assert sorted(row[1:3] for row in rows_of(target)) == [("a", 1), ("a", 2), ("a", 3), ("b", 1)]

    source, target = seeded(make_table, [("S", event("a", 2, T0, payload={"v": "other"}))])
    with (
        destination(target, conflict="skip_identical") as written,
        pytest.raises(PourInterruptedError, match="already in the store with other content"),
    ):
        pour_event_store_events(source.store("S"), written)


def test_overwrite_replaces_what_is_there(make_table):
    source, target = seeded(make_table, [("S", event("a", 2, T1, type="OLD", payload=[1]))])

    with destination(target, conflict="overwrite") as written:
        pour_event_store_events(source.store("S"), written)

    assert sorted_rows(rows_of(target)) == sorted_rows(rows_of(source))


class CrashAfter(PostgresEventStoreDestination):
    """Writes ``calls`` calls, then fails as a killed worker would (after the write)."""

    def __init__(self, *args, calls: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls_left = calls

    def publish_messages(self, messages, *, replay):
        super().publish_messages(messages, replay=replay)
        self.calls_left -= 1
        if self.calls_left == 0:
            from airflow_provider_castore_dam.errors import MessageChannelError

            raise MessageChannelError("killed after writing", confirmed_count=0)


def test_a_resumed_migration_takes_its_own_writes_as_written(make_table):
    source, target = make_table(), make_table()
    source.load(monotonic_rows(seed=9))
    saved = []
    crashing = CrashAfter(
        target.dsn, table=target.name, batch_size=5, calls=3, retry_policy=FAST, max_in_flight=1
    )
    with crashing, pytest.raises(PourInterruptedError):
        pour_event_store_collection_events(
            [source.store(s) for s in STORES], crashing, on_checkpoint=saved.append
        )
    assert len(rows_of(target)) == 15  # the third call was written, not checkpointed

    with destination(target, batch_size=5) as written:  # "fail", 4 calls in flight
        result = pour_event_store_collection_events(
            [source.store(s) for s in STORES], written, checkpoint=saved[-1]
        )

    assert sorted_rows(rows_of(target)) == sorted_rows(rows_of(source))
    assert result["poured_event_count"] == len(rows_of(source))


def test_a_dropped_connection_is_retried_without_losing_or_repeating(make_table):
    source, target = make_table(), make_table()
    source.load(monotonic_rows(seed=2))
    written = destination(target, batch_size=10)
    original = written._write
    calls = 0

    def dropping(events, repeats_allowed):
        nonlocal calls
        calls += 1
        if calls in (2, 5):  # the server drops the destination's connections before the call
            target.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = %s",
                (APPLICATION_NAME,),
            )
        return original(events, repeats_allowed)

    written._write = dropping
    with written:
        pour_event_store_collection_events([source.store(s) for s in STORES], written)

    assert sorted_rows(rows_of(target)) == sorted_rows(rows_of(source))
    assert calls > 5


@pytest.mark.parametrize(
    ("message", "fragment"),
    [
        ({"eventStoreId": "S", "aggregateId": "a", "initialEventTimestamp": T0}, "notification"),
        (
            {"eventStoreId": "S", "event": {"aggregateId": "a", "version": 0, "type": "T"}},
            "positive",
        ),
        ({"eventStoreId": "S", "event": {"aggregateId": "a", "version": 1, "type": ""}}, "a type"),
        (
            {"eventStoreId": "S", "event": {"aggregateId": "a", "version": 1, "type": "T"}},
            "event timestamp",
        ),
    ],
)
def test_bad_messages_are_refused_before_anything_is_written(make_table, message, fragment):
    target = make_table()
    good = {"eventStoreId": "S", "event": event("ok", 1, T0)}
    with destination(target) as written, pytest.raises(InvalidPourInputError, match=fragment):
        written.publish_messages([good, message], replay=True)
    assert rows_of(target) == []


def test_a_key_twice_in_one_call(make_table):
    target = make_table()
    message = {"eventStoreId": "S", "event": event("a", 1, T0, payload={"x": 1})}
    with destination(target) as written:
        written.publish_messages([message, json.loads(json.dumps(message))], replay=True)
        assert len(rows_of(target)) == 1
        other = {"eventStoreId": "S", "event": event("b", 1, T0, payload={"x": 2})}
        changed = {"eventStoreId": "S", "event": event("b", 1, T0, payload={"x": 3})}
        with pytest.raises(EventAlreadyExistsError, match="written twice in one call"):
            written.publish_messages([other, changed], replay=True)
    assert len(rows_of(target)) == 1


def test_bad_options_and_a_missing_table(postgres_session_database):
    with pytest.raises(InvalidPourInputError, match="conflict must be one of fail"):
        PostgresEventStoreDestination(postgres_session_database, conflict="replace")
    with pytest.raises(InvalidPourInputError, match="batch_size must be a positive integer"):
        PostgresEventStoreDestination(postgres_session_database, batch_size=0)
    missing = PostgresEventStoreDestination(
        postgres_session_database, table="no_such_table", retry_policy=FAST
    )
    with missing, pytest.raises(Exception, match="no_such_table"):
        missing.publish_messages([{"eventStoreId": "S", "event": event("a", 1, T0)}], replay=True)
    with psycopg.connect(postgres_session_database) as conn:
        assert conn.execute("SELECT to_regclass('no_such_table')").fetchone() == (None,)
