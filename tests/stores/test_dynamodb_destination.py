"""DynamoDBEventStoreDestination on the moto server: a legacy store poured into a single table
(and back) holds exactly the items Castore writes, the conflict policies, unprocessed items
sent again, a resumed migration, and bad messages refused before anything is written."""

from __future__ import annotations

import pytest

from airflow_provider_castore_dam.dam import (
    PourInterruptedError,
    pour_event_store_collection_events,
    pour_event_store_events,
)
from airflow_provider_castore_dam.errors import (
    EventAlreadyExistsError,
    InvalidPourInputError,
    MessageChannelError,
)
from airflow_provider_castore_dam.retry import RetryPolicy
from airflow_provider_castore_dam.stores.dynamodb import (
    DynamoDBEventStore,
    DynamoDBTableScanEventStore,
)
from airflow_provider_castore_dam.stores.dynamodb.destination import (
    DynamoDBEventStoreDestination,
    attribute,
)
from tests.stores.dynamodb_tables import item, put_items
from tests.stores.test_postgres_joint_scan import STORES, monotonic_rows, skew
from tests.stores.test_postgres_store import canon, event

FAST = RetryPolicy(max_attempts=8, initial_backoff_seconds=0.001, max_backoff_seconds=0.01)
T0 = "2022-01-01T10:00:00.000Z"
ROWS = skew(monotonic_rows(seed=6, aggregates=12), "A")
EVENTS = {s: [e for sid, e in ROWS if sid == s] for s in STORES}


def all_items(client, table: str) -> list[dict]:
    items, request = [], {"TableName": table, "ConsistentRead": True}
    while True:
        page = client.scan(**request)
        items += page["Items"]
        if "LastEvaluatedKey" not in page:
            return sorted(items, key=lambda i: (i["aggregateId"]["S"], int(i["version"]["N"])))
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def castore_items(stores: dict[str, list[dict]], layout: str) -> list[dict]:
    """What Castore's adapters of ``layout`` write for these stores."""
    items = [item(s, e, layout) for s, events in stores.items() for e in events]
    return sorted(items, key=lambda i: (i["aggregateId"]["S"], int(i["version"]["N"])))


def destination(client, table, **options) -> DynamoDBEventStoreDestination:
    return DynamoDBEventStoreDestination(table, client=client, retry_policy=FAST, **options)


def pour_all(tables: dict[str, str], layout: str, client, channel, **kwargs):
    stores = [
        DynamoDBTableScanEventStore(s, tables[s], layout=layout, client=client) for s in STORES
    ]
    return pour_event_store_collection_events(stores, channel, **kwargs)


def test_legacy_to_single_table_writes_what_castore_writes(ddb, tables):
    legacy = tables.castore(EVENTS, "legacy")
    single = tables.create("single-table")

    result = pour_all(legacy, "legacy", ddb, destination(ddb, single))

    assert result["poured_event_count"] == len(ROWS)
    assert all_items(ddb, single) == castore_items(EVENTS, "single-table")
    for store_id in STORES:  # read back: the same events, in the same order
        read = DynamoDBEventStore(store_id, single, client=ddb)
        source = DynamoDBEventStore(store_id, legacy[store_id], layout="legacy", client=ddb)
        assert canon(list(_events(read))) == canon(list(_events(source)))


def _events(store):
    page = store.list_aggregate_ids()
    for aggregate in page.aggregate_ids:
        yield from store.get_events(aggregate["aggregate_id"])


def test_single_table_to_legacy_tables_per_store(ddb, tables):
    single = tables.castore(EVENTS, "single-table")
    legacy = {s: tables.create("legacy") for s in STORES}

    pour_all(single, "single-table", ddb, destination(ddb, legacy, layout="legacy"))

    for store_id in STORES:
        assert all_items(ddb, legacy[store_id]) == castore_items(
            {store_id: EVENTS[store_id]}, "legacy"
        )


def test_payloads_marshalled_as_castore_does():
    assert attribute({"a": [1, 1.5, "", None, True, {}]}) == {
        "M": {
            "a": {
                "L": [
                    {"N": "1"},
                    {"N": "1.5"},
                    {"S": ""},
                    {"NULL": True},
                    {"BOOL": True},
                    {"M": {}},
                ]
            }
        }
    }


def seeded(ddb, tables, existing: list[dict]):
    source = tables.castore(
        {"S": [event("a", v, T0, payload={"v": v}) for v in (1, 2, 3)]}, "single-table"
    )["S"]
    target = tables.create("single-table")
    put_items(ddb, target, existing)
    return DynamoDBTableScanEventStore("S", source, client=ddb), target


def test_fail_names_the_existing_event_and_writes_nothing_of_its_call(ddb, tables):
    store, target = seeded(ddb, tables, [item("S", event("a", 2, T0, payload={"v": 2}))])

    with pytest.raises(PourInterruptedError) as raised:
        pour_event_store_events(store, destination(ddb, target))

    cause = raised.value.__cause__
    assert isinstance(cause, EventAlreadyExistsError)
    assert (cause.event_store_id, cause.aggregate_id, cause.version) == ("S", "a", 2)
    assert len(all_items(ddb, target)) == 1


