"""The shared retry loop on its own: what is retried, the log line per retry, the bounds."""

from __future__ import annotations

import re
import time

import pytest
from botocore.exceptions import (
    ConnectionClosedError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
    SSLError,
)

from airflow_provider_castore_dam.channels import batch_retry
from airflow_provider_castore_dam.errors import EventStoreError
from airflow_provider_castore_dam.retry import (
    Failure,
    RetryPolicy,
    attempts_made,
    call_with_retries,
    classify_aws_error,
    gave_up_note,
)
from airflow_provider_castore_dam.stores.dynamodb import DynamoDBEventStore
from tests.retries.aws_faults import client_error
from tests.retries.helpers import retry_lines


class Transient(Exception):
    pass


def classify(error: BaseException) -> Failure:
    return Failure(type(error).__name__, str(error), isinstance(error, Transient))


def flaky(failures: list[BaseException], result: str = "done"):
    calls: list[int] = []

    def function() -> str:
        calls.append(len(calls) + 1)
        if len(calls) <= len(failures):
            raise failures[len(calls) - 1]
        return result

    return function, calls


def test_transient_errors_are_retried_and_logged_once_per_retry(caplog):
    policy = RetryPolicy(max_attempts=5, initial_backoff_seconds=0.01, max_backoff_seconds=0.02)
    function, calls = flaky([Transient("slow down"), Transient("busy")])

    assert call_with_retries(function, policy=policy, what="Op on X", classify=classify) == "done"

    assert calls == [1, 2, 3]
    lines = retry_lines(caplog)
    assert [re.sub(r"in \d\.\d{3} s$", "in W s", line) for line in lines] == [
        "Op on X failed in attempt 1 (Transient: slow down); retrying in W s",
        "Op on X failed in attempt 2 (Transient: busy); retrying in W s",
    ]
    waits = [float(re.search(r"in (\d\.\d{3}) s$", line).group(1)) for line in lines]
    assert 0 <= waits[0] <= 0.01 and 0 <= waits[1] <= 0.02  # full jitter, doubling, capped


def test_permanent_errors_are_raised_after_one_attempt(caplog):
    policy = RetryPolicy()
    function, calls = flaky([ValueError("bad input"), Transient("never reached")])

    with pytest.raises(ValueError, match="bad input") as raised:
        call_with_retries(function, policy=policy, what="Op", classify=classify)

    assert calls == [1]
    assert attempts_made(raised.value) == 1 and gave_up_note(raised.value) == ""
    assert retry_lines(caplog) == []


def test_attempt_budget(caplog):
    policy = RetryPolicy(max_attempts=3, initial_backoff_seconds=0, max_backoff_seconds=0)
    function, calls = flaky([Transient(str(n)) for n in range(10)])

    with pytest.raises(Transient, match=r"^2$") as raised:  # the last error
        call_with_retries(function, policy=policy, what="Op", classify=classify)

    assert calls == [1, 2, 3]
    assert attempts_made(raised.value) == 3
    assert gave_up_note(raised.value) == " (gave up after 3 attempts)"
    assert len(retry_lines(caplog)) == 2


def test_seconds_budget(caplog):
    policy = RetryPolicy(
        max_attempts=None, max_seconds=0.2, initial_backoff_seconds=0.05, max_backoff_seconds=0.05
    )
    function, calls = flaky([Transient("again")] * 1000)
    started = time.monotonic()

    with pytest.raises(Transient):
        call_with_retries(function, policy=policy, what="Op", classify=classify)

    took = time.monotonic() - started
    assert 0.2 <= took < 1.0  # the last backoff is cut to end at the budget
    assert len(retry_lines(caplog)) == len(calls) - 1


def test_a_permanent_error_after_retries_stops_them(caplog):
    policy = RetryPolicy(max_attempts=5, initial_backoff_seconds=0, max_backoff_seconds=0)
    function, calls = flaky([Transient("t"), KeyError("k")])

    with pytest.raises(KeyError):
        call_with_retries(function, policy=policy, what="Op", classify=classify)

    assert calls == [1, 2]
    assert len(retry_lines(caplog)) == 1


@pytest.mark.parametrize(
    ("error", "code", "retryable"),
    [
        (
            client_error("ThrottlingException", "Rate exceeded", 400, "Op"),
            "ThrottlingException",
            True,
        ),
        (client_error("ProvisionedThroughputExceededException", "x", 400, "Query"), None, True),
        (client_error("RequestLimitExceeded", "x", 400, "Query"), None, True),
        (client_error("InternalServerError", "x", 500, "Query"), None, True),
        (client_error("SlowDown", "x", 503, "PutObject"), None, True),
        (client_error("SomethingNew", "x", 502, "Op"), None, True),  # a 5xx, whatever the code
        (client_error("SomethingNew", "x", 429, "Op"), None, True),
        (client_error("AccessDenied", "Access Denied", 403, "PutObject"), None, False),
        (client_error("ValidationException", "x", 400, "Query"), None, False),
        (client_error("ResourceNotFoundException", "x", 400, "Query"), None, False),
        (client_error("NoSuchBucket", "x", 404, "PutObject"), None, False),
        (ConnectionClosedError(endpoint_url="http://127.0.0.1:1/"), "ConnectionClosedError", True),
        (EndpointConnectionError(endpoint_url="http://127.0.0.1:1/"), None, True),
        (ReadTimeoutError(endpoint_url="http://127.0.0.1:1/"), None, True),
        (SSLError(endpoint_url="https://127.0.0.1:1/", error="bad cert"), None, False),
        (NoCredentialsError(), None, False),
        (ValueError("x"), "ValueError", False),
    ],
)
def test_aws_errors_are_classified(error, code, retryable):
    failure = classify_aws_error(error)
    assert failure.retryable is retryable
    if code is not None:
        assert failure.code == code


def test_the_channels_use_the_one_retry_core():
    from airflow_provider_castore_dam import retry

    assert batch_retry.RetryPolicy is retry.RetryPolicy
    assert batch_retry.EntryFailure is retry.Failure
    assert batch_retry.classify_exception is retry.classify_aws_error
    assert batch_retry.call_with_retries is retry.call_with_retries


def test_dynamodb_clients_we_build_make_one_attempt_per_request(moto_server):
    store = DynamoDBEventStore(
        "S", "t", session=moto_server.session(), endpoint_url=moto_server.endpoint_url
    )
    assert store.client.meta.config.retries["total_max_attempts"] == 1
    assert store._store_table.table.retry_policy == RetryPolicy()
    shorthand = DynamoDBEventStore("S", "t", client=store.client, max_attempts=2)
    assert shorthand._store_table.table.retry_policy == RetryPolicy(max_attempts=2)
    with pytest.raises(EventStoreError, match="either max_attempts or retry_policy"):
        DynamoDBEventStore(
            "S", "t", client=store.client, max_attempts=2, retry_policy=RetryPolicy()
        )
    with pytest.raises(EventStoreError, match="retry_policy must be a RetryPolicy"):
        DynamoDBEventStore("S", "t", client=store.client, retry_policy=3)
