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

The policy, the classification of errors and the single-call loop are those of every store and
channel, in :mod:`airflow_provider_castore_dam.retry` (re-exported here). Each retry round logs
one WARNING line on ``airflow_provider_castore_dam.retry``: the operation and target, how many
entries failed in which attempt, the first failure's code and message, and the wait.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence

from tenacity import RetryCallState, retry_if_result

from airflow_provider_castore_dam.errors import MessageChannelError
from airflow_provider_castore_dam.retry import (
    RETRY_LOG,
    RETRYABLE_ERROR_CODES,
    RETRYABLE_HTTP_STATUSES,
    Failure,
    RetryPolicy,
    call_with_retries,
    classify_aws_error,
    redact,
)

__all__ = [
    "MAX_ENTRIES_PER_REQUEST",
    "MAX_REQUEST_BYTES",
    "RETRYABLE_ERROR_CODES",
    "RETRYABLE_HTTP_STATUSES",
    "EntryFailure",
    "RetryPolicy",
    "call_with_retries",
    "classify_exception",
    "deliver",
    "failure_for_code",
    "pack_requests",
    "redact",
]

MAX_ENTRIES_PER_REQUEST = 10
MAX_REQUEST_BYTES = 262_144

EntryFailure = Failure
"""Why an entry was not confirmed (:class:`airflow_provider_castore_dam.retry.Failure`)."""

classify_exception = classify_aws_error
"""The failure a whole request suffers when the call raises (see
:func:`airflow_provider_castore_dam.retry.classify_aws_error`)."""


def failure_for_code(code: str, message: str, *, retryable: bool | None = None) -> EntryFailure:
    """A per-entry failure; retryable when told so, else when ``code`` is a transient one."""
    if retryable is None:
        retryable = code in RETRYABLE_ERROR_CODES
    return EntryFailure(code or "Unknown", redact(message or ""), retryable)


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
    operation: str = "publish",
) -> None:
    """Send entries ``0..entry_count-1`` until all are confirmed (see the module docstring).

    ``pack`` groups pending entries into requests; ``send`` sends one request and returns the
    failed entries of it (entries absent from the result are confirmed). Exceptions raised by
    ``send`` fail the whole request. Raises ``MessageChannelError`` when entries stay
    unconfirmed. ``operation`` (e.g. ``"SendMessageBatch"``) names the request in the log.
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
        RETRY_LOG.warning(
            "%s to %s: %d of %d entries not confirmed in attempt %d (first: %s); "
            "retrying in %.3f s",
            operation,
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
