"""Random stores with injected defects, and the defects expected: the oracle of the integrity
check's property tests. It does not re-run the check's logic: it derives the expected defects
from the injections into a clean store."""

from __future__ import annotations

import datetime as dt
from collections import Counter

from hypothesis import strategies as st

from airflow_provider_castore_dam.protocols import StoredEvent

GARBLED: tuple[str | None, ...] = (None, "not a time", "2024-13-01T00:00:00.000Z")


def ts(second: int) -> str:
    moment = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(seconds=second)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def expected_counts(events: list[StoredEvent]) -> dict:
    """The report's counts for ``events``."""
    return {
        "aggregate_count": len({e.aggregate_id for e in events}),
        "event_count": len(events),
        "by_event_type": dict(sorted(Counter(e.type for e in events if e.type).items())),
    }


def found_defects(report: dict) -> Counter:
    return Counter((d["kind"], d["aggregate_id"], tuple(d["versions"])) for d in report["defects"])


STRUCTURAL = st.sampled_from(["none", "drop_first", "drop_middle", "duplicate"])
NO_DUPLICATE = st.sampled_from(["none", "drop_first", "drop_middle"])


@st.composite
def defective_stores(
    draw: st.DrawFn,
    *,
    garbled: tuple[str | None, ...] = GARBLED,
    unlisted: bool = True,
    touch_duplicates: bool = True,
    duplicates: bool = True,
) -> tuple[list[StoredEvent], Counter]:
    """A clean store (strictly increasing timestamps per aggregate) with injected defects,
    and the defects expected, derived from the injections alone (``garbled``: the unparseable
    timestamps the store can hold; ``unlisted``: whether it can hold unlisted aggregates;
    ``touch_duplicates``: whether a duplicated version may have other defects, which then
    depend on the order of its copies, for stores that yield copies in any order;
    ``duplicates``: whether the store can hold a version twice at all)."""
    changes = ["clean", "clean", "untyped", "skewed"]
    changes += ["garbled"] * bool(garbled) + ["unlisted"] * unlisted
    events: list[StoredEvent] = []
    expected: Counter = Counter()
    for index in range(draw(st.integers(0, 8))):
        aggregate_id = f"agg-{index:02d}"
        length = draw(st.integers(1, 6))
        base = [(v, 100 * index + 10 * v) for v in range(1, length + 1)]
        structural = draw(STRUCTURAL if duplicates else NO_DUPLICATE) if length >= 3 else "none"
        kept = list(base)
        if structural == "drop_first":
            kept = base[1:]
            expected["first_version_not_1", aggregate_id, (2,)] += 1
        elif structural == "drop_middle":
            missing = draw(st.integers(2, length - 1))
            kept = [e for e in base if e[0] != missing]
            expected["version_gap", aggregate_id, (missing - 1, missing + 1)] += 1
        duplicated = (
            draw(st.sampled_from([v for v, _ in kept])) if structural == "duplicate" else None
        )
        if duplicated is not None:
            expected["duplicated_version", aggregate_id, (duplicated,)] += 1
        latest_good: int | None = None  # latest earlier version with an untouched timestamp
        for position, (version, second) in enumerate(kept):
            change = draw(st.sampled_from(changes))
            if version == duplicated and not touch_duplicates:
                change = "clean"
            if change == "skewed" and latest_good is None:
                change = "clean"  # nothing earlier to be skewed against
            type_: str | None = draw(st.sampled_from(["A", "B"]))
            timestamp: str | None = ts(second)
            listed = True
            if change == "untyped":
                type_ = draw(st.sampled_from([None, ""]))
                expected["missing_type", aggregate_id, (version,)] += 1
            elif change == "garbled":
                timestamp = draw(st.sampled_from(garbled))
                expected["unparseable_timestamp", aggregate_id, (version,)] += 1
            elif change == "skewed":
                timestamp = ts(-1)  # before every timestamp of the store
                expected["clock_skew", aggregate_id, (latest_good, version)] += 1
            elif change == "unlisted" and position == 0 and version == 1:
                listed = False
                expected["unlisted_aggregate", aggregate_id, (1,)] += 1
            if change in ("clean", "untyped", "unlisted"):
                latest_good = version
            events.append(StoredEvent(aggregate_id, version, type_, timestamp, listed))
            if version == duplicated:  # an untouched copy right after it
                events.append(StoredEvent(aggregate_id, version, "A", ts(second)))
                latest_good = version
    return events, expected
