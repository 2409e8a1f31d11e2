"""What the drain trigger and the drain sensor share: SQS message counts, the drain rule, and
the discovery of the SQS queues an EventBridge bus delivers to.

The AWS calls are written once, as *plans*: generators that yield the client calls they need
(:class:`AwsCall`) and receive each response. :func:`run_plan` drives a plan with boto3 clients
(the sensor's poke mode), :func:`arun_plan` with aiobotocore clients (the trigger). A failed call
is thrown back into the plan, which names what it was doing and raises :class:`DrainCheckError`.

Required permissions: ``sqs:GetQueueAttributes`` on the queues; with discovery also
``events:ListRules``, ``events:ListTargetsByRule`` on the bus and ``sqs:GetQueueUrl``.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypedDict, TypeVar, cast

from airflow_provider_castore_dam.errors import CastoreDamError

T = TypeVar("T")


class DrainCheckError(CastoreDamError):
    """The queues could not be found or their message counts could not be read."""


class InvalidDrainInputError(CastoreDamError, ValueError):
    """A drain sensor or trigger argument is invalid."""


class QueueCounts(TypedDict):
    """Approximate message counts of one SQS queue."""

    visible: int
    in_flight: int
    delayed: int


CountsByQueue = dict[str, QueueCounts]

#: QueueCounts key -> SQS queue attribute.
COUNT_ATTRIBUTES: dict[str, str] = {
    "visible": "ApproximateNumberOfMessages",
    "in_flight": "ApproximateNumberOfMessagesNotVisible",
    "delayed": "ApproximateNumberOfMessagesDelayed",
}


@dataclass(frozen=True)
class AwsCall:
    """One client call a plan needs: ``getattr(clients[service], method)(**kwargs)``."""

    service: Literal["sqs", "events"]
    method: str
    kwargs: dict[str, Any] = field(default_factory=dict)


#: A generator of AWS calls that receives each call's response and returns a T.
Plan = Generator[AwsCall, Any, T]


def run_plan(plan: Plan[T], clients: Mapping[str, Any]) -> T:
    """Run ``plan`` with synchronous (boto3) clients keyed by service name."""
    response: Any = None
    error: Exception | None = None
    while True:
        try:
            call = plan.send(response) if error is None else plan.throw(error)
        except StopIteration as done:
            return cast(T, done.value)
        try:
            response, error = getattr(clients[call.service], call.method)(**call.kwargs), None
        except Exception as exc:
            response, error = None, exc


async def arun_plan(plan: Plan[T], clients: Mapping[str, Any]) -> T:
    """Run ``plan`` with asynchronous (aiobotocore) clients keyed by service name."""
    response: Any = None
    error: Exception | None = None
    while True:
        try:
            call = plan.send(response) if error is None else plan.throw(error)
        except StopIteration as done:
            return cast(T, done.value)
        try:
            response, error = await getattr(clients[call.service], call.method)(**call.kwargs), None
        except Exception as exc:
            response, error = None, exc


# --------------------------------------------------------------------------- arguments


def normalize_queue_urls(queue_urls: str | Sequence[str] | None) -> list[str]:
    """One URL or several as a list without duplicates, in the order given."""
    if queue_urls is None:
        return []
    items = [queue_urls] if isinstance(queue_urls, str) else list(queue_urls)
    urls: list[str] = []
    for item in items:
        if not isinstance(item, str) or not item.strip():
            raise InvalidDrainInputError(f"queue URLs must be non-empty strings, got {item!r}")
        if item.strip() not in urls:
            urls.append(item.strip())
    return urls


def check_drain_arguments(
    queue_urls: Sequence[str], event_bus_name: str | None, stable_readings: int
) -> None:
    """Raise :class:`InvalidDrainInputError` unless the arguments describe a drain check."""
    if not queue_urls and not event_bus_name:
        raise InvalidDrainInputError("give queue_urls, event_bus_name, or both")
    check_stable_readings(stable_readings)


def check_stable_readings(stable_readings: int) -> None:
    """Raise :class:`InvalidDrainInputError` unless ``stable_readings`` is an int >= 1."""
    if isinstance(stable_readings, bool) or not isinstance(stable_readings, int):
        raise InvalidDrainInputError(f"stable_readings must be an int, got {stable_readings!r}")
    if stable_readings < 1:
        raise InvalidDrainInputError(f"stable_readings must be 1 or more, got {stable_readings}")


# --------------------------------------------------------------------------- counts


def read_counts(queue_urls: Sequence[str]) -> Plan[CountsByQueue]:
    """Plan: the approximate visible, in-flight and delayed message counts of each queue."""
    counts: CountsByQueue = {}
    for url in queue_urls:
        try:
            response = yield AwsCall(
                "sqs",
                "get_queue_attributes",
                {"QueueUrl": url, "AttributeNames": list(COUNT_ATTRIBUTES.values())},
            )
        except Exception as exc:
            raise DrainCheckError(f"cannot read the message counts of queue {url}: {exc}") from exc
        attributes = response.get("Attributes", {})
        try:
            counts[url] = QueueCounts(
                visible=int(attributes[COUNT_ATTRIBUTES["visible"]]),
                in_flight=int(attributes[COUNT_ATTRIBUTES["in_flight"]]),
                delayed=int(attributes[COUNT_ATTRIBUTES["delayed"]]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DrainCheckError(
                f"queue {url} answered without usable message counts: {attributes!r}"
            ) from exc
    return counts


def is_empty(counts: CountsByQueue) -> bool:
    """Whether every queue reads no visible, in-flight or delayed message."""
    return all(not any(c.values()) for c in counts.values())


def describe_counts(counts: CountsByQueue | None) -> str:
    """``<url>: 3 visible, 1 in flight, 0 delayed; ...`` for log lines and error messages."""
    if not counts:
        return "no reading"
    return "; ".join(
        f"{url}: {c['visible']} visible, {c['in_flight']} in flight, {c['delayed']} delayed"
        for url, c in counts.items()
    )


class DrainWatch:
    """The drain rule: drained after ``stable_readings`` consecutive all-zero readings.

    SQS counts are approximate and eventually consistent: one zero reading may come from a
    server that has not seen the latest messages yet, so one reading is not enough.
    A reading with any message restarts the count.
    """

    def __init__(self, stable_readings: int) -> None:
        check_stable_readings(stable_readings)
        self.stable_readings = stable_readings
        self.readings = 0
        self.zero_readings = 0
        self.last_counts: CountsByQueue | None = None

    def record(self, counts: CountsByQueue) -> bool:
        """Add one reading; return whether the queues now count as drained."""
        self.readings += 1
        self.last_counts = counts
        self.zero_readings = self.zero_readings + 1 if is_empty(counts) else 0
        return self.drained

    @property
    def drained(self) -> bool:
        return self.zero_readings >= self.stable_readings

    def summary(self) -> dict[str, Any]:
        """The JSON-friendly state: ``counts``, ``readings``, ``zero_readings``."""
        return {
            "counts": self.last_counts or {},
            "readings": self.readings,
            "zero_readings": self.zero_readings,
        }


# --------------------------------------------------------------------------- discovery


@dataclass(frozen=True)
class SqsArn:
    """The parts of ``arn:<partition>:sqs:<region>:<account>:<queue name>``."""

    arn: str
    region: str
    account: str
    name: str

    @classmethod
    def parse(cls, arn: str) -> SqsArn | None:
        """The SQS ARN's parts, or None when ``arn`` names something else."""
        parts = arn.split(":", 5)
        if len(parts) != 6 or parts[0] != "arn" or parts[2] != "sqs" or not parts[5]:
            return None
        return cls(arn, parts[3], parts[4], parts[5])


