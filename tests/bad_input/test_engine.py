"""Bad input to the engine: every case raises InvalidPourInputError naming the parameter and
the bad value, and the channel receives nothing.

The bad-input suite (tests/bad_input/):

- test_engine.py       the four pour utilities (this file);
- test_connections.py  Airflow connections the hooks refuse, missing tables, unknown stores,
                       injection attempts, targets that do not exist, oversized messages;
- test_operators.py    operator arguments, templated ones rendered by Jinja to garbage;
- test_channels.py     queue URLs, bus names and options the AWS channels refuse.
"""

from __future__ import annotations

import datetime as dt
import math

import pytest

from airflow_provider_castore_dam.channels import InMemoryMessageChannel
from airflow_provider_castore_dam.dam import (
    CastoreDamError,
    InvalidPourInputError,
    pour_aggregate_events,
    pour_event_store_aggregate_ids,
    pour_event_store_collection_events,
    pour_event_store_events,
)

BAD_FILTERS = [
    ({"from": "yesterday"}, "filters.from 'yesterday' is not an ISO 8601 timestamp"),
    ({"to": "2021-13-01T00:00:00Z"}, "filters.to '2021-13-01T00:00:00Z' is not an ISO 8601"),
    ({"from": "2021-01-01T00:00:00"}, "filters.from '2021-01-01T00:00:00' has no time zone"),
    (
        {"from": dt.datetime(2021, 1, 1)},
        "filters.from datetime.datetime(2021, 1, 1, 0, 0) has no time zone",
    ),
    ({"to": "2021-01-01"}, "filters.to '2021-01-01' is a date, not a timestamp"),
    ({"from": 1609459200}, "filters.from must be an ISO 8601 string or a datetime, not int"),
    ({"from": "None"}, "filters.from 'None' is not an ISO 8601 timestamp"),
    ({"from": ""}, "filters.from '' is not an ISO 8601 timestamp"),
    (
        {"from": "2022-01-01T00:00:00Z", "to": "2021-01-01T00:00:00Z"},
        "filters.from 2022-01-01T00:00:00.000Z is after filters.to 2021-01-01T00:00:00.000Z",
    ),
    (  # the strings compare the other way round: the bounds are compared in UTC
        {"from": "2021-01-01T00:00:00-01:00", "to": "2021-01-01T00:30:00Z"},
        "filters.from 2021-01-01T01:00:00.000Z is after filters.to 2021-01-01T00:30:00.000Z",
    ),
    ({"since": "2021-01-01T00:00:00Z"}, "unknown filters key(s) ['since']"),
    ("2021-01-01", "filters must be a mapping, not str '2021-01-01'"),
]
BAD_RATE_LIMITS = [
    (0, "rate_limit must be positive and finite, not 0"),
    (-5, "rate_limit must be positive and finite, not -5"),
    (math.nan, "rate_limit must be positive and finite, not nan"),
    (math.inf, "rate_limit must be positive and finite, not inf"),
    ("fast", "rate_limit must be a number of messages per second, not 'fast'"),
    ("10", "rate_limit must be a number of messages per second, not '10'"),
    (True, "rate_limit must be a number of messages per second, not True"),
    # published one batch, then overflowed the clock before the minimum existed
    (1e-300, "rate_limit 1e-300 is below 0.001 messages per second"),
    (0.0005, "rate_limit 0.0005 is below 0.001 messages per second"),
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
    assert channel.publish_calls == 0


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
        ({"limit": -1}, "options.limit must be a positive integer, not -1"),
        ({"limit": 2.5}, "options.limit must be a positive integer, not 2.5"),
        ({"limit": "500"}, "options.limit must be a positive integer, not '500'"),
        ({"reverse": "yes"}, "options.reverse must be true or false, not 'yes'"),
        ({"initial_event_after": "soon"}, "options.initial_event_after 'soon' is not an ISO"),
        (
            {
                "initial_event_after": "2022-01-01T00:00:00Z",
                "initial_event_before": "2021-01-01T00:00:00Z",
            },
            "options.initial_event_after 2022-01-01T00:00:00.000Z is after "
            "options.initial_event_before 2021-01-01T00:00:00.000Z",
        ),
        ({"page_token": "abc"}, "unknown options key(s) ['page_token']"),
        (["limit", 5], "options must be a mapping, not list ['limit', 5]"),
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
        ({"min_version": 0}, "options.min_version must be a positive integer, not 0"),
        ({"max_version": "2"}, "options.max_version must be a positive integer, not '2'"),
        ({"limit": 0}, "options.limit must be a positive integer, not 0"),
        ({"reverse": 1}, "options.reverse must be true or false, not 1"),
        ({"minVersion": 1}, "unknown options key(s) ['minVersion']"),
    ],
)
def test_bad_get_events_options(pokemons, trainers, channel, options, fragment):
    assert_refused(
        pours((pokemons, trainers), channel, options=options)["aggregate_events"], channel, fragment
    )


