"""Reconciliation as an operator (:mod:`airflow_provider_castore_dam.dam.reconcile`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from airflow.sdk import BaseOperator, Context

from airflow_provider_castore_dam.channels.sqs_audit import (
    DEFAULT_IDLE_SECONDS,
    DEFAULT_VISIBILITY_TIMEOUT,
    sqs_message_keys,
)
from airflow_provider_castore_dam.dam.reconcile import (
    DEFAULT_MAX_REPORTED,
    Reconciliation,
    describe_counts,
    parse_pour_digest,
    raise_on_mismatch,
    reconcile_pour,
)
from airflow_provider_castore_dam.hooks.event_store import CastoreEventStoreHook
from airflow_provider_castore_dam.operators.log_table import text_table
from airflow_provider_castore_dam.operators.rendered import rendered_bool, rendered_literal
from airflow_provider_castore_dam.protocols import EventStore


class ReconcilePourOperator(BaseOperator):
    """Checks that a pour confirmed exactly what its source holds and, given ``queue_url``,
    that the queue holds exactly that.

    ``pour_result``: the pour task's XCom (``pour.output``, or a template pulling it); its
    digest names the pour's stores, filters and options, which a dry run pours again from
    ``event_store_conn_id``. ``queue_url``: an SQS queue to read (with ``aws_conn_id``), one
    nobody else reads while the check runs: received without deleting and made visible again
    (``delete_from_queue=False``, default), or an audit queue, emptied (``True``). Duplicated
    deliveries fail the check unless ``allow_duplicates`` (after a resumed pour). Returns the
    reconciliation report; fails on any mismatch, naming each store, its counts and its first
    ``max_reported`` missing, extra and duplicated messages.
    """

    template_fields: Sequence[str] = (
        "pour_result",
        "event_store_conn_id",
        "queue_url",
        "aws_conn_id",
        "delete_from_queue",
        "allow_duplicates",
    )
    template_fields_renderers: ClassVar[dict[str, str]] = {"pour_result": "json"}
    ui_color = "#d4e8f2"

    def __init__(
        self,
        *,
        pour_result: Any,
        event_store_conn_id: str = CastoreEventStoreHook.default_conn_name,
        queue_url: str | None = None,
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
        delete_from_queue: bool | str = False,
        allow_duplicates: bool | str = False,
        idle_seconds: float = DEFAULT_IDLE_SECONDS,
        visibility_timeout: int = DEFAULT_VISIBILITY_TIMEOUT,
        max_reported: int = DEFAULT_MAX_REPORTED,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.pour_result = pour_result
        self.event_store_conn_id = event_store_conn_id
        self.queue_url = queue_url
        self.aws_conn_id = aws_conn_id
        self.region_name = region_name
        self.delete_from_queue = delete_from_queue
        self.allow_duplicates = allow_duplicates
        self.idle_seconds = idle_seconds
        self.visibility_timeout = visibility_timeout
        self.max_reported = max_reported

    def execute(self, context: Context) -> Reconciliation:
        pour_result = rendered_literal(
            self.pour_result, "pour_result", "a pour's result (its XCom)"
        )
        _, inputs, _ = parse_pour_digest(pour_result)
        allow_duplicates = rendered_bool(self.allow_duplicates, "allow_duplicates")
        delivered = None
        if self.queue_url:
            delivered = sqs_message_keys(
                self._sqs_client(),
                self.queue_url,
                delete=rendered_bool(self.delete_from_queue, "delete_from_queue"),
                visibility_timeout=self.visibility_timeout,
                idle_seconds=self.idle_seconds,
            )
        hook = CastoreEventStoreHook(self.event_store_conn_id)
        store_ids = inputs.get("event_store_ids") or [inputs["event_store_id"]]
        stores: list[EventStore] = []
        try:
            stores += [hook.get_event_store(store_id) for store_id in store_ids]
            reconciliation = reconcile_pour(
                pour_result,
                stores,
                delivered=delivered,
                allow_duplicates=allow_duplicates,
                max_reported=self.max_reported,
            )
        finally:
            for store in stores:
                close = getattr(store, "close", None)
                if close is not None:
                    close()
        self._log(reconciliation)
        raise_on_mismatch(reconciliation)
        return reconciliation

    def _sqs_client(self) -> Any:
        from airflow_provider_castore_dam.triggers.drain import aws_hook

        return aws_hook("sqs", self.aws_conn_id, self.region_name).get_conn()

    def _log(self, reconciliation: Mapping[str, Any]) -> None:
        rows = []
        for store_id, report in reconciliation["event_stores"].items():
            delivered = report["delivered"]
            rows.append(
                [
                    store_id,
                    report["source"]["count"],
                    report["poured"]["count"],
                    "-" if delivered is None else delivered["count"],
                    report["missing_count"],
                    report["extra_count"],
                    report["duplicated_count"],
                    "yes" if report["matches"] else "NO",
                ]
            )
        headers = ["event store", "source", "poured", "delivered"]
        headers += ["missing", "extra", "duplicated", "matches"]
        self.log.info("Reconciliation:\n%s", text_table(headers, rows))
        for store_id, report in reconciliation["event_stores"].items():
            if not report["matches"]:
                self.log.warning("%s: %s", store_id, describe_counts(report))
