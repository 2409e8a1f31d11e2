"""A scan's batch as two parallel lists: cutting it by pour timestamp or by position gives what
filtering its events one by one would."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from airflow_provider_castore_dam.protocols import ScannedBatch, ScannedEvent

TIMESTAMPS = [f"2022-01-01T00:00:0{second}.000Z" for second in range(4)]
positions = st.tuples(st.sampled_from(TIMESTAMPS), st.sampled_from("abc"), st.integers(1, 3))


def batch_of(keys: list[tuple[str, str, int]]) -> ScannedBatch:
    return ScannedBatch.of(
        ScannedEvent(timestamp, {"aggregateId": aggregate_id, "version": version})
        for timestamp, aggregate_id, version in sorted(set(keys))
    )


def keys(batch: ScannedBatch) -> list[tuple[str, str, int]]:
    return [batch.position(index) for index in range(len(batch))]


@given(st.lists(positions), positions)
def test_after_keeps_exactly_the_later_positions(scanned, position) -> None:
    batch = batch_of(scanned)

    assert keys(batch.after(position)) == [key for key in keys(batch) if key > position]


@given(st.lists(positions), st.sampled_from(TIMESTAMPS))
def test_count_before_counts_the_earlier_pour_timestamps(scanned, timestamp) -> None:
    batch = batch_of(scanned)

    assert batch.count_before(timestamp) == sum(key[0] < timestamp for key in keys(batch))


def test_slices_extend_and_pairs_keep_the_two_lists_in_step() -> None:
    batch = batch_of([(TIMESTAMPS[0], "a", 1), (TIMESTAMPS[1], "b", 1), (TIMESTAMPS[2], "a", 2)])

    head, tail = batch[:1], batch[1:]
    head.extend(tail)

    assert len(batch) == 3 and not ScannedBatch()
    assert keys(head) == keys(batch)
    assert list(batch.scanned_events()) == [
        (TIMESTAMPS[0], {"aggregateId": "a", "version": 1}),
        (TIMESTAMPS[1], {"aggregateId": "b", "version": 1}),
        (TIMESTAMPS[2], {"aggregateId": "a", "version": 2}),
    ]
    assert batch.pour_timestamps == TIMESTAMPS[:3]
