"""One pour of this project in its own process, so that its peak RSS is its own.

    python -m tests.benchmarks.worker --dsn DSN --table TABLE --stores POKEMONS[,TRAINERS]
        [--profile FILE]

One store: ``pour_event_store_events``; several: ``pour_event_store_collection_events``, each
store a ``PostgresEventStore`` over the same table, into a :class:`CountingChannel`. Prints ONE
JSON document on stdout: ``counted`` (messages the channel received), ``seconds`` (the pour
call only, imports and store construction excluded), ``vmhwm_kb`` and ``ru_maxrss_kb`` (this
process's peak RSS, read just before exiting) and ``result`` (the pour's result). With
``--profile FILE`` the pour runs under cProfile and the stats are dumped to FILE.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import json
import resource
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any


class CountingChannel:
    """A message channel that only counts what it is given (Castore's SQS and EventBridge
    channels take 10 messages a call; so does this one)."""

    def __init__(self, max_batch_size: int = 10) -> None:
        self._max_batch_size = max_batch_size
        self.count = 0
        self.calls = 0

    @property
    def max_batch_size(self) -> int:
        return self._max_batch_size

    def publish_messages(self, messages: Sequence[dict[str, Any]], *, replay: bool) -> None:
        self.calls += 1
        self.count += len(messages)


def vm_hwm_kb() -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def postgres_store(dsn: str, table: str, event_store_id: str) -> Any:
    """A ``PostgresEventStore``; adapts to the constructor's parameter names."""
    from airflow_provider_castore_dam.stores.postgres import PostgresEventStore

    parameters = inspect.signature(PostgresEventStore).parameters
    kwargs: dict[str, Any] = {"event_store_id": event_store_id}
    for name in ("conninfo", "dsn", "connection_string", "conn_info"):
        if name in parameters:
            kwargs[name] = dsn
            break
    else:
        return PostgresEventStore(dsn, table=table, event_store_id=event_store_id)
    for name in ("table", "table_name"):
        if name in parameters:
            kwargs[name] = table
            break
    return PostgresEventStore(**kwargs)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks.worker")
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--table", required=True)
    parser.add_argument("--stores", required=True, help="comma-separated event store ids")
    parser.add_argument("--profile", help="run under cProfile, dump the stats to this file")
    args = parser.parse_args(argv)

    from airflow_provider_castore_dam.dam import (
        pour_event_store_collection_events,
        pour_event_store_events,
    )

    store_ids = args.stores.split(",")
    channel = CountingChannel()
    with contextlib.ExitStack() as stack:
        stores = [postgres_store(args.dsn, args.table, store_id) for store_id in store_ids]
        for store in stores:
            if hasattr(store, "close"):
                stack.callback(store.close)

        def pour() -> Any:
            if len(stores) == 1:
                return pour_event_store_events(stores[0], channel)
            return pour_event_store_collection_events(stores, channel)

        profiler = None
        if args.profile:
            import cProfile

            profiler = cProfile.Profile()
        started = time.perf_counter()
        result = pour() if profiler is None else profiler.runcall(pour)
        seconds = time.perf_counter() - started
        if profiler is not None:
            profiler.dump_stats(args.profile)
    document = {
        "counted": channel.count,
        "publish_calls": channel.calls,
        "seconds": seconds,
        "vmhwm_kb": vm_hwm_kb(),
        "ru_maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "result": result,
    }
    sys.stdout.write(json.dumps(document, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
