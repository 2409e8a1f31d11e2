"""Airflow connections for the tests, set the way users do: ``AIRFLOW_CONN_*`` JSON."""

from __future__ import annotations

import json
from typing import Any

import pytest
from psycopg.conninfo import conninfo_to_dict


def set_connection(monkeypatch: pytest.MonkeyPatch, conn_id: str, **connection: Any) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(connection))


def event_store_connection(kind: str, **extra: Any) -> dict[str, Any]:
    return {"conn_type": "castore_event_store", "extra": {"kind": kind, **extra}}


def message_channel_connection(kind: str, **extra: Any) -> dict[str, Any]:
    return {"conn_type": "castore_message_channel", "extra": {"kind": kind, **extra}}


def postgres_store_connection(dsn: str, table: str = "event", **fields: Any) -> dict[str, Any]:
    """A ``postgres`` event store connection on the database of ``dsn``; ``fields`` override
    the connection's fields (``password``...)."""
    params = conninfo_to_dict(dsn)
    return {
        "conn_type": "castore_event_store",
        "host": params["host"],
        "port": int(params.get("port", 5432)),
        "login": params.get("user"),
        "password": params.get("password"),
        "schema": params["dbname"],
        "extra": {"kind": "postgres", "table": table},
        **fields,
    }
