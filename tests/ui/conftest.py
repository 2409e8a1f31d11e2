"""Airflow's UI in a real browser: an Airflow deployment on 127.0.0.1 (api-server, scheduler,
dag-processor, triggerer; LocalExecutor; a PostgreSQL metadata database of its own) and
headless Chromium driven by Playwright.

Chromium is Debian's (``/usr/bin/chromium``, installed by ./scripts/test where missing):
Playwright's own browser download does not work here. Connections given to the deployment:
``castore_event_store_default`` (the in-memory demo stores) and
``castore_message_channel_default`` (in memory), so example_castore_manual_backfill runs. A
failing test leaves a screenshot of the page, named in its report.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.celery.config import sqlalchemy_url
from tests.celery.harness import AirflowCelery
from tests.infra import PostgresServer, skip_unless_ci

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
"""The closed network refuses Chromium's own background connections: none are made."""

_pages: dict[str, Any] = {}


def _connections() -> dict[str, str]:
    connections = {
        "castore_event_store_default": {
            "conn_type": "castore_event_store",
            "extra": {"kind": "in-memory-demo"},
        },
        "castore_message_channel_default": {
            "conn_type": "castore_message_channel",
            "extra": {"kind": "in-memory"},
        },
    }
    return {f"AIRFLOW_CONN_{key.upper()}": json.dumps(value) for key, value in connections.items()}


@pytest.fixture(scope="session")
def airflow_ui(
    postgres_server: PostgresServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AirflowCelery]:
    metadata_db = postgres_server.create_database("castore_ui_airflow")
    env = {
        **_connections(),
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
    }
    deployment = AirflowCelery(
        home=tmp_path_factory.mktemp("airflow-ui"),
        metadata=sqlalchemy_url(postgres_server, metadata_db),
        metadata_dsn=postgres_server.dsn(metadata_db),
        workers=(),
        env_extra=env,
    )
    try:
        try:
            deployment.start()
        except Exception as error:
            raise RuntimeError(f"{error}\n\n{deployment.diagnostics()}") from error
        yield deployment
    finally:
        deployment.stop()
        postgres_server.drop_database(metadata_db)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        skip_unless_ci("Debian's chromium is needed for the UI tests (./scripts/test installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 1600})
    context.set_default_timeout(20_000)
    opened = context.new_page()
    _pages[request.node.nodeid] = opened
    yield opened
    _pages.pop(request.node.nodeid, None)
    context.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item) -> Any:
    report = yield
    opened = _pages.get(item.nodeid)
    if report.failed and report.when == "call" and opened is not None:
        shot = Path(item.config.rootpath) / ".ui-screenshots" / f"{item.name}.png"
        shot.parent.mkdir(exist_ok=True)
        try:
            opened.screenshot(path=str(shot), full_page=True)
            report.sections.append(("screenshot", str(shot)))
        except Exception as error:  # a closed page: the failure says enough
            report.sections.append(("screenshot", f"none: {error}"))
    return report
