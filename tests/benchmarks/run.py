"""Benchmark of the pour engine against Castore's own lib-dam, the storage's physical limit and
naive baselines, all measured in the same run on the same data (see docs/performance.md).

    python -m tests.benchmarks.run [--scenarios a,b,c,d,e] [--quick] [--json FILE]

Each scenario is a module of tests/benchmarks/scenarios/, whose docstring says what it
measures. Progress goes to stderr; stdout gets the table and the list of missed targets. The
exit code is 0 whatever the numbers (non-zero only on bad arguments).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tests.benchmarks import scenarios
from tests.benchmarks.common import STARTED, describe, log
from tests.benchmarks.context import Context
from tests.benchmarks.table import Row, notes, render, verdicts

NAMES = tuple(scenarios.ALL)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.benchmarks.run", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--scenarios",
        default=",".join(NAMES),
        help=f"comma list among {','.join(NAMES)} (default: all)",
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
    unknown = sorted(set(chosen) - set(NAMES))
    if unknown or not chosen:
        parser.error(
            f"--scenarios: expected a comma list among {','.join(NAMES)}, got {args.scenarios!r}"
        )
    if args.runs < 1:
        parser.error(f"--runs: expected at least 1, got {args.runs}")
    args.chosen = [name for name in NAMES if name in chosen]
    return args


def config(args: argparse.Namespace) -> dict[str, Any]:
    sizes = scenarios.sizes(args.quick)
    if args.reference_cap is not None:
        sizes["reference_cap_b"] = args.reference_cap
    return {
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


def run_scenario(ctx: Context, name: str) -> None:
    """Scenario ``name``; when it fails, its error goes to the results, and to the table
    unless the scenario already gave rows."""
    scenario = scenarios.ALL[name]
    log(f"--- scenario {name}: {scenario.TITLE}")
    before = len(ctx.rows)
    try:
        scenario.run(ctx)
    except Exception as error:
        ctx.results.setdefault(name, {})["error"] = describe(error)
        log(f"scenario {name} failed:\n{traceback.format_exc()}")
        if len(ctx.rows) == before:
            ctx.rows.append(
                Row(name, "(scenario failed)", None, None, target=">= 1", note=describe(error))
            )


def print_report(args: argparse.Namespace, results: dict[str, Any], rows: list[Row]) -> None:
    title = "Castore dam benchmark" + (
        " (--quick: smaller data, not the targets' sizes)" if args.quick else ""
    )
    facts = [f"seed {args.seed}", f"{os.cpu_count()} CPUs"]
    if "postgres" in results["config"]:
        facts.append(f"PostgreSQL {results['config']['postgres']}")
    if any(scenarios.ALL[name].USES_AWS for name in args.chosen):
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
    noted = notes(rows)
    if noted:
        print("Notes:")
        print("\n".join(noted))


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    results: dict[str, Any] = {"config": config(args)}
    rows: list[Row] = []
    log(
        f"benchmark: scenarios {','.join(args.chosen)}{' (quick)' if args.quick else ''}, "
        f"seed {args.seed}"
    )
    with contextlib.ExitStack() as stack:
        ctx = Context(args, results["config"]["sizes"], stack, results, rows)
        # The AWS scenarios last: the moto server, once up, slows the PostgreSQL pours down.
        for name in sorted(args.chosen, key=lambda name: scenarios.ALL[name].USES_AWS):
            run_scenario(ctx, name)
        if ctx.postgres_origin is not None:
            results["config"]["postgres"] = ctx.postgres_origin
    results["config"]["seconds"] = time.monotonic() - STARTED
    rows.sort(key=lambda row: row.scenario)  # a stable sort: each scenario's rows in order
    results["rows"] = [row.as_dict() for row in rows]
    print_report(args, results, rows)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str) + "\n")
        print(f"\nRaw results: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
