"""The retry core shared by the SQS and EventBridge channels.

A ``publish_messages`` call becomes *entries* (one per message, numbered 0..n-1 in call order).
:func:`deliver` sends them in rounds:

1. the first round sends every entry, in order, packed into requests (at most 10 entries and
   262,144 bytes each, see :func:`pack_requests`);
2. each later round resends, in their original order, only the entries that failed with a
   retryable error: throttling, internal or service errors, connection errors, SQS failures with
   ``SenderFault`` false, EventBridge ``ThrottlingException`` / ``InternalFailure``... A whole
   request that raises (e.g. a botocore ``ClientError`` ``ThrottlingException``) fails all its
   entries with that error;
3. rounds are spaced by exponential backoff with full jitter (tenacity's
   ``wait_random_exponential``) and stop when every entry is confirmed, when an entry fails
   with a non-retryable error (a sender fault: it is never resent), or when the
   :class:`RetryPolicy` budget (attempts and/or seconds) is spent.

When entries remain unconfirmed, :func:`deliver` raises
:class:`~airflow_provider_castore_dam.errors.MessageChannelError` saying how many of the call's
messages were confirmed and why the others were not; its ``confirmed_count`` is what the pour
engine counts as poured.

Order: the first round keeps the call's order. A retried entry is sent after entries that
followed it, so on a standard queue (or a bus) it may arrive after later messages; on a FIFO
queue it may land after later messages of its own message group.

The seconds budget is checked between rounds (a backoff never sleeps past it); a request in
flight is bounded by the client's own timeouts.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError
from tenacity import RetryCallState, Retrying, retry_if_exception, retry_if_result
from tenacity.wait import wait_random_exponential

from airflow_provider_castore_dam.errors import InvalidPourInputError, MessageChannelError

log = logging.getLogger("airflow_provider_castore_dam.channels")

T = TypeVar("T")

MAX_ENTRIES_PER_REQUEST = 10
MAX_REQUEST_BYTES = 262_144
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
RETRYABLE_HTTP_STATUSES = frozenset({429, 500, 502, 503, 504})

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
    """How long a channel keeps retrying the unconfirmed entries of one ``publish_messages``.

    ``max_attempts`` counts rounds, the first included; ``max_seconds`` bounds the time from the
    first round's start to the last round's start. Set either or both (not neither); they are
    capped at 100 attempts and 3600 s. Backoff before round ``k`` (k = 1, 2, ...) is uniform in
    ``[0, min(max_backoff_seconds, initial_backoff_seconds * 2**(k-1))]`` (full jitter).
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
class EntryFailure:
    """Why an entry was not confirmed."""

    code: str
    message: str
    retryable: bool

    def __str__(self) -> str:
        return f"{self.code}: {self.message}" if self.message else self.code


def failure_for_code(code: str, message: str, *, retryable: bool | None = None) -> EntryFailure:
    """A per-entry failure; retryable when told so, else when ``code`` is a transient one."""
    if retryable is None:
        retryable = code in RETRYABLE_ERROR_CODES
    return EntryFailure(code or "Unknown", redact(message or ""), retryable)


def classify_exception(error: BaseException) -> EntryFailure:
    """The failure a whole request suffers when the call raises ``error``."""
    if isinstance(error, ClientError):
        details = error.response.get("Error", {})
        code = str(details.get("Code") or "Unknown")
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        retryable = code in RETRYABLE_ERROR_CODES or status in RETRYABLE_HTTP_STATUSES
        return EntryFailure(code, redact(str(details.get("Message") or error)), retryable)
    if isinstance(error, (BotoConnectionError, HTTPClientError)):
        return EntryFailure(type(error).__name__, redact(str(error)), True)
    if isinstance(error, BotoCoreError):  # no credentials, invalid parameters...
        return EntryFailure(type(error).__name__, redact(str(error)), False)
    return EntryFailure(type(error).__name__, redact(str(error)), False)


