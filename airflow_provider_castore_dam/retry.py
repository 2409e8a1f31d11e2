"""Retries of transient errors, shared by every store and channel (on tenacity).

One :class:`RetryPolicy` (budget in attempts and seconds, exponential backoff with full
jitter) and one loop, :func:`call_with_retries`, used by:

- the PostgreSQL store (``stores/postgres/``): connecting, each listing page, each
  aggregate's events, and each batch of the streamed scan (a scan cut mid-stream resumes
  after the last event it delivered, on a new connection);
- the DynamoDB stores (``stores/dynamodb/``): every request (``Table.call``);
- the S3 offload (``channels/s3_offload.py``): each ``PutObject``;
- the SQS and EventBridge channels, through the round-based loop of
  :mod:`airflow_provider_castore_dam.channels.batch_retry` (per-entry failures, and whole
  requests that raise), built on the same policy and classification.

An error is *retryable* when it is transient: throttling, a 5xx or internal error, a
dropped or refused connection, a timeout (see :data:`RETRYABLE_ERROR_CODES`,
:data:`RETRYABLE_HTTP_STATUSES`, :func:`classify_aws_error` and, for PostgreSQL,
``stores.postgres.connection.postgres_failure``). Anything else (validation errors, access denied, a
missing table, queue, bus or bucket, bad SQL, refused credentials) is *permanent*: raised at
once, after one attempt, with the service's own message.

Every retry logs exactly one WARNING line on the logger ``airflow_provider_castore_dam.retry``
naming the operation, the attempt that failed, the reason (error code and the service's
message) and the wait before the next attempt. Giving up logs nothing more: the error is
raised.

Layering with the clients' own retries: clients the package builds make one attempt per
request (botocore ``total_max_attempts=1``; psycopg does not retry), so the attempts are
exactly the policy's. A client given by the caller keeps its own configuration: its retries
multiply ours (configure it with ``retries={"total_max_attempts": 1}`` to avoid that). The
PostgreSQL connection pool waits at most ``pool_timeout`` for a connection (reconnecting in
the background meanwhile); a ``PoolTimeout`` is not retried again.
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from tenacity import RetryCallState, Retrying, retry_if_exception
from tenacity.wait import wait_random_exponential

from airflow_provider_castore_dam.errors import InvalidPourInputError

RETRY_LOG = logging.getLogger("airflow_provider_castore_dam.retry")
"""The logger of every retry line."""

T = TypeVar("T")

MAX_ATTEMPTS_LIMIT = 100
MAX_SECONDS_LIMIT = 3600.0
MAX_BACKOFF_LIMIT = 300.0

RETRYABLE_ERROR_CODES = frozenset(
    {
        # throttling
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "SlowDown",
        "PriorRequestNotComplete",
        "KmsThrottled",
        "KMS.ThrottlingException",
        "ProvisionedThroughputExceededException",
        # transient service-side errors
        "InternalError",
        "InternalFailure",
        "InternalException",
        "InternalServerError",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "RequestTimeout",
        "RequestTimeoutException",
        "AWS.SimpleQueueService.KmsThrottled",
    }
)
"""AWS error codes retried whatever the HTTP status."""
RETRYABLE_HTTP_STATUSES = frozenset({429, 500, 502, 503, 504})
"""HTTP statuses of AWS errors retried whatever the error code."""

_ATTEMPTS = "_castore_dam_attempts"

_PRESIGNED_URL = re.compile(
    r"https?://[^\s\"'<>]*?[?&](?:X-Amz-Signature|X-Amz-Credential|Signature|AWSAccessKeyId)="
    r"[^\s\"'<>]*",
    re.IGNORECASE,
)


def redact(text: str) -> str:
    """``text`` with any presigned URL replaced, so errors and logs never carry one."""
    return _PRESIGNED_URL.sub("<presigned URL redacted>", text)


@dataclass(frozen=True)
class RetryPolicy:
    """How long an operation keeps retrying transient errors.

    ``max_attempts`` counts attempts, the first included; ``max_seconds`` bounds the time from
    the first attempt's start to the last attempt's start. Set either or both (not neither);
    they are capped at 100 attempts and 3600 s. Backoff before retry ``k`` (k = 1, 2, ...) is
    uniform in ``[0, min(max_backoff_seconds, initial_backoff_seconds * 2**(k-1))]`` (full
    jitter), and never sleeps past ``max_seconds``.
    """

    max_attempts: int | None = 8
    max_seconds: float | None = 60.0
    initial_backoff_seconds: float = 0.2
    max_backoff_seconds: float = 5.0

    def __post_init__(self) -> None:
        if self.max_attempts is None and self.max_seconds is None:
            raise InvalidPourInputError("a retry policy needs max_attempts, max_seconds or both")
        if self.max_attempts is not None and (
            isinstance(self.max_attempts, bool)
            or not isinstance(self.max_attempts, int)
            or not 1 <= self.max_attempts <= MAX_ATTEMPTS_LIMIT
        ):
            raise InvalidPourInputError(
                f"max_attempts must be an integer from 1 to {MAX_ATTEMPTS_LIMIT}, "
                f"not {self.max_attempts!r}"
            )
        if self.max_seconds is not None and not (
            _is_number(self.max_seconds) and 0 < self.max_seconds <= MAX_SECONDS_LIMIT
        ):
            raise InvalidPourInputError(
                f"max_seconds must be above 0 and at most {MAX_SECONDS_LIMIT:g}, "
                f"not {self.max_seconds!r}"
            )
        for name in ("initial_backoff_seconds", "max_backoff_seconds"):
            value = getattr(self, name)
            if not (_is_number(value) and 0 <= value <= MAX_BACKOFF_LIMIT):
                raise InvalidPourInputError(
                    f"{name} must be from 0 to {MAX_BACKOFF_LIMIT:g} seconds, not {value!r}"
                )
        if self.initial_backoff_seconds > self.max_backoff_seconds:
            raise InvalidPourInputError(
                f"initial_backoff_seconds ({self.initial_backoff_seconds}) exceeds "
                f"max_backoff_seconds ({self.max_backoff_seconds})"
            )

    def retrying(self, **kwargs: Any) -> Retrying:
        """A tenacity ``Retrying`` with this budget and backoff; ``kwargs`` add ``retry`` etc."""
        backoff = wait_random_exponential(
            multiplier=self.initial_backoff_seconds, max=self.max_backoff_seconds
        )

        def wait(state: RetryCallState) -> float:
            delay = float(backoff(state))
            if self.max_seconds is not None:  # never sleep past the budget
                delay = min(delay, max(0.0, self.max_seconds - _elapsed(state)))
            return delay

        def stop(state: RetryCallState) -> bool:
            if self.max_attempts is not None and state.attempt_number >= self.max_attempts:
                return True
            return self.max_seconds is not None and _elapsed(state) >= self.max_seconds

        return Retrying(stop=stop, wait=wait, **kwargs)


def _is_number(value: object) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


def _elapsed(state: RetryCallState) -> float:
    return state.seconds_since_start or 0.0


@dataclass(frozen=True)
class Failure:
    """Why an attempt failed: an error code, the service's message, and whether to retry."""

    code: str
    message: str
    retryable: bool

    def __str__(self) -> str:
        return f"{self.code}: {self.message}" if self.message else self.code


