"""The moto server for the AWS scenarios (c, d, f, g, h), with some of moto's own costs taken
out, and an optional per-request latency that stands for the network.

    python -m tests.benchmarks.moto_server -H 127.0.0.1 -p PORT [--latency-ms N]

Why not plain ``python -m moto.server`` (as tests/infra.py starts it): these moto internals grow
with the data, and would make the benchmark measure moto rather than the client:

- DynamoDB ``Query`` sorts *every item of the table* (``Table.all_items``) before picking the
  partition, so one query over a 20,000-item table costs ~0.5 s of server CPU. Here a table
  query only looks at its own partition, and an index query skips that sort (moto sorts the
  matches by the index keys anyway). Its response is also written with ``json.dumps``: moto's
  model-driven serializer spends ~1 ms per returned item. Results are the same.
- DynamoDB ``Scan`` sorts every item of the table again for each page, then walks all the
  pages already returned to find where the next one starts: a full scan costs O(n^2 / page).
  Here the sorted items are kept per table state and a page starts right after its
  ``ExclusiveStartKey`` (a bisection), as DynamoDB does; its response is written with
  ``json.dumps`` too. Its per-item simulation costs are cut as well: each item is deep-copied
  before being serialized, and its size recomputed recursively several times (~0.15 ms per
  item together). Results are the same.
- SQS ``SendMessage`` (and each entry of ``SendMessageBatch``) builds all the queue's attributes,
  three of which walk every message in the queue, just to read ``ContentBasedDeduplication``;
  so publishing n messages costs O(n^2). ``ReceiveMessage`` does the same for every message it
  looks at (to read the retention period). Here sends and receives skip those three counters.

``--latency-ms N`` (default 0) holds each AWS request N ms before moto handles it, with the GIL
released (a sleep), as a real endpoint keeps the client waiting on the network while other
requests proceed. Without it every request is pure CPU of one Python process, so no client-side
concurrency can ever show: moto, not the client, is the bottleneck.

``GET /castore-bench/sqs-messages?queue=NAME`` (no latency) lists a queue's messages as moto
stored them, for the ordering and rate checks of f, g and h (see :func:`sqs_messages`).
"""

from __future__ import annotations

import argparse
import base64
import bisect
import contextlib
import copy
import inspect
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

LOOPBACK = "127.0.0.1"
_partition = threading.local()
_sending = threading.local()


