"""Fixtures for tests that run DAGs (the Airflow home itself is set up in tests/conftest.py)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.airflow.connections import set_connection
from tests.infra import MotoServer


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """A migrated metadata database (SQLite in the session's Airflow home), for dag.test()."""
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True
    )


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch, moto_reset: MotoServer) -> MotoServer:
    """The moto server, behind the ``aws_default`` connection."""
    set_connection(
        monkeypatch,
        "aws_default",
        conn_type="aws",
        login="testing",
        password="testing",
        extra={"region_name": moto_reset.region, "endpoint_url": moto_reset.endpoint_url},
    )
    return moto_reset
