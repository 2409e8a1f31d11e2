"""Castore event stores kept in DynamoDB, in the layouts of Castore's two DynamoDB adapters.

- ``layout="single-table"`` (``DynamoDBSingleTableEventStorageAdapter``): one table for several
  event stores. Partition key ``aggregateId`` = ``<eventStoreId>#<aggregateId>``, sort key
  ``version`` (N); version-1 items carry ``eventStoreId`` (S), the partition key of the global
  secondary index ``initialEvents`` whose sort key is ``timestamp`` (S).
- ``layout="legacy"`` (``LegacyDynamoDBEventStorageAdapter``): one table per event store,
  unprefixed ``aggregateId``; version-1 items carry ``isInitialEvent`` = 1 (N), the partition key
  of the ``initialEvents`` index.

Reads follow Castore's adapters, except where they are wrong or loose (see
``docs/stores-dynamodb.md``): ``get_events`` honours ``limit``, numbers come back as ``int`` or
``float`` (never ``Decimal``), timestamps are normalised to ``YYYY-MM-DDTHH:MM:SS.mmmZ``, and a
listing page is never empty while a next page token is returned.

The store has no time-ordered scan (DynamoDB cannot stream a table in timestamp order), so the
engine pours it through its merge path. For that path the store can fetch several aggregates'
events concurrently: :meth:`DynamoDBEventStore.prefetch_events`, the optional hook described by
:class:`~airflow_provider_castore_dam.protocols.PrefetchingEventStore`.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from airflow_provider_castore_dam.dam.timestamps import normalize_timestamp
from airflow_provider_castore_dam.errors import EventStoreError, InvalidPourInputError
from airflow_provider_castore_dam.protocols import (
    AggregateIdsPage,
    EventDetail,
    ScannedAggregate,
)
from airflow_provider_castore_dam.retry import (
    RetryPolicy,
    call_with_retries,
    classify_aws_error,
    gave_up_note,
)
from airflow_provider_castore_dam.stores.dynamodb_items import raw_items

try:
    import boto3
    from botocore.config import Config
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        ConnectionClosedError,
        ConnectTimeoutError,
        EndpointConnectionError,
        NoCredentialsError,
        NoRegionError,
        PartialCredentialsError,
        ReadTimeoutError,
    )
except ImportError as _missing:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "DynamoDBEventStore needs boto3: pip install 'airflow-provider-castore-dam[aws]'"
    ) from _missing

log = logging.getLogger(__name__)

Layout = Literal["single-table", "legacy"]
LAYOUTS: tuple[Layout, ...] = ("single-table", "legacy")
DEFAULT_GSI_NAME = "initialEvents"
DEFAULT_PAGE_SIZE = 1000
"""Aggregates per listing page when no ``limit`` is given (index items are ~100 bytes)."""
DEFAULT_MAX_WORKERS = 16
DEFAULT_PREFETCH_CAPACITY = 128

_KEY_SCHEMA = (("aggregateId", "HASH", "S"), ("version", "RANGE", "N"))
_INDEX_KEY_SCHEMAS: dict[Layout, tuple[tuple[str, str, str], ...]] = {
    "single-table": (("eventStoreId", "HASH", "S"), ("timestamp", "RANGE", "S")),
    "legacy": (("isInitialEvent", "HASH", "N"), ("timestamp", "RANGE", "S")),
}
_CASTORE_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")
_CREDENTIAL_ERRORS = frozenset(
    {
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "IncompleteSignature",
        "IncompleteSignatureException",
        "InvalidClientTokenId",
        "MissingAuthenticationToken",
        "MissingAuthenticationTokenException",
        "ExpiredToken",
        "ExpiredTokenException",
        "AccessDeniedException",
        "AuthFailure",
    }
)
_UNREACHABLE_ERRORS = (
    EndpointConnectionError,
    ConnectTimeoutError,
    ReadTimeoutError,
    ConnectionClosedError,
)

_SNAKE_CASE = {"DescribeTable": "describe_table", "Query": "query", "Scan": "scan"}
"""The client method of each DynamoDB operation the store calls."""

_EventsRequest = tuple[str, int | None, int | None, int | None, bool]
"""(aggregate id, min version, max version, limit, reverse): the arguments of ``get_events``."""


# --------------------------------------------------------------------------- attribute values


def _number(text: str) -> int | float:
    """A DynamoDB number as JSON reads it: ``int`` when integral, else ``float``."""
    try:
        return int(text)
    except ValueError:
        pass
    number = Decimal(text)
    if number.is_finite() and number == number.to_integral_value():
        return int(number)
    return float(number)


def _binary(raw: Any) -> str:
    """Base64 text of a binary value: botocore gives bytes, the raw response JSON
    (:mod:`.dynamodb_items`) already base64 text."""
    if isinstance(raw, str):
        return raw
    return base64.b64encode(bytes(raw)).decode("ascii")


def _json_value(attribute: Mapping[str, Any]) -> Any:
    """A low-level DynamoDB attribute value (``{"S": ...}``, ``{"M": ...}``...) as a JSON value.

    Castore never writes sets or binaries; should a table hold some, sets come back as sorted
    lists and binaries as base64 strings, so events stay JSON.
    """
    if len(attribute) != 1:
        raise ValueError(f"not a DynamoDB attribute value: {attribute!r}")
    ((tag, raw),) = attribute.items()
    if tag == "S":
        return raw
    if tag == "N":
        return _number(raw)
    if tag == "BOOL":
        return bool(raw)
    if tag == "NULL":
        return None
    if tag == "M":
        return {key: _json_value(value) for key, value in raw.items()}
    if tag == "L":
        return [_json_value(value) for value in raw]
    if tag == "SS":
        return sorted(raw)
    if tag == "NS":
        return sorted(_number(value) for value in raw)
    if tag == "B":
        return _binary(raw)
    if tag == "BS":
        return sorted(_binary(value) for value in raw)
    raise ValueError(f"unknown DynamoDB attribute type {tag!r}")


def _castore_timestamp(value: str, where: str) -> str:
    if _CASTORE_TIMESTAMP.fullmatch(value):
        return value
    try:
        return normalize_timestamp(value, where)
    except InvalidPourInputError as error:
        raise EventStoreError(f"{where} is not a Castore timestamp: {error}") from error


def _bound(value: str | None, name: str, *, round_up: bool = False) -> str | None:
    if value is None or _CASTORE_TIMESTAMP.fullmatch(value):
        return value
    return normalize_timestamp(value, name, round_up=round_up)


def _positive(value: int | None, name: str) -> int | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise EventStoreError(f"{name} must be a positive integer or None, not {value!r}")
    return value


def _schema_text(schema: Iterable[tuple[str, str, str]]) -> str:
    return ", ".join(f"{name} ({key_type}, {attr_type})" for name, key_type, attr_type in schema)


def _key_schema(key_schema: list[dict[str, Any]], types: Mapping[str, str]) -> tuple[Any, ...]:
    return tuple(
        (key["AttributeName"], key["KeyType"], types.get(key["AttributeName"], "?"))
        for key in key_schema
    )


# --------------------------------------------------------------------------- the store


class DynamoDBEventStore:
    """Read side of a Castore event store kept in DynamoDB (single-table or legacy layout).

    Give either ``client`` (a boto3 DynamoDB client, used as is) or any of ``session``,
    ``region_name``, ``endpoint_url``, ``client_config`` (a client is then made with boto3's
    standard credential chain, a short connect timeout and botocore's retries off). Nothing is
    sent until the first read, which first checks the table's layout once (``DescribeTable``).

    Every request is retried on transient errors (throttling such as
    ``ProvisionedThroughputExceededException``, ``ThrottlingException``,
    ``RequestLimitExceeded``; ``InternalServerError`` and other 5xx; dropped connections and
    timeouts) within ``retry_policy`` (default ``RetryPolicy()``: 8 attempts, 60 s);
    ``max_attempts`` is a shorthand for ``retry_policy=RetryPolicy(max_attempts=...)``. Other
    errors are raised at once. See :mod:`airflow_provider_castore_dam.retry`.

    Safe to share between threads (boto3 clients are). ``close()`` stops the prefetch threads.
    """

    def __init__(
        self,
        event_store_id: str,
        table_name: str,
        *,
        layout: str = "single-table",
        client: Any = None,
        session: Any = None,
        region_name: str | None = None,
        endpoint_url: str | None = None,
        client_config: Any = None,
        gsi_name: str = DEFAULT_GSI_NAME,
        page_size: int = DEFAULT_PAGE_SIZE,
        consistent_read: bool = True,
        max_workers: int = DEFAULT_MAX_WORKERS,
        prefetch_capacity: int = DEFAULT_PREFETCH_CAPACITY,
        connect_timeout: float = 3.0,
        read_timeout: float = 30.0,
        max_attempts: int | None = None,
        retry_policy: RetryPolicy | None = None,
    ) -> None:
        for name, text in (
            ("event_store_id", event_store_id),
            ("table_name", table_name),
            ("gsi_name", gsi_name),
        ):
            if not isinstance(text, str) or not text:
                raise EventStoreError(f"{name} must be a non-empty string, not {text!r}")
        if layout not in LAYOUTS:
            raise EventStoreError(
                f"layout must be 'single-table' (DynamoDBSingleTableEventStorageAdapter) or "
                f"'legacy' (LegacyDynamoDBEventStorageAdapter, one table per event store), "
                f"not {layout!r}"
            )
        for name, number in (
            ("page_size", page_size),
            ("max_workers", max_workers),
            ("prefetch_capacity", prefetch_capacity),
            ("max_attempts", max_attempts),
        ):
            _positive(number, name)
        if retry_policy is not None and not isinstance(retry_policy, RetryPolicy):
            raise EventStoreError(f"retry_policy must be a RetryPolicy, not {retry_policy!r}")
        if retry_policy is not None and max_attempts is not None:
            raise EventStoreError("give either max_attempts or retry_policy, not both")
        self._retry_policy = retry_policy or (
            RetryPolicy() if max_attempts is None else RetryPolicy(max_attempts=max_attempts)
        )
        self._event_store_id = event_store_id
        self._table_name = table_name
        self._layout: Layout = "legacy" if layout == "legacy" else "single-table"
        self._gsi_name = gsi_name
        self._page_size = page_size
        self._consistent_read = consistent_read
        self._max_workers = max_workers
        self._prefetch_capacity = prefetch_capacity
        if client is not None and any(
            option is not None for option in (session, region_name, endpoint_url, client_config)
        ):
            raise EventStoreError(
                "give either client or session/region_name/endpoint_url/client_config, not both"
            )
        self._client = (
            client
            if client is not None
            else self._make_client(
                session,
                region_name,
                endpoint_url,
                client_config,
                connect_timeout,
                read_timeout,
            )
        )
        if self._layout == "single-table":
            self._index_partition_name = "eventStoreId"
            self._index_partition_value: dict[str, str] = {"S": event_store_id}
            self._prefix = f"{event_store_id}#"
        else:
            self._index_partition_name = "isInitialEvent"
            self._index_partition_value = {"N": "1"}
            self._prefix = ""
        self._layout_lock = threading.Lock()
        self._layout_checked = False
        self._found_aggregates = False
        self._warned_empty = False
        self._prefetch_lock = threading.Lock()
        self._prefetched: OrderedDict[_EventsRequest, Future[list[EventDetail]]] = OrderedDict()
        self._executor: ThreadPoolExecutor | None = None

    @staticmethod
    def _make_client(
        session: Any,
        region_name: str | None,
        endpoint_url: str | None,
        client_config: Any,
        connect_timeout: float,
        read_timeout: float,
    ) -> Any:
        # One attempt per request: ``_call`` retries within the store's retry policy.
        config = Config(
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            retries={"total_max_attempts": 1, "mode": "standard"},
        )
        if client_config is not None:
            config = config.merge(client_config)
        try:
            return (session or boto3.session.Session()).client(
                "dynamodb", region_name=region_name, endpoint_url=endpoint_url, config=config
            )
        except NoRegionError as error:
            raise EventStoreError(
                "no AWS region for DynamoDB: pass region_name=... or set AWS_REGION "
                "(or AWS_DEFAULT_REGION, or a region in the AWS profile)"
            ) from error
        except (BotoCoreError, ValueError) as error:
            raise EventStoreError(f"cannot make a DynamoDB client: {error}") from error

    # ----------------------------------------------------------------- public API

    @property
    def event_store_id(self) -> str:
        return self._event_store_id

    @property
    def table_name(self) -> str:
        return self._table_name

    @property
    def layout(self) -> Layout:
        return self._layout

    @property
    def client(self) -> Any:
        return self._client

    def __repr__(self) -> str:
        return (
            f"DynamoDBEventStore({self._event_store_id!r}, {self._table_name!r}, "
            f"layout={self._layout!r})"
        )

    def list_aggregate_ids(
        self,
        *,
        limit: int | None = None,
        page_token: str | None = None,
        initial_event_after: str | None = None,
        initial_event_before: str | None = None,
        reverse: bool = False,
    ) -> AggregateIdsPage:
        """One page of aggregates by initial event timestamp, from the ``initialEvents`` index.

        Bounds are inclusive. Ties keep the index's own order (stable, and exactly reversed by
        ``reverse``). A page holds ``limit`` aggregates (``page_size`` without a limit) unless
        it is the last; ``next_page_token`` is set only when another aggregate follows.
        """
        size = _positive(limit, "limit") or self._page_size
        after = _bound(initial_event_after, "initial_event_after", round_up=True)
        before = _bound(initial_event_before, "initial_event_before")
        start_key = None if page_token is None else self._decode_page_token(page_token)
        self._check_layout()
        if after is not None and before is not None and after > before:
            return AggregateIdsPage(aggregate_ids=[])
        request = self._index_query(after, before, reverse)
        items: list[dict[str, Any]] = []
        # Ask for one aggregate more than the page holds, so a token is only handed out when
        # something follows; DynamoDB may answer short or empty pages with a LastEvaluatedKey
        # (1 MB cap, or the last Limit items), so keep asking until enough or the end.
        while len(items) <= size:
            request["Limit"] = size + 1 - len(items)
            if start_key is not None:
                request["ExclusiveStartKey"] = start_key
            response = self._call("Query", request)
            items.extend(response.get("Items", []))
            start_key = response.get("LastEvaluatedKey")
            if not start_key:
                break
        page = items[:size]
        aggregates = [self._scanned_aggregate(item) for item in page]
        if aggregates:
            self._found_aggregates = True
        elif page_token is None:
            self._warn_if_store_empty(bounded=after is not None or before is not None)
        return AggregateIdsPage(
            aggregate_ids=aggregates,
            next_page_token=self._encode_page_token(page[-1]) if len(items) > size else None,
        )

    def get_events(
        self,
        aggregate_id: str,
        *,
        min_version: int | None = None,
        max_version: int | None = None,
        limit: int | None = None,
        reverse: bool = False,
    ) -> list[EventDetail]:
        """Events of one aggregate in version order (descending with ``reverse``), at most
        ``limit`` of them (Castore's DynamoDB adapters ignore ``limit``; this store does not)."""
        request: _EventsRequest = (aggregate_id, min_version, max_version, limit, reverse)
        with self._prefetch_lock:
            future = self._prefetched.pop(request, None)
        if future is not None:
            return future.result()
        return self._fetch_events(request)

    def prefetch_events(
        self,
        aggregate_ids: Iterable[str],
        *,
        min_version: int | None = None,
        max_version: int | None = None,
        limit: int | None = None,
        reverse: bool = False,
    ) -> None:
        """Start fetching ``get_events(aggregate_id, **options)`` for each id on a bounded
        thread pool (``max_workers``); the matching ``get_events`` call then returns the result
        (or raises the error). At most ``prefetch_capacity`` results are held, the oldest
        dropped first, so memory stays bounded by ``prefetch_capacity`` pages."""
        _positive(limit, "limit")
        with self._prefetch_lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(
                    max_workers=self._max_workers, thread_name_prefix="castore-dynamodb"
                )
            for aggregate_id in aggregate_ids:
                request: _EventsRequest = (aggregate_id, min_version, max_version, limit, reverse)
                if request in self._prefetched:
                    continue
                self._prefetched[request] = self._executor.submit(self._fetch_events, request)
                while len(self._prefetched) > self._prefetch_capacity:
                    _, dropped = self._prefetched.popitem(last=False)
                    dropped.cancel()

    def close(self) -> None:
        """Stop the prefetch threads and forget prefetched results (the client stays usable)."""
        with self._prefetch_lock:
            executor, self._executor = self._executor, None
            for future in self._prefetched.values():
                future.cancel()
            self._prefetched.clear()
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> DynamoDBEventStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ----------------------------------------------------------------- reads

    def _fetch_events(self, request: _EventsRequest) -> list[EventDetail]:
        aggregate_id, min_version, max_version, limit, reverse = request
        _positive(limit, "limit")
        if min_version is not None and max_version is not None and min_version > max_version:
            return []
        self._check_layout()
        condition = "#id = :id"
        values: dict[str, Any] = {":id": {"S": self._prefix + aggregate_id}}
        if min_version is not None and min_version <= 1 and max_version is None:
            min_version = None  # versions start at 1: the bound would only cost the server
        if min_version is not None:
            values[":low"] = {"N": str(min_version)}
        if max_version is not None:
            values[":high"] = {"N": str(max_version)}
        if min_version is not None and max_version is not None:
            condition += " AND #version BETWEEN :low AND :high"
        elif min_version is not None:
            condition += " AND #version >= :low"
        elif max_version is not None:
            condition += " AND #version <= :high"
        query: dict[str, Any] = {
            "TableName": self._table_name,
            "KeyConditionExpression": condition,
            "ExpressionAttributeNames": {"#id": "aggregateId"}
            | ({"#version": "version"} if "#version" in condition else {}),
            "ExpressionAttributeValues": values,
            "ScanIndexForward": not reverse,
            "ConsistentRead": self._consistent_read,
        }
        events: list[EventDetail] = []
        while limit is None or len(events) < limit:
            if limit is not None:
                query["Limit"] = limit - len(events)
            with raw_items(self._client):
                response = self._call("Query", query)
            events.extend(self._event(item) for item in response.get("Items", []))
            if not response.get("LastEvaluatedKey"):
                break
            query["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        return events if limit is None else events[:limit]

    def _index_query(self, after: str | None, before: str | None, reverse: bool) -> dict[str, Any]:
        condition = "#partition = :partition"
        values: dict[str, Any] = {":partition": self._index_partition_value}
        if after is not None:
            values[":after"] = {"S": after}
        if before is not None:
            values[":before"] = {"S": before}
        if after is not None and before is not None:
            condition += " AND #timestamp BETWEEN :after AND :before"
        elif after is not None:
            condition += " AND #timestamp >= :after"
        elif before is not None:
            condition += " AND #timestamp <= :before"
        names = {"#partition": self._index_partition_name}
        if after is not None or before is not None:
            names["#timestamp"] = "timestamp"
        return {
            "TableName": self._table_name,
            "IndexName": self._gsi_name,
            "KeyConditionExpression": condition,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
            "ScanIndexForward": not reverse,
        }

    def _warn_if_store_empty(self, *, bounded: bool) -> None:
        """Log once when the index holds no aggregate at all for this store (a wrong
        ``event_store_id`` or table reads as an empty store, which is not an error)."""
        if self._found_aggregates or self._warned_empty:
            return
        if bounded:
            probe = self._index_query(None, None, False)
            probe["Limit"] = 1
            response = self._call("Query", probe)
            if response.get("Items") or response.get("LastEvaluatedKey"):
                self._found_aggregates = True
                return
        self._warned_empty = True
        if self._layout == "single-table":
            log.warning(
                "no aggregate of event store %r in %s: its index %r has no item with "
                "eventStoreId = %r; is event_store_id right?",
                self._event_store_id,
                self._where(),
                self._gsi_name,
                self._event_store_id,
            )
        else:
            log.warning(
                "no aggregate in %s (legacy layout, event store %r): its index %r has no item "
                "with isInitialEvent = 1; is it the table of this event store?",
                self._where(),
                self._event_store_id,
                self._gsi_name,
            )

    # ----------------------------------------------------------------- items

    def _unprefixed(self, stored: str, item: Mapping[str, Any]) -> str:
        if self._prefix and stored.startswith(self._prefix):
            return stored[len(self._prefix) :]
        if self._prefix:
            raise EventStoreError(
                f"item {self._item_key(item)} of {self._where()} has no {self._prefix!r} "
                f"prefix: not an item of event store {self._event_store_id!r}"
            )
        return stored

    def _item_key(self, item: Mapping[str, Any]) -> str:
        key = {name: item.get(name) for name in ("aggregateId", "version")}
        return json.dumps(key, default=str, ensure_ascii=False)

    def _attribute(self, item: Mapping[str, Any], name: str, tag: str) -> Any:
        value = item.get(name)
        if not isinstance(value, Mapping) or tag not in value:
            found = "absent" if value is None else f"{value!r}"
            raise EventStoreError(
                f"item {self._item_key(item)} of {self._where()} is not a Castore event: "
                f"attribute {name!r} should be of type {tag}, found {found}"
            )
        return value[tag]

    def _version(self, item: Mapping[str, Any]) -> int:
        raw = self._attribute(item, "version", "N")
        try:
            version = _number(raw)
        except (ValueError, InvalidOperation):
            version = 0
        if not isinstance(version, int) or version < 1:
            raise EventStoreError(
                f"item {self._item_key(item)} of {self._where()} has version {raw!r}, "
                "not a positive integer"
            )
        return version

    def _event(self, item: Mapping[str, Any]) -> EventDetail:
        stored_id = self._attribute(item, "aggregateId", "S")
        version = self._version(item)
        timestamp = self._attribute(item, "timestamp", "S")
        event: EventDetail = {
            "aggregateId": self._unprefixed(stored_id, item),
            "version": version,
            "type": self._attribute(item, "type", "S"),
            "timestamp": _castore_timestamp(
                timestamp, f"timestamp of item {self._item_key(item)} of {self._where()}"
            ),
        }
        for name in ("payload", "metadata"):
            if name in item:
                try:
                    event[name] = _json_value(item[name])
                except (ValueError, TypeError, AttributeError, InvalidOperation) as error:
                    raise EventStoreError(
                        f"item {self._item_key(item)} of {self._where()} has an unreadable "
                        f"{name}: {error}"
                    ) from error
        return event

    def _scanned_aggregate(self, item: Mapping[str, Any]) -> ScannedAggregate:
        stored_id = self._attribute(item, "aggregateId", "S")
        timestamp = self._attribute(item, "timestamp", "S")
        return ScannedAggregate(
            aggregate_id=self._unprefixed(stored_id, item),
            initial_event_timestamp=_castore_timestamp(
                timestamp, f"timestamp of item {self._item_key(item)} of {self._where()}"
            ),
        )

    # ----------------------------------------------------------------- page tokens

    def _encode_page_token(self, item: Mapping[str, Any]) -> str:
        """The index key of the page's last item: where the next page starts (exclusive)."""
        key = {
            "aggregateId": self._attribute(item, "aggregateId", "S"),
            "version": self._attribute(item, "version", "N"),
            "timestamp": self._attribute(item, "timestamp", "S"),
        }
        text = json.dumps(key, separators=(",", ":"), ensure_ascii=False)
        return base64.urlsafe_b64encode(text.encode()).decode("ascii").rstrip("=")

    def _decode_page_token(self, token: str) -> dict[str, Any]:
        def bad(reason: str) -> EventStoreError:
            shown = token if len(token) <= 80 else token[:77] + "..."
            return EventStoreError(
                f"page token {shown!r} is not one that {self!r} returned: {reason}"
            )

        if not isinstance(token, str):
            raise bad(f"a {type(token).__name__}, not a string")
        try:
            text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
            key = json.loads(text)
        except (binascii.Error, ValueError) as error:
            raise bad("not base64url-encoded JSON") from error
        if not isinstance(key, dict) or set(key) != {"aggregateId", "version", "timestamp"}:
            raise bad("expected the keys aggregateId, version, timestamp")
        if not all(isinstance(value, str) for value in key.values()):
            raise bad("its values should be strings")
        if not key["aggregateId"].startswith(self._prefix):
            raise bad(f"it names an aggregate of another event store ({key['aggregateId']!r})")
        try:
            Decimal(key["version"])
        except InvalidOperation as error:
            raise bad(f"version {key['version']!r} is not a number") from error
        return {
            self._index_partition_name: self._index_partition_value,
            "timestamp": {"S": key["timestamp"]},
            "aggregateId": {"S": key["aggregateId"]},
            "version": {"N": key["version"]},
        }

    # ----------------------------------------------------------------- layout and errors

    def _where(self) -> str:
        meta = getattr(self._client, "meta", None)
        region = getattr(meta, "region_name", None)
        endpoint = getattr(meta, "endpoint_url", None)
        return f"DynamoDB table {self._table_name!r} (region {region}, endpoint {endpoint})"

    def _check_layout(self) -> None:
        """Once per store: the table exists with Castore's key schema and index (DescribeTable).

        Without permission to describe the table, the check is skipped with a warning; the
        queries then report a missing table or index themselves.
        """
        if self._layout_checked:
            return
        with self._layout_lock:
            if self._layout_checked:
                return
            try:
                response = self._call("DescribeTable", {"TableName": self._table_name})
            except EventStoreError as error:
                cause = error.__cause__
                if isinstance(cause, ClientError) and _error_code(cause) in {
                    "AccessDeniedException",
                    "AccessDenied",
                }:
                    log.warning(
                        "cannot describe %s to check its layout (%s); reading it anyway",
                        self._where(),
                        _error_code(cause),
                    )
                    self._layout_checked = True
                    return
                raise
            self._check_description(response.get("Table", {}))
            self._layout_checked = True

    def _check_description(self, table: Mapping[str, Any]) -> None:
        types = {
            definition["AttributeName"]: definition["AttributeType"]
            for definition in table.get("AttributeDefinitions", [])
        }
        found = _key_schema(table.get("KeySchema", []), types)
        if found != _KEY_SCHEMA:
            raise EventStoreError(
                f"{self._where()} is not in Castore's layout: its primary key should be "
                f"{_schema_text(_KEY_SCHEMA)}, found {_schema_text(found) or 'none'}"
            )
        indexes = {
            index["IndexName"]: _key_schema(index.get("KeySchema", []), types)
            for index in table.get("GlobalSecondaryIndexes", []) or []
        }
        expected = _INDEX_KEY_SCHEMAS[self._layout]
        other: Layout = "legacy" if self._layout == "single-table" else "single-table"
        if self._gsi_name not in indexes:
            names = ", ".join(repr(name) for name in indexes) or "none"
            raise EventStoreError(
                f"{self._where()} has no global secondary index {self._gsi_name!r} "
                f"(its indexes: {names}); Castore's {self._layout} layout needs one keyed "
                f"{_schema_text(expected)}"
            )
        index = indexes[self._gsi_name]
        if index != expected:
            hint = (
                f"; that is the {other} layout: pass layout={other!r}"
                if index == _INDEX_KEY_SCHEMAS[other]
                else ""
            )
            raise EventStoreError(
                f"{self._where()} is not in Castore's {self._layout} layout: index "
                f"{self._gsi_name!r} should be keyed {_schema_text(expected)}, found "
                f"{_schema_text(index) or 'none'}{hint}"
            )

    def _call(self, operation: str, request: dict[str, Any]) -> dict[str, Any]:
        """One request, retried on transient errors within the retry policy (see
        :mod:`airflow_provider_castore_dam.retry`); errors become :class:`EventStoreError`."""
        method: Callable[..., dict[str, Any]] = getattr(self._client, _SNAKE_CASE[operation])
        try:
            return call_with_retries(
                lambda: method(**request),
                policy=self._retry_policy,
                what=f"DynamoDB {operation} on table {self._table_name!r}",
                classify=classify_aws_error,
            )
        except ClientError as error:
            raise self._client_error(operation, request, error) from error
        except (NoCredentialsError, PartialCredentialsError) as error:
            raise EventStoreError(
                f"no usable AWS credentials to read {self._where()}: {error}. boto3 looks in "
                "the client/session arguments, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, the "
                "AWS profile (AWS_PROFILE), then container and instance roles"
            ) from error
        except _UNREACHABLE_ERRORS as error:
            raise EventStoreError(
                f"cannot reach DynamoDB to read {self._where()}: {error}{gave_up_note(error)}"
            ) from error
        except BotoCoreError as error:
            raise EventStoreError(
                f"{operation} on {self._where()} failed: {error}{gave_up_note(error)}"
            ) from error

    def _client_error(
        self, operation: str, request: Mapping[str, Any], error: Any
    ) -> EventStoreError:
        code = _error_code(error)
        message = str(error.response.get("Error", {}).get("Message", ""))
        if (
            "IndexName" in request
            and code in {"ValidationException", "ResourceNotFoundException"}
            and self._gsi_name in message
            and "index" in message.lower()
        ):
            # DynamoDB: ValidationException "The table does not have the specified index";
            # moto: ResourceNotFoundException "Invalid index".
            return EventStoreError(
                f"{self._where()} has no usable global secondary index {self._gsi_name!r} "
                f"({code}: {message})"
            )
        if code == "ResourceNotFoundException":
            return EventStoreError(
                f"{self._where()} does not exist (DynamoDB {operation}: {message or code})"
            )
        if code in _CREDENTIAL_ERRORS:
            return EventStoreError(
                f"DynamoDB refused the AWS credentials or permissions for {self._where()} "
                f"({code}: {message}); check the access key, secret, session token and the "
                f"IAM policy (dynamodb:Query, dynamodb:DescribeTable)"
            )
        return EventStoreError(
            f"{operation} on {self._where()} failed: {code}: {message}{gave_up_note(error)}"
        )


def _error_code(error: Any) -> str:
    return str(getattr(error, "response", {}).get("Error", {}).get("Code", "")) or "unknown"
