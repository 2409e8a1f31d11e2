"""Partitions of an event store's aggregates, for pours spread over several workers.

Partition ``(index, count)`` holds the aggregates whose id hashes to ``index``: the first
four bytes of the MD5 digest of the aggregate id's UTF-8 text, read as a big-endian unsigned
integer, modulo ``count``. The hash is fixed and documented, so an aggregate lands in the same
partition on every store kind, in every process and release (PostgreSQL computes the same
value in SQL: ``('x' || substr(md5(aggregate_id::text), 1, 8))::bit(32)::bigint % count``).
All events of an aggregate are in its partition, so each partition keeps every aggregate's
order by itself.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from airflow_provider_castore_dam.errors import InvalidPourInputError

MAX_PARTITIONS = 65_536


def partition_of(aggregate_id: str, count: int) -> int:
    """The index of the partition of ``aggregate_id`` among ``count``."""
    digest = hashlib.md5(aggregate_id.encode("utf-8"), usedforsecurity=False).digest()
    return int.from_bytes(digest[:4], "big") % count


@dataclass(frozen=True)
class Partition:
    index: int
    count: int

    def contains(self, aggregate_id: str) -> bool:
        return partition_of(aggregate_id, self.count) == self.index

    def as_json(self) -> list[int]:
        return [self.index, self.count]


def parse_partition(value: object) -> Partition | None:
    """``(index, count)`` (a pair, or ``{"index", "count"}``) with ``0 <= index < count``;
    ``None`` stays ``None`` (the whole store)."""
    if value is None:
        return None
    if isinstance(value, dict) and set(value) == {"index", "count"}:
        value = (value["index"], value["count"])
    if (
        not isinstance(value, (tuple, list))
        or len(value) != 2
        or not all(isinstance(n, int) and not isinstance(n, bool) for n in value)
    ):
        raise InvalidPourInputError(
            f"partition must be (index, count), two integers, not {value!r}"
        )
    index, count = value
    if not 1 <= count <= MAX_PARTITIONS:
        raise InvalidPourInputError(
            f"partition count must be from 1 to {MAX_PARTITIONS}, not {count}"
        )
    if not 0 <= index < count:
        raise InvalidPourInputError(
            f"partition index must be from 0 to {count - 1} (count {count}), not {index}"
        )
    return Partition(index, count)
