from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from tests.infra import MotoServer, PostgresServer
from tests.retries.helpers import RETRY_LOGGER
from tests.retries.tcp_proxy import LOOPBACK, FaultProxy


@pytest.fixture
def moto_proxy(moto_server: MotoServer) -> Iterator[FaultProxy]:
    """A fault proxy in front of the moto server."""
    address = urlsplit(moto_server.endpoint_url)
    assert address.hostname == LOOPBACK
    with FaultProxy(int(address.port)) as proxy:
        yield proxy


@pytest.fixture
def pg_proxy(postgres_server: PostgresServer) -> Iterator[FaultProxy]:
    """A fault proxy in front of the test PostgreSQL server (loopback only)."""
    assert postgres_server.host in (LOOPBACK, "localhost"), postgres_server.host
    with FaultProxy(postgres_server.port) as proxy:
        yield proxy


@pytest.fixture(autouse=True)
def _capture_retries(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("WARNING", logger=RETRY_LOGGER)
