"""Transforms and renames: versions stay contiguous per aggregate whatever the transform drops
or fans out, also across a resumed pour (the offsets are in the checkpoints); a failing
transform stops the pour naming the event with nothing after it published; bad transforms are
refused before anything is published."""

from __future__ import annotations

from collections import defaultdict

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_castore_dam.channels import InMemoryMessageChannel
from airflow_provider_castore_dam.dam import (
    PourInterruptedError,
    pour_aggregate_events,
    pour_event_store_collection_events,
    pour_event_store_events,
)
from airflow_provider_castore_dam.dam.reconcile import reconcile_pour
from airflow_provider_castore_dam.dam.transforms import TransformError
from airflow_provider_castore_dam.errors import InvalidPourInputError
from airflow_provider_castore_dam.stores import InMemoryEventStore, InMemoryScanningEventStore
from tests.engine import oracle
from tests.engine.test_checkpoints import BreakingChannel
from tests.engine.test_properties import collections

FAN = "tests.engine.test_transforms:fan_out_by_payload"


def fan_out_by_payload(event_store_id: str, event: dict) -> object:
    """As many copies as the event's ``fan`` (0 drops it), typed ``<type>_V2#<copy>``; a
    ``fan`` of 1 returns the event itself, not a list."""
    fan = event.get("payload", {}).get("fan", 1) if isinstance(event.get("payload"), dict) else 1
    copies = [{**event, "type": f"{event['type']}_V2#{n}", "version": 999} for n in range(fan)]
    return copies[0] if fan == 1 else copies


def fails_on_version_3(event_store_id: str, event: dict) -> object:
    if event["version"] == 3:
        raise ValueError("cannot upcast")
    return event


def returns_a_number(event_store_id: str, event: dict) -> object:
    return 42


def moves_the_event(event_store_id: str, event: dict) -> object:
    return {**event, "aggregateId": "elsewhere"}


@st.composite
def fanned(draw: st.DrawFn) -> dict[str, list[dict]]:
    stores = draw(collections())
    return {
        store_id: [
            {**e, "payload": {"fan": draw(st.sampled_from([0, 1, 1, 2, 3]))}} for e in events
        ]
        for store_id, events in stores.items()
    }


def expected_outputs(stores: dict[str, list[dict]], renames: dict[str, str]) -> list[tuple]:
    """(store id, aggregate id, version, type) in pour order, numbered per aggregate."""
    numbered: dict[tuple[str, str], int] = defaultdict(int)
    outputs = []
    for store_id, event in oracle.pour_order(stores):
        for copy in range(event["payload"]["fan"]):
            numbered[store_id, event["aggregateId"]] += 1
            outputs.append(
                (
                    renames.get(store_id, store_id),
                    event["aggregateId"],
                    numbered[store_id, event["aggregateId"]],
                    f"{event['type']}_V2#{copy}",
                )
            )
    return outputs


def outputs_of(channel) -> list[tuple]:
    return [
        (
            m.message["eventStoreId"],
            m.message["event"]["aggregateId"],
            m.message["event"]["version"],
            m.message["event"]["type"],
        )
        for m in channel.messages
    ]


def pour(stores, channel, **kwargs):
    built = [InMemoryScanningEventStore(s, events) for s, events in stores.items()]
    return pour_event_store_collection_events(
        built, channel, transform=FAN, rename_event_stores={"A": "A_V2"}, **kwargs
    ), built


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stores=fanned())
def test_versions_stay_contiguous_per_aggregate(stores):
    channel = InMemoryMessageChannel()

    result, built = pour(stores, channel)

    assert outputs_of(channel) == expected_outputs(stores, {"A": "A_V2"})
    assert result["poured_event_count"] == len(channel.messages)
    assert reconcile_pour(result, built)["matches"] is True


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stores=fanned(), failure=st.data())
def test_a_resumed_pour_numbers_as_an_uninterrupted_one(stores, failure):
    reference = InMemoryMessageChannel(max_batch_size=3)
    expected_result, _ = pour(stores, reference)
    if reference.publish_calls == 0:
        return
    fail_on_call = failure.draw(st.integers(1, reference.publish_calls))
    channel = BreakingChannel(fail_on_call, failure.draw(st.integers(0, 2)))
    saved = []
    with pytest.raises(PourInterruptedError):
        pour(stores, channel, on_checkpoint=saved.append)
    before = len(channel.messages)

    result, _ = pour(stores, channel, checkpoint=saved[-1] if saved else None)

    resumed = outputs_of(channel)[before:]
    expected = outputs_of(reference)
    assert resumed == expected[len(expected) - len(resumed) :]  # the tail, numbered alike
    assert set(outputs_of(channel)) == set(expected)
    assert result == expected_result  # the digest too


