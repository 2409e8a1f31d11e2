from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from typing import Any

from airflow.providers.common.compat.sdk import BaseHook
from airflow.sdk import Connection

from airflow_provider_castore_dam.errors import ConnectionConfigError, InvalidPourInputError
from airflow_provider_castore_dam.hooks import legacy_forms
from airflow_provider_castore_dam.hooks.connection_fields import ConnectionFields, aws_client
from airflow_provider_castore_dam.protocols import EventStore, MessageChannel

DYNAMODB_READS = ("scan", "query")
PSYCOPG_EXTRA_PARAMETERS = ("sslmode", "sslrootcert", "connect_timeout", "application_name")
SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")


def _check_event_store_id(event_store_id: object) -> None:
    if not isinstance(event_store_id, str) or not event_store_id:
        raise InvalidPourInputError(
            f"event_store_id must be a non-empty string, not {event_store_id!r}"
        )


class CastoreEventStoreHook(BaseHook):
    """Castore event stores described by a ``castore_event_store`` connection.

    ``kind`` picks the storage: ``postgres`` (host, port, login, password and database of the
    connection; ``table``, default ``event``), ``dynamodb-single-table`` / ``dynamodb-legacy``
    (``table``; for legacy, ``{event_store_id}`` in it is replaced by the store's id;
    credentials from ``aws_conn_id``) or ``in-memory-demo`` (the POKEMONS / TRAINERS demo).
    """

    conn_name_attr = "castore_event_store_conn_id"
    default_conn_name = "castore_event_store_default"
    conn_type = "castore_event_store"
    hook_name = "Castore Event Store"
    # Read by the UIs of Airflow 3.0 and 3.1 only when in the class's own namespace.
    get_connection_form_widgets = legacy_forms.connection_form_widgets_method
    get_ui_field_behaviour = legacy_forms.ui_field_behaviour_method

    def __init__(self, castore_event_store_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.castore_event_store_conn_id = castore_event_store_conn_id

    @cached_property
    def connection(self) -> Connection:
        return self.get_connection(self.castore_event_store_conn_id)

    @cached_property
    def fields(self) -> ConnectionFields:
        return ConnectionFields.of(self.connection, self.conn_type)

    @property
    def kind(self) -> str:
        return self.fields.choice("kind", EVENT_STORE_KINDS)

    def get_event_store(self, event_store_id: str) -> EventStore:
        """The event store ``event_store_id`` in the storage this connection points at."""
        _check_event_store_id(event_store_id)
        return _STORE_KINDS[self.kind](self, event_store_id)

    def list_event_store_ids(self) -> list[str]:
        """Every event store id the connection's storage holds, sorted. A legacy DynamoDB
        connection (one table per store) cannot tell: name its stores instead."""
        kind = self.kind
        if kind == "postgres":
            from airflow_provider_castore_dam.stores.postgres.store_ids import (
                list_event_store_ids as postgres_store_ids,
            )

            return postgres_store_ids(
                self.postgres_conninfo(), self.fields.text("table") or "event"
            )
        if kind == "dynamodb-single-table":
            from airflow_provider_castore_dam.stores.dynamodb.store_ids import (
                list_event_store_ids as dynamodb_store_ids,
            )

            table: str = self.fields.required("table", "(the DynamoDB table name)")
            return dynamodb_store_ids(aws_client(self.fields, "dynamodb"), table)
        if kind == "in-memory-demo":
            from airflow_provider_castore_dam.stores.demo import DEMO_EVENTS

            return sorted(DEMO_EVENTS)
        raise InvalidPourInputError(
            f"connection {self.castore_event_store_conn_id!r} of kind {kind} keeps each event "
            "store in its own table: name the event stores (event_store_ids)"
        )

    def lineage_dataset(self, event_store_id: str) -> tuple[str, str]:
        """The OpenLineage (namespace, name) of the store's table (see :mod:`.lineage`)."""
        from airflow_provider_castore_dam.hooks.lineage import (
            MEMORY,
            dynamodb_dataset,
            postgres_dataset,
        )

        kind = self.kind
        if kind == "postgres":
            connection = self.connection
            return postgres_dataset(
                str(connection.host),
                int(connection.port or 5432),
                str(connection.schema or "postgres"),
                self.fields.text("table") or "event",
            )
        if kind in ("dynamodb-single-table", "dynamodb-legacy"):
            table = str(self.fields.text("table"))
            return dynamodb_dataset(self.fields, table.replace("{event_store_id}", event_store_id))
        return MEMORY, event_store_id

    def get_destination(self, conflict: str = "fail") -> MessageChannel:
        """The connection's storage as a pour's destination (an event store written to, see
        :mod:`airflow_provider_castore_dam.stores.destination`), with the conflict policy."""
        kind = self.kind
        if kind == "postgres":
            from airflow_provider_castore_dam.stores.postgres.destination import (
                PostgresEventStoreDestination,
            )

            return PostgresEventStoreDestination(
                self.postgres_conninfo(),
                table=self.fields.text("table") or "event",
                conflict=conflict,
            )
        if kind in ("dynamodb-single-table", "dynamodb-legacy"):
            from airflow_provider_castore_dam.stores.dynamodb.destination import (
                DynamoDBEventStoreDestination,
            )

            return DynamoDBEventStoreDestination(
                self.fields.required("table", "(the DynamoDB table name)"),
                layout="legacy" if kind == "dynamodb-legacy" else "single-table",
                conflict=conflict,
                client=aws_client(self.fields, "dynamodb"),
            )
        raise InvalidPourInputError(
            f"connection {self.castore_event_store_conn_id!r} of kind {kind} cannot be written "
            "to: a destination is a postgres or dynamodb connection"
        )

    def _postgres_store(self, event_store_id: str) -> EventStore:
        conninfo = self.postgres_conninfo()
        from airflow_provider_castore_dam.stores.postgres import PostgresEventStore

        return PostgresEventStore(
            conninfo=conninfo,
            table=self.fields.text("table") or "event",
            event_store_id=event_store_id,
        )

    def _dynamodb_store(self, event_store_id: str) -> EventStore:
        from airflow_provider_castore_dam.stores.dynamodb import (
            DynamoDBEventStore,
            DynamoDBTableScanEventStore,
        )

        table: str = self.fields.required("table", "(the DynamoDB table name)")
        legacy = self.kind == "dynamodb-legacy"
        read = self.fields.choice("dynamodb_read", DYNAMODB_READS, default="scan")
        store_class = DynamoDBTableScanEventStore if read == "scan" else DynamoDBEventStore
        return store_class(
            event_store_id,
            table.replace("{event_store_id}", event_store_id) if legacy else table,
            layout="legacy" if legacy else "single-table",
            client=aws_client(self.fields, "dynamodb"),
        )

    def _demo_store(self, event_store_id: str) -> EventStore:
        from airflow_provider_castore_dam.stores.demo import DEMO_EVENTS, demo_event_store

        store = demo_event_store(event_store_id)
        if store is None:
            raise InvalidPourInputError(
                f"event store id {event_store_id!r} is not a store of the in-memory-demo "
                f"connection {self.castore_event_store_conn_id!r}; it has "
                f"{', '.join(DEMO_EVENTS)}"
            )
        return store

    def postgres_conninfo(self) -> str:
        """A libpq connection string from the connection's fields (psycopg builds and quotes it)."""
        from psycopg.conninfo import make_conninfo

        connection = self.connection
        if not connection.host:
            raise ConnectionConfigError(
                f"connection {connection.conn_id!r} of kind postgres needs a host"
            )
        return make_conninfo(
            host=connection.host,
            port=connection.port or 5432,
            user=connection.login or None,
            password=connection.password or None,
            dbname=connection.schema or None,
            **self._psycopg_extra(),
        )

    def _psycopg_extra(self) -> dict[str, Any]:
        """The libpq parameters set in the connection's extra, checked (libpq itself would only
        refuse them when connecting, as if the server were unreachable)."""
        extra: dict[str, Any] = {}
        for name in PSYCOPG_EXTRA_PARAMETERS:
            if self.fields.optional(name) is None:
                continue
            if name == "sslmode":
                extra[name] = self.fields.choice(name, SSL_MODES)
            elif name == "connect_timeout":
                extra[name] = self.fields.number(name, 0)
            else:
                extra[name] = str(self.fields.text(name))
        return extra

    def test_connection(self) -> tuple[bool, str]:
        """Reads one page of a store's aggregate ids, which checks reachability, credentials
        and the table's layout."""
        try:
            # Any id reaches the storage; the demo knows only its own stores.
            probe = "POKEMONS" if self.kind == "in-memory-demo" else "__connection_test__"
            self.get_event_store(probe).list_aggregate_ids(limit=1)
        except Exception as error:
            return False, f"{type(error).__name__}: {error}"
        return True, f"{self.kind} event store connection works"


_STORE_KINDS: dict[str, Callable[[CastoreEventStoreHook, str], EventStore]] = {
    "postgres": CastoreEventStoreHook._postgres_store,
    "dynamodb-single-table": CastoreEventStoreHook._dynamodb_store,
    "dynamodb-legacy": CastoreEventStoreHook._dynamodb_store,
    "in-memory-demo": CastoreEventStoreHook._demo_store,
}
"""How each ``kind`` of connection builds its stores."""
EVENT_STORE_KINDS = tuple(_STORE_KINDS)
