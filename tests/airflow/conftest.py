"""Fixtures for tests that run DAGs (the Airflow home itself is set up in tests/conftest.py)."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """A migrated metadata database (SQLite in the session's Airflow home), for dag.test()."""
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True
    )
