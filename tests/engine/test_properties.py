"""Random stores against the brute-force oracle, for all four utilities and both merge paths."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_castore_dam.channels import InMemoryMessageChannel
from airflow_provider_castore_dam.dam import (
    pour_aggregate_events,
    pour_event_store_aggregate_ids,
    pour_event_store_collection_events,
    pour_event_store_events,
)
from airflow_provider_castore_dam.dam.event_merge import EventMerge
from airflow_provider_castore_dam.dam.inputs import TimeRange
from airflow_provider_castore_dam.stores import InMemoryEventStore, InMemoryScanningEventStore
from tests.engine import oracle

# Few distinct milliseconds, so many events and aggregates tie.
TIMESTAMPS = [f"2021-01-01T00:00:00.00{i}Z" for i in range(6)]
timestamps = st.sampled_from(TIMESTAMPS)
bounds = st.one_of(st.none(), timestamps)
aggregate_ids = st.text(alphabet="abcé漢😀", min_size=1, max_size=3)
page_sizes = st.integers(min_value=1, max_value=5)


@st.composite
def store_events(draw: st.DrawFn, max_aggregates: int = 12) -> list[dict]:
    events = []
    for aggregate_id in draw(st.sets(aggregate_ids, max_size=max_aggregates)):
        moments = draw(st.lists(timestamps, min_size=1, max_size=5))
        if draw(st.booleans()):
            moments.sort()  # mostly well-formed aggregates; the rest have clock skew
        for version, moment in enumerate(moments, 1):
            events.append(
                {
                    "aggregateId": aggregate_id,
                    "version": version,
                    "type": "T",
                    "timestamp": moment,
                    "payload": version,
                }
            )
    return draw(st.permutations(events))


@st.composite
def collections(draw: st.DrawFn) -> dict[str, list[dict]]:
    store_ids = draw(st.sets(st.sampled_from(["A", "B", "Ä", "a"]), min_size=1, max_size=3))
    return {store_id: draw(store_events(max_aggregates=6)) for store_id in sorted(store_ids)}


def ordered_range(start, end):
    return (start, end) if start is None or end is None or start <= end else (end, start)


def keys(items):
    """(store id, aggregate id, version) of (store id, event) pairs or of the merge's
    (pour timestamp, store id, event) triples."""
    return [(store_id, e["aggregateId"], e["version"]) for *_, store_id, e in items]


def published_keys(channel):
    assert all(message.replay for message in channel.messages)
    return [
        (
            m.message["eventStoreId"],
            m.message["event"]["aggregateId"],
            m.message["event"]["version"],
        )
        for m in channel.messages
    ]


SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(
    events=store_events(), page_size=page_sizes, after=bounds, before=bounds, reverse=st.booleans()
)
def test_aggregate_ids_match_the_oracle(events, page_size, after, before, reverse):
    after, before = ordered_range(after, before)
    channel = InMemoryMessageChannel()
    store = InMemoryEventStore("S", events)

    result = pour_event_store_aggregate_ids(
        store,
        channel,
        options={
            "limit": page_size,
            "initial_event_after": after,
            "initial_event_before": before,
            "reverse": reverse,
        },
    )

    expected = oracle.listing(events, after, before, reverse)
    assert [
        (m.message["aggregateId"], m.message["initialEventTimestamp"]) for m in channel.messages
    ] == [(a["aggregate_id"], a["initial_event_timestamp"]) for a in expected]
    assert result["poured_aggregate_id_count"] == len(expected)
    assert result["first_scanned_aggregate"] == (expected[0] if expected else None)
    assert result["last_scanned_aggregate"] == (expected[-1] if expected else None)


@SETTINGS
@given(
    events=store_events(max_aggregates=3),
    min_version=st.one_of(st.none(), st.integers(1, 6)),
    extra=st.one_of(st.none(), st.integers(0, 6)),
    limit=st.one_of(st.none(), st.integers(1, 6)),
    reverse=st.booleans(),
    start=bounds,
    end=bounds,
)
def test_aggregate_events_match_the_oracle(events, min_version, extra, limit, reverse, start, end):
    start, end = ordered_range(start, end)
    max_version = None if extra is None else (min_version or 1) + extra
    store = InMemoryEventStore("S", events)
    for aggregate_id, aggregate in oracle.aggregates_by_id(events).items():
        channel = InMemoryMessageChannel()
        result = pour_aggregate_events(
            store,
            channel,
            aggregate_id,
            options={
                "min_version": min_version,
                "max_version": max_version,
                "limit": limit,
                "reverse": reverse,
            },
            filters={"from": start, "to": end},
        )

        selected = [
            e
            for e in aggregate
            if (min_version is None or e["version"] >= min_version)
            and (max_version is None or e["version"] <= max_version)
        ]
        selected = (selected[::-1] if reverse else selected)[:limit]
        expected = [
            e
            for e in selected
            if (start is None or e["timestamp"] >= start) and (end is None or e["timestamp"] <= end)
        ]
        assert [m.message["event"] for m in channel.messages] == expected
        assert result["poured_event_count"] == len(expected)
        assert result["first_poured_event"] == (expected[0] if expected else None)
        assert result["last_poured_event"] == (expected[-1] if expected else None)


@SETTINGS
@given(
    events=store_events(), start=bounds, end=bounds, page_size=page_sizes, scanning=st.booleans()
)
def test_store_events_match_the_oracle(events, start, end, page_size, scanning):
    start, end = ordered_range(start, end)
    store_class = InMemoryScanningEventStore if scanning else InMemoryEventStore
    store = store_class("S", events, default_page_size=page_size)
    channel = InMemoryMessageChannel()

    result = pour_event_store_events(store, channel, filters={"from": start, "to": end})

    expected = oracle.pour_order({"S": events}, start, end)
    assert published_keys(channel) == keys(expected)
    assert [m.message["event"] for m in channel.messages] == [e for _, e in expected]
    assert result == {
        "poured_event_count": len(expected),
        **oracle.scan_infos(events, end),
        "digest": oracle.digest(
            "pour_event_store_events",
            {"event_store_ids": ["S"], "filters": {"from": start, "to": end}},
            oracle.event_keys("S", [e for _, e in expected]),
        ),
    }


@SETTINGS
@given(stores=collections(), start=bounds, end=bounds, page_size=page_sizes, scanning=st.booleans())
def test_collection_events_match_the_oracle(stores, start, end, page_size, scanning):
    start, end = ordered_range(start, end)
    store_class = InMemoryScanningEventStore if scanning else InMemoryEventStore
    event_stores = [
        store_class(store_id, events, default_page_size=page_size)
        for store_id, events in stores.items()
    ]
    channel = InMemoryMessageChannel()

    result = pour_event_store_collection_events(
        event_stores[::-1], channel, filters={"from": start, "to": end}
    )

    expected = oracle.pour_order(stores, start, end)
    assert published_keys(channel) == keys(expected)
    assert result == {
        "poured_event_count": len(expected),
        "scans": {store_id: oracle.scan_infos(events, end) for store_id, events in stores.items()},
        "digest": oracle.digest(
            "pour_event_store_collection_events",
            {"event_store_ids": list(stores)[::-1], "filters": {"from": start, "to": end}},
            [(store_id, e["aggregateId"], e["version"]) for store_id, e in expected],
        ),
    }


@SETTINGS
@given(
    stores=collections(),
    start=bounds,
    end=bounds,
    page_size=page_sizes,
    events_page_size=page_sizes,
    max_buffered=st.integers(1, 8),
)
def test_merge_holds_order_under_any_page_size_and_buffer_cap(
    stores, start, end, page_size, events_page_size, max_buffered
):
    start, end = ordered_range(start, end)
    event_stores = [
        InMemoryEventStore(store_id, events, default_page_size=page_size)
        for store_id, events in stores.items()
    ]

    merge = EventMerge(
        event_stores,
        TimeRange(start, end),
        page_size=events_page_size,
        max_buffered_events=max_buffered,
    )

    assert keys(merge) == keys(oracle.pour_order(stores, start, end))


def test_merge_keeps_memory_within_the_cap_with_many_open_aggregates():
    # 300 aggregates alive at once, 20 events each: the whole store is 6,000 events.
    events = [
        {
            "aggregateId": f"a{a:03d}",
            "version": v,
            "type": "T",
            "timestamp": f"2021-01-01T00:{v:02d}:{a % 60:02d}.000Z",
        }
        for a in range(300)
        for v in range(1, 21)
    ]
    stores = [InMemoryEventStore("S", events)]
    merge = EventMerge(stores, TimeRange(), page_size=10, max_buffered_events=500)

    peak = 0
    poured = []
    for pair in merge:
        poured.append(pair)
        peak = max(peak, merge.buffered_events)

    assert keys(poured) == keys(oracle.pour_order({"S": events}))
    assert 400 <= peak <= 500 + 10
