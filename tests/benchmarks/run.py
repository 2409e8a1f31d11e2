"""Benchmark of the pour engine against Castore's own lib-dam, the storage's physical limit and
naive baselines, all measured in the same run on the same data (see docs/performance.md).

    python -m tests.benchmarks.run [--scenarios a,b,c,d,e] [--quick] [--json FILE]

Scenarios
    a  PostgreSQL store in Castore's layout, 200,000 events / 20,000 aggregates over three
       years: this project's pour_event_store_events vs Castore's pourEventStoreEvents (node,
       @castore/lib-dam 2.4.2) vs psql \\copy of the same rows in timestamp order.
    b  The same at 1,000,000 events / 100,000 aggregates: this project's peak RSS, against
       200 MB and against the 200,000-event run; Castore's partial rate under a time cap.
    c  DynamoDB single-table layout (moto server), 20,000 events / 2,000 aggregates: this
       project's pour (table scan, the default; and the merge path, for information) vs a
       sequential one-aggregate-at-a-time read.
    d  SQS (moto server), 20,000 messages: this project's batched publishing (engine +
       SQSMessageChannel) vs one SendMessage per message.
    e  Collection pour over two PostgreSQL stores of 100,000 events each vs psql \\copy of both.

Progress goes to stderr; stdout gets the table and the list of missed targets. The exit code is
0 whatever the numbers (non-zero only on bad arguments).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from tests.benchmarks import data
from tests.benchmarks.worker import CountingChannel

HERE = Path(__file__).resolve().parent
REFERENCE = HERE / "reference"
REPO = HERE.parent.parent
SCENARIOS = ("a", "b", "c", "d", "e")
MB = 1024 * 1024

FULL = {
    "a": (200_000, 20_000),
    "b": (1_000_000, 100_000),
    "c": (20_000, 2_000),
    "d": (20_000, 2_000),
    "e": (100_000, 10_000),  # per store, two stores
    "reference_timeout_a": 600.0,
    "reference_cap_b": 60.0,
}
QUICK = {
    "a": (20_000, 2_000),
    "b": (100_000, 10_000),
    "c": (2_000, 200),
    "d": (2_000, 200),
    "e": (10_000, 1_000),
    "reference_timeout_a": 120.0,
    "reference_cap_b": 15.0,
}

CEILING_THREADS = 8
STORE = "POKEMONS"
OTHER_STORE = "TRAINERS"
_started = time.monotonic()


def log(text: str) -> None:
    sys.stderr.write(f"[{time.monotonic() - _started:7.1f}s] {text}\n")
    sys.stderr.flush()


# --------------------------------------------------------------------------- results table


@dataclass
class Row:
    scenario: str
    measure: str
    ours: float | None
    baseline: float | None
    unit: str = ""
    target: str = "-"
    """``">= 20"`` / ``"<= 1.2"`` on the ratio ours / baseline, or ``"-"`` (information)."""
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.ours is None or self.baseline in (None, 0):
            return None
        return self.ours / self.baseline  # type: ignore[operator]

    @property
    def met(self) -> bool | None:
        if self.target == "-":
            return None
        if self.ratio is None:
            return False
        op, bound = self.target.split()
        return self.ratio >= float(bound) if op == ">=" else self.ratio <= float(bound)

    def as_dict(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "measure": self.measure,
            "ours": self.ours,
            "baseline": self.baseline,
            "unit": self.unit,
            "ratio": self.ratio,
            "target": self.target,
            "met": self.met,
            "note": self.note,
        }


def _number(value: float | None, unit: str) -> str:
    if value is None:
        return "n/a"
    if unit == "MB":
        return f"{value:,.1f} MB"
    if value >= 100:
        return f"{value:,.0f} {unit}".strip()
    return f"{value:,.2f} {unit}".strip()


def render(rows: Sequence[Row]) -> str:
    header = (
        "scenario",
        "measure",
        "this project",
        "reference/baseline",
        "ratio",
        "target",
        "met?",
    )
    lines = [header]
    for row in rows:
        ratio = "n/a" if row.ratio is None else f"{row.ratio:.2f}x"
        target = "-" if row.target == "-" else f"{row.target}x"
        met = {None: "-", True: "yes", False: "NO"}[row.met]
        if row.met is False and row.ours is None:
            met = "NO (not measured)"
        lines.append(
            (
                row.scenario,
                row.measure,
                _number(row.ours, row.unit),
                _number(row.baseline, row.unit),
                ratio,
                target,
                met,
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]

    def fmt(line: Sequence[str]) -> str:
        return (
            "| "
            + " | ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True))
            + " |"
        )

    out = [fmt(lines[0]), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [fmt(line) for line in lines[1:]]
    return "\n".join(out)


def verdicts(rows: Sequence[Row]) -> list[str]:
    out = []
    for row in rows:
        if row.met is not False:
            continue
        label = f"{row.scenario}: {row.measure}"
        if row.ratio is None:
            out.append(f"MISSED {label}: not measured ({row.note or 'see the log above'})")
            continue
        op, bound = row.target.split()
        factor = float(bound) / row.ratio if op == ">=" else row.ratio / float(bound)
        direction = "faster" if op == ">=" else "smaller"
        out.append(
            f"MISSED {label}: {row.ratio:.2f}x, target {row.target}x "
            f"(needs {factor:.1f}x {direction})" + (f"; {row.note}" if row.note else "")
        )
    return out


# --------------------------------------------------------------------------- processes


def run_measured(
    cmd: Sequence[str], *, env: dict[str, str] | None = None, timeout: float
) -> dict[str, Any]:
    """Run ``cmd`` (which prints one JSON document); return it with the child's own peak RSS
    as seen by ``wait4`` (``child_maxrss_kb``: this child only, but Linux counts the parent's
    RSS at fork/exec time in it, so it is an upper bound; the child's own VmHWM, read after
    exec, is the measure used)."""
    with tempfile.TemporaryFile() as stderr:
        proc = subprocess.Popen(list(cmd), stdout=subprocess.PIPE, stderr=stderr, cwd=REPO, env=env)
        killer = _Killer(proc, timeout)
        try:
            stdout = proc.stdout.read() if proc.stdout else b""
        finally:
            killer.cancel()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.stdout:
            proc.stdout.close()
        stderr.seek(0)
        err = stderr.read().decode(errors="replace")
    if proc.returncode != 0 or not stdout.strip():
        lines = [line for line in err.strip().splitlines() if line.strip()]
        last = lines[-1].strip() if lines else "no output"
        killed = f" (killed after {timeout:.0f}s)" if killer.fired else ""
        log(f"{cmd[0]} ... exited {proc.returncode}{killed}; its stderr ends with:\n{err[-3000:]}")
        raise RuntimeError(f"exited {proc.returncode}{killed}: {last}")
    document = json.loads(stdout.decode().strip().splitlines()[-1])
    document["child_maxrss_kb"] = usage.ru_maxrss
    if err.strip():
        document["stderr_tail"] = err[-2000:]
    return document


class _Killer:
    def __init__(self, proc: subprocess.Popen[bytes], timeout: float) -> None:
        import threading

        self.fired = False
        self._proc = proc
        self._timer = threading.Timer(timeout, self._kill)
        self._timer.daemon = True
        self._timer.start()

    def _kill(self) -> None:
        self.fired = True
        with contextlib.suppress(OSError):
            self._proc.kill()

    def cancel(self) -> None:
        self._timer.cancel()


# --------------------------------------------------------------------------- PostgreSQL


@dataclass
class Postgres:
    dsn: str
    url: str
    origin: str
    loaded: dict[str, int] = field(default_factory=dict)
    """table -> events loaded."""


@contextlib.contextmanager
def postgres() -> Iterator[Postgres]:
    from psycopg.conninfo import conninfo_to_dict

    from tests.infra import select_postgres_server

    with select_postgres_server() as server, server.temporary_database("castore_bench") as dsn:
        params = conninfo_to_dict(dsn)
        auth = quote(str(params.get("user", "postgres")), safe="")
        if params.get("password"):
            auth += ":" + quote(str(params["password"]), safe="")
        where = f"{params.get('host', '127.0.0.1')}:{params.get('port', 5432)}"
        url = f"postgresql://{auth}@{where}/{params['dbname']}"
        if params.get("sslmode"):
            url += f"?sslmode={params['sslmode']}"
        log(
            f"PostgreSQL: {server.origin} at {server.host}:{server.port}, "
            f"database {params['dbname']}"
        )
        yield Postgres(dsn, url, server.origin)
    log("dropped the benchmark database")


def load_table(
    pg: Postgres, table: str, seed: int, stores: Sequence[tuple[str, int, int]]
) -> dict[str, Any]:
    if table in pg.loaded:
        return {"table": table, "events": pg.loaded[table], "reused": True}
    started = time.perf_counter()
    dataset = data.generate(seed, stores, tag=table)
    generated = time.perf_counter()
    data.load_postgres(pg.dsn, table, dataset)
    loaded = time.perf_counter()
    pg.loaded[table] = dataset.event_count
    log(
        f"{table}: {dataset.event_count:,} events over {len(dataset.aggregates):,} aggregates "
        f"generated in {generated - started:.1f}s, loaded (COPY + constraint + indexes + "
        f"VACUUM ANALYZE) in {loaded - generated:.1f}s"
    )
    return {
        "table": table,
        "events": dataset.event_count,
        "aggregates": len(dataset.aggregates),
        "generate_seconds": generated - started,
        "load_seconds": loaded - generated,
    }


def copy_query(table: str, stores: Sequence[str]) -> str:
    names = ", ".join(f"'{store}'" for store in stores)
    return (
        "SELECT aggregate_name, aggregate_id, version, type, data, metadata, timestamp "
        f"FROM {table} WHERE aggregate_name IN ({names}) ORDER BY timestamp"
    )


def copy_runner(pg: Postgres, table: str, stores: Sequence[str]) -> tuple[str, Callable[[], float]]:
    """The physical limit's method and a function timing one run of it: psql \\copy of the
    rows in timestamp order to /dev/null (process start included), or psycopg COPY TO STDOUT
    without psql."""
    query = copy_query(table, stores)
    psql = shutil.which("psql") or ("/usr/bin/psql" if Path("/usr/bin/psql").exists() else None)

    def once() -> float:
        started = time.perf_counter()
        if psql:
            subprocess.run(
                [
                    psql,
                    pg.dsn,
                    "-X",
                    "-q",
                    "-v",
                    "ON_ERROR_STOP=1",
                    "-c",
                    f"\\copy ({query}) TO '/dev/null'",
                ],
                check=True,
                stdout=subprocess.DEVNULL,
            )
        else:
            import psycopg

            with (
                psycopg.connect(pg.dsn) as conn,
                conn.cursor() as cursor,
                cursor.copy(f"COPY ({query}) TO STDOUT") as copy,
            ):
                for _ in copy:
                    pass
        return time.perf_counter() - started

    method = "psql \\copy" if psql else "psycopg COPY TO STDOUT (psql not found)"
    return method, once


def copy_note(copy: dict[str, Any]) -> str:
    """The table's note on a side-by-side row: the median round's ratio, and how the limit
    was measured when psql was missing."""
    notes = [f"median round {copy['median_round']['ratio']:.2f}x"] if "median_round" in copy else []
    if copy["method"] != "psql \\copy":
        notes.append(f"limit measured with {copy['method']}")
    return "; ".join(notes)


def measure_against_copy(
    pg: Postgres,
    table: str,
    stores: Sequence[str],
    events: int,
    runs: int,
    profile_dir: Path | None,
    name: str,
) -> tuple[dict[str, Any], dict[str, Any] | None, str | None]:
    """The physical limit and this project's pour of the same rows, side by side: one warm-up
    of each, then ``runs`` rounds of one \\copy followed by one pour. Each side's figure is
    its fastest run: the machine's noise only ever adds time, and not evenly to the two sides
    (see docs/performance.md). The round whose ratio (pour rate / \\copy rate) is the median
    one is kept too, as are all runs; the pour's peak RSS is the highest of all. Returns
    (copy, ours or None, the pour's error or None)."""
    method, copy_once = copy_runner(pg, table, stores)
    copy_once()
    try:
        warm_up = measure_ours_pg(pg, table, stores, events)
        rounds = [(copy_once(), measure_ours_pg(pg, table, stores, events)) for _ in range(runs)]
    except Exception as failure:
        error = _describe(failure)
        log(f"{name}: this project's pour failed: {error}")
        seconds = copy_once()
        copy = {"method": method, "seconds": seconds, "runs": [seconds], "rate": events / seconds}
        return copy, None, error
    by_ratio = sorted(rounds, key=lambda pair: pair[0] / pair[1]["seconds"])
    median_copy, median_pour = by_ratio[len(by_ratio) // 2]
    copy_runs = [copy_seconds for copy_seconds, _ in rounds]
    pour_runs = [pour["seconds"] for _, pour in rounds]
    fastest = min((pour for _, pour in rounds), key=lambda pour: pour["seconds"])
    copy = {
        "method": method,
        "seconds": min(copy_runs),
        "runs": copy_runs,
        "rate": events / min(copy_runs),
        "median_seconds": statistics.median(copy_runs),
        "median_round": {
            "copy_seconds": median_copy,
            "pour_seconds": median_pour["seconds"],
            "ratio": median_copy / median_pour["seconds"],
        },
    }
    ours = {
        **fastest,
        "runs": pour_runs,
        "median_seconds": statistics.median(pour_runs),
        "warm_up_seconds": warm_up["seconds"],
        "peak_rss_mb": max(run["peak_rss_mb"] for run in [warm_up, *(p for _, p in rounds)]),
    }
    log(
        f"{table}: {len(rounds)} rounds of {method} then this project's pour, seconds: "
        f"{[(round(c, 2), round(p, 2)) for c, p in zip(copy_runs, pour_runs, strict=True)]}; "
        f"fastest {copy['seconds']:.2f}s / {ours['seconds']:.2f}s (ratio "
        f"{copy['seconds'] / ours['seconds']:.2f}); median round {median_copy:.2f}s / "
        f"{median_pour['seconds']:.2f}s (ratio {copy['median_round']['ratio']:.2f}); medians of "
        f"each side {copy['median_seconds']:.2f}s / {ours['median_seconds']:.2f}s (ratio "
        f"{copy['median_seconds'] / ours['median_seconds']:.2f}); peak RSS "
        f"{ours['peak_rss_mb']:.1f} MB"
    )
    if profile_dir is not None:
        measure_ours_pg(pg, table, stores, events, profile_dir / f"{name}.prof")
        print_profile(profile_dir / f"{name}.prof", name)
    return copy, ours, None


def measure_ours_pg(
    pg: Postgres,
    table: str,
    stores: Sequence[str],
    events: int,
    profile: Path | None = None,
) -> dict[str, Any]:
    """One pour in its own process (under cProfile into ``profile``, if given)."""
    cmd = [sys.executable, "-m", "tests.benchmarks.worker", "--dsn", pg.dsn, "--table", table]
    cmd += ["--stores", ",".join(stores)]
    if profile is not None:
        profile.parent.mkdir(parents=True, exist_ok=True)
        cmd += ["--profile", str(profile)]
    document = run_measured(cmd, timeout=1800)
    document["rate"] = document["counted"] / document["seconds"]
    # VmHWM: the worker's peak resident set since exec (imports, pool threads and all),
    # read by the worker just before it exits. wait4's ru_maxrss would include this
    # process's RSS at fork time.
    peak_kb = document.get("vmhwm_kb") or document["child_maxrss_kb"]
    document["peak_rss_mb"] = peak_kb / 1024
    document["expected"] = events
    log(
        f"{table}: this project poured {document['counted']:,} events in "
        f"{document['seconds']:.2f}s ({document['rate']:,.0f}/s), peak RSS "
        f"{document['peak_rss_mb']:.1f} MB (VmHWM; wait4 ru_maxrss, which counts the parent at "
        f"fork: {document['child_maxrss_kb'] / 1024:.1f} MB)"
    )
    if document["counted"] != events:
        log(f"WARNING: {table}: poured {document['counted']:,}, expected {events:,}")
    return document


def print_profile(path: Path, name: str, top: int = 25) -> None:
    import io
    import pstats

    for sort in ("tottime", "cumulative"):
        buffer = io.StringIO()
        pstats.Stats(str(path), stream=buffer).sort_stats(sort).print_stats(top)
        sys.stderr.write(f"\n----- profile of {name} by {sort} ({path}) -----\n{buffer.getvalue()}")


# --------------------------------------------------------------------------- the reference


def reference_available() -> str | None:
    """None when Castore's lib-dam is ready to run, else why not. Runs ``npm ci`` if needed."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        return "node and npm are not on the PATH"
    modules = REFERENCE / "node_modules"
    stamp = modules / ".package-lock.json"
    lock = REFERENCE / "package-lock.json"
    if not (modules / "@castore" / "lib-dam").is_dir() or (
        stamp.exists() and stamp.stat().st_mtime < lock.stat().st_mtime
    ):
        log("reference: npm ci in tests/benchmarks/reference")
        done = subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=REFERENCE,
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            return f"npm ci failed: {done.stderr.strip()[-500:]}"
    return None


def stop_leftover_queries(pg: Postgres) -> None:
    """Node exits at the cap with its last query still running in PostgreSQL (a count of the
    whole table, seconds long): end it, so it does not slow down what is measured next."""
    import psycopg

    with psycopg.connect(pg.dsn, autocommit=True) as conn:
        stopped = conn.execute(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchone()
    log(f"stopped {stopped[0] if stopped else 0} query(ies) left running by the capped run")


def measure_reference(
    pg: Postgres, table: str, store: str, events: int, cap: float | None
) -> dict[str, Any]:
    env = {**os.environ, "PG_URL": pg.url, "PG_TABLE": table, "EVENT_STORE_ID": store}
    if cap is not None:
        env["TIME_CAP_S"] = str(cap)
    document = run_measured(
        ["node", str(REFERENCE / "pour.mjs")], env=env, timeout=(cap or 3600) + 120
    )
    document["rate"] = document["counted"] / document["seconds"] if document["seconds"] else None
    document["expected"] = events
    if document["capped"]:
        stop_leftover_queries(pg)
    state = "stopped at the cap, partial" if document["capped"] else "complete"
    log(
        f"{table}: Castore lib-dam 2.4.2 poured {document['counted']:,} events in "
        f"{document['seconds']:.1f}s ({document['rate']:,.0f}/s, {state})"
    )
    if not document["capped"] and document["counted"] != events:
        log(f"NOTE: {table}: Castore poured {document['counted']:,} of {events:,} events")
    return document


# --------------------------------------------------------------------------- scenarios


@dataclass
class Context:
    args: argparse.Namespace
    sizes: dict[str, Any]
    stack: contextlib.ExitStack
    results: dict[str, Any]
    rows: list[Row]
    _pg: Postgres | None = None
    _moto: Any = None
    _reference: str | bool | None = False  # False: not checked yet

    @property
    def pg(self) -> Postgres:
        if self._pg is None:
            self._pg = self.stack.enter_context(postgres())
        return self._pg

    @property
    def moto(self) -> Any:
        if self._moto is None:
            from tests.benchmarks import moto_server

            latency = self.args.aws_latency_ms
            self._moto = self.stack.enter_context(moto_server.start(latency))
            log(f"moto server at {self._moto.endpoint_url}, {latency:g} ms added per request")
        return self._moto

    def reference_problem(self) -> str | None:
        if self._reference is False:
            self._reference = (
                "skipped (--no-reference)" if self.args.no_reference else reference_available()
            )
        return self._reference  # type: ignore[return-value]

    def aws_client(self, service: str) -> Any:
        from botocore.config import Config

        config = Config(
            proxies={}, retries={"max_attempts": 3, "mode": "standard"}, max_pool_connections=32
        )
        return self.moto.session().client(
            service, endpoint_url=self.moto.endpoint_url, config=config
        )


def _pg_events_scenario(ctx: Context, name: str, table: str) -> dict[str, Any]:
    events, aggregates = ctx.sizes[name]
    out: dict[str, Any] = {
        "load": load_table(ctx.pg, table, ctx.args.seed, [(STORE, events, aggregates)])
    }
    _side_by_side(ctx, out, name, table, [STORE], events)
    return out


def _side_by_side(
    ctx: Context, out: dict[str, Any], name: str, table: str, stores: list[str], events: int
) -> None:
    copy, ours, error = measure_against_copy(
        ctx.pg, table, stores, events, ctx.args.runs, ctx.args.profile, name
    )
    out["copy"] = copy
    if ours is not None:
        out["ours"] = ours
    if error is not None:
        out["ours_error"] = error


def scenario_a(ctx: Context) -> None:
    out = ctx.results["a"] = _pg_events_scenario(ctx, "a", "event_a")
    events = ctx.sizes["a"][0]
    problem = ctx.reference_problem()
    if problem is None:
        try:
            out["reference"] = measure_reference(
                ctx.pg, "event_a", STORE, events, ctx.sizes["reference_timeout_a"]
            )
        except Exception as error:
            problem = out["reference_error"] = _describe(error)
    ours = out.get("ours", {}).get("rate")
    reference = out.get("reference", {})
    note = problem or out.get("ours_error", "")
    if reference.get("capped"):
        note = f"reference stopped at {ctx.sizes['reference_timeout_a']:.0f}s: partial rate"
    label = f"{events // 1000}k"
    ctx.rows.append(
        Row(
            "a",
            f"{label} events/s vs Castore lib-dam",
            ours,
            reference.get("rate"),
            "ev/s",
            ">= 20",
            note,
        )
    )
    ctx.rows.append(
        Row(
            "a",
            f"{label} events/s vs psql \\copy",
            ours,
            out["copy"]["rate"],
            "ev/s",
            ">= 0.5",
            out.get("ours_error", "") or copy_note(out["copy"]),
        )
    )


def scenario_b(ctx: Context) -> None:
    out = ctx.results["b"] = _pg_events_scenario(ctx, "b", "event_b")
    events = ctx.sizes["b"][0]
    small = ctx.results.get("a", {}).get("ours")
    if small is None:
        log("b: measuring the 200k run's peak RSS (scenario a not run)")
        small_events, small_aggregates = ctx.sizes["a"]
        load_table(ctx.pg, "event_a", ctx.args.seed, [(STORE, small_events, small_aggregates)])
        try:
            small = measure_ours_pg(ctx.pg, "event_a", [STORE], small_events)
        except Exception as error:
            out["small_error"] = _describe(error)
    out["small"] = small
    ours = out.get("ours")
    peak = ours["peak_rss_mb"] if ours else None
    small_peak = small["peak_rss_mb"] if small else None
    problem = ctx.reference_problem()
    if problem is None:
        try:
            out["reference"] = measure_reference(
                ctx.pg, "event_b", STORE, events, ctx.sizes["reference_cap_b"]
            )
        except Exception as error:
            problem = out["reference_error"] = _describe(error)
    reference = out.get("reference", {})
    error = out.get("ours_error", "")
    label, small_label = f"{events // 1000}k", f"{ctx.sizes['a'][0] // 1000}k"
    ctx.rows.append(Row("b", f"{label} peak RSS vs 200 MB", peak, 200.0, "MB", "<= 1.0", error))
    ctx.rows.append(
        Row(
            "b",
            f"{label} peak RSS vs {small_label} run's",
            peak,
            small_peak,
            "MB",
            "<= 1.2",
            error or out.get("small_error", ""),
        )
    )
    ctx.rows.append(
        Row(
            "b",
            f"{label} events/s vs psql \\copy",
            ours and ours["rate"],
            out["copy"]["rate"],
            "ev/s",
            "-",
            error or copy_note(out["copy"]),
        )
    )
    cap = ctx.sizes["reference_cap_b"]
    ctx.rows.append(
        Row(
            "b",
            f"{label} events/s vs lib-dam (partial, {cap:.0f}s cap)",
            ours and ours["rate"],
            reference.get("rate"),
            "ev/s",
            "-",
            problem or error,
        )
    )


def scenario_c(ctx: Context) -> None:
    from boto3.dynamodb.types import TypeDeserializer

    from airflow_provider_castore_dam.dam import pour_event_store_events

    events, aggregates = ctx.sizes["c"]
    out: dict[str, Any] = ctx.results.setdefault("c", {})
    client = ctx.aws_client("dynamodb")
    table = "castore-bench-events"
    started = time.perf_counter()
    dataset = data.generate(ctx.args.seed, [(STORE, events, aggregates)], tag="dynamodb")
    data.create_single_table(client, table)
    data.load_dynamodb(client, table, dataset)
    out["load_seconds"] = time.perf_counter() - started
    log(
        f"c: {events:,} events over {aggregates:,} aggregates written to DynamoDB "
        f"in {out['load_seconds']:.1f}s"
    )

    # Baseline, written plainly: list every aggregate id, read each aggregate, one at a time,
    # then sort everything in pour order.
    deserializer = TypeDeserializer()
    started = time.perf_counter()
    ids: list[str] = []
    query: dict[str, Any] = {
        "TableName": table,
        "IndexName": "initialEvents",
        "KeyConditionExpression": "eventStoreId = :store",
        "ExpressionAttributeValues": {":store": {"S": STORE}},
    }
    while True:
        page = client.query(**query)
        ids += [item["aggregateId"]["S"] for item in page["Items"]]
        if "LastEvaluatedKey" not in page:
            break
        query["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    read: list[dict[str, Any]] = []
    for partition in ids:
        query = {
            "TableName": table,
            "KeyConditionExpression": "aggregateId = :id",
            "ExpressionAttributeValues": {":id": {"S": partition}},
            "ConsistentRead": True,
        }
        while True:
            page = client.query(**query)
            for item in page["Items"]:
                event = {key: deserializer.deserialize(value) for key, value in item.items()}
                event["aggregateId"] = partition.split("#", 1)[1]
                event["version"] = int(event["version"])
                event.pop("eventStoreId", None)
                read.append(event)
            if "LastEvaluatedKey" not in page:
                break
            query["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    read.sort(key=lambda event: (event["timestamp"], event["aggregateId"], event["version"]))
    seconds = time.perf_counter() - started
    out["sequential"] = {"counted": len(read), "seconds": seconds, "rate": len(read) / seconds}
    log(
        f"c: sequential read of {len(read):,} events in {seconds:.2f}s "
        f"({len(read) / seconds:,.0f}/s)"
    )
    del read

    # What any client could get from this server: the same partition queries, 8 at a time,
    # with nothing done to the results (information, no target).
    from concurrent.futures import ThreadPoolExecutor

    def read_partition(partition: str) -> int:
        query: dict[str, Any] = {
            "TableName": table,
            "KeyConditionExpression": "aggregateId = :id",
            "ExpressionAttributeValues": {":id": {"S": partition}},
            "ConsistentRead": True,
        }
        count = 0
        while True:
            page = client.query(**query)
            count += len(page["Items"])
            if "LastEvaluatedKey" not in page:
                return count
            query["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    started = time.perf_counter()
    with ThreadPoolExecutor(CEILING_THREADS) as pool:
        counted = sum(pool.map(read_partition, ids))
    seconds = time.perf_counter() - started
    out["ceiling"] = {"counted": counted, "seconds": seconds, "rate": counted / seconds}
    log(
        f"c: {CEILING_THREADS} threads of plain partition queries read {counted:,} events in "
        f"{seconds:.2f}s ({counted / seconds:,.0f}/s)"
    )

    from airflow_provider_castore_dam.stores.dynamodb import (
        DynamoDBEventStore,
        DynamoDBTableScanEventStore,
    )

    for name, store_class, measure, target in (
        ("ours", DynamoDBTableScanEventStore, "events/s (table scan) vs sequential read", ">= 4"),
        ("merge", DynamoDBEventStore, "  merge path (dynamodb_read=query) vs sequential", "-"),
    ):
        try:
            with store_class(STORE, table, layout="single-table", client=client) as store:
                channel = CountingChannel()
                started = time.perf_counter()
                result = pour_event_store_events(store, channel)
                seconds = time.perf_counter() - started
            out[name] = {
                "counted": channel.count,
                "seconds": seconds,
                "rate": channel.count / seconds,
                "result": result,
            }
            log(
                f"c: {store_class.__name__} poured {channel.count:,} events in {seconds:.2f}s "
                f"({channel.count / seconds:,.0f}/s)"
            )
            if channel.count != events:
                log(f"WARNING: c: poured {channel.count:,}, expected {events:,}")
        except Exception as error:
            out[f"{name}_error"] = _describe(error)
            log(f"c: {store_class.__name__}'s pour failed: {out[f'{name}_error']}")
        ctx.rows.append(
            Row(
                "c",
                f"{events // 1000}k DynamoDB {measure}" if name == "ours" else measure,
                out.get(name, {}).get("rate"),
                out["sequential"]["rate"],
                "ev/s",
                target,
                out.get(f"{name}_error", ""),
            )
        )
    ctx.rows.append(
        Row(
            "c",
            f"  ceiling: {CEILING_THREADS} threads of bare Query vs sequential",
            out["ceiling"]["rate"],
            out["sequential"]["rate"],
            "ev/s",
            "-",
            "what the server allows any client (no ordering, no decoding)",
        )
    )


def scenario_d(ctx: Context) -> None:
    from airflow_provider_castore_dam.dam import pour_event_store_events
    from airflow_provider_castore_dam.stores import InMemoryScanningEventStore

    events, aggregates = ctx.sizes["d"]
    out: dict[str, Any] = ctx.results.setdefault("d", {})
    client = ctx.aws_client("sqs")
    dataset = data.generate(ctx.args.seed, [(STORE, events, aggregates)], tag="sqs")
    details = [event for _, event in data.event_details(dataset)]

    def queue(name: str) -> str:
        return client.create_queue(QueueName=name)["QueueUrl"]

    def queued(url: str) -> int:
        attributes = client.get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
        )
        return int(attributes["Attributes"]["ApproximateNumberOfMessages"])

    # Baseline: one SendMessage per message, as Castore's single-message path sends it.
    single = queue("castore-bench-single")
    started = time.perf_counter()
    for event in details:
        message = {"eventStoreId": STORE, "event": event}
        client.send_message(
            QueueUrl=single,
            MessageBody=json.dumps(message, separators=(",", ":"), ensure_ascii=False),
            MessageAttributes={
                "messageId": {
                    "DataType": "String",
                    "StringValue": f"{STORE}#{event['aggregateId']}#{event['version']}",
                },
                "replay": {"DataType": "Number", "StringValue": "1"},
            },
        )
    seconds = time.perf_counter() - started
    out["single"] = {
        "counted": len(details),
        "seconds": seconds,
        "rate": len(details) / seconds,
        "queued": queued(single),
    }
    log(
        f"d: {len(details):,} SendMessage calls in {seconds:.2f}s ({len(details) / seconds:,.0f}/s)"
    )

    try:
        from airflow_provider_castore_dam.channels.sqs import SQSMessageChannel

        store = InMemoryScanningEventStore(STORE, details)
        batched = queue("castore-bench-batched")
        channel = SQSMessageChannel(batched, client=client)
        started = time.perf_counter()
        result = pour_event_store_events(store, channel)
        seconds = time.perf_counter() - started
        count = result["poured_event_count"]
        out["ours"] = {
            "counted": count,
            "seconds": seconds,
            "rate": count / seconds,
            "queued": queued(batched),
        }
        log(
            f"d: this project published {count:,} messages in {seconds:.2f}s "
            f"({count / seconds:,.0f}/s); the queue holds {out['ours']['queued']:,}"
        )
        if out["ours"]["queued"] != events:
            log(
                f"WARNING: d: the queue holds {out['ours']['queued']:,} messages, "
                f"expected {events:,}"
            )
    except Exception as error:
        out["ours_error"] = _describe(error)
        log(f"d: this project's publishing failed: {out['ours_error']}")
    ctx.rows.append(
        Row(
            "d",
            f"{events // 1000}k SQS messages/s vs 1 SendMessage each",
            out.get("ours", {}).get("rate"),
            out["single"]["rate"],
            "msg/s",
            ">= 5",
            out.get("ours_error", ""),
        )
    )


def scenario_e(ctx: Context) -> None:
    events, aggregates = ctx.sizes["e"]
    stores = [STORE, OTHER_STORE]
    table = "event_e"
    out: dict[str, Any] = ctx.results.setdefault("e", {})
    out["load"] = load_table(
        ctx.pg, table, ctx.args.seed, [(store, events, aggregates) for store in stores]
    )
    total = 2 * events
    _side_by_side(ctx, out, "e", table, stores, total)
    ctx.rows.append(
        Row(
            "e",
            f"2 x {events // 1000}k collection events/s vs psql \\copy",
            out.get("ours", {}).get("rate"),
            out["copy"]["rate"],
            "ev/s",
            ">= 0.4",
            out.get("ours_error", "") or copy_note(out["copy"]),
        )
    )


RUNNERS: dict[str, Callable[[Context], None]] = {
    "a": scenario_a,
    "b": scenario_b,
    "c": scenario_c,
    "d": scenario_d,
    "e": scenario_e,
}


def _describe(error: BaseException) -> str:
    text = f"{type(error).__name__}: {error}".strip()
    return text if len(text) < 600 else text[:600] + "..."


# --------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.benchmarks.run", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--scenarios", default=",".join(SCENARIOS), help="comma list among a,b,c,d,e (default: all)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="a smaller smoke run (a tenth of the data, short caps)"
    )
    parser.add_argument("--json", type=Path, help="also write the raw results as JSON to this file")
    parser.add_argument(
        "--seed", type=int, default=20240601, help="data generator seed (default %(default)s)"
    )
    parser.add_argument(
        "--runs",
        type=int,
        default=5,
        help="rounds of one psql \\copy then one pour per PostgreSQL table, after a warm-up of "
        "each; each side's fastest run is reported, the median round's ratio noted "
        "(default %(default)s)",
    )
    parser.add_argument(
        "--reference-cap",
        type=float,
        help="time cap of Castore's pour in b, seconds (default 60; quick 15)",
    )
    parser.add_argument(
        "--aws-latency-ms",
        type=float,
        default=5.0,
        help="latency the moto server adds to each AWS request, standing for the network "
        "(default %(default)s; 0 = raw moto)",
    )
    parser.add_argument("--no-reference", action="store_true", help="do not run Castore's lib-dam")
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="cProfile this project's PostgreSQL pours; stats to DIR",
    )
    args = parser.parse_args(argv)
    chosen = [name.strip() for name in args.scenarios.split(",") if name.strip()]
    unknown = sorted(set(chosen) - set(SCENARIOS))
    if unknown or not chosen:
        parser.error(
            f"--scenarios: expected a comma list among {','.join(SCENARIOS)}, "
            f"got {args.scenarios!r}"
        )
    if args.runs < 1:
        parser.error(f"--runs: expected at least 1, got {args.runs}")
    args.chosen = [name for name in SCENARIOS if name in chosen]
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = dict(QUICK if args.quick else FULL)
    if args.reference_cap is not None:
        sizes["reference_cap_b"] = args.reference_cap
    results: dict[str, Any] = {
        "config": {
            "scenarios": args.chosen,
            "quick": args.quick,
            "seed": args.seed,
            "sizes": sizes,
            "aws_latency_ms": args.aws_latency_ms,
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
    }
    rows: list[Row] = []
    log(
        f"benchmark: scenarios {','.join(args.chosen)}{' (quick)' if args.quick else ''}, "
        f"seed {args.seed}"
    )
    with contextlib.ExitStack() as stack:
        ctx = Context(args, sizes, stack, results, rows)
        # PostgreSQL scenarios first: once c or d ran, the moto server (20,000 messages
        # queued) stays up to the end and costs e a tenth of its rate.
        for name in sorted(args.chosen, key=lambda scenario: scenario in ("c", "d")):
            log(f"--- scenario {name}")
            before = len(rows)
            try:
                RUNNERS[name](ctx)
            except Exception as error:
                results.setdefault(name, {})["error"] = _describe(error)
                log(f"scenario {name} failed:\n{traceback.format_exc()}")
                if len(rows) == before:
                    rows.append(
                        Row(
                            name,
                            "(scenario failed)",
                            None,
                            None,
                            target=">= 1",
                            note=_describe(error),
                        )
                    )
        if ctx._pg is not None:
            results["config"]["postgres"] = ctx._pg.origin
    results["config"]["seconds"] = time.monotonic() - _started
    rows.sort(key=lambda row: row.scenario)  # a stable sort: each scenario's rows in order
    results["rows"] = [row.as_dict() for row in rows]
    title = "Castore dam benchmark" + (
        " (--quick: smaller data, not the targets' sizes)" if args.quick else ""
    )
    facts = [f"seed {args.seed}", f"{os.cpu_count()} CPUs"]
    if "postgres" in results["config"]:
        facts.append(f"PostgreSQL {results['config']['postgres']}")
    if {"c", "d"} & set(args.chosen):
        facts.append(f"moto + {args.aws_latency_ms:g} ms per AWS request")
    if args.profile:
        facts.append("this project's PostgreSQL pours ran under cProfile (slower)")
    facts.append(f"{results['config']['seconds']:.0f}s in all")
    print(f"\n{title}; {'; '.join(facts)}\n")
    print(render(rows))
    missed = verdicts(rows)
    print()
    if missed:
        print(f"{len(missed)} target(s) missed:")
        for line in missed:
            print(f"  {line}")
    else:
        print("Every target met.")
    notes = [
        f"  {row.scenario}: {row.measure}: {row.note}"
        for row in rows
        if row.note and row.met is not False
    ]
    if notes:
        print("Notes:")
        print("\n".join(notes))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str) + "\n")
        print(f"\nRaw results: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
