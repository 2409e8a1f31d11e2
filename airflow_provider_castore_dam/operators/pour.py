"""The four pour operators: thin wrappers over :mod:`airflow_provider_castore_dam.dam`.

Each resolves its event store(s) and message channel from connections, runs the engine's
utility, logs progress every ``progress_interval`` seconds and returns the engine's result
(JSON) as its XCom value. With ``dry_run`` nothing is published: the result then also holds
``dry_run``, the counts per event store and event type with first and last timestamps.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from airflow.sdk import BaseOperator, Context

from airflow_provider_castore_dam.channels import InMemoryMessageChannel
from airflow_provider_castore_dam.channels.dry_run import DryRunMessageChannel
from airflow_provider_castore_dam.dam import (
    PourProgress,
    ProgressReport,
    pour_aggregate_events,
    pour_event_store_aggregate_ids,
    pour_event_store_collection_events,
    pour_event_store_events,
)
from airflow_provider_castore_dam.errors import InvalidPourInputError
from airflow_provider_castore_dam.hooks.event_store import CastoreEventStoreHook
from airflow_provider_castore_dam.hooks.message_channel import CastoreMessageChannelHook
from airflow_provider_castore_dam.protocols import EventStore, MessageChannel

LOGGED_IN_MEMORY_MESSAGES = 100


def rendered_rate_limit(value: Any) -> float | None:
    """A rate limit from a rendered template: numbers pass, numeric strings are converted."""
    if isinstance(value, str):
        text = value.strip()
        if text.lower() in ("", "none", "null"):
            return None
        try:
            return float(text)
        except ValueError as error:
            raise InvalidPourInputError(
                f"rate_limit must be a number of messages per second, not {value!r}"
            ) from error
    return value  # type: ignore[no-any-return]


def rendered_bool(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise InvalidPourInputError(f"{name} must be true or false, not {value!r}")


def rendered_event_store_ids(value: Any) -> list[str]:
    """A list of ids, or one string of comma-separated ids (what a template renders)."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, Sequence) and all(isinstance(item, str) for item in value):
        return list(value)
    raise InvalidPourInputError(f"event_store_ids must be a list of ids, not {value!r}")


