"""A scripted fault-injecting wrapper around a real boto3 client (of the moto server).

``ScriptedFaults(real_client, put_events=[THROTTLED, None, SERVER_ERROR])`` forwards every
call to the real client, except that the n-th call of a scripted method raises the n-th error
of its script instead (``None``: forward that call); calls beyond the script are forwarded.
Errors are botocore ``ClientError``\\ s shaped as the service sends them (code, message, HTTP
status), built by :func:`client_error`, so the code under test classifies them as it would
classify the real thing. Every call is counted in ``calls`` (per method) and ``faults``.

Connection resets are not simulated here: tests reset real sockets with
:class:`tests.retries.tcp_proxy.FaultProxy`.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from botocore.exceptions import ClientError


def client_error(code: str, message: str, status: int, operation: str) -> ClientError:
    return ClientError(
        {
            "Error": {"Code": code, "Message": message},
            "ResponseMetadata": {"HTTPStatusCode": status},
        },
        operation,
    )


Fault = Callable[[str], ClientError]
"""Makes the error for an operation name (a fresh exception per call)."""


def fault(code: str, message: str, status: int) -> Fault:
    return lambda operation: client_error(code, message, status, operation)


# Transient, as the services send them.
THROTTLING = fault("ThrottlingException", "Rate exceeded", 400)
THROUGHPUT = fault(
    "ProvisionedThroughputExceededException",
    "The level of configured provisioned throughput for the table was exceeded.",
    400,
)
REQUEST_LIMIT = fault(
    "RequestLimitExceeded", "Throughput exceeds the current throughput limit for your account.", 400
)
INTERNAL_SERVER_ERROR = fault("InternalServerError", "Internal server error", 500)
INTERNAL_FAILURE = fault("InternalFailure", "The request processing has failed.", 500)
SERVICE_UNAVAILABLE = fault("ServiceUnavailable", "Service is unavailable, try again", 503)
SLOW_DOWN = fault("SlowDown", "Please reduce your request rate.", 503)
S3_INTERNAL_ERROR = fault(
    "InternalError", "We encountered an internal error. Please try again.", 500
)
BAD_GATEWAY = fault("BadGateway", "Bad Gateway", 502)

# Permanent.
ACCESS_DENIED = fault(
    "AccessDeniedException",
    "User: arn:aws:iam::123456789012:user/dam is not authorized to perform this action",
    400,
)
S3_ACCESS_DENIED = fault("AccessDenied", "Access Denied by bucket policy", 403)
VALIDATION = fault("ValidationException", "1 validation error detected: Value at 'x' failed", 400)
SQS_INVALID = fault(
    "InvalidParameterValue", "Value 'x' for parameter MessageBody is invalid: bad chars", 400
)


class ScriptedFaults:
    def __init__(self, client: Any, **scripts: Sequence[Fault | None]) -> None:
        self._client = client
        self._scripts = {name: list(script) for name, script in scripts.items()}
        self._lock = threading.Lock()
        self.calls: Counter[str] = Counter()
        self.faults: Counter[str] = Counter()
        self.meta = client.meta

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)
        if name not in self._scripts:
            return method

        def call(**kwargs: Any) -> Any:
            with self._lock:
                index = self.calls[name]
                self.calls[name] += 1
                script = self._scripts[name]
                planned = script[index] if index < len(script) else None
                if planned is not None:
                    self.faults[name] += 1
            if planned is not None:
                raise planned(_operation(name))
            return method(**kwargs)

        return call


def _operation(method_name: str) -> str:
    return "".join(part.capitalize() for part in method_name.split("_"))