def _pages(
    service: Literal["sqs", "events"], method: str, kwargs: dict[str, Any], key: str
) -> Plan[list[Any]]:
    """Plan: every item under ``key`` of a NextToken-paginated call."""
    items: list[Any] = []
    token: str | None = None
    while True:
        call_kwargs = {**kwargs, "NextToken": token} if token else dict(kwargs)
        response = yield AwsCall(service, method, call_kwargs)
        items.extend(response.get(key, []))
        token = response.get("NextToken")
        if not token:
            return items


def discover_queue_urls(event_bus_name: str) -> Plan[list[str]]:
    """Plan: the URLs of the SQS queues targeted by the rules of an EventBridge bus.

    Every rule counts, enabled or not: a disabled rule may have filled a queue before. Raises
    :class:`DrainCheckError` when the bus cannot be read or no rule targets an SQS queue.
    """
    bus = {"EventBusName": event_bus_name}
    try:
        rules = yield from _pages("events", "list_rules", bus, "Rules")
        targets: list[tuple[str, SqsArn]] = []
        for rule in rules:
            rule_targets = yield from _pages(
                "events", "list_targets_by_rule", {**bus, "Rule": rule["Name"]}, "Targets"
            )
            for target in rule_targets:
                arn = SqsArn.parse(str(target.get("Arn", "")))
                if arn is not None:
                    targets.append((rule["Name"], arn))
    except DrainCheckError:
        raise
    except Exception as exc:
        raise DrainCheckError(
            f"cannot list the rules and targets of EventBridge bus {event_bus_name!r}: {exc}"
        ) from exc
    if not targets:
        raise DrainCheckError(
            f"EventBridge bus {event_bus_name!r} has no rule with an SQS queue target "
            f"({len(rules)} rule(s) found); pass queue_urls instead"
        )
    urls: list[str] = []
    for rule_name, arn in targets:
        try:
            response = yield AwsCall(
                "sqs",
                "get_queue_url",
                {"QueueName": arn.name, "QueueOwnerAWSAccountId": arn.account},
            )
        except Exception as exc:
            raise DrainCheckError(
                f"cannot find queue {arn.arn}, target of rule {rule_name!r} of EventBridge bus "
                f"{event_bus_name!r}: {exc}"
            ) from exc
        if response["QueueUrl"] not in urls:
            urls.append(response["QueueUrl"])
    return urls


def resolve_queue_urls(queue_urls: Sequence[str], event_bus_name: str | None) -> Plan[list[str]]:
    """Plan: the given queue URLs, then those discovered from ``event_bus_name``, deduplicated."""
    urls = list(queue_urls)
    if event_bus_name:
        discovered = yield from discover_queue_urls(event_bus_name)
        urls.extend(url for url in discovered if url not in urls)
    return urls