class BasePourOperator(BaseOperator):
    """What the four pour operators share: connections, channel, rate limit, dry run,
    progress logging and a clean stop on kill."""

    template_fields: Sequence[str] = (
        "event_store_conn_id",
        "message_channel_conn_id",
        "rate_limit",
        "pour_dry_run",
    )
    template_fields_renderers: ClassVar[dict[str, str]] = {"options": "json", "filters": "json"}
    ui_color = "#f2d4b6"

    def __init__(
        self,
        *,
        event_store_conn_id: str = CastoreEventStoreHook.default_conn_name,
        message_channel_conn_id: str = CastoreMessageChannelHook.default_conn_name,
        rate_limit: float | str | None = None,
        dry_run: bool | str = False,
        progress_interval: float = 5.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.event_store_conn_id = event_store_conn_id
        self.message_channel_conn_id = message_channel_conn_id
        self.rate_limit = rate_limit
        # BaseOperator.dry_run() is a method (render templates only): keep it usable.
        self.pour_dry_run = dry_run
        self.progress_interval = progress_interval
        self._progress: PourProgress | None = None

    def event_store(self, event_store_id: str) -> EventStore:
        return CastoreEventStoreHook(self.event_store_conn_id).get_event_store(event_store_id)

    def pour(
        self, channel: MessageChannel, rate_limit: float | None, progress: PourProgress
    ) -> Mapping[str, Any]:
        raise NotImplementedError

    def execute(self, context: Context) -> dict[str, Any]:
        dry_run = rendered_bool(self.pour_dry_run, "dry_run")
        rate_limit = rendered_rate_limit(self.rate_limit)
        channel: MessageChannel = (
            DryRunMessageChannel()
            if dry_run
            else CastoreMessageChannelHook(self.message_channel_conn_id).get_message_channel()
        )
        self._progress = PourProgress(self._log_progress, self.progress_interval)
        result = dict(self.pour(channel, None if dry_run else rate_limit, self._progress))
        if isinstance(channel, DryRunMessageChannel):
            result["dry_run"] = channel.summary()
            self.log.info("Dry run, nothing published: %s", result["dry_run"])
        if isinstance(channel, InMemoryMessageChannel):
            for published in channel.messages[:LOGGED_IN_MEMORY_MESSAGES]:
                self.log.info("Published (replay=%s): %s", published.replay, published.message)
        self.log.info("Pour done: %s", result)
        return result

    def _log_progress(self, report: ProgressReport) -> None:
        self.log.info(
            "Poured %d messages in %.1f s (%.1f messages/s)",
            report.poured_count,
            report.elapsed_seconds,
            report.rate,
        )

    def on_kill(self) -> None:
        if self._progress is not None:
            self.log.info("Stopping the pour after the batch being published")
            self._progress.stop()


class PourEventStoreAggregateIdsOperator(BasePourOperator):
    """Pours an aggregate-exists message for every aggregate of one event store
    (:func:`~airflow_provider_castore_dam.dam.pour_event_store_aggregate_ids`)."""

    template_fields: Sequence[str] = (
        *BasePourOperator.template_fields,
        "event_store_id",
        "options",
    )

    def __init__(
        self, *, event_store_id: str, options: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.event_store_id = event_store_id
        self.options = options

    def pour(
        self, channel: MessageChannel, rate_limit: float | None, progress: PourProgress
    ) -> Mapping[str, Any]:
        return pour_event_store_aggregate_ids(
            self.event_store(self.event_store_id),
            channel,
            self.options,
            rate_limit,
            progress=progress,
        )


class PourAggregateEventsOperator(BasePourOperator):
    """Pours the events of one aggregate
    (:func:`~airflow_provider_castore_dam.dam.pour_aggregate_events`)."""

    template_fields: Sequence[str] = (
        *BasePourOperator.template_fields,
        "event_store_id",
        "aggregate_id",
        "options",
        "filters",
    )

    def __init__(
        self,
        *,
        event_store_id: str,
        aggregate_id: str,
        options: Mapping[str, Any] | None = None,
        filters: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.event_store_id = event_store_id
        self.aggregate_id = aggregate_id
        self.options = options
        self.filters = filters

    def pour(
        self, channel: MessageChannel, rate_limit: float | None, progress: PourProgress
    ) -> Mapping[str, Any]:
        return pour_aggregate_events(
            self.event_store(self.event_store_id),
            channel,
            self.aggregate_id,
            self.options,
            self.filters,
            rate_limit,
            progress=progress,
        )


class PourEventStoreEventsOperator(BasePourOperator):
    """Pours every event of one event store in timestamp order
    (:func:`~airflow_provider_castore_dam.dam.pour_event_store_events`)."""

    template_fields: Sequence[str] = (
        *BasePourOperator.template_fields,
        "event_store_id",
        "filters",
    )

    def __init__(
        self, *, event_store_id: str, filters: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.event_store_id = event_store_id
        self.filters = filters

    def pour(
        self, channel: MessageChannel, rate_limit: float | None, progress: PourProgress
    ) -> Mapping[str, Any]:
        return pour_event_store_events(
            self.event_store(self.event_store_id),
            channel,
            self.filters,
            rate_limit,
            progress=progress,
        )


class PourEventStoreCollectionEventsOperator(BasePourOperator):
    """Pours the events of several event stores of one connection, merged in timestamp order
    (:func:`~airflow_provider_castore_dam.dam.pour_event_store_collection_events`).

    ``event_store_ids``: a list, or a comma-separated string (e.g. from a template)."""

    template_fields: Sequence[str] = (
        *BasePourOperator.template_fields,
        "event_store_ids",
        "filters",
    )

    def __init__(
        self,
        *,
        event_store_ids: Sequence[str] | str,
        filters: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.event_store_ids = event_store_ids
        self.filters = filters

    def pour(
        self, channel: MessageChannel, rate_limit: float | None, progress: PourProgress
    ) -> Mapping[str, Any]:
        stores = [
            self.event_store(store_id)
            for store_id in rendered_event_store_ids(self.event_store_ids)
        ]
        return pour_event_store_collection_events(
            stores, channel, self.filters, rate_limit, progress=progress
        )
