"""Every bad argument raises InvalidPourInputError naming the bad value; nothing is published."""

from __future__ import annotations

import math

import pytest

from airflow_provider_castore_dam.dam import (
    CastoreDamError,
    InvalidPourInputError,
    pour_aggregate_events,
    pour_event_store_aggregate_ids,
    pour_event_store_collection_events,
    pour_event_store_events,
)

BAD_FILTERS = [
    ({"from": "yesterday"}, "'yesterday'"),
    ({"to": "2021-13-01T00:00:00Z"}, "2021-13-01T00:00:00Z"),
    ({"from": "2021-01-01T00:00:00"}, "no time zone"),
    ({"to": "2021-01-01"}, "is a date"),
    ({"from": 1609459200}, "1609459200"),
    ({"from": "2022-01-01T00:00:00Z", "to": "2021-01-01T00:00:00Z"}, "is after filters.to"),
    ({"since": "2021-01-01T00:00:00Z"}, "since"),
    ("2021-01-01", "must be a mapping"),
]
BAD_RATE_LIMITS = [
    (0, "0"),
    (-5, "-5"),
    (math.nan, "nan"),
    (math.inf, "inf"),
    ("fast", "'fast'"),
    (True, "True"),
]


def pours(stores, channel, **kwargs):
    pokemons, trainers = stores
    return {
        "aggregate_ids": lambda: pour_event_store_aggregate_ids(pokemons, channel, **kwargs),
        "aggregate_events": lambda: pour_aggregate_events(pokemons, channel, "pikachu1", **kwargs),
        "store_events": lambda: pour_event_store_events(pokemons, channel, **kwargs),
        "collection": lambda: pour_event_store_collection_events(
            [pokemons, trainers], channel, **kwargs
        ),
    }


def assert_refused(pour, channel, fragment):
    with pytest.raises(InvalidPourInputError) as raised:
        pour()
    assert fragment in str(raised.value)
    assert isinstance(raised.value, CastoreDamError)
    assert channel.messages == []


@pytest.mark.parametrize(("filters", "fragment"), BAD_FILTERS)
@pytest.mark.parametrize("utility", ["aggregate_events", "store_events", "collection"])
def test_bad_filters(pokemons, trainers, channel, utility, filters, fragment):
    assert_refused(
        pours((pokemons, trainers), channel, filters=filters)[utility], channel, fragment
    )


@pytest.mark.parametrize(("rate_limit", "fragment"), BAD_RATE_LIMITS)
@pytest.mark.parametrize(
    "utility", ["aggregate_ids", "aggregate_events", "store_events", "collection"]
)
def test_bad_rate_limit(pokemons, trainers, channel, utility, rate_limit, fragment):
    assert_refused(
        pours((pokemons, trainers), channel, rate_limit=rate_limit)[utility], channel, fragment
    )


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"limit": 0}, "options.limit must be a positive integer, not 0"),
        ({"limit": -1}, "not -1"),
        ({"limit": 2.5}, "not 2.5"),
        ({"reverse": "yes"}, "'yes'"),
        ({"initial_event_after": "soon"}, "'soon'"),
        (
            {
                "initial_event_after": "2022-01-01T00:00:00Z",
                "initial_event_before": "2021-01-01T00:00:00Z",
            },
            "is after",
        ),
        ({"page_token": "abc"}, "page_token"),
    ],
)
def test_bad_list_aggregate_ids_options(pokemons, trainers, channel, options, fragment):
    assert_refused(
        pours((pokemons, trainers), channel, options=options)["aggregate_ids"], channel, fragment
    )


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        (
            {"min_version": 3, "max_version": 2},
            "options.min_version 3 is above options.max_version 2",
        ),
        ({"min_version": 0}, "not 0"),
        ({"max_version": "2"}, "'2'"),
        ({"limit": 0}, "not 0"),
        ({"reverse": 1}, "not 1"),
        ({"minVersion": 1}, "minVersion"),
    ],
)
def test_bad_get_events_options(pokemons, trainers, channel, options, fragment):
    assert_refused(
        pours((pokemons, trainers), channel, options=options)["aggregate_events"], channel, fragment
    )


@pytest.mark.parametrize(("aggregate_id", "fragment"), [("", "''"), (None, "None"), (42, "42")])
def test_bad_aggregate_id(pokemons, channel, aggregate_id, fragment):
    assert_refused(
        lambda: pour_aggregate_events(pokemons, channel, aggregate_id), channel, fragment
    )


def test_empty_collection(channel):
    assert_refused(
        lambda: pour_event_store_collection_events([], channel), channel, "event_stores is empty"
    )


def test_collection_with_a_store_twice(pokemons, channel):
    assert_refused(
        lambda: pour_event_store_collection_events([pokemons, pokemons], channel),
        channel,
        "'POKEMONS' appears twice",
    )


def test_bad_input_is_checked_before_the_store_is_read(channel):
    class UnreadableStore:
        event_store_id = "UNREADABLE"

        def list_aggregate_ids(self, **_):
            raise AssertionError("read before validation")

        get_events = list_aggregate_ids

    assert_refused(
        lambda: pour_event_store_events(UnreadableStore(), channel, filters={"from": "x"}),
        channel,
        "'x'",
    )
