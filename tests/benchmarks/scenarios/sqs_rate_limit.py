"""h: an in-memory store of 60,000 events poured into SQS (moto) with ``rate_limit=5000`` and
the channel's default ``max_in_flight``: the most messages in any one-second window, from the
SentTimestamp moto gives each message and from the client's own call start times, against the
limit plus one batch; and the mean rate over the run against the limit."""

from __future__ import annotations

from typing import Any

from tests.benchmarks import data
from tests.benchmarks.common import STORE, describe, log
from tests.benchmarks.context import Context
from tests.benchmarks.moto_server import sqs_messages
from tests.benchmarks.sqs_pours import RecordingClient, max_window, pour_into_sqs, queue_name
from tests.benchmarks.table import Row

NAME = "h"
TITLE = "SQS (moto) rate limit held with max_in_flight on"
FULL = {"h": (60_000, 20_000), "rate_limit_h": 5_000.0}
"""12 s at the limit; f's 20,000 aggregates (3 events each on average), so that calls can
be in flight at once (a call waits while an earlier one holds one of its aggregates)."""
QUICK = {"h": (15_000, 5_000), "rate_limit_h": 1_500.0}
"""10 s at a limit this machine reaches whatever its load."""
USES_AWS = True


def run(ctx: Context) -> None:
    events, aggregates = ctx.sizes[NAME]
    limit = ctx.sizes["rate_limit_h"]
    out: dict[str, Any] = ctx.results.setdefault(NAME, {"rate_limit": limit})
    try:
        _measure(ctx, out, events, aggregates, limit)
    except Exception as error:
        out["error"] = describe(error)
        log(f"{NAME}: the pour failed: {out['error']}")
    batch, note = out.get("batch", 10), out.get("error", "")
    measure = f"max msgs in 1 s (SentTimestamp), limit {limit:,.0f}/s"
    ctx.rows.append(Row(NAME, measure, out.get("window"), limit + batch, "msg", "<= 1", note))
    measure = "  the same on the client's call start times"
    window = out.get("client_window")
    ctx.rows.append(Row(NAME, measure, window, limit + batch, "msg", "<= 1", note))
    measure = "mean msg/s over the run (SentTimestamp) vs limit"
    if not note:
        calls = out["in_flight"]["mean"]
        note = f"{out['messages']:,} messages in {out['span']:.2f}s; {calls:.1f} calls in flight"
    ctx.rows.append(Row(NAME, measure, out.get("mean"), limit, "msg/s", ">= 0.95", note))


def _measure(ctx: Context, out: dict[str, Any], events: int, aggregates: int, limit: float) -> None:
    from airflow_provider_castore_dam.channels.sqs import SQSMessageChannel
    from airflow_provider_castore_dam.dam.pourer import batch_size_for
    from airflow_provider_castore_dam.stores import InMemoryScanningEventStore

    dataset = data.generate(ctx.args.seed, [(STORE, events, aggregates)], tag="sqs-rate")
    store = InMemoryScanningEventStore(STORE, [event for _, event in data.event_details(dataset)])
    client = RecordingClient(ctx.aws_client("sqs"))
    url = client.create_queue(QueueName="castore-bench-h")["QueueUrl"]
    channel = SQSMessageChannel(url, client=client)
    out["max_in_flight"] = channel.max_in_flight
    out["batch"] = batch_size_for(limit, channel.max_batch_size)
    out["pour"] = pour_into_sqs(store, channel, rate_limit=limit, label=NAME)
    messages = sqs_messages(ctx.moto.endpoint_url, queue_name(url))
    client.delete_queue(QueueUrl=url)
    sent = [timestamp for _, timestamp in messages]
    out["messages"], out["span"] = len(sent), (max(sent) - min(sent)) / 1000
    out["mean"] = len(sent) / out["span"]
    out["window"] = max_window(sent, 1000)
    calls = sorted(client.calls)
    starts, sizes = [start for start, _, _ in calls], [size for _, _, size in calls]
    out["in_flight"] = client.in_flight()
    out["client_window"] = max_window(starts, 1.0, sizes)
    out["client_mean"] = sum(sizes[:-1]) / (starts[-1] - starts[0])
    log(
        f"{NAME}: {len(sent):,} messages over {out['span']:.2f}s ({out['mean']:,.0f}/s), "
        f"at most {out['window']:,} in one second by SentTimestamp, {out['client_window']:,} "
        f"by call start; the pour's own rate {out['pour']['rate']:,.0f}/s; calls in flight "
        f"{out['in_flight']}"
    )
    if len(sent) != events:
        log(f"WARNING: {NAME}: the queue holds {len(sent):,} messages, expected {events:,}")
