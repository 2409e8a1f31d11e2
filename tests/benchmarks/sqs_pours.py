"""What f, g and h share: a pour into SQS under an optional time cap, a client that records
when each SendMessageBatch starts, and the checks of what a queue got (read back through the
moto server's ``/castore-bench/sqs-messages`` endpoint, see moto_server.py)."""

from __future__ import annotations

import bisect
import itertools
import threading
import time
from collections import Counter
from collections.abc import Collection, Sequence
from typing import Any

from tests.benchmarks.common import log


def pour_into_sqs(
    store: Any, channel: Any, cap: float | None = None, label: str = "", **options: Any
) -> dict[str, Any]:
    """``pour_event_store_events(store, channel, **options)``, stopped after ``cap`` seconds
    (``PourProgress.stop``: the pour ends after its current calls), its progress logged every
    15 s under ``label`` if given. ``started_at`` and ``ended_at`` are ``time.time()``,
    comparable across processes."""
    from airflow_provider_castore_dam.dam import (
        PourInterruptedError,
        PourProgress,
        pour_event_store_events,
    )

    def report(state: Any) -> None:
        log(f"{label}: {state.poured_count:,} messages so far, {state.rate:,.0f}/s")

    progress = PourProgress(report if label else None, interval=15.0)
    timer = threading.Timer(cap, progress.stop) if cap else None
    started_at, started = time.time(), time.perf_counter()
    if timer is not None:
        timer.start()
    try:
        result: dict[str, Any] = dict(
            pour_event_store_events(store, channel, progress=progress, **options)
        )
    except PourInterruptedError as error:
        if not progress.stopped:
            raise
        result = error.result
    finally:
        if timer is not None:
            timer.cancel()
    seconds = time.perf_counter() - started
    count = result["poured_event_count"]
    return {
        "counted": count,
        "seconds": seconds,
        "rate": count / seconds,
        "capped": progress.stopped,
        "started_at": started_at,
        "ended_at": time.time(),
        "result": result,
    }


class RecordingClient:
    """A boto3 SQS client whose ``send_message_batch`` calls are recorded as ``(time.time()
    before the call, time.time() after it, entries)``; everything else is the client's."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.calls: list[tuple[float, float, int]] = []

    def send_message_batch(self, **request: Any) -> Any:
        started = time.time()
        try:
            return self._client.send_message_batch(**request)
        finally:  # list.append is thread-safe
            self.calls.append((started, time.time(), len(request["Entries"])))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def in_flight(self) -> dict[str, float]:
        """Calls in flight at once: the most, and on average over the calls' whole span."""
        edges = sorted(
            [(start, 1) for start, _, _ in self.calls] + [(end, -1) for _, end, _ in self.calls]
        )
        depths = list(itertools.accumulate(step for _, step in edges))
        span = max(end for _, end, _ in self.calls) - min(start for start, _, _ in self.calls)
        busy = sum(end - start for start, end, _ in self.calls)
        return {"calls": len(self.calls), "max": max(depths), "mean": busy / span}


def queue_name(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[-1]


def expected_ids(dsn: str, table: str, store: str) -> set[str]:
    """Castore's messageId (``store#aggregate#version``) of every event of ``store``."""
    import psycopg
    from psycopg import sql

    query = sql.SQL("SELECT aggregate_id::text, version FROM {} WHERE aggregate_name = %s")
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(query.format(sql.Identifier(table)), [store]).fetchall()
    return {f"{store}#{aggregate_id}#{version}" for aggregate_id, version in rows}


def check_queue(
    messages: Sequence[tuple[str, int]], expected: Collection[str], *, subset: bool = False
) -> dict[str, Any]:
    """Whether the queue (its messages in arrival order) holds every ``expected`` messageId
    exactly once (only some of them, but none twice, when ``subset``), each aggregate's
    versions in increasing order. ``good``: the expected messages seen once and in order,
    less the unexpected ones; it equals ``target`` when everything holds."""
    counts = Counter(message_id for message_id, _ in messages)
    last: dict[str, int] = {}
    out_of_order: set[str] = set()
    for message_id in dict.fromkeys(message_id for message_id, _ in messages):  # 1st copies
        key, version = message_id.rsplit("#", 1)
        if int(version) <= last.get(key, 0):
            out_of_order.add(message_id)
        last[key] = max(last.get(key, 0), int(version))
    unexpected = sum(count for message_id, count in counts.items() if message_id not in expected)
    seen_once = [mid for mid in expected if counts[mid] == 1 and mid not in out_of_order]
    found = {
        "messages": len(messages),
        "duplicates": sum(count - 1 for count in counts.values() if count > 1),
        "out_of_order": len(out_of_order),
        "missing": sum(1 for message_id in expected if message_id not in counts),
        "unexpected": unexpected,
        "good": max(0, len(seen_once) - unexpected),
        "target": len(counts) if subset else len(expected),
    }
    if found["good"] != found["target"]:
        log(f"WARNING: queue check failed: {found}")
    return found


def check_note(found: dict[str, Any], *, subset: bool = False) -> str:
    problems = [f"{found[key]:,} {key.replace('_', ' ')}" for key in PROBLEMS if found[key]]
    if subset:
        problems = [problem for problem in problems if not problem.endswith("missing")]
    return "; ".join(problems) or f"{found['messages']:,} messages checked"


PROBLEMS = ("duplicates", "out_of_order", "missing", "unexpected")


def max_window(times: Sequence[float], width: float, weights: Sequence[int] | None = None) -> int:
    """The most messages in any window ``[t, t + width)`` starting at one of ``times`` (each
    worth its ``weights`` entry, default 1)."""
    pairs = sorted(zip(times, weights or [1] * len(times), strict=True))
    starts = [time for time, _ in pairs]
    totals = [0, *itertools.accumulate(weight for _, weight in pairs)]
    best = 0
    for index, start in enumerate(starts):
        end = bisect.bisect_left(starts, start + width, lo=index)
        best = max(best, totals[end] - totals[index])
    return best
