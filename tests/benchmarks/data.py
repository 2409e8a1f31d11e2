"""Seeded benchmark data: aggregates whose lifetimes overlap across three years.

Everything derives from one ``random.Random(seed)``, so a seed gives the same events in every
run and on every machine. Events are produced in pour order (timestamp, aggregate id, version),
as Castore would have written them, and streamed as COPY text rows (PostgreSQL) or as
marshalled items (DynamoDB) without building per-event dicts for the big stores.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from airflow_provider_castore_dam.stores.postgres.tables import (
    COLUMNS,
    add_castore_indexes,
    create_castore_table,
)

START = dt.datetime(2021, 1, 1, tzinfo=dt.timezone.utc)
START_MS = int(START.timestamp() * 1000)
SPAN_MS = 3 * 365 * 86_400_000  # three years
DAY_MS = 86_400_000
MAX_LIFETIME_MS = 365 * DAY_MS  # an aggregate lives from a day to a year (capped by the span)

# Event codes: (timestamp ms since START) << 32 | aggregate index << 12 | version.
_AGG_BITS, _VERSION_BITS = 20, 12
_VERSION_MASK = (1 << _VERSION_BITS) - 1
_AGG_MASK = (1 << _AGG_BITS) - 1

EVENT_TYPES = ("LEVELLED_UP", "MOVED", "RENAMED", "TRAINED", "EVOLVED", "HEALED")
NAMES = ("Pikachu", "Salamèche", "Bulbizarre", "Carapuce", "Évoli", "Ronflex", "Mewtwo")


@dataclass(frozen=True)
class Aggregate:
    store: str
    aggregate_id: str  # canonical lowercase UUID
    event_count: int


@dataclass
class Dataset:
    """Events of one or several stores, encoded compactly and sorted in pour order."""

    aggregates: list[Aggregate]
    codes: list[int]
    """One int per event (see module constants), ascending = pour order within a store."""

    @property
    def event_count(self) -> int:
        return len(self.codes)

    def count_by_store(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for aggregate in self.aggregates:
            counts[aggregate.store] = counts.get(aggregate.store, 0) + aggregate.event_count
        return counts

    def decode(self, code: int) -> tuple[Aggregate, int, int]:
        """(aggregate, version, timestamp in ms since the epoch)."""
        return (
            self.aggregates[(code >> _VERSION_BITS) & _AGG_MASK],
            code & _VERSION_MASK,
            START_MS + (code >> 32),
        )


def generate(seed: int, stores: Sequence[tuple[str, int, int]], *, tag: str = "") -> Dataset:
    """``stores``: (event store id, events, aggregates) each. Every aggregate has at least one
    event; the rest are spread with random weights, so some aggregates are long-lived and busy.
    Aggregate ids are distinct even for equal seeds when ``tag`` differs."""
    rng = random.Random(f"{seed}:{tag}")
    aggregates: list[Aggregate] = []
    codes: list[int] = []
    for store, n_events, n_aggregates in stores:
        if not 0 < n_aggregates <= n_events:
            raise ValueError(f"{store}: need 0 < aggregates <= events")
        counts = [1] * n_aggregates
        cumulative: list[float] = []
        total = 0.0
        for _ in range(n_aggregates):
            total += rng.expovariate(1.0)
            cumulative.append(total)
        for index in rng.choices(
            range(n_aggregates), cum_weights=cumulative, k=n_events - n_aggregates
        ):
            counts[index] += 1
        for count in counts:
            if count > _VERSION_MASK:
                raise ValueError("an aggregate got too many events for the encoding")
            index = len(aggregates)
            if index > _AGG_MASK:
                raise ValueError("too many aggregates for the encoding")
            aggregates.append(
                Aggregate(store, str(uuid.UUID(int=rng.getrandbits(128), version=4)), count)
            )
            start = rng.randrange(SPAN_MS)
            lifetime = min(rng.randrange(DAY_MS, MAX_LIFETIME_MS), SPAN_MS - 1 - start)
            offsets = sorted(rng.randrange(lifetime + 1) for _ in range(count - 1))
            base = index << _VERSION_BITS
            codes.append((start << 32) | base | 1)
            for version, offset in enumerate(offsets, start=2):
                codes.append(((start + offset) << 32) | base | version)
    codes.sort()
    return Dataset(aggregates, codes)


class _TimestampFormatter:
    """Fast fixed-width timestamps from epoch milliseconds, caching the date part per day."""

    def __init__(self) -> None:
        self._days: dict[int, str] = {}

    def parts(self, ms: int) -> tuple[str, str, str]:
        day, rest = divmod(ms, DAY_MS)
        date = self._days.get(day)
        if date is None:
            date = (dt.date(1970, 1, 1) + dt.timedelta(days=day)).isoformat()
            self._days[day] = date
        seconds, millis = divmod(rest, 1000)
        minutes, second = divmod(seconds, 60)
        hour, minute = divmod(minutes, 60)
        return date, f"{hour:02d}:{minute:02d}:{second:02d}", f"{millis:03d}"

    def castore(self, ms: int) -> str:
        date, time, millis = self.parts(ms)
        return f"{date}T{time}.{millis}Z"

    def postgres(self, ms: int) -> str:
        date, time, millis = self.parts(ms)
        return f"{date} {time}.{millis}+00"


def event_type(version: int, code: int) -> str:
    return "APPEARED" if version == 1 else EVENT_TYPES[(code >> 7) % len(EVENT_TYPES)]


def payload_json(aggregate_index: int, version: int, code: int) -> str:
    name = NAMES[aggregate_index % len(NAMES)]
    return (
        f'{{"name": "{name} #{aggregate_index}", "level": {version}, '
        f'"position": {{"x": {code % 997}, "y": {(code >> 10) % 991}}}, "shiny": '
        f"{'true' if code % 13 == 0 else 'false'}}}"
    )


def metadata_json(code: int) -> str | None:
    """Half the events carry metadata; the others have none (SQL NULL / absent key)."""
    if (code >> 32) & 1:
        return None
    return f'{{"source": "benchmark", "userId": "user-{(code >> 3) % 5000}"}}'


def event_details(dataset: Dataset) -> Iterator[tuple[str, dict[str, Any]]]:
    """(event store id, Castore event detail) in pour order: for the small stores only."""
    fmt = _TimestampFormatter()
    for code in dataset.codes:
        aggregate, version, ms = dataset.decode(code)
        index = (code >> _VERSION_BITS) & _AGG_MASK
        event: dict[str, Any] = {
            "aggregateId": aggregate.aggregate_id,
            "version": version,
            "type": event_type(version, code),
            "timestamp": fmt.castore(ms),
            "payload": json.loads(payload_json(index, version, code)),
        }
        metadata = metadata_json(code)
        if metadata is not None:
            event["metadata"] = json.loads(metadata)
        yield aggregate.store, event


# --------------------------------------------------------------------------- PostgreSQL


def load_postgres(dsn: str, table: str, dataset: Dataset, chunk_rows: int = 20_000) -> None:
    """Create ``table`` in Castore's layout and COPY ``dataset`` into it in pour order (so ids
    follow time, as when Castore wrote them), then add the constraint and indexes and
    VACUUM ANALYZE it."""
    fmt = _TimestampFormatter()
    aggregates = dataset.aggregates
    create_castore_table(dsn, table, indexes=False)
    with psycopg.connect(dsn, autocommit=True) as conn:
        statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
            sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, COLUMNS))
        )
        with conn.transaction(), conn.cursor() as cursor, cursor.copy(statement) as copy:
            lines: list[str] = []
            for code in dataset.codes:
                index = (code >> _VERSION_BITS) & _AGG_MASK
                version = code & _VERSION_MASK
                aggregate = aggregates[index]
                metadata = metadata_json(code)
                lines.append(
                    f"{aggregate.store}\t{aggregate.aggregate_id}\t{version}\t"
                    f"{event_type(version, code)}\t{payload_json(index, version, code)}\t"
                    f"{metadata if metadata is not None else chr(92) + 'N'}\t"
                    f"{fmt.postgres(START_MS + (code >> 32))}\n"
                )
                if len(lines) >= chunk_rows:
                    copy.write("".join(lines).encode())
                    lines.clear()
            if lines:
                copy.write("".join(lines).encode())
    add_castore_indexes(dsn, table)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("VACUUM ANALYZE {}").format(sql.Identifier(table)))


# --------------------------------------------------------------------------- DynamoDB


def create_single_table(client: Any, table: str, layout: str = "single-table") -> None:
    """The single-table layout of @castore/event-storage-adapter-dynamodb: PK ``aggregateId``
    (``<eventStoreId>#<aggregateId>``), SK ``version``, KEYS_ONLY GSI ``initialEvents``
    (``eventStoreId``, ``timestamp``) over the version-1 items. With ``layout="legacy"``,
    the legacy layout: the GSI's partition key is ``isInitialEvent`` (N)."""
    index_key, index_type = ("isInitialEvent", "N") if layout == "legacy" else ("eventStoreId", "S")
    client.create_table(
        TableName=table,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": "aggregateId", "AttributeType": "S"},
            {"AttributeName": "version", "AttributeType": "N"},
            {"AttributeName": index_key, "AttributeType": index_type},
            {"AttributeName": "timestamp", "AttributeType": "S"},
        ],
        KeySchema=[
            {"AttributeName": "aggregateId", "KeyType": "HASH"},
            {"AttributeName": "version", "KeyType": "RANGE"},
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "initialEvents",
                "KeySchema": [
                    {"AttributeName": index_key, "KeyType": "HASH"},
                    {"AttributeName": "timestamp", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            }
        ],
    )


def _marshal(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, (int, float)):
        return {"N": str(value)}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, dict):
        return {"M": {key: _marshal(item) for key, item in value.items()}}
    if isinstance(value, list):
        return {"L": [_marshal(item) for item in value]}
    if value is None:
        return {"NULL": True}
    raise TypeError(type(value))


