"""g: f's PostgreSQL table poured into SQS (moto) as 8 partitions by 4 concurrent processes (2
partitions each, one after the other, as 4 Celery workers would) vs one process pouring it
unpartitioned (capped like f), both with ``max_in_flight=1``; the two queues checked against
each other and the table."""

from __future__ import annotations

import os
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tests.benchmarks.common import STORE, describe, log
from tests.benchmarks.context import Context
from tests.benchmarks.moto_server import sqs_messages
from tests.benchmarks.postgres import load_table
from tests.benchmarks.processes import run_measured
from tests.benchmarks.scenarios import postgres_sqs_in_flight as f
from tests.benchmarks.sqs_pours import check_note, check_queue, expected_ids, queue_name
from tests.benchmarks.table import Row

NAME = "g"
TITLE = "8 partitions as 4 concurrent processes -> SQS vs one unpartitioned pour"
FULL = {"g": f.FULL["f"], "serial_cap_g": 60.0}
"""f's table (the same sizes, seed and table name: reused when f ran, else loaded)."""
QUICK = {"g": f.QUICK["f"], "serial_cap_g": 10.0}
USES_AWS = True
PROCESSES, PARTITIONS = 4, 8


def run(ctx: Context) -> None:
    events, aggregates = ctx.sizes[NAME]
    out: dict[str, Any] = ctx.results.setdefault(NAME, {})
    out["load"] = load_table(ctx.pg, f.TABLE, ctx.args.seed, [(STORE, events, aggregates)])
    client = ctx.aws_client("sqs")
    urls = [client.create_queue(QueueName=f"castore-bench-g-{key}")["QueueUrl"] for key in "pw"]
    shares = [list(range(index, PARTITIONS, PROCESSES)) for index in range(PROCESSES)]
    cap = ctx.sizes["serial_cap_g"]
    try:
        out["partitioned"] = _processes(ctx, urls[0], shares, None)
        out["whole"] = _processes(ctx, urls[1], [None], cap)
    except Exception as error:
        out["error"] = describe(error)
        log(f"{NAME}: a pour failed: {out['error']}")
    notes = ["both max_in_flight=1: only the partitioning over processes differs"]
    if out.get("whole", {}).get("capped"):
        notes.append(f"unpartitioned stopped at its {cap:.0f}s cap: partial rate")
    measure = f"{events // 1000}k PG -> SQS, {PARTITIONS} partitions in {PROCESSES} procs vs 1"
    rates = [out.get(key, {}).get("rate") for key in ("partitioned", "whole")]
    note = out.get("error") or "; ".join(notes)
    ctx.rows.append(Row(NAME, measure, *rates, "msg/s", ">= 3", note))
    good, target, note = _check(ctx, out, urls) if "whole" in out else (None, events, "")
    measure = "  queues: partitioned = every event once, in order; same ids"
    ctx.rows.append(Row(NAME, measure, good, target, "msg", ">= 1", note))
    for url in urls:
        client.delete_queue(QueueUrl=url)


def _processes(
    ctx: Context, url: str, shares: list[list[int] | None], cap: float | None
) -> dict[str, Any]:
    """One worker process per share, all at once; the rate over the time from the first
    one's start of pouring to the last one's end."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}

    def command(share: list[int] | None) -> list[str]:
        cmd = [sys.executable, "-m", "tests.benchmarks.sqs_worker", "--dsn", ctx.pg.dsn]
        cmd += ["--table", f.TABLE, "--endpoint-url", ctx.moto.endpoint_url, "--queue-url", url]
        if share is not None:
            cmd += ["--partitions", ",".join(map(str, share)), "--count", str(PARTITIONS)]
        return cmd + (["--cap", str(cap)] if cap else [])

    with ThreadPoolExecutor(len(shares)) as pool:
        runs = list(
            pool.map(lambda share: run_measured(command(share), env=env, timeout=1800), shares)
        )
    counted = sum(run["counted"] for run in runs)
    seconds = max(run["ended_at"] for run in runs) - min(run["started_at"] for run in runs)
    found = {
        "counted": counted,
        "seconds": seconds,
        "rate": counted / seconds,
        "capped": any(run["capped"] for run in runs),
        "processes": runs,
    }
    each = [f"{run['counted']:,} in {run['ended_at'] - run['started_at']:.1f}s" for run in runs]
    rate = found["rate"]
    log(f"{NAME}: {len(runs)} process(es): {counted:,} in {seconds:.1f}s ({rate:,.0f}/s): {each}")
    return found


def _check(ctx: Context, out: dict[str, Any], urls: list[str]) -> tuple[int, int, str]:
    """The partitioned queue against the table (each event once, each aggregate in order);
    the unpartitioned one against the partitioned one's ids (a subset when capped)."""
    partitioned, whole = (sqs_messages(ctx.moto.endpoint_url, queue_name(url)) for url in urls)
    expected = expected_ids(ctx.pg.dsn, f.TABLE, STORE)
    out["check"] = check_queue(partitioned, expected)
    capped = bool(out["whole"]["capped"])
    out["whole_check"] = check_queue(whole, {mid for mid, _ in partitioned}, subset=capped)
    log(f"{NAME}: queue checks: partitioned {out['check']}, unpartitioned {out['whole_check']}")
    good = out["check"]["good"] + out["whole_check"]["good"]
    target = out["check"]["target"] + out["whole_check"]["target"]
    note = (
        f"partitioned: {check_note(out['check'])}; "
        f"unpartitioned{' (a subset: capped)' if capped else ''}: "
        f"{check_note(out['whole_check'], subset=capped)}"
    )
    return good, target, note
