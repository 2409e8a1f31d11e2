"""One process's share of a PostgreSQL pour into SQS (scenario g), as one Celery worker would
pour it.

    python -m tests.benchmarks.sqs_worker --dsn DSN --table TABLE --endpoint-url URL
        --queue-url URL [--partitions 0,4 --count 8] [--max-in-flight 1] [--cap S]

Pours the store ``POKEMONS`` of TABLE with ``pour_event_store_events`` into
``SQSMessageChannel(queue_url, max_in_flight=N)`` on the moto server at URL: each listed
partition (``partition=(index, count)``) one after the other, or everything unpartitioned
without ``--partitions``, stopped after ``--cap`` seconds if given. Prints ONE JSON document:
``counted``, ``started_at`` and ``ended_at`` (``time.time()`` just before the first pour call
and just after the last: imports, connections and the store's construction excluded),
``capped`` and each pour's figures in ``pours``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from tests.benchmarks.common import STORE
from tests.benchmarks.moto_server import aws_client
from tests.benchmarks.sqs_pours import pour_into_sqs
from tests.benchmarks.worker import postgres_store


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks.sqs_worker")
    for name in ("--dsn", "--table", "--endpoint-url", "--queue-url"):
        parser.add_argument(name, required=True)
    parser.add_argument("--partitions", help="comma list of partition indexes")
    parser.add_argument("--count", type=int, default=8, help="partitions in all")
    parser.add_argument("--max-in-flight", type=int, default=1)
    parser.add_argument("--cap", type=float, help="stop each pour after this many seconds")
    args = parser.parse_args(argv)

    from airflow_provider_castore_dam.channels.sqs import SQSMessageChannel

    client = aws_client(args.endpoint_url, "sqs")
    channel = SQSMessageChannel(args.queue_url, client=client, max_in_flight=args.max_in_flight)
    store = postgres_store(args.dsn, args.table, STORE)
    options: list[dict[str, Any]] = [{}]
    if args.partitions:
        indexes = [int(index) for index in args.partitions.split(",")]
        options = [{"partition": (index, args.count)} for index in indexes]
    pours = [pour_into_sqs(store, channel, args.cap, **option) for option in options]
    if hasattr(store, "close"):
        store.close()
    document = {
        "counted": sum(pour["counted"] for pour in pours),
        "started_at": pours[0]["started_at"],
        "ended_at": pours[-1]["ended_at"],
        "capped": any(pour["capped"] for pour in pours),
        "pours": pours,
    }
    sys.stdout.write(json.dumps(document, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