def classify_aws_error(error: BaseException) -> Failure:
    """The failure of an AWS call that raised ``error`` (a botocore error, or anything).

    Retryable: a ``ClientError`` whose code is in :data:`RETRYABLE_ERROR_CODES` or whose HTTP
    status is in :data:`RETRYABLE_HTTP_STATUSES`; connection errors (refused, reset, closed
    before the answer, timeouts), SSL errors excepted. Anything else is permanent.
    """
    try:
        from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError, SSLError
        from botocore.exceptions import ConnectionError as BotoConnectionError
    except ImportError:  # pragma: no cover - without botocore, no AWS error can happen
        return Failure(type(error).__name__, redact(str(error)), False)
    if isinstance(error, ClientError):
        details = error.response.get("Error", {})
        code = str(details.get("Code") or "Unknown")
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        retryable = code in RETRYABLE_ERROR_CODES or status in RETRYABLE_HTTP_STATUSES
        return Failure(code, redact(str(details.get("Message") or error)), retryable)
    if isinstance(error, SSLError):  # a certificate that does not verify stays so
        return Failure(type(error).__name__, redact(str(error)), False)
    if isinstance(error, (BotoConnectionError, HTTPClientError)):
        return Failure(type(error).__name__, redact(str(error)), True)
    if isinstance(error, BotoCoreError):  # no credentials, invalid parameters...
        return Failure(type(error).__name__, redact(str(error)), False)
    return Failure(type(error).__name__, redact(str(error)), False)


def call_with_retries(
    function: Callable[[], T],
    *,
    policy: RetryPolicy,
    what: str,
    classify: Callable[[BaseException], Failure],
) -> T:
    """Call ``function``, retrying while ``classify`` says its error is retryable and
    ``policy`` has budget left; log one WARNING line per retry; re-raise the last error
    otherwise (see :func:`attempts_made` for how many attempts it took).

    ``what`` names the operation in the log lines (never put credentials in it).
    """
    attempts = 0

    def attempt() -> T:
        nonlocal attempts
        attempts += 1
        return function()

    def before_sleep(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        RETRY_LOG.warning(
            "%s failed in attempt %d (%s); retrying in %.3f s",
            what,
            state.attempt_number,
            classify(error) if error is not None else "?",
            state.next_action.sleep if state.next_action else 0.0,
        )

    retrying = policy.retrying(
        retry=retry_if_exception(lambda error: classify(error).retryable),
        before_sleep=before_sleep,
        reraise=True,
    )
    try:
        return retrying(attempt)
    except BaseException as error:
        if attempts > 1:
            with contextlib.suppress(AttributeError):  # exceptions without a __dict__
                setattr(error, _ATTEMPTS, attempts)
        raise


def attempts_made(error: BaseException) -> int:
    """How many attempts :func:`call_with_retries` made before giving up with ``error``."""
    attempts = getattr(error, _ATTEMPTS, 1)
    return attempts if isinstance(attempts, int) else 1


def gave_up_note(error: BaseException) -> str:
    """``" (gave up after N attempts)"`` when the error came after retries, else ``""``."""
    attempts = attempts_made(error)
    return f" (gave up after {attempts} attempts)" if attempts > 1 else ""
