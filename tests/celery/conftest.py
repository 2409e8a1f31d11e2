"""One Airflow deployment with the CeleryExecutor for the whole session (see harness.py).

Its connections are fixed when it starts: ``castore_event_store_default`` (the generated
store in a PostgreSQL database of its own), ``castore_message_channel_default`` (an SQS
standard queue on the moto server, recreated by each test that uses it) and ``aws_default``
(the moto server). A failing test's report ends with every component's log tail.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.celery.config import sqlalchemy_url
from tests.celery.consumer import CeleryQueue
from tests.celery.harness import AirflowCelery
from tests.celery.store_data import CeleryStore, generate_events, load_store
from tests.infra import MotoServer, PostgresServer

_deployments: list[AirflowCelery] = []


@pytest.fixture(scope="session")
def celery_store(postgres_server: PostgresServer) -> Iterator[CeleryStore]:
    name = postgres_server.create_database("castore_celery_store")
    try:
        dsn = postgres_server.dsn(name)
        events = generate_events()
        load_store(dsn, events)
        yield CeleryStore(name, dsn, events)
    finally:
        postgres_server.drop_database(name)


@pytest.fixture(scope="session")
def celery_queue(moto_server: MotoServer) -> CeleryQueue:
    name = "castore-celery-backfill"
    url = moto_server.client("sqs").create_queue(QueueName=name)["QueueUrl"]
    return CeleryQueue(name, url, moto_server)


def _connections(server: PostgresServer, store: CeleryStore, queue: CeleryQueue) -> dict[str, str]:
    connections = {
        "castore_event_store_default": {
            "conn_type": "castore_event_store",
            "host": server.host,
            "port": server.port,
            "login": server.user,
            "password": server.password,
            "schema": store.dbname,
            "extra": {"kind": "postgres", "table": "event", **server.extra},
        },
        "castore_message_channel_default": {
            "conn_type": "castore_message_channel",
            "extra": {"kind": "sqs", "queue_url": queue.url, "aws_conn_id": "aws_default"},
        },
        "aws_default": {
            "conn_type": "aws",
            "login": queue.moto.access_key_id,
            "password": queue.moto.secret_access_key,
            "extra": {"region_name": queue.moto.region, "endpoint_url": queue.moto.endpoint_url},
        },
    }
    return {f"AIRFLOW_CONN_{key.upper()}": json.dumps(value) for key, value in connections.items()}


@pytest.fixture(scope="session")
def airflow_celery(
    postgres_server: PostgresServer,
    celery_store: CeleryStore,
    celery_queue: CeleryQueue,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[AirflowCelery]:
    metadata_db = postgres_server.create_database("castore_celery_airflow")
    deployment = AirflowCelery(
        home=tmp_path_factory.mktemp("airflow-celery"),
        metadata=sqlalchemy_url(postgres_server, metadata_db),
        metadata_dsn=postgres_server.dsn(metadata_db),
        env_extra=_connections(postgres_server, celery_store, celery_queue),
    )
    try:
        try:
            deployment.start()
        except Exception as error:
            raise RuntimeError(f"{error}\n\n{deployment.diagnostics()}") from error
        _deployments.append(deployment)
        yield deployment
    finally:
        _deployments.clear()
        deployment.stop()
        deployment.forget_broker_state()
        postgres_server.drop_database(metadata_db)


@pytest.fixture
def two_workers(airflow_celery: AirflowCelery) -> AirflowCelery:
    """The deployment with both workers up (one a previous test killed is started again)."""
    for name in airflow_celery.workers:
        if not airflow_celery.components[name].running():
            airflow_celery.relaunch_worker(name)
    return airflow_celery


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.failed and _deployments and "airflow_celery" in getattr(item, "fixturenames", ()):
        deployment = _deployments[0]
        report.sections.append(
            (f"airflow celery deployment in {deployment.home}", deployment.diagnostics())
        )
    return report
