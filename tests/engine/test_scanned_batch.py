"""A scan's batch as two parallel lists: cutting it by pour timestamp or by position gives what
filtering its events one by one would; a resumed scan skips exactly what was delivered."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from airflow_provider_castore_dam.protocols import ScannedBatch, ScannedEvent, resume_scan

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


class RecordedScan:
    """A store's scan from a timestamp, in batches of the given sizes, that records how it
    was opened and whether it was closed."""

    def __init__(self, scanned: list[tuple[str, str, int]], sizes: list[int]) -> None:
        self.all = keys(batch_of(scanned))
        self.sizes = sizes
        self.opened_from: list[str | None] = []
        self.closed = False

    def open(self, from_timestamp: str | None):
        self.opened_from.append(from_timestamp)
        return self._batches(from_timestamp)

    def _batches(self, from_timestamp: str | None):
        rest = [key for key in self.all if from_timestamp is None or key[0] >= from_timestamp]
        try:
            for size in self.sizes:  # empty batches too: the resume drops them
                yield batch_of(rest[:size])
                rest = rest[size:]
            if rest:
                yield batch_of(rest)
        finally:
            self.closed = True


@given(
    st.lists(positions),
    st.lists(st.integers(0, 4)),
    st.none() | st.sampled_from(TIMESTAMPS),
    st.none() | positions,
)
def test_a_resumed_scan_pours_exactly_what_follows_the_position(scanned, sizes, start, position):
    scan = RecordedScan(scanned, sizes)

    batches = list(resume_scan(scan.open, start, position))

    expected = [
        key
        for key in scan.all
        if (start is None or key[0] >= start) and (position is None or key > position)
    ]
    assert [key for batch in batches for key in keys(batch)] == expected
    assert all(batches)
    later = position[0] if position is not None and (start is None or position[0] > start) else None
    assert scan.opened_from == [later or start]
    assert scan.closed


def test_a_resumed_scan_is_opened_at_once_and_closed_when_abandoned():
    scan = RecordedScan([(TIMESTAMPS[0], "a", 1), (TIMESTAMPS[1], "a", 2)], [1])

    batches = resume_scan(scan.open, None, (TIMESTAMPS[0], "a", 1))
    assert scan.opened_from == [TIMESTAMPS[0]]  # before the first next(): errors show early
    assert keys(next(batches)) == [(TIMESTAMPS[1], "a", 2)]
    batches.close()

    assert scan.closed