@pytest.mark.parametrize(
    ("aggregate_id", "fragment"),
    [
        ("", "aggregate_id must be a non-empty string, not ''"),
        (None, "aggregate_id must be a non-empty string, not None"),
        (42, "aggregate_id must be a non-empty string, not 42"),
        (["pikachu1"], "aggregate_id must be a non-empty string, not ['pikachu1']"),
    ],
)
def test_bad_aggregate_id(pokemons, channel, aggregate_id, fragment):
    assert_refused(
        lambda: pour_aggregate_events(pokemons, channel, aggregate_id), channel, fragment
    )


def test_empty_collection(channel):
    assert_refused(
        lambda: pour_event_store_collection_events([], channel),
        channel,
        "event_stores is empty; give at least one event store",
    )


def test_collection_with_a_store_twice(pokemons, channel):
    assert_refused(
        lambda: pour_event_store_collection_events([pokemons, pokemons], channel),
        channel,
        "event store id 'POKEMONS' appears twice in event_stores",
    )


@pytest.mark.parametrize(
    ("stores", "fragment"),
    [
        (lambda _: "POKEMONS", "event_stores must be a list of event stores, not str 'POKEMONS'"),
        (
            lambda _: ["POKEMONS", "TRAINERS"],
            "event_stores[0] must be an event store (with a non-empty event_store_id), "
            "not str 'POKEMONS'",
        ),
        (lambda store: [store, None], "event_stores[1] must be an event store"),
    ],
    ids=["id string", "list of ids", "None in the list"],
)
def test_collection_of_things_that_are_not_stores(pokemons, channel, stores, fragment):
    assert_refused(
        lambda: pour_event_store_collection_events(stores(pokemons), channel), channel, fragment
    )


@pytest.mark.parametrize("utility", ["aggregate_ids", "aggregate_events", "store_events"])
def test_a_store_id_instead_of_a_store(trainers, channel, utility):
    pour = pours(("POKEMONS", trainers), channel)[utility]
    assert_refused(
        pour,
        channel,
        "event_store must be an event store (with a non-empty event_store_id), not str 'POKEMONS'",
    )


@pytest.mark.parametrize(
    ("checkpoint", "fragment"),
    [
        ("{}", "checkpoint must be a dict saved by this version of the engine"),
        ({"format": 2, "utility": "pour_event_store_events"}, "checkpoint inputs must be a dict"),
        ({"format": 1}, "saved by another version of the engine"),
    ],
)
@pytest.mark.parametrize("utility", ["aggregate_ids", "aggregate_events", "store_events"])
def test_bad_checkpoint(pokemons, trainers, channel, utility, checkpoint, fragment):
    pour = pours((pokemons, trainers), channel, checkpoint=checkpoint)[utility]
    assert_refused(pour, channel, fragment)


def test_a_channel_that_is_not_one_is_refused_before_the_store_is_read(pokemons):
    with pytest.raises(InvalidPourInputError) as raised:
        pour_event_store_events(pokemons, None)

    assert "message_channel must be a message channel (with publish_messages), not NoneType" in (
        str(raised.value)
    )


def test_a_channel_without_a_usable_batch_size_publishes_nothing(pokemons):
    channel = InMemoryMessageChannel(max_batch_size=0)

    assert_refused(
        lambda: pour_event_store_events(pokemons, channel),
        channel,
        "max_batch_size of message channel",
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
        "filters.from 'x' is not an ISO 8601 timestamp",
    )