@pytest.mark.parametrize(
    ("conflict", "stored_payload", "outcome"),
    [
        ("skip_identical", {"v": 2}, "written"),
        ("skip_identical", {"v": "other"}, "already in the store with other content"),
        ("overwrite", {"v": "other"}, "written"),
    ],
)
def test_skip_identical_and_overwrite(ddb, tables, conflict, stored_payload, outcome):
    store, target = seeded(ddb, tables, [item("S", event("a", 2, T0, payload=stored_payload))])
    channel = destination(ddb, target, conflict=conflict)
    if outcome != "written":
        with pytest.raises(PourInterruptedError, match=outcome):
            pour_event_store_events(store, channel)
        return

    pour_event_store_events(store, channel)

    assert all_items(ddb, target) == castore_items(
        {"S": [event("a", v, T0, payload={"v": v}) for v in (1, 2, 3)]}, "single-table"
    )


class Reluctant:
    """A client whose BatchWriteItem and BatchGetItem leave half of each request unprocessed
    the first times, as DynamoDB does under load."""

    def __init__(self, client, times: int = 3):
        self._client = client
        self.unprocessed = times

    def __getattr__(self, name):
        return getattr(self._client, name)

    def batch_write_item(self, RequestItems):
        ((table, requests),) = RequestItems.items()
        if self.unprocessed and len(requests) > 1:
            self.unprocessed -= 1
            half = len(requests) // 2
            self._client.batch_write_item(RequestItems={table: requests[:half]})
            return {"UnprocessedItems": {table: requests[half:]}}
        return self._client.batch_write_item(RequestItems=RequestItems)

    def batch_get_item(self, RequestItems):
        ((table, request),) = RequestItems.items()
        keys = request["Keys"]
        if self.unprocessed and len(keys) > 1:
            self.unprocessed -= 1
            half = len(keys) // 2
            response = self._client.batch_get_item(
                RequestItems={table: {**request, "Keys": keys[:half]}}
            )
            response["UnprocessedKeys"] = {table: {**request, "Keys": keys[half:]}}
            return response
        return self._client.batch_get_item(RequestItems=RequestItems)


def test_unprocessed_keys_and_items_are_sent_again(ddb, tables):
    legacy = tables.castore(EVENTS, "legacy")
    single = tables.create("single-table")
    reluctant = Reluctant(ddb, times=6)

    pour_all(legacy, "legacy", ddb, destination(reluctant, single))

    assert reluctant.unprocessed == 0
    assert all_items(ddb, single) == castore_items(EVENTS, "single-table")


def test_unprocessed_items_beyond_the_retry_budget_stop_the_pour(ddb, tables):
    legacy = tables.castore(EVENTS, "legacy")
    single = tables.create("single-table")
    budget = RetryPolicy(max_attempts=2, initial_backoff_seconds=0.001, max_backoff_seconds=0.01)
    channel = DynamoDBEventStoreDestination(
        single, client=Reluctant(ddb, times=10**6), retry_policy=budget, conflict="overwrite"
    )

    with pytest.raises(PourInterruptedError) as raised:
        pour_all(legacy, "legacy", ddb, channel)

    assert isinstance(raised.value.__cause__, MessageChannelError)
    assert "unprocessed" in str(raised.value.__cause__)


def test_a_resumed_migration_takes_its_own_writes_as_written(ddb, tables):
    legacy = tables.castore(EVENTS, "legacy")
    single = tables.create("single-table")
    saved = []

    class CrashAfter(DynamoDBEventStoreDestination):
        calls = 0

        def publish_messages(self, messages, *, replay):
            super().publish_messages(messages, replay=replay)
            CrashAfter.calls += 1
            if CrashAfter.calls == 3:
                raise MessageChannelError("killed after writing")

    crashing = CrashAfter(single, client=ddb, retry_policy=FAST, max_in_flight=1)
    with pytest.raises(PourInterruptedError):
        pour_all(legacy, "legacy", ddb, crashing, on_checkpoint=saved.append)

    pour_all(legacy, "legacy", ddb, destination(ddb, single), checkpoint=saved[-1])

    assert all_items(ddb, single) == castore_items(EVENTS, "single-table")


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"layout": "multi"}, "layout must be one of single-table, legacy"),
        ({"conflict": "force"}, "conflict must be one of fail"),
        ({"max_in_flight": 0}, "max_in_flight"),
    ],
)
def test_bad_options(ddb, options, fragment):
    with pytest.raises(InvalidPourInputError, match=fragment):
        DynamoDBEventStoreDestination("t", client=ddb, **options)


def test_bad_tables_and_messages_are_refused_before_anything_is_written(ddb, tables):
    with pytest.raises(InvalidPourInputError, match="table_name must be a table name"):
        DynamoDBEventStoreDestination({"S": "t"}, client=ddb)  # a mapping is for legacy
    target = tables.create("legacy")
    channel = destination(ddb, {"S": target}, layout="legacy")
    good = {"eventStoreId": "S", "event": event("a", 1, T0)}
    with pytest.raises(InvalidPourInputError, match="no destination table for event store 'T'"):
        channel.publish_messages(
            [good, {"eventStoreId": "T", "event": event("b", 1, T0)}], replay=True
        )
    with pytest.raises(InvalidPourInputError, match="notification messages"):
        channel.publish_messages([good, {"eventStoreId": "S", "aggregateId": "a"}], replay=True)
    assert all_items(ddb, target) == []
