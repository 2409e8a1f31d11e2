"""The trigger of the deferrable drain sensor: waits in the triggerer until SQS queues are empty."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_castore_dam.triggers.queue_counts import (
    DrainWatch,
    InvalidDrainInputError,
    arun_plan,
    check_drain_arguments,
    describe_counts,
    normalize_queue_urls,
    read_counts,
    resolve_queue_urls,
)

try:
    from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
    from airflow.providers.amazon.aws.hooks.sqs import SqsHook
except ImportError as _error:  # pragma: no cover - depends on the install
    from airflow.exceptions import AirflowOptionalProviderFeatureException

    raise AirflowOptionalProviderFeatureException(
        "the drain sensor needs the amazon provider with aiobotocore: "
        "pip install 'apache-airflow-providers-amazon[aiobotocore]'"
    ) from _error


def aws_hook(service: str, aws_conn_id: str | None, region_name: str | None) -> AwsBaseHook:
    """The amazon provider's hook for ``service`` ("sqs" or "events") on ``aws_conn_id``."""
    if service == "sqs":
        return SqsHook(aws_conn_id=aws_conn_id, region_name=region_name)
    return AwsBaseHook(aws_conn_id=aws_conn_id, region_name=region_name, client_type=service)


class MessageChannelDrainedTrigger(BaseTrigger):
    """Poll the message counts of SQS queues until they all read zero, or a deadline passes.

    Every ``poll_interval`` seconds it reads ``GetQueueAttributes`` (approximate visible,
    in-flight and delayed messages) of every queue with the async client of the amazon
    provider's AWS connection ``aws_conn_id``. The queues count as drained after
    ``stable_readings`` consecutive readings where every queue reads zero everywhere.

    Queues are ``queue_urls``, plus, given ``event_bus_name``, the SQS queues targeted by the
    rules of that EventBridge bus (discovered once, when the trigger starts).

    Yields exactly one event:

    - ``{"status": "drained", "counts": {url: {"visible", "in_flight", "delayed"}},
      "readings": n, "zero_readings": k, "queue_urls": [...]}``;
    - ``{"status": "timeout", ...same keys...}`` once ``deadline`` (epoch seconds) has passed,
      with the counts of the last reading;
    - ``{"status": "error", "message": ...}`` when a queue or the bus cannot be read.
    """

    def __init__(
        self,
        *,
        queue_urls: str | Sequence[str] | None = None,
        event_bus_name: str | None = None,
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
        poll_interval: float = 30.0,
        stable_readings: int = 3,
        deadline: float | None = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.queue_urls = normalize_queue_urls(queue_urls)
        self.event_bus_name = event_bus_name or None
        check_drain_arguments(self.queue_urls, self.event_bus_name, stable_readings)
        if isinstance(poll_interval, bool) or not isinstance(poll_interval, (int, float)):
            raise InvalidDrainInputError(f"poll_interval must be a number, got {poll_interval!r}")
        if poll_interval < 0:
            raise InvalidDrainInputError(f"poll_interval must be 0 or more, got {poll_interval}")
        self.aws_conn_id = aws_conn_id
        self.region_name = region_name
        self.poll_interval = float(poll_interval)
        self.stable_readings = stable_readings
        self.deadline = None if deadline is None else float(deadline)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "queue_urls": list(self.queue_urls),
                "event_bus_name": self.event_bus_name,
                "aws_conn_id": self.aws_conn_id,
                "region_name": self.region_name,
                "poll_interval": self.poll_interval,
                "stable_readings": self.stable_readings,
                "deadline": self.deadline,
            },
        )

    async def _client(self, stack: contextlib.AsyncExitStack, service: str) -> Any:
        """An aiobotocore client, closed with ``stack``."""
        hook = aws_hook(service, self.aws_conn_id, self.region_name)
        client_context = await hook.get_async_conn()  # type: ignore[no-untyped-call]
        return await stack.enter_async_context(client_context)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        try:
            payload = await self._watch()
        except Exception as exc:
            self.log.error("Drain check failed: %s", exc)
            payload = {"status": "error", "message": f"{type(exc).__name__}: {exc}"}
        yield TriggerEvent(payload)  # type: ignore[no-untyped-call]

    async def _watch(self) -> dict[str, Any]:
        watch = DrainWatch(self.stable_readings)
        async with contextlib.AsyncExitStack() as stack:
            clients = {"sqs": await self._client(stack, "sqs")}
            if self.event_bus_name:
                clients["events"] = await self._client(stack, "events")
            queue_urls = await arun_plan(
                resolve_queue_urls(self.queue_urls, self.event_bus_name), clients
            )
            self.log.info(
                "Waiting for %d queue(s) to read empty %d time(s) in a row: %s",
                len(queue_urls),
                self.stable_readings,
                ", ".join(queue_urls),
            )
            while True:
                counts = await arun_plan(read_counts(queue_urls), clients)
                drained = watch.record(counts)
                self.log.info(
                    "Reading %d (%d/%d empty in a row): %s",
                    watch.readings,
                    watch.zero_readings,
                    self.stable_readings,
                    describe_counts(counts),
                )
                if drained:
                    return {"status": "drained", "queue_urls": queue_urls, **watch.summary()}
                wait = self.poll_interval
                if self.deadline is not None:
                    remaining = self.deadline - time.time()
                    if remaining <= 0:
                        return {"status": "timeout", "queue_urls": queue_urls, **watch.summary()}
                    wait = min(wait, remaining)
                await asyncio.sleep(wait)
