"""The digest of a pour: per event store, how many messages the channel confirmed and an
order-independent hash of which ones.

A message is named by its key: (event store id, aggregate id, version), with no version for
an aggregate-exists message. The hash of a set of messages is the sum, modulo 2**128, of one
value per message::

    value = A(event store id, aggregate id) * V(version)  mod 2**128
    A = MD5 of the UTF-8 text "<n>:<event store id><aggregate id>", n the number of
        characters of the event store id, read as a big-endian integer, then | 1
    V = MD5 of the version's decimal text ("0" for an aggregate-exists message), then | 1

Both factors are odd, so a product names its message: dropping one message and counting
another twice changes the sum (an XOR would let a message counted twice cancel out), and so
does any error of a non-adversarial kind, bar odds of about 2**-120. The sum does not depend
on the order of the messages, nor on how they were batched, so a pour's digest equals that
of a dry run over the same store, or of the keys read back from a queue in any order.

A is computed once per aggregate (a bounded cache), V once per version: the digest costs a
lookup, a multiplication and an addition per message.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypedDict

from airflow_provider_castore_dam.errors import InvalidPourInputError
from airflow_provider_castore_dam.protocols import Message, MessageKey

_MASK = (1 << 128) - 1
_HEX = re.compile(r"[0-9a-f]{32}")
_AGGREGATE_CACHE_SIZE = 65_536


class StoreDigest(TypedDict):
    count: int
    hash: str
    """The sum of the message values modulo 2**128, 32 lowercase hex digits."""


def _md5_odd(text: str) -> int:
    digest = hashlib.md5(text.encode("utf-8"), usedforsecurity=False).digest()
    return int.from_bytes(digest, "big") | 1


_VERSION_FACTORS = [_md5_odd(str(version)) for version in range(1_025)]
"""V of versions 0 to 1,024 (0: aggregate-exists messages), grown up to ``_MAX_LISTED``."""
_MAX_LISTED = 100_000
_AGGREGATE_FACTORS: dict[str, dict[str, int]] = {}
"""A per event store and aggregate id, for the latest aggregates (a bounded cache)."""


def _version_factor(version: int) -> int:
    if version >= len(_VERSION_FACTORS):
        if version > _MAX_LISTED:
            return _md5_odd(str(version))
        start = len(_VERSION_FACTORS)
        _VERSION_FACTORS.extend(_md5_odd(str(v)) for v in range(start, version + 1))
    return _VERSION_FACTORS[version]


def _aggregate_factors(event_store_id: str) -> dict[str, int]:
    factors = _AGGREGATE_FACTORS.get(event_store_id)
    if factors is None or len(factors) >= _AGGREGATE_CACHE_SIZE:
        factors = _AGGREGATE_FACTORS[event_store_id] = {}
    return factors


def _aggregate_factor(factors: dict[str, int], event_store_id: str, aggregate_id: str) -> int:
    factor = factors[aggregate_id] = _md5_odd(
        f"{len(event_store_id)}:{event_store_id}{aggregate_id}"
    )
    return factor


def message_value(key: MessageKey) -> int:
    """The value a message adds to its store's hash (see the module's docstring)."""
    event_store_id, aggregate_id, version = key
    factors = _aggregate_factors(event_store_id)
    factor = factors.get(aggregate_id) or _aggregate_factor(factors, event_store_id, aggregate_id)
    return (factor * _version_factor(version or 0)) & _MASK


class Digest:
    """Counts and hash sums per event store, grown one message (or key) at a time."""

    def __init__(self, event_store_ids: Iterable[str] = ()) -> None:
        self._counts: dict[str, int] = dict.fromkeys(event_store_ids, 0)
        self._sums: dict[str, int] = dict.fromkeys(self._counts, 0)

    @classmethod
    def of(cls, stores: Mapping[str, StoreDigest]) -> Digest:
        digest = cls()
        for store_id, store in stores.items():
            digest._counts[store_id] = store["count"]
            digest._sums[store_id] = int(store["hash"], 16)
        return digest

    def add_messages(self, messages: Iterable[Message]) -> None:
        # The pour's hot path: a lookup, a multiplication and an addition a message.
        versions = _VERSION_FACTORS
        store_id: str | None = None
        factors: dict[str, int] = {}
        total = count = 0
        for message in messages:
            if message["eventStoreId"] != store_id:
                if store_id is not None:
                    self._add_sum(store_id, count, total)
                store_id = message["eventStoreId"]
                factors = _aggregate_factors(message["eventStoreId"])
                total = count = 0
            event = message.get("event")
            if event is None:
                aggregate_id, version = message["aggregateId"], 0
            else:
                aggregate_id, version = event["aggregateId"], event["version"]
            factor = factors.get(aggregate_id)
            if factor is None:
                factor = _aggregate_factor(factors, message["eventStoreId"], aggregate_id)
            if version < len(versions):
                total += factor * versions[version]
            else:
                total += factor * _version_factor(version)
            count += 1
        if store_id is not None:
            self._add_sum(store_id, count, total)

    def _add_sum(self, store_id: str, count: int, total: int) -> None:
        self._counts[store_id] = self._counts.get(store_id, 0) + count
        self._sums[store_id] = (self._sums.get(store_id, 0) + total) & _MASK

    def add_key(self, key: MessageKey) -> None:
        self._add_sum(key[0], 1, message_value(key))

    def add(self, other: Digest) -> None:
        for store_id, count in other._counts.items():
            self._add_sum(store_id, count, other._sums[store_id])

    def as_json(self) -> dict[str, StoreDigest]:
        return {
            store_id: StoreDigest(
                count=self._counts[store_id], hash=f"{self._sums[store_id] & _MASK:032x}"
            )
            for store_id in sorted(self._counts)
        }


def parse_store_digests(value: object, name: str = "digest") -> dict[str, StoreDigest]:
    """``{event store id: {"count", "hash"}}`` as :meth:`Digest.as_json` writes it."""
    if not isinstance(value, Mapping):
        raise InvalidPourInputError(f"{name} must be a dict of event store digests, not {value!r}")
    stores: dict[str, StoreDigest] = {}
    for store_id, store in value.items():
        count = store.get("count") if isinstance(store, Mapping) else None
        hash_text = store.get("hash") if isinstance(store, Mapping) else None
        if (
            not isinstance(store_id, str)
            or isinstance(count, bool)
            or not isinstance(count, int)
            or count < 0
            or not isinstance(hash_text, str)
            or not _HEX.fullmatch(hash_text)
        ):
            raise InvalidPourInputError(
                f"{name} of {store_id!r} must be {{'count': n >= 0, 'hash': 32 hex digits}}, "
                f"not {store!r}"
            )
        stores[store_id] = StoreDigest(count=count, hash=hash_text)
    return stores


class PourDigest(TypedDict):
    """The ``digest`` entry of a pour's result: which pour (its utility and normalised inputs,
    as in its checkpoints) and what the channel confirmed, per event store."""

    utility: str
    inputs: dict[str, Any]
    event_stores: dict[str, StoreDigest]


def pour_digest(utility: str, inputs: Mapping[str, Any], digest: Digest) -> PourDigest:
    return PourDigest(utility=utility, inputs=dict(inputs), event_stores=digest.as_json())


def combined_pour_digest(digests: Sequence[Mapping[str, Any]]) -> PourDigest:
    """The digest of a pour from those of its partitions: counts and hashes add up; its
    inputs are theirs without the partition."""
    first = digests[0]
    inputs = {name: value for name, value in first["inputs"].items() if name != "partition"}
    total = Digest()
    for digest in digests:
        other = {name: value for name, value in digest["inputs"].items() if name != "partition"}
        if digest["utility"] != first["utility"] or other != inputs:
            raise ValueError(
                f"partitions of different pours: {first['utility']} {inputs} and "
                f"{digest['utility']} {other}"
            )
        total.add(Digest.of(parse_store_digests(digest["event_stores"])))
    return pour_digest(first["utility"], inputs, total)
