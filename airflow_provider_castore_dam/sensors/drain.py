"""A sensor that waits until the SQS queues behind a message channel are drained."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowException, AirflowSensorTimeout
from airflow.sdk import BaseSensorOperator, PokeReturnValue

from airflow_provider_castore_dam.triggers.drain import MessageChannelDrainedTrigger, aws_hook
from airflow_provider_castore_dam.triggers.queue_counts import (
    CountsByQueue,
    DrainWatch,
    InvalidDrainInputError,
    check_drain_arguments,
    check_stable_readings,
    describe_counts,
    normalize_queue_urls,
    read_counts,
    resolve_queue_urls,
    run_plan,
)

if TYPE_CHECKING:
    from airflow.sdk import Context

#: How long after the trigger's own deadline the scheduler's defer timeout fires (a backstop:
#: the trigger reports the timeout itself, with the last counts).
DEFER_TIMEOUT_MARGIN = 60.0


class MessageChannelDrainedSensor(BaseSensorOperator):
    """Wait until SQS queues hold no visible, in-flight or delayed message for a while.

    :param queue_urls: one SQS queue URL or several (templated).
    :param event_bus_name: an EventBridge bus whose rules' SQS targets are waited for as well
        (templated); needs ``events:ListRules``, ``events:ListTargetsByRule`` and
        ``sqs:GetQueueUrl``.
    :param aws_conn_id: the amazon provider's AWS connection (keys, role, region, endpoint URL).
    :param region_name: overrides the connection's region.
    :param stable_readings: consecutive all-zero readings of every queue needed (approximate
        counts lag behind), ``poke_interval`` seconds apart.
    :param deferrable: wait in the triggerer (default) instead of a worker slot.

    Returns (XCom) the last counts: ``{queue_url: {"visible": 0, "in_flight": 0, "delayed": 0}}``.
    On ``timeout`` it fails with :class:`AirflowSensorTimeout` naming the last counts.
    ``mode="reschedule"`` is refused without ``deferrable``: the run of zero readings lives in
    the sensor's process.
    """

    template_fields: Sequence[str] = ("queue_urls", "event_bus_name", "aws_conn_id", "region_name")
    ui_color = "#d8eef7"

    def __init__(
        self,
        *,
        queue_urls: str | Sequence[str] | None = None,
        event_bus_name: str | None = None,
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
        stable_readings: int = 3,
        deferrable: bool = True,
        poke_interval: timedelta | float = 30,
        **kwargs: Any,
    ) -> None:
        super().__init__(poke_interval=poke_interval, **kwargs)
        if queue_urls is None and not event_bus_name:
            raise InvalidDrainInputError("give queue_urls, event_bus_name, or both")
        check_stable_readings(stable_readings)
        if not deferrable and self.mode == "reschedule":
            raise InvalidDrainInputError(
                "mode='reschedule' would forget the run of zero readings between pokes: "
                "use deferrable=True (or mode='poke')"
            )
        self.queue_urls = queue_urls
        self.event_bus_name = event_bus_name
        self.aws_conn_id = aws_conn_id
        self.region_name = region_name
        self.stable_readings = stable_readings
        self.deferrable = deferrable
        self._watch: DrainWatch | None = None
        self._resolved_urls: list[str] | None = None
        self._clients: dict[str, Any] = {}
        self._started: float | None = None

    def _rendered_queue_urls(self) -> list[str]:
        urls = normalize_queue_urls(self.queue_urls)
        check_drain_arguments(urls, self.event_bus_name, self.stable_readings)
        return urls

    def execute(self, context: Context) -> Any:
        queue_urls = self._rendered_queue_urls()
        if self.deferrable:
            self.defer(
                trigger=MessageChannelDrainedTrigger(
                    queue_urls=queue_urls,
                    event_bus_name=self.event_bus_name,
                    aws_conn_id=self.aws_conn_id,
                    region_name=self.region_name,
                    poll_interval=self.poke_interval,
                    stable_readings=self.stable_readings,
                    deadline=time.time() + self.timeout,
                ),
                method_name="execute_complete",
                timeout=timedelta(seconds=self.timeout + DEFER_TIMEOUT_MARGIN),
            )
        self._watch, self._resolved_urls, self._clients = None, None, {}
        self._started = time.monotonic()  # before BaseSensorOperator starts its own clock
        try:
            return super().execute(context)
        except AirflowSensorTimeout as exc:
            # poke() raises with the counts; BaseSensorOperator's own check may win the race.
            if self._watch is None or "Last counts" in str(exc):
                raise
            raise AirflowSensorTimeout(self._timeout_message(self._watch.summary())) from exc

    def _client(self, service: str) -> Any:
        if service not in self._clients:
            hook = aws_hook(service, self.aws_conn_id, self.region_name)
            self._clients[service] = hook.conn
        return self._clients[service]

    def poke(self, context: Context) -> bool | PokeReturnValue:
        if self._watch is None:
            self._watch = DrainWatch(self.stable_readings)
        if self._started is None:
            self._started = time.monotonic()
        if self._resolved_urls is None:
            services = ("sqs", "events") if self.event_bus_name else ("sqs",)
            self._resolved_urls = run_plan(
                resolve_queue_urls(self._rendered_queue_urls(), self.event_bus_name),
                {service: self._client(service) for service in services},
            )
            self.log.info(
                "Waiting for %d queue(s) to read empty %d time(s) in a row: %s",
                len(self._resolved_urls),
                self.stable_readings,
                ", ".join(self._resolved_urls),
            )
        counts = run_plan(read_counts(self._resolved_urls), {"sqs": self._client("sqs")})
        drained = self._watch.record(counts)
        self.log.info(
            "Reading %d (%d/%d empty in a row): %s",
            self._watch.readings,
            self._watch.zero_readings,
            self.stable_readings,
            describe_counts(counts),
        )
        if drained:
            return PokeReturnValue(is_done=True, xcom_value=counts)
        if time.monotonic() - self._started > self.timeout:
            raise AirflowSensorTimeout(self._timeout_message(self._watch.summary()))
        return False

    def execute_complete(
        self, context: Context, event: dict[str, Any] | None = None
    ) -> CountsByQueue:
        """Resume after the trigger: the counts on "drained", else raise."""
        if not event:
            raise AirflowException(f"{self.task_id}: the drain trigger sent no event")
        status = event.get("status")
        if status == "drained":
            self.log.info(
                "Drained after %s reading(s): %s",
                event.get("readings"),
                describe_counts(event.get("counts")),
            )
            counts: CountsByQueue = event["counts"]
            return counts
        if status == "timeout":
            raise AirflowSensorTimeout(self._timeout_message(event))
        if status == "error":
            raise AirflowException(
                f"{self.task_id}: cannot check whether the queues are drained: "
                f"{event.get('message')}"
            )
        raise AirflowException(f"{self.task_id}: unexpected event from the drain trigger: {event}")

    def _timeout_message(self, state: dict[str, Any]) -> str:
        return (
            f"{self.task_id}: the queues did not read empty {self.stable_readings} time(s) in a "
            f"row within the timeout of {self.timeout:g}s ({state.get('readings', 0)} reading(s), "
            f"the last {state.get('zero_readings', 0)} empty). "
            f"Last counts: {describe_counts(state.get('counts'))}"
        )
