"""The configuration of the Celery test deployment, as the environment of its processes.

- ``[core] dags_folder`` is the repository's example_dags/ (the ``dags-folder`` bundle); a
  second bundle, ``harness``, holds tests/celery/dags/. Airflow's own examples are not loaded.
  DAGs are paused when they first appear (the scheduled ones would run): a test unpauses the
  one it triggers.
- Broker: Redis database ``REDIS_DB`` on 127.0.0.1, shared with whoever else uses it, so
  every task goes to the session's own queue (``[operators] default_queue``), the only one
  its workers consume. Result backend: the metadata database.
- Workers reach the api-server's Execution API at ``[core] execution_api_server_url``; the
  scheduler signs their tokens with ``[api_auth] jwt_secret``, which the api-server checks.
- ``[core] hostname_callable`` returns the worker's own name (see hostname.py).
- Heartbeats: a running task's supervisor heartbeats every ``min_heartbeat_interval`` s; the
  scheduler looks every 2 s for tasks silent for ``HEARTBEAT_TIMEOUT`` s and fails them, so
  the tasks of a killed worker are up for retry about 10-14 s later.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import quote

import sqlalchemy

from tests.infra import LOOPBACK, PostgresServer

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_DAGS = REPO_ROOT / "example_dags"
HARNESS_DAGS = Path(__file__).resolve().parent / "dags"
REDIS_DB = 7
REDIS_URL = f"redis://{LOOPBACK}:6379/{REDIS_DB}"
HEARTBEAT_TIMEOUT = 10
WORKER_CONCURRENCY = 4
"""Per worker: eight mapped tasks queued at once are split four and four (a worker takes no
more tasks than it has pool processes: ``worker_prefetch_multiplier`` is 1)."""
LOCAL_BUNDLE = "airflow.dag_processing.bundles.local.LocalDagBundle"


def sqlalchemy_url(server: PostgresServer, dbname: str, driver: str | None = None) -> str:
    """A SQLAlchemy URL of ``dbname`` on ``server`` (with its extra libpq parameters). The
    driver is psycopg 3, but for SQLAlchemy 1.4 (Airflow 3.0) psycopg2, which it needs."""
    if driver is None:
        driver = "postgresql+psycopg2" if sqlalchemy.__version__ < "2" else "postgresql+psycopg"
    auth = quote(server.user, safe="")
    if server.password is not None:
        auth += ":" + quote(server.password, safe="")
    query = "&".join(f"{key}={quote(str(value))}" for key, value in server.extra.items())
    url = f"{driver}://{auth}@{server.host}:{server.port}/{dbname}"
    return f"{url}?{query}" if query else url


def airflow_config(
    home: Path, *, metadata: str, api_url: str, queue: str, secret_key: str
) -> dict[str, dict[str, str]]:
    """The options set, by section. ``metadata``: a ``postgresql+psycopg://`` URL."""
    bundles = [
        {"name": "dags-folder", "classpath": LOCAL_BUNDLE, "kwargs": {}},
        {"name": "harness", "classpath": LOCAL_BUNDLE, "kwargs": {"path": str(HARNESS_DAGS)}},
    ]
    return {
        "core": {
            "executor": "CeleryExecutor",
            "load_examples": "False",
            "dags_folder": str(EXAMPLE_DAGS),
            "execution_api_server_url": f"{api_url}/execution/",
            "hostname_callable": "tests.celery.hostname.worker_hostname",
            "simple_auth_manager_all_admins": "True",  # the REST API needs no login
        },
        "database": {  # psycopg 3 serves SQLAlchemy's async engine too (no asyncpg)
            "sql_alchemy_conn": metadata,
            "sql_alchemy_conn_async": metadata,
        },
        "api": {"base_url": api_url, "secret_key": secret_key},
        "api_auth": {"jwt_secret": secret_key},
        "operators": {"default_queue": queue},
        "celery": {
            "broker_url": REDIS_URL,
            "result_backend": f"db+{metadata}",
            "worker_concurrency": str(WORKER_CONCURRENCY),
        },
        "scheduler": {
            "task_instance_heartbeat_timeout": str(HEARTBEAT_TIMEOUT),
            "task_instance_heartbeat_timeout_detection_interval": "2",
        },
        "workers": {"min_heartbeat_interval": "2"},
        "dag_processor": {
            "dag_bundle_config_list": json.dumps(bundles),
            "refresh_interval": "5",
            "parsing_processes": "1",
        },
        "logging": {"base_log_folder": str(home / "logs")},
    }


def deployment_env(
    home: Path,
    *,
    metadata: str,
    api_url: str,
    queue: str,
    secret_key: str,
    extra: Mapping[str, str],
) -> dict[str, str]:
    """This process's environment less any Airflow or AWS setting (tests/conftest.py points
    it at a SQLite home), plus the configuration above as ``AIRFLOW__*`` and ``extra``
    (connections); no proxy for loopback, no AWS config files nor instance metadata."""
    inherited = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AIRFLOW", "AWS_", "CASTORE_DAM_TEST_"))
    }
    config = airflow_config(
        home, metadata=metadata, api_url=api_url, queue=queue, secret_key=secret_key
    )
    no_proxy = f"{LOOPBACK},localhost"
    return {
        **inherited,
        "AIRFLOW_HOME": str(home),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), inherited.get("PYTHONPATH")])),
        "NO_PROXY": no_proxy,
        "no_proxy": no_proxy,
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        **{
            f"AIRFLOW__{section.upper()}__{option.upper()}": value
            for section, options in config.items()
            for option, value in options.items()
        },
        **extra,
    }
