"""Connections to one PostgreSQL server: the connection string, the pool, retries of transient
errors, and error messages that say where the store connects (never the password)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg_pool import ConnectionPool, PoolTimeout

from airflow_provider_castore_dam.errors import EventStoreError
from airflow_provider_castore_dam.retry import Failure, RetryPolicy, call_with_retries, gave_up_note

T = TypeVar("T")

DEFAULT_CONNECT_TIMEOUT = 10
APPLICATION_NAME = "airflow-provider-castore-dam"
_SECOND_CONNECTION_WAIT = 2.0
"""Seconds a scan waits for a second pooled connection before checking clock skew serially."""
_AUTHENTICATION_FAILED = re.compile(
    r'authentication failed|role "[^"]*" does not exist|no pg_hba\.conf entry|password'
)
_NO_DATABASE = re.compile(r'database "[^"]*" does not exist')
_PERMANENT_CONNECTION_ERRORS = re.compile(
    "|".join(
        (
            _AUTHENTICATION_FAILED.pattern,
            _NO_DATABASE.pattern,
            r"permission denied",
            r"SSL.* required|does not support SSL|certificate",
            r"invalid (connection option|integer value|sslmode|port)",
            r"could not translate host name(?!.*Temporary failure)",
            r"unsupported frontend protocol",
        )
    ),
    re.IGNORECASE,
)
"""Connection failures without an SQLSTATE (those libpq reports at connect time) that no
retry mends; any other is taken as transient (refused, reset, closed, timed out, starting up,
too many clients)."""
_RETRYABLE_SQLSTATES = frozenset(
    {
        "40001",  # serialization_failure
        "40P01",  # deadlock_detected
        "53000",  # insufficient_resources
        "53200",  # out_of_memory
        "53300",  # too_many_connections
        "57P01",  # admin_shutdown
        "57P02",  # crash_shutdown
        "57P03",  # cannot_connect_now
        "57P05",  # idle_session_timeout
    }
)
"""Transient SQLSTATEs, besides class 08 (connection exception)."""


def one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def postgres_failure(error: BaseException) -> Failure:
    """Whether a PostgreSQL error is transient (retried) or permanent.

    Transient: SQLSTATE class 08 (connection exception) and :data:`_RETRYABLE_SQLSTATES`
    (server shutting down or starting up, too many clients, serialization failure...), and a
    connection lost or refused without an SQLSTATE (``OperationalError``: reset, closed,
    timed out), unless :data:`_PERMANENT_CONNECTION_ERRORS` says it cannot get better (bad
    credentials, no such database). Permanent: every other error (undefined table or column,
    syntax, privileges, a cancelled statement...), and ``PoolTimeout``, after which the pool
    has already waited ``pool_timeout``.
    """
    text = one_line(error)
    name = type(error).__name__
    if isinstance(error, PoolTimeout) or not isinstance(error, psycopg.Error):
        return Failure(name, text, False)
    state = error.sqlstate
    if state is not None:
        retryable = state.startswith("08") or state in _RETRYABLE_SQLSTATES
        return Failure(f"{name} ({state})", text, retryable)
    if isinstance(error, psycopg.OperationalError):
        return Failure(name, text, not _PERMANENT_CONNECTION_ERRORS.search(text))
    return Failure(name, text, False)


def describe_conninfo(conninfo: str) -> str:
    """Where the store connects, for error messages: never the password."""
    try:
        params = conninfo_to_dict(conninfo)
    except psycopg.ProgrammingError:
        return "(unparsable connection string)"
    parts = [
        f"{key}={params[key]}"
        for key in ("host", "hostaddr", "port", "dbname", "user")
        if key in params
    ]
    return " ".join(parts) or "(libpq defaults)"


def build_conninfo(conninfo: str | None, connect_timeout: int | None, **parts: Any) -> str:
    """A libpq connection string from a DSN or URL and keyword parts (parts win), with a
    connect timeout (default :data:`DEFAULT_CONNECT_TIMEOUT`, at least 2 s)."""
    given_parts = {key: value for key, value in parts.items() if value is not None}
    try:
        built = make_conninfo(conninfo or "", **given_parts)
        given = conninfo_to_dict(built)
    except psycopg.ProgrammingError as error:
        raise EventStoreError(f"invalid PostgreSQL connection string: {one_line(error)}") from None
    if connect_timeout is not None or "connect_timeout" not in given:
        timeout = DEFAULT_CONNECT_TIMEOUT if connect_timeout is None else connect_timeout
        built = make_conninfo(built, connect_timeout=max(2, int(timeout)))
    return built


def configure(conn: psycopg.Connection[Any]) -> None:
    """Every connection: UTC session, read-only transactions."""
    conn.execute("SET TIME ZONE 'UTC'")
    conn.execute("SET default_transaction_read_only = on")


class Connections:
    """A pool of read-only connections to one server, opened on first use.

    ``can_export_snapshots`` starts true and turns false once the server refused to share a
    transaction's snapshot with a second connection (then clock skew is checked serially)."""

    def __init__(
        self,
        conninfo: str,
        *,
        name: str,
        min_size: int,
        max_size: int,
        timeout: float,
        retry_policy: RetryPolicy,
    ) -> None:
        self.conninfo = conninfo
        self.where = describe_conninfo(conninfo)
        self.retry_policy = retry_policy
        self.can_export_snapshots = True
        self._connect_kwargs: dict[str, Any] = {"autocommit": True}
        if "application_name" not in conninfo_to_dict(conninfo):
            self._connect_kwargs["application_name"] = APPLICATION_NAME
        self.pool = ConnectionPool(
            conninfo,
            kwargs=self._connect_kwargs,
            min_size=min_size,
            max_size=max_size,
            timeout=timeout,
            open=False,
            configure=configure,
            check=ConnectionPool.check_connection,
            name=name,
        )

    @property
    def has_second(self) -> bool:
        """Whether a scan can hold two connections at once."""
        return self.pool.max_size >= 2

    def open(self, check: Callable[[psycopg.Connection[Any]], T], table_text: str) -> T:
        """``check`` on a connection of its own (retried), then the pool opened."""
        connected = False

        def probe() -> T:
            nonlocal connected
            connected = False
            conn = psycopg.connect(self.conninfo, **self._connect_kwargs)
            connected = True
            with conn:
                configure(conn)
                return check(conn)

        try:
            checked = call_with_retries(
                probe,
                policy=self.retry_policy,
                what=f"connecting to PostgreSQL at {self.where}",
                classify=postgres_failure,
            )
        except psycopg.Error as error:
            if not connected:
                raise self._connection_error(error) from error
            raise EventStoreError(
                f"checking table {table_text} at {self.where} failed: "
                f"{one_line(error)}{gave_up_note(error)}"
            ) from error
        try:
            self.pool.open(wait=True, timeout=self.pool.timeout)
        except PoolTimeout as error:
            raise EventStoreError(
                f"could not open connections to PostgreSQL at {self.where} within "
                f"{self.pool.timeout:g}s"
            ) from error
        return checked

    def _connection_error(self, error: psycopg.Error) -> EventStoreError:
        state = getattr(error, "sqlstate", None)
        text = one_line(error)
        if state in ("28P01", "28000") or _AUTHENTICATION_FAILED.search(text):
            what = "authentication failed (bad user or password)"
        elif state == "3D000" or _NO_DATABASE.search(text):
            what = "the database does not exist"
        else:
            what = "the server is unreachable"
        return EventStoreError(
            f"cannot connect to PostgreSQL at {self.where}: {what}: {text}{gave_up_note(error)}"
        )

    def close(self) -> None:
        self.pool.close()

    def second_connection(self) -> psycopg.Connection[Any] | None:
        """A pooled connection for work beside a scan (give it back with ``pool.putconn``),
        or None when none is free soon."""
        try:
            return self.pool.getconn(timeout=min(self.pool.timeout, _SECOND_CONNECTION_WAIT))
        except PoolTimeout:
            return None

    @contextmanager
    def reading(self, what: str, table_text: str) -> Iterator[None]:
        """Turn driver and pool errors into :class:`EventStoreError` naming the table."""
        try:
            yield
        except PoolTimeout as error:
            raise EventStoreError(
                f"{what}: no PostgreSQL connection free within {self.pool.timeout:g}s "
                f"(max_pool_size {self.pool.max_size}) at {self.where}"
            ) from error
        except psycopg.Error as error:
            raise EventStoreError(
                f"{what} from table {table_text} at {self.where} failed: "
                f"{one_line(error)}{gave_up_note(error)}"
            ) from error

    def retrying(self, function: Callable[[], T], what: str) -> T:
        """``function``, retried on transient errors within the retry policy."""
        return call_with_retries(
            function, policy=self.retry_policy, what=what, classify=postgres_failure
        )
