"""The integrity check as an operator (:mod:`airflow_provider_castore_dam.dam.integrity`)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from airflow.sdk import BaseOperator, Context

from airflow_provider_castore_dam.dam.integrity import (
    DEFAULT_MAX_REPORTED_DEFECTS,
    IntegrityReport,
    check_event_store_integrity,
    defect_line,
    parse_fail_on,
    parse_max_reported_defects,
    raise_on_defects,
)
from airflow_provider_castore_dam.hooks.event_store import CastoreEventStoreHook
from airflow_provider_castore_dam.operators.log_table import text_table
from airflow_provider_castore_dam.operators.rendered import rendered_event_store_ids

LOGGED_DEFECTS = 20


def rendered_fail_on(value: Any) -> Any:
    """``fail_on`` from a rendered template: ``any``, ``never``, a JSON list or
    comma-separated defect kinds."""
    if not isinstance(value, str) or value.strip() in ("any", "never"):
        return value.strip() if isinstance(value, str) else value
    text = value.strip()
    if text.startswith("["):
        try:
            return json.loads(text)
        except ValueError:
            return value
    return [kind.strip() for kind in text.split(",") if kind.strip()]


class CheckEventStoreIntegrityOperator(BaseOperator):
    """Checks the integrity of event stores of one connection: counts their aggregates and
    events (per type) and finds every defect (version gaps, duplicated versions, clock skew,
    ...; see :mod:`~airflow_provider_castore_dam.dam.integrity`).

    ``event_store_ids``: a list, a comma-separated string, or None for every store of the
    connection. ``filters``: ``from``/``to`` on each aggregate's first event. ``fail_on``:
    ``"any"`` (default), ``"never"`` or a list of defect kinds that fail the task (after every
    store was checked). Returns ``{"stores": {id: report}, "defect_count": n}``; each report
    holds its first ``max_reported_defects`` defects.
    """

    template_fields: Sequence[str] = (
        "event_store_conn_id",
        "event_store_ids",
        "filters",
        "fail_on",
    )
    template_fields_renderers: ClassVar[dict[str, str]] = {"filters": "json"}
    ui_color = "#d4e8f2"

    def __init__(
        self,
        *,
        event_store_conn_id: str = CastoreEventStoreHook.default_conn_name,
        event_store_ids: Sequence[str] | str | None = None,
        filters: Mapping[str, Any] | None = None,
        fail_on: str | Sequence[str] = "any",
        max_reported_defects: int = DEFAULT_MAX_REPORTED_DEFECTS,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.event_store_conn_id = event_store_conn_id
        self.event_store_ids = event_store_ids
        self.filters = filters
        self.fail_on = fail_on
        self.max_reported_defects = parse_max_reported_defects(max_reported_defects)

    def execute(self, context: Context) -> dict[str, Any]:
        fail_on = parse_fail_on(rendered_fail_on(self.fail_on))
        hook = CastoreEventStoreHook(self.event_store_conn_id)
        store_ids = (
            hook.list_event_store_ids()
            if self.event_store_ids is None
            else rendered_event_store_ids(self.event_store_ids)
        )
        reports: dict[str, IntegrityReport] = {}
        for store_id in store_ids:
            store = hook.get_event_store(store_id)
            try:
                reports[store_id] = check_event_store_integrity(
                    store, self.filters, max_reported_defects=self.max_reported_defects
                )
            finally:
                close = getattr(store, "close", None)
                if close is not None:
                    close()
        self._log_reports(reports)
        raise_on_defects(reports, fail_on)
        return {
            "stores": dict(reports),
            "defect_count": sum(report["defect_count"] for report in reports.values()),
        }

    def _log_reports(self, reports: Mapping[str, IntegrityReport]) -> None:
        rows = [
            [
                store_id,
                report["aggregate_count"],
                report["event_count"],
                report["defect_count"],
                ", ".join(f"{n} {k}" for k, n in report["defect_counts"].items() if n) or "-",
            ]
            for store_id, report in reports.items()
        ]
        headers = ["event store", "aggregates", "events", "defects", "kinds"]
        self.log.info("Integrity check:\n%s", text_table(headers, rows))
        for store_id, report in reports.items():
            for defect in report["defects"][:LOGGED_DEFECTS]:
                self.log.warning("%s: %s", store_id, defect_line(defect))
            if not report["listing_checked"]:
                self.log.warning(
                    "%s was read through its listing: unlisted aggregates cannot be found",
                    store_id,
                )
