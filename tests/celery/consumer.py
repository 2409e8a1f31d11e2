"""The SQS queue of the runs, and the test as its consumer: a thread that receives, records
and deletes messages."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from typing import Any

from tests.infra import MotoServer


@dataclass
class CeleryQueue:
    """The queue behind ``castore_message_channel_default``; its URL is fixed when the
    deployment starts, so tests recreate it by name rather than making their own."""

    name: str
    url: str
    moto: MotoServer

    def recreate(self) -> Any:
        """The queue, empty (another test may have reset moto); an SQS client."""
        sqs = self.moto.client("sqs")
        assert sqs.create_queue(QueueName=self.name)["QueueUrl"] == self.url
        sqs.purge_queue(QueueUrl=self.url)
        return sqs


class QueueConsumer(threading.Thread):
    """Receives up to 10 messages a call from ``queue_url``, records each body (parsed JSON)
    in receive order, then deletes them, until :meth:`stop`. Use it as a context manager."""

    def __init__(self, sqs: Any, queue_url: str) -> None:
        super().__init__(name="sqs-consumer", daemon=True)
        self.sqs, self.queue_url = sqs, queue_url
        self.bodies: list[dict[str, Any]] = []
        self.errors: list[BaseException] = []
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            try:
                self._receive_once()
            except Exception as error:  # keep consuming: the sensor waits for an empty queue
                self.errors.append(error)
                time.sleep(0.5)

    def _receive_once(self) -> None:
        batch = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=10,
            MessageAttributeNames=["All"],
            WaitTimeSeconds=1,
        ).get("Messages", [])
        if not batch:
            return
        self.bodies.extend(json.loads(message["Body"]) for message in batch)
        self.sqs.delete_message_batch(
            QueueUrl=self.queue_url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)
            ],
        )

    def stop(self) -> None:
        self._stop_event.set()
        self.join(10)

    def __enter__(self) -> QueueConsumer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
