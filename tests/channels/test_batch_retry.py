"""The retry core on its own: rounds, order, budgets, classification (no AWS involved)."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ParamValidationError

from airflow_provider_castore_dam.channels.batch_retry import (
    EntryFailure,
    RetryPolicy,
    classify_exception,
    deliver,
    pack_requests,
    redact,
)
from airflow_provider_castore_dam.errors import InvalidPourInputError, MessageChannelError

FAST = RetryPolicy(max_attempts=10, initial_backoff_seconds=0, max_backoff_seconds=0)
RETRYABLE = EntryFailure("InternalError", "try again", True)
REFUSED = EntryFailure("InvalidParameterValue", "bad", False)


def run(count, outcomes, policy=FAST, pack=None):
    """Deliver ``count`` entries; ``outcomes(round, request)`` gives the failures of a request."""
    requests: list[list[int]] = []

    def send(request):
        requests.append(list(request))
        return outcomes(len(requests), list(request))

    deliver(
        count,
        pack=pack or (lambda pending: pack_requests(pending, [1] * count)),
        send=send,
        policy=policy,
        target="test target",
        describe_entry=lambda index: f"entry {index}",
    )
    return requests


def test_first_round_in_order_then_only_failed_entries_in_order():
    def outcomes(call, request):
        if call == 1:
            return {2: RETRYABLE, 7: RETRYABLE, 5: RETRYABLE}
        return {}

    assert run(10, outcomes) == [list(range(10)), [2, 5, 7]]


def test_whole_request_errors_are_retried():
    def outcomes(call, request):
        if call < 3:
            raise ClientError(
                {"Error": {"Code": "ThrottlingException", "Message": "slow"}}, "SendMessageBatch"
            )
        return {}

    assert run(3, outcomes) == [[0, 1, 2]] * 3


def test_non_retryable_failure_stops_and_reports_the_confirmed_count():
    with pytest.raises(MessageChannelError) as raised:
        run(10, lambda call, request: {3: REFUSED, 4: RETRYABLE})

    error = raised.value
    assert error.confirmed_count == 8
    assert str(error).startswith("test target: 8 of 10 messages confirmed; 2 not confirmed")
    assert "non-retryable" in str(error)
    assert "first error InvalidParameterValue: bad (entry 3)" in str(error)


def test_nothing_is_sent_past_a_non_retryable_request():
    def outcomes(call, request):
        return {1: REFUSED} if request == [1] else {}

    with pytest.raises(MessageChannelError) as raised:
        run(3, outcomes, pack=lambda pending: [[i] for i in pending])

    assert raised.value.confirmed_count == 1  # entry 0; entry 2 was never sent
    assert "(entry 1)" in str(raised.value)


def test_attempt_budget():
    requests = []
    with pytest.raises(MessageChannelError) as raised:
        requests = run(
            4,
            lambda call, request: {0: RETRYABLE},
            policy=RetryPolicy(max_attempts=3, initial_backoff_seconds=0, max_backoff_seconds=0),
        )
    assert requests == []
    assert raised.value.confirmed_count == 3
    assert "retry budget was spent (3 attempts" in str(raised.value)


def test_unexpected_exceptions_fail_the_request_without_retry():
    def outcomes(call, request):
        raise RuntimeError("boom")

    with pytest.raises(MessageChannelError) as raised:
        run(2, outcomes)
    assert raised.value.confirmed_count == 0
    assert "RuntimeError: boom" in str(raised.value)
    assert isinstance(raised.value, MessageChannelError)


def test_empty_call_sends_nothing():
    assert run(0, lambda call, request: {}) == []


def test_pack_requests_keeps_order_and_limits():
    assert pack_requests(list(range(12)), [1] * 12) == [list(range(10)), [10, 11]]
    sizes = [100, 200, 50, 300, 10]
    assert pack_requests([0, 1, 2, 3, 4], sizes, max_bytes=350) == [[0, 1, 2], [3, 4]]
    assert pack_requests([3], sizes, max_bytes=100) == [[3]]  # too big alone still goes


@pytest.mark.parametrize(
    ("error", "code", "retryable"),
    [
        (ClientError({"Error": {"Code": "ThrottlingException"}}, "Op"), "ThrottlingException", 1),
        (
            ClientError(
                {"Error": {"Code": "Weird"}, "ResponseMetadata": {"HTTPStatusCode": 503}}, "Op"
            ),
            "Weird",
            1,
        ),
        (ClientError({"Error": {"Code": "AccessDenied"}}, "Op"), "AccessDenied", 0),
        (EndpointConnectionError(endpoint_url="http://x"), "EndpointConnectionError", 1),
        (ParamValidationError(report="bad"), "ParamValidationError", 0),
        (ValueError("x"), "ValueError", 0),
    ],
)
def test_classify_exception(error, code, retryable):
    failure = classify_exception(error)
    assert (failure.code, failure.retryable) == (code, bool(retryable))


def test_presigned_urls_are_redacted():
    url = "https://b.s3.amazonaws.com/k?X-Amz-Algorithm=A&X-Amz-Credential=c&X-Amz-Signature=ab"
    assert redact(f'bad detail {{"messageUrl":"{url}"}}') == (
        'bad detail {"messageUrl":"<presigned URL redacted>"}'
    )
    assert redact("https://example.com/plain") == "https://example.com/plain"


@pytest.mark.parametrize(
    "options",
    [
        {"max_attempts": None, "max_seconds": None},
        {"max_attempts": 0},
        {"max_attempts": 101},
        {"max_attempts": True},
        {"max_seconds": 0},
        {"max_seconds": 3601},
        {"max_seconds": float("inf")},
        {"initial_backoff_seconds": -1},
        {"initial_backoff_seconds": 2, "max_backoff_seconds": 1},
        {"max_backoff_seconds": 301},
    ],
)
def test_retry_policy_is_bounded(options):
    with pytest.raises(InvalidPourInputError):
        RetryPolicy(**options)
