"""A test double around a real boto3 SQS client that loses entries and throttles calls.

``FaultySQSClient(real_client, entry_failure_rate=0.2, throttle_rate=0.1)`` forwards
``send_message_batch`` to the real client (so delivered messages really are in the queue),
except that:

- with probability ``throttle_rate`` a call raises ``ClientError`` ``ThrottlingException``
  (HTTP 400) before sending anything;
- each entry, with probability ``entry_failure_rate``, is not sent and comes back in ``Failed``
  with ``SenderFault`` false (``InternalError``), as SQS does for transient failures;
- entries whose ``messageId`` attribute is in ``always_fail`` are never sent: they come back in
  ``Failed`` with ``SenderFault`` false every time (a budget that will be spent);
- entries whose ``messageId`` attribute is in ``sender_faults`` come back in ``Failed`` with
  ``SenderFault`` true (``InvalidParameterValue``), never sent.

Every call is recorded in ``calls`` (monotonic time, the entries' messageIds); ``after_send``,
when given, is called after each forwarded call with the number of messages it delivered
(e.g. a consumer draining the queue).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError


@dataclass
class Call:
    at: float
    message_ids: list[str]
    throttled: bool = False


@dataclass
class FaultySQSClient:
    client: Any
    entry_failure_rate: float = 0.0
    throttle_rate: float = 0.0
    always_fail: Iterable[str] = ()
    sender_faults: Iterable[str] = ()
    seed: int = 1
    after_send: Callable[[int], None] | None = None
    calls: list[Call] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)
        self.always_fail = set(self.always_fail)
        self.sender_faults = set(self.sender_faults)

    def send_message_batch(self, *, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict:
        ids = [entry["MessageAttributes"]["messageId"]["StringValue"] for entry in Entries]
        throttled = self._random.random() < self.throttle_rate
        self.calls.append(Call(time.monotonic(), ids, throttled))
        if throttled:
            raise ClientError(
                {
                    "Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"},
                    "ResponseMetadata": {"HTTPStatusCode": 400},
                },
                "SendMessageBatch",
            )
        failed: list[dict[str, Any]] = []
        to_send: list[dict[str, Any]] = []
        for entry, message_id in zip(Entries, ids, strict=True):
            if message_id in self.sender_faults:
                failed.append(_failed(entry, "InvalidParameterValue", "bad attribute", True))
            elif message_id in self.always_fail or self._random.random() < self.entry_failure_rate:
                failed.append(_failed(entry, "InternalError", "try again", False))
            else:
                to_send.append(entry)
        successful: list[dict[str, Any]] = []
        if to_send:
            response = self.client.send_message_batch(QueueUrl=QueueUrl, Entries=to_send)
            successful = response.get("Successful", [])
            failed.extend(response.get("Failed", []))
            if self.after_send is not None:
                self.after_send(len(successful))
        return {"Successful": successful, "Failed": failed}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)


def _failed(entry: dict[str, Any], code: str, message: str, sender_fault: bool) -> dict:
    return {"Id": entry["Id"], "Code": code, "Message": message, "SenderFault": sender_fault}