def _patch_dynamodb() -> None:
    from moto.dynamodb.models import table as table_module
    from moto.dynamodb.models.dynamo_type import DynamoType, Item
    from moto.dynamodb.models.table import Table
    from moto.dynamodb.responses import DynamoHandler

    all_items = Table.all_items
    query = Table.query
    handle_query = DynamoHandler.query

    def partition_items(self: Any) -> list[Any]:
        wanted = getattr(_partition, "key", None)
        if wanted is None or wanted[0] is not self:
            return all_items(self)
        if wanted[1] is None:  # an index query: moto sorts the matches by the index keys itself
            items: list[Any] = []
            for hash_set in self.items.values():
                items.extend(hash_set.values() if self.range_key_attr else [hash_set])
            return items
        hash_set = self.items.get(wanted[1])
        if hash_set is None:
            return []
        if not self.range_key_attr:
            return [hash_set]
        return sorted(hash_set.values(), key=lambda item: item.range_key)

    def partition_query(self: Any, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
        index_name = args[6] if len(args) > 6 else kwargs.get("index_name")
        _partition.key = (self, None if index_name is not None else hash_key)
        try:
            return query(self, hash_key, *args, **kwargs)
        finally:
            _partition.key = None

    def json_query(self: Any) -> Any:
        """The Query response as plain JSON (moto's model-driven serializer costs ~1 ms per
        item; the items are already in DynamoDB's JSON form)."""
        result = handle_query(self)
        return json.dumps(result.result, default=_json_default)

    scan = Table.scan
    scan_signature = inspect.signature(scan)
    handle_scan = DynamoHandler.scan
    sorted_items: dict[int, tuple[int, list[Any], list[tuple[Any, Any]]]] = {}

    def items_after(self: Any, start_key: dict[str, Any] | None) -> list[Any]:
        """The table's items in key order, from just after ``start_key``: the list is sorted
        once per table state instead of on every page, and the pages already read are not
        walked again."""
        count = sum(len(hash_set) for hash_set in self.items.values())
        cached = sorted_items.get(id(self))
        if cached is None or cached[0] != count:
            items = [item for hash_set in self.items.values() for item in hash_set.values()]
            items.sort(key=lambda item: (_key(item.hash_key), _key(item.range_key)))
            keys = [(_key(item.hash_key), _key(item.range_key)) for item in items]
            cached = sorted_items[id(self)] = (count, items, keys)
        _, items, keys = cached
        if not start_key:
            return items
        start = (
            _key(DynamoType(start_key[self.hash_key_attr])),
            _key(DynamoType(start_key[self.range_key_attr])),
        )
        return items[bisect.bisect_right(keys, start) :]

    def table_scan(self: Any, *args: Any, **kwargs: Any) -> Any:
        call = scan_signature.bind(self, *args, **kwargs)
        if (
            call.arguments.get("index_name") is not None
            or call.arguments.get("projection_expression")
            or not self.range_key_attr
        ):
            return scan(*call.args, **call.kwargs)
        _partition.scan = items_after(self, call.arguments.get("exclusive_start_key"))
        call.arguments["exclusive_start_key"] = None  # the items already start after it
        try:
            return scan(*call.args, **call.kwargs)
        finally:
            _partition.scan = None

    def json_scan(self: Any) -> Any:
        """The Scan response as plain JSON (see json_query)."""
        return json.dumps(handle_scan(self).result, default=_json_default)

    def scanned_or_partition_items(self: Any) -> list[Any]:
        scanned = getattr(_partition, "scan", None)
        return partition_items(self) if scanned is None else scanned

    class ScanCopy:
        """``copy`` as moto's table module sees it: a table scan without projection hands its
        items straight to the JSON response, so its defensive deep copy of each is skipped."""

        copy = staticmethod(copy.copy)

        @staticmethod
        def deepcopy(value: Any, *args: Any) -> Any:
            if getattr(_partition, "scan", None) is not None:
                return value
            return copy.deepcopy(value, *args)

    def item_size(self: Any) -> int:
        """An item's size, computed once per scan page instead of on every look."""
        if getattr(_partition, "scan", None) is None:
            return size(self)  # type: ignore[no-any-return]
        cached: int | None = self.__dict__.get("_scan_size")
        if cached is None:
            cached = self.__dict__["_scan_size"] = size(self)
        return cached

    size = Item.size
    table_module.copy = ScanCopy  # type: ignore[assignment]
    Item.size = item_size  # type: ignore[method-assign]
    Table.all_items = scanned_or_partition_items  # type: ignore[method-assign]
    Table.query = partition_query  # type: ignore[method-assign]
    Table.scan = table_scan  # type: ignore[method-assign]
    DynamoHandler.query = json_query  # type: ignore[method-assign]
    DynamoHandler.scan = json_scan  # type: ignore[method-assign]


def _key(value: Any) -> tuple[str, Any]:
    """A cheap sort key for a DynamoDB key attribute (moto's own comparisons cost ~10 us)."""
    return value.type, Decimal(value.value) if value.type == "N" else value.value


def _json_default(value: Any) -> Any:
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    return str(value)


def _patch_sqs() -> None:
    from moto.core.utils import camelcase_to_underscores
    from moto.sqs.models import Queue, SQSBackend

    attributes = Queue.attributes.fget  # type: ignore[attr-defined]
    send_message = SQSBackend.send_message

    def cheap_attributes(self: Any) -> dict[str, Any]:
        """While sending or receiving, the attributes without the three that count the
        queue's messages (neither reads them)."""
        if not getattr(_sending, "on", False):
            return attributes(self)  # type: ignore[no-any-return]
        names = list(self.BASE_ATTRIBUTES)
        if self.fifo_queue:
            names += self.FIFO_ATTRIBUTES
        result: dict[str, Any] = {}
        for name in names:
            if not name.startswith("ApproximateNumberOfMessages"):
                value = getattr(self, camelcase_to_underscores(name))
                result[name] = str(value).lower() if isinstance(value, bool) else value
        return result

    def without_counters(method: Any) -> Any:
        def call(self: Any, *args: Any, **kwargs: Any) -> Any:
            _sending.on = True
            try:
                return method(self, *args, **kwargs)
            finally:
                _sending.on = False

        return call

    Queue.attributes = property(cheap_attributes)  # type: ignore[assignment,method-assign]
    SQSBackend.send_message = without_counters(send_message)  # type: ignore[method-assign]
    SQSBackend.receive_message = without_counters(  # type: ignore[method-assign]
        SQSBackend.receive_message
    )


def _patch_latency(latency_ms: float) -> None:
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    call = DomainDispatcherApplication.__call__
    delay = latency_ms / 1000

    def delayed(self: Any, environ: dict[str, Any], start_response: Any) -> Any:
        if not environ.get("PATH_INFO", "").startswith("/moto-api"):
            time.sleep(delay)
        return call(self, environ, start_response)

    DomainDispatcherApplication.__call__ = delayed  # type: ignore[method-assign]


def _patch_dispatch() -> None:
    """Each request's backend, found once per host instead of by listing moto's package
    folder and matching every backend's URL patterns on every request (under a global lock:
    about a third of the server's time per SQS request); and werkzeug's line per request
    not logged."""
    import logging
    from functools import lru_cache

    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    backend_for_host = DomainDispatcherApplication.get_backend_for_host
    cached = lru_cache(maxsize=256)(backend_for_host)
    DomainDispatcherApplication.get_backend_for_host = cached  # type: ignore[method-assign]
    logging.getLogger("werkzeug").setLevel(logging.WARNING)


MESSAGES_PATH = "/castore-bench/sqs-messages"


def _patch_messages_endpoint() -> None:
    """``GET /castore-bench/sqs-messages?queue=NAME[&region=R]``: a JSON list of
    ``[messageId attribute, SentTimestamp ms]`` of the queue's messages, in the order moto
    stored them (it appends each accepted message: arrival order). Receiving them back through
    SQS would take minutes for 200,000 messages and change their state."""
    from urllib.parse import parse_qs

    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication
    from moto.sqs.models import sqs_backends

    call = DomainDispatcherApplication.__call__

    def answer(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        query = parse_qs(environ.get("QUERY_STRING", ""))
        region = query.get("region", ["us-east-1"])[0]
        queue = sqs_backends[DEFAULT_ACCOUNT_ID][region].get_queue(query["queue"][0])
        with queue._messages_lock:
            messages = list(queue._messages)
        rows = [
            [
                message.message_attributes.get("messageId", {}).get("StringValue"),
                message.sent_timestamp,
            ]
            for message in messages
        ]
        body = json.dumps(rows).encode()
        start_response(
            "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        )
        return [body]

    def with_endpoint(self: Any, environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("PATH_INFO") == MESSAGES_PATH:
            return answer(environ, start_response)
        return call(self, environ, start_response)

    DomainDispatcherApplication.__call__ = with_endpoint  # type: ignore[method-assign]


def sqs_messages(endpoint_url: str, queue: str) -> list[tuple[str, int]]:
    """What the endpoint above returns for ``queue`` (its name), as (messageId, ms) pairs."""
    import urllib.request
    from urllib.parse import urlencode

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    url = f"{endpoint_url}{MESSAGES_PATH}?{urlencode({'queue': queue})}"
    with opener.open(url, timeout=120) as response:
        return [(message_id, sent) for message_id, sent in json.loads(response.read())]


def aws_client(endpoint_url: str, service: str) -> Any:
    """A boto3 client of this server (fake credentials, no proxies, 32 connections)."""
    from botocore.config import Config

    from tests.infra import MotoServer

    config = Config(
        proxies={}, retries={"max_attempts": 3, "mode": "standard"}, max_pool_connections=32
    )
    server = MotoServer(endpoint_url)
    return server.session().client(service, endpoint_url=endpoint_url, config=config)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks.moto_server")
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, required=True)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    args = parser.parse_args(argv)
    _patch_dynamodb()
    _patch_sqs()
    _patch_dispatch()
    if args.latency_ms > 0:
        _patch_latency(args.latency_ms)
    _patch_messages_endpoint()  # outside the latency: not an AWS request
    from moto.server import main as moto_main

    moto_main(["-H", args.host, "-p", str(args.port)])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def start(latency_ms: float = 0.0, timeout: float = 30) -> Iterator[Any]:
    """This server on a free 127.0.0.1 port, like ``tests.infra.start_moto_server``; yields a
    ``tests.infra.MotoServer``; stops it on exit."""
    from tests.infra import MotoServer

    deadline = time.monotonic() + timeout
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    with tempfile.TemporaryFile() as logfile:
        for _attempt in range(3):  # another process may take the free port first
            port = _free_port()
            cmd = [sys.executable, "-m", "tests.benchmarks.moto_server", "-H", LOOPBACK]
            cmd += ["-p", str(port), "--latency-ms", str(latency_ms)]
            proc = subprocess.Popen(cmd, stdout=logfile, stderr=subprocess.STDOUT, env=env)
            try:
                server = MotoServer(f"http://{LOOPBACK}:{port}")
                while proc.poll() is None and time.monotonic() < deadline:
                    try:
                        server._request("/moto-api/data.json")
                    except OSError:
                        time.sleep(0.05)
                        continue
                    yield server
                    return
            finally:
                _stop(proc)
        logfile.seek(0)
        tail = logfile.read().decode(errors="replace")[-3000:]
    raise RuntimeError(f"moto server did not start; log tail:\n{tail}")


if __name__ == "__main__":
    main()