def pack_requests(
    indices: Sequence[int],
    sizes: Sequence[int],
    *,
    max_entries: int = MAX_ENTRIES_PER_REQUEST,
    max_bytes: int = MAX_REQUEST_BYTES,
) -> list[list[int]]:
    """Consecutive runs of ``indices`` (order kept) of at most ``max_entries`` entries whose
    ``sizes`` add up to at most ``max_bytes`` (an entry bigger than that goes alone)."""
    requests: list[list[int]] = []
    current: list[int] = []
    current_bytes = 0
    for index in indices:
        size = sizes[index]
        if current and (len(current) >= max_entries or current_bytes + size > max_bytes):
            requests.append(current)
            current, current_bytes = [], 0
        current.append(index)
        current_bytes += size
    if current:
        requests.append(current)
    return requests


_NOT_SENT = "NotSent"


def deliver(
    entry_count: int,
    *,
    pack: Callable[[Sequence[int]], Iterable[Sequence[int]]],
    send: Callable[[Sequence[int]], Mapping[int, EntryFailure]],
    policy: RetryPolicy,
    target: str,
    describe_entry: Callable[[int], str],
) -> None:
    """Send entries ``0..entry_count-1`` until all are confirmed (see the module docstring).

    ``pack`` groups pending entries into requests; ``send`` sends one request and returns the
    failed entries of it (entries absent from the result are confirmed). Exceptions raised by
    ``send`` fail the whole request. Raises ``MessageChannelError`` when entries stay
    unconfirmed.
    """
    if entry_count == 0:
        return
    pending = list(range(entry_count))
    attempts = 0
    started = time.monotonic()

    def attempt() -> dict[int, EntryFailure]:
        nonlocal pending, attempts
        attempts += 1
        failures: dict[int, EntryFailure] = {}
        stopped_by: EntryFailure | None = None
        for request in pack(pending):
            if stopped_by is not None:  # nothing goes out past a non-retryable failure
                skipped = EntryFailure(_NOT_SENT, f"not sent after {stopped_by.code}", False)
                failures.update(dict.fromkeys(request, skipped))
                continue
            try:
                failed = dict(send(request))
            except Exception as error:
                failed = dict.fromkeys(request, classify_exception(error))
            failures.update(failed)
            stopped_by = next((f for f in failed.values() if not f.retryable), None)
        pending = [index for index in pending if index in failures]
        return failures

    def should_retry(failures: dict[int, EntryFailure]) -> bool:
        return bool(failures) and all(failure.retryable for failure in failures.values())

    def before_sleep(state: RetryCallState) -> None:
        failures: dict[int, EntryFailure] = state.outcome.result() if state.outcome else {}
        first = failures[min(failures)] if failures else None
        log.warning(
            "%s: %d of %d entries not confirmed in attempt %d (first: %s); retrying in %.3f s",
            target,
            len(failures),
            entry_count,
            state.attempt_number,
            first,
            state.next_action.sleep if state.next_action else 0.0,
        )

    retrying = policy.retrying(
        retry=retry_if_result(should_retry),
        before_sleep=before_sleep,
        retry_error_callback=lambda state: state.outcome.result() if state.outcome else {},
        reraise=True,
    )
    failures: dict[int, EntryFailure] = retrying(attempt)
    if not failures:
        return
    confirmed = entry_count - len(failures)
    ordered = sorted(failures.items())
    non_retryable = [(i, f) for i, f in ordered if not f.retryable and f.code != _NOT_SENT]
    index, first = non_retryable[0] if non_retryable else ordered[0]
    if non_retryable:
        why = "a non-retryable error (not retried)"
    else:
        took = time.monotonic() - started
        why = f"the retry budget was spent ({attempts} attempts in {took:.1f} s)"
    raise MessageChannelError(
        f"{target}: {confirmed} of {entry_count} messages confirmed; {len(failures)} not "
        f"confirmed after {why}; first error {first} ({describe_entry(index)})",
        confirmed_count=confirmed,
    )


def call_with_retries(function: Callable[[], T], *, policy: RetryPolicy, what: str) -> T:
    """Call ``function``, retrying retryable errors (see :func:`classify_exception`) within
    ``policy``; re-raise the last error otherwise."""

    def before_sleep(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        log.warning(
            "%s failed in attempt %d (%s); retrying",
            what,
            state.attempt_number,
            classify_exception(error) if error else "?",
        )

    retrying = policy.retrying(
        retry=retry_if_exception(lambda error: classify_exception(error).retryable),
        before_sleep=before_sleep,
        reraise=True,
    )
    return retrying(function)
