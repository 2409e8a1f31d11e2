"""Fixtures of the store tests: Castore-layout tables in the session database."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from psycopg import sql

from tests.stores.castore_tables import Table
from tests.stores.dynamodb_tables import Tables


@pytest.fixture
def make_table(postgres_session_database: str) -> Iterator[Any]:
    tables: list[Table] = []

    def make(**layout: Any) -> Table:
        layout.setdefault("aggregate_id_type", "VARCHAR(64)")
        table = Table(postgres_session_database, f"event_{uuid.uuid4().hex[:10]}", **layout)
        tables.append(table)
        return table

    yield make
    for table in tables:
        table.close()


@pytest.fixture
def table(make_table: Any) -> Table:
    return make_table()


@pytest.fixture
def loose_table(make_table: Any) -> Table:
    """A table in Castore's layout but without its constraints (no UNIQUE, every column but
    ``id`` nullable, no index), so that it can hold what Castore's table refuses."""
    table = make_table(indexes=False)
    table.execute(
        sql.SQL("ALTER TABLE {} {}").format(
            sql.Identifier(table.name),
            sql.SQL(", ").join(
                sql.SQL("ALTER COLUMN {} DROP NOT NULL").format(sql.Identifier(column))
                for column in ("aggregate_name", "aggregate_id", "version", "type", "timestamp")
            ),
        )
    )
    return table


@pytest.fixture(scope="module")
def ddb(moto_server: Any) -> Any:
    return moto_server.client("dynamodb")


@pytest.fixture
def tables(ddb: Any) -> Iterator[Tables]:
    """Creates Castore-layout DynamoDB tables for one test and deletes them afterwards."""
    made = Tables(ddb)
    yield made
    made.close()