def single_table_items(dataset: Dataset, layout: str = "single-table") -> Iterator[dict[str, Any]]:
    legacy = layout == "legacy"
    for store, event in event_details(dataset):
        item = {
            "aggregateId": {
                "S": event["aggregateId"] if legacy else f"{store}#{event['aggregateId']}"
            },
            "version": {"N": str(event["version"])},
            "type": {"S": event["type"]},
            "timestamp": {"S": event["timestamp"]},
            "payload": _marshal(event["payload"]),
        }
        if "metadata" in event:
            item["metadata"] = _marshal(event["metadata"])
        if event["version"] == 1:
            item.update(
                {"isInitialEvent": {"N": "1"}} if legacy else {"eventStoreId": {"S": store}}
            )
        yield item


def load_dynamodb(
    client: Any, table: str, dataset: Dataset, threads: int = 4, layout: str = "single-table"
) -> None:
    """BatchWriteItem 25 items a call, a few calls in flight, retrying unprocessed items;
    then the table's items are counted.

    Once, with threads writing batches of any partition, moto's server kept 19,999 of 20,000
    items (every reader agreed). Each thread now writes the partitions (aggregates) of its
    own share, and a short count is written again, one batch at a time, before giving up."""
    from concurrent.futures import ThreadPoolExecutor

    shares: list[list[dict[str, Any]]] = [[] for _ in range(threads)]
    for item in single_table_items(dataset, layout):
        shares[hash(item["aggregateId"]["S"]) % threads].append(item)

    def write(share: list[dict[str, Any]]) -> None:
        for start in range(0, len(share), 25):
            batch = share[start : start + 25]
            requests: dict[str, Any] = {table: [{"PutRequest": {"Item": item}} for item in batch]}
            while requests:
                response = client.batch_write_item(RequestItems=requests)
                requests = response.get("UnprocessedItems") or {}

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(write, shares))
    if _item_count(client, table) != dataset.event_count:
        for share in shares:
            write(share)
    if (count := _item_count(client, table)) != dataset.event_count:
        raise RuntimeError(f"{table}: {count:,} items after loading {dataset.event_count:,}")


def _item_count(client: Any, table: str) -> int:
    count, options = 0, {"TableName": table, "Select": "COUNT"}
    while True:
        page = client.scan(**options)
        count += page["Count"]
        if "LastEvaluatedKey" not in page:
            return count
        options["ExclusiveStartKey"] = page["LastEvaluatedKey"]
