"""reconcile_pour: a pour's digest against a dry run of the same pour, and what a queue holds
against the source; hypothesis against a brute-force count of copies per message."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_provider_castore_dam.channels import InMemoryMessageChannel
from airflow_provider_castore_dam.dam import (
    pour_aggregate_events,
    pour_event_store_aggregate_ids,
    pour_event_store_collection_events,
    pour_event_store_events,
)
from airflow_provider_castore_dam.dam.digest import Digest, pour_digest
from airflow_provider_castore_dam.dam.reconcile import (
    ReconciliationError,
    raise_on_mismatch,
    reconcile_pour,
)
from airflow_provider_castore_dam.errors import InvalidPourInputError
from airflow_provider_castore_dam.protocols import message_key
from airflow_provider_castore_dam.stores import InMemoryEventStore, InMemoryScanningEventStore
from airflow_provider_castore_dam.stores.demo import DEMO_EVENTS

T = "2021-01-01T00:00:{:02d}.000Z"


def store_of(count: int, versions: int = 10, store_id: str = "S") -> InMemoryScanningEventStore:
    events = [
        {
            "aggregateId": f"agg-{n // versions:05d}",
            "version": n % versions + 1,
            "type": "T",
            "timestamp": f"2021-01-01T{n // 3600 % 24:02d}:{n // 60 % 60:02d}:{n % 60:02d}.000Z",
        }
        for n in range(count)
    ]
    return InMemoryScanningEventStore(store_id, events)


def delivered_keys(channel: InMemoryMessageChannel) -> list:
    return [message_key(published.message) for published in channel.messages]


@pytest.fixture
def pokemons():
    return InMemoryEventStore("POKEMONS", DEMO_EVENTS["POKEMONS"])


@pytest.fixture
def trainers():
    return InMemoryEventStore("TRAINERS", DEMO_EVENTS["TRAINERS"])


def pours(pokemons, trainers):
    window = {"from": "2021-01-01T00:00:00.000Z", "to": "2022-12-31T00:00:00.000Z"}
    return {
        "events": lambda ch: pour_event_store_events(pokemons, ch, window),
        "partition": lambda ch: pour_event_store_events(pokemons, ch, partition=(1, 2)),
        "collection": lambda ch: pour_event_store_collection_events([trainers, pokemons], ch),
        "aggregate_ids": lambda ch: pour_event_store_aggregate_ids(pokemons, ch, {"limit": 1}),
        "aggregate_events": lambda ch: pour_aggregate_events(
            pokemons, ch, "pikachu1", {"reverse": True}, window
        ),
    }


@pytest.mark.parametrize(
    "utility", ["events", "partition", "collection", "aggregate_ids", "aggregate_events"]
)
def test_every_utility_reconciles_with_its_source_and_its_queue(pokemons, trainers, utility):
    channel = InMemoryMessageChannel()
    result = pours(pokemons, trainers)[utility](channel)

    stores = [pokemons, trainers] if utility == "collection" else [pokemons]
    report = reconcile_pour(result, stores, delivered=delivered_keys(channel))

    assert report["matches"] is True
    for store_id, store_report in report["event_stores"].items():
        poured = result["digest"]["event_stores"][store_id]
        assert store_report["source"] == store_report["poured"] == poured
        assert store_report["delivered"] == {"count": poured["count"], "distinct": poured}
        assert store_report["missing"] == store_report["extra"] == store_report["duplicated"] == []
    assert (
        sum(r["poured"]["count"] for r in report["event_stores"].values())
        == len(channel.messages)
        > 0
    )
    raise_on_mismatch(report)  # no error


def test_one_dropped_and_one_duplicated_message_in_100_000_are_named():
    store = store_of(100_000)
    channel = InMemoryMessageChannel(max_batch_size=500)
    result = pour_event_store_events(store, channel)
    delivered = delivered_keys(channel)
    rng = random.Random(3)
    dropped = delivered.pop(rng.randrange(len(delivered)))
    duplicated = delivered[rng.randrange(len(delivered))]
    delivered.append(duplicated)
    rng.shuffle(delivered)

    report = reconcile_pour(result, [store], delivered=iter(delivered))

    s = report["event_stores"]["S"]
    assert report["matches"] is False
    assert s["source"] == s["poured"]  # the pour itself confirmed everything
    assert s["delivered"]["count"] == 100_000  # the count alone sees nothing
    assert s["delivered"]["distinct"]["count"] == 99_999
    assert s["delivered"]["distinct"]["hash"] != s["poured"]["hash"]
    assert (s["missing_count"], s["extra_count"], s["duplicated_count"]) == (1, 0, 1)
    assert s["missing"] == [{"aggregate_id": dropped[1], "version": dropped[2]}]
    assert s["duplicated"] == [{"aggregate_id": duplicated[1], "version": duplicated[2]}]
    with pytest.raises(ReconciliationError) as raised:
        raise_on_mismatch(report)
    message = str(raised.value)
    assert (
        "S: source 100000, poured 100000, delivered 100000 (1 missing, 0 extra, 1 duplicated)"
        in message
    )
    assert f"missing: {dropped[1]!r} v{dropped[2]}" in message
    assert f"duplicated: {duplicated[1]!r} v{duplicated[2]}" in message


def test_a_pour_digest_with_one_dropped_and_one_duplicated_message_does_not_match():
    """As a pour that confirmed one message twice and lost another would report it."""
    store = store_of(1_000)
    result = pour_event_store_events(store, InMemoryMessageChannel())
    keys = [("S", f"agg-{n // 10:05d}", n % 10 + 1) for n in range(1_000)]
    digest = Digest(["S"])
    for key in [*keys[1:], keys[5]]:  # the first one lost, the sixth one counted twice
        digest.add_key(key)
    utility, inputs = result["digest"]["utility"], result["digest"]["inputs"]
    tampered = {**result, "digest": pour_digest(utility, inputs, digest)}

    report = reconcile_pour(tampered, [store])

    s = report["event_stores"]["S"]
    assert report["matches"] is False
    assert s["source"]["count"] == s["poured"]["count"] == 1_000
    assert s["source"]["hash"] != s["poured"]["hash"]
    assert s["delivered"] is None
    with pytest.raises(
        ReconciliationError, match=r"S: source 1000, poured 1000 \(digests differ\)"
    ):
        raise_on_mismatch(report)


def test_allow_duplicates_after_a_resumed_pour():
    store = store_of(100)
    channel = InMemoryMessageChannel()
    result = pour_event_store_events(store, channel)
    delivered = delivered_keys(channel) + delivered_keys(channel)[:10]  # a window again

    strict = reconcile_pour(result, [store], delivered=delivered)
    lenient = reconcile_pour(result, [store], delivered=delivered, allow_duplicates=True)

    assert strict["matches"] is False and strict["event_stores"]["S"]["duplicated_count"] == 10
    assert lenient["matches"] is True and lenient["event_stores"]["S"]["duplicated_count"] == 10


def test_messages_of_a_store_the_pour_did_not_read_are_extra():
    store = store_of(20)
    channel = InMemoryMessageChannel()
    result = pour_event_store_events(store, channel)
    delivered = [*delivered_keys(channel), ("OTHER", "x", 1)]

    report = reconcile_pour(result, [store], delivered=delivered)

    assert report["matches"] is False
    assert report["event_stores"]["S"]["matches"] is True
    other = report["event_stores"]["OTHER"]
    assert other["extra"] == [{"aggregate_id": "x", "version": 1}]
    assert (other["source"]["count"], other["poured"]["count"], other["extra_count"]) == (0, 0, 1)


def test_a_store_changed_since_the_pour_shows_in_the_counts():
    store = store_of(30)
    result = pour_event_store_events(store, InMemoryMessageChannel())
    grown = store_of(31)

    report = reconcile_pour(result, [grown])

    assert report["event_stores"]["S"]["source"]["count"] == 31
    assert report["event_stores"]["S"]["poured"]["count"] == 30
    assert report["matches"] is False


def test_only_the_first_max_reported_are_named_but_all_are_counted():
    store = store_of(50)
    result = pour_event_store_events(store, InMemoryMessageChannel())

    report = reconcile_pour(result, [store], delivered=[], max_reported=3)

    assert report["event_stores"]["S"]["missing_count"] == 50
    assert len(report["event_stores"]["S"]["missing"]) == 3


copies = st.dictionaries(
    st.tuples(st.sampled_from(["a", "b", "c"]), st.integers(1, 4)), st.integers(0, 3), max_size=12
)


@settings(max_examples=150, deadline=None)
@given(copies, st.randoms(use_true_random=False))
def test_missing_extra_and_duplicated_are_the_brute_force_counts(delivered_copies, rng):
    events = [
        {"aggregateId": a, "version": v, "type": "T", "timestamp": T.format(v)}
        for a in ("a", "b")
        for v in (1, 2, 3)
    ]
    store = InMemoryScanningEventStore("S", events)
    result = pour_event_store_events(store, InMemoryMessageChannel())
    source = Counter(("S", e["aggregateId"], e["version"]) for e in events)
    delivered = [("S", a, v) for (a, v), n in delivered_copies.items() for _ in range(n)]
    rng.shuffle(delivered)
    held = Counter(delivered)

    report = reconcile_pour(result, [store], delivered=delivered, max_reported=100)

    s = report["event_stores"]["S"]
    missing = sorted((k[1], k[2]) for k in source if not held[k])
    extra = sorted((k[1], k[2]) for k in held if not source[k])
    twice = sorted((k[1], k[2]) for k in held if source[k] and held[k] > source[k])
    assert [(n["aggregate_id"], n["version"]) for n in s["missing"]] == missing
    assert [(n["aggregate_id"], n["version"]) for n in s["extra"]] == extra
    assert [(n["aggregate_id"], n["version"]) for n in s["duplicated"]] == twice
    assert s["extra_count"] == sum(held[k] for k in held if not source[k])
    assert s["duplicated_count"] == sum(held[k] - 1 for k in held if source[k] and held[k] > 1)
    assert s["delivered"]["count"] == len(delivered)
    assert report["matches"] == (held == source)


class Unreadable:
    """A store whose every read fails the test."""

    def __init__(self, event_store_id: str) -> None:
        self.event_store_id = event_store_id

    def __getattr__(self, name):
        raise AssertionError(f"the store was read ({name})")


@pytest.mark.parametrize(
    ("pour_result", "store_id", "options", "fragment"),
    [
        ({"poured_event_count": 3}, "S", {}, "pour_result must be a pour's result with its digest"),
        ("result", "S", {}, "pour_result must be a pour's result"),
        ({"digest": {"utility": "pour_everything", "inputs": {}}}, "S", {}, "names no pour"),
        (None, "OTHER", {}, "reconcile it with exactly those"),
        (None, "S", {"max_reported": -1}, "max_reported must be an integer"),
        (None, "S", {"allow_duplicates": "yes"}, "allow_duplicates must be true or false"),
    ],
)
def test_bad_inputs_fail_before_reading_the_store_or_the_queue(
    pour_result, store_id, options, fragment
):
    if pour_result is None:
        pour_result = pour_event_store_events(store_of(10), InMemoryMessageChannel())
    started = []

    def delivered():
        started.append(True)
        yield from []

    with pytest.raises(InvalidPourInputError, match=fragment):
        reconcile_pour(pour_result, [Unreadable(store_id)], delivered=delivered(), **options)
    assert started == []
