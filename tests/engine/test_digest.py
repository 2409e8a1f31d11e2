"""The pour digest: the documented formula (tests/engine/oracle.py computes it from scratch),
independent of order and batching, and changed by one dropped and one duplicated message."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_provider_castore_dam.dam.digest import (
    Digest,
    combined_pour_digest,
    message_value,
    parse_store_digests,
)
from airflow_provider_castore_dam.errors import InvalidPourInputError
from tests.engine import oracle

ids = st.text(min_size=1, max_size=12)
keys = st.tuples(
    st.sampled_from(["S", "T", "POKEMONS#2"]), ids, st.one_of(st.none(), st.integers(1, 3000))
)


def notification(key):
    store_id, aggregate_id, version = key
    if version is None:
        return {"eventStoreId": store_id, "aggregateId": aggregate_id, "initialEventTimestamp": "x"}
    return {"eventStoreId": store_id, "event": {"aggregateId": aggregate_id, "version": version}}


def digest_of(key_list, batches=1):
    digest = Digest(["S"])
    size = max(1, len(key_list) // batches)
    for start in range(0, len(key_list), size):
        digest.add_messages([notification(k) for k in key_list[start : start + size]])
    return digest.as_json()


def test_values_follow_the_documented_formula():
    # "<n>:" keeps ("ab", "c") and ("a", "bc") apart.
    assert message_value(("ab", "c", 1)) != message_value(("a", "bc", 1))
    for key in [("S", "a", 1), ("POKEMONS", "pikachu#1", 12), ("Ü", "ß", None), ("S", "a", 10**7)]:
        expected = oracle.digest("u", {"event_store_ids": [key[0]]}, [key])
        assert f"{message_value(key):032x}" == expected["event_stores"][key[0]]["hash"]


@settings(max_examples=200, deadline=None)
@given(st.lists(keys, max_size=60), st.randoms(use_true_random=False), st.integers(1, 7))
def test_the_digest_is_the_oracles_in_any_order_and_batching(key_list, shuffler, batches):
    expected = oracle.digest(
        "u", {"event_store_ids": sorted({"S", *(k[0] for k in key_list)})}, key_list
    )["event_stores"]
    shuffled = list(key_list)
    shuffler.shuffle(shuffled)

    assert digest_of(key_list) == expected
    assert digest_of(shuffled, batches) == expected
    by_key = Digest()
    for key in shuffled:
        by_key.add_key(key)
    assert by_key.as_json() == {s: d for s, d in expected.items() if d["count"]}


@settings(max_examples=200, deadline=None)
@given(st.lists(keys, min_size=2, max_size=60, unique=True), st.data())
def test_one_dropped_and_one_duplicated_message_change_the_hash(key_list, data):
    dropped = data.draw(st.sampled_from(key_list))
    duplicated = data.draw(st.sampled_from([k for k in key_list if k != dropped]))
    damaged = [k for k in key_list if k != dropped] + [duplicated]

    whole, broken = Digest(), Digest()
    for key in key_list:
        whole.add_key(key)
    for key in damaged:
        broken.add_key(key)

    assert sum(d["count"] for d in broken.as_json().values()) == len(key_list)
    assert broken.as_json() != whole.as_json()


def test_one_dropped_and_one_duplicated_in_100_000():
    rng = random.Random(7)
    key_list = [("S", f"agg-{n // 10:05d}", n % 10 + 1) for n in range(100_000)]
    damaged = list(key_list)
    dropped = damaged.pop(rng.randrange(len(damaged)))
    damaged.append(damaged[rng.randrange(len(damaged))])
    rng.shuffle(damaged)

    whole, broken = digest_of(key_list, batches=1000), digest_of(damaged, batches=977)

    assert dropped not in damaged
    assert whole["S"]["count"] == broken["S"]["count"] == 100_000
    assert whole["S"]["hash"] != broken["S"]["hash"]


def test_partition_digests_add_up():
    key_list = [("S", f"a{n}", v) for n in range(30) for v in (1, 2)]
    parts = [key_list[:17], key_list[17:40], key_list[40:]]
    inputs = {"event_store_ids": ["S"], "filters": {"from": None, "to": None}}
    part_digests = [
        oracle.digest("pour_event_store_events", {**inputs, "partition": [i, 3]}, part)
        for i, part in enumerate(parts)
    ]

    combined = combined_pour_digest(part_digests)

    assert combined == oracle.digest("pour_event_store_events", inputs, key_list)


def test_partitions_of_different_pours_do_not_combine():
    one = oracle.digest("pour_event_store_events", {"event_store_ids": ["S"], "filters": {}}, [])
    other = {**one, "inputs": {"event_store_ids": ["T"], "filters": {}}}
    with pytest.raises(ValueError, match="partitions of different pours"):
        combined_pour_digest([one, other])


@pytest.mark.parametrize(
    "value",
    [
        [],
        {"S": {"count": -1, "hash": "0" * 32}},
        {"S": {"count": 1, "hash": "0" * 31}},
        {"S": {"count": True, "hash": "0" * 32}},
        {"S": {"count": 1, "hash": "G" * 32}},
        {"S": 3},
    ],
)
def test_bad_store_digests_are_refused(value):
    with pytest.raises(InvalidPourInputError, match="digest"):
        parse_store_digests(value)