def test_a_failing_transform_stops_the_pour_naming_the_event():
    events = [oracle_event("a", v) for v in (1, 2, 3, 4)] + [oracle_event("b", 1)]
    channel = InMemoryMessageChannel(max_batch_size=1)
    path = "tests.engine.test_transforms:fails_on_version_3"

    with pytest.raises(PourInterruptedError) as raised:
        pour_event_store_events(InMemoryScanningEventStore("S", events), channel, transform=path)

    cause = raised.value.__cause__
    assert isinstance(cause, TransformError)
    assert str(cause) == (
        f"transform {path} failed on event 3 of aggregate 'a' of event store 'S': "
        "ValueError: cannot upcast"
    )
    assert [
        (m.message["event"]["aggregateId"], m.message["event"]["version"]) for m in channel.messages
    ] == [
        ("a", 1),
        ("b", 1),
        ("a", 2),
    ]  # what comes before it in pour order; nothing after it


def oracle_event(aggregate_id: str, version: int) -> dict:
    return {
        "aggregateId": aggregate_id,
        "version": version,
        "type": "T",
        "timestamp": f"2021-01-01T00:00:0{version}.000Z",
    }


@pytest.mark.parametrize(
    ("path", "fragment"),
    [
        (
            "tests.engine.test_transforms:returns_a_number",
            "returned 42 for event 1 of aggregate 'a'",
        ),
        (
            "tests.engine.test_transforms:moves_the_event",
            "moved event 1 of aggregate 'a' of event store 'S' to aggregate 'elsewhere'",
        ),
    ],
)
def test_a_transform_that_returns_no_event_stops_the_pour(path, fragment):
    channel = InMemoryMessageChannel()
    with pytest.raises(PourInterruptedError, match=fragment):
        pour_event_store_events(
            InMemoryScanningEventStore("S", [oracle_event("a", 1)]), channel, transform=path
        )
    assert channel.messages == []


@pytest.mark.parametrize(
    ("transform", "renames", "fragment"),
    [
        (lambda store_id, event: event, None, "must be a module-level function"),
        ("tests.engine.test_transforms:no_such_function", None, "cannot import transform"),
        ("no_such_module:f", None, "cannot import transform"),
        ("not a path", None, "import path"),
        (FAN, {"A": ""}, "rename_event_stores must map event store ids to non-empty ids"),
        (None, ["A"], "rename_event_stores must map"),
    ],
)
def test_bad_transforms_fail_before_anything_is_published(transform, renames, fragment):
    channel = InMemoryMessageChannel()
    store = InMemoryEventStore("A", [oracle_event("a", 1)])
    with pytest.raises(InvalidPourInputError, match=fragment):
        pour_event_store_events(store, channel, transform=transform, rename_event_stores=renames)
    assert channel.messages == []


def test_rename_alone_and_one_aggregates_events():
    store = InMemoryEventStore("POKEMONS", [oracle_event("pika", v) for v in (1, 2)])
    channel = InMemoryMessageChannel()

    result = pour_aggregate_events(
        store, channel, "pika", rename_event_stores={"POKEMONS": "POKEMONS_V2"}
    )

    assert [m.message["eventStoreId"] for m in channel.messages] == ["POKEMONS_V2"] * 2
    assert [m.message["event"]["version"] for m in channel.messages] == [1, 2]
    assert list(result["digest"]["event_stores"]) == ["POKEMONS_V2"]
    assert result["digest"]["inputs"]["rename_event_stores"] == {"POKEMONS": "POKEMONS_V2"}
    assert reconcile_pour(result, [store])["matches"] is True
