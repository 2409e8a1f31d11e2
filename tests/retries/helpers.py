"""Shared by the fault tests: a fast retry policy and the retry lines of the log."""

from __future__ import annotations

import json
import logging
import re
from typing import Any

import pytest

from airflow_provider_castore_dam.retry import RetryPolicy

RETRY_LOGGER = "airflow_provider_castore_dam.retry"

FAST = RetryPolicy(
    max_attempts=6, max_seconds=10, initial_backoff_seconds=0.001, max_backoff_seconds=0.01
)
"""Budgets as in production, backoffs of milliseconds: the fault tests stay fast."""

_WAIT = re.compile(r"retrying in (\d+\.\d{3}) s$")


def retry_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The retry lines logged so far: WARNINGs of the retry logger, each ending with the wait."""
    lines = []
    for record in caplog.records:
        if record.name != RETRY_LOGGER:
            continue
        assert record.levelno == logging.WARNING
        line = record.getMessage()
        assert _WAIT.search(line), line
        lines.append(line)
    return lines


def assert_retry_lines(
    caplog: pytest.LogCaptureFixture, *, count: int, operation: str, reasons: list[str]
) -> list[str]:
    """Exactly ``count`` retry lines, each naming ``operation`` and one of ``reasons``, the
    attempt numbers counting up from 1 within each run of retries."""
    lines = retry_lines(caplog)
    assert len(lines) == count, lines
    for line in lines:
        assert operation in line, line
        assert any(reason in line for reason in reasons), line
        assert re.search(r"in attempt \d+ ", line), line
    return lines


def attempt_numbers(lines: list[str]) -> list[int]:
    return [int(re.search(r"in attempt (\d+) ", line).group(1)) for line in lines]


def canon(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)
