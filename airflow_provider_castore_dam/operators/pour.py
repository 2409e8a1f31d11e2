"""The four pour operators: thin wrappers over :mod:`airflow_provider_castore_dam.dam`.

Each resolves its event store(s) and message channel from connections, runs the engine's
utility, logs progress every ``progress_interval`` seconds and returns the engine's result
(JSON) as its XCom value. With ``dry_run`` nothing is published: the result then also holds
``dry_run``, the counts per event store and event type with first and last timestamps.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from airflow.sdk import BaseOperator, Context

from airflow_provider_castore_dam.channels.dry_run import DryRunMessageChannel
from airflow_provider_castore_dam.channels.logged import LoggedMessageChannel
from airflow_provider_castore_dam.dam import (
    PourProgress,
    ProgressReport,
    pour_aggregate_events,
    pour_event_store_aggregate_ids,
    pour_event_store_collection_events,
    pour_event_store_events,
)
from airflow_provider_castore_dam.dam.checkpoints import CheckpointMismatchError
from airflow_provider_castore_dam.hooks.event_store import CastoreEventStoreHook
from airflow_provider_castore_dam.hooks.message_channel import CastoreMessageChannelHook
from airflow_provider_castore_dam.operators.assets import (
    asset_extra,
    attach_to_outlets,
    poured_count,
)
from airflow_provider_castore_dam.operators.checkpointing import TaskCheckpoints
from airflow_provider_castore_dam.operators.lineage import PourLineage, operator_lineage
from airflow_provider_castore_dam.operators.partitioned import PartitionedPour, partitioned_pour
from airflow_provider_castore_dam.operators.pour_log import progress_line, summary_table
from airflow_provider_castore_dam.operators.rendered import (
    rendered_bool,
    rendered_event_store_ids,
    rendered_filters,
    rendered_literal,
    rendered_options,
    rendered_rate_limit,
)
from airflow_provider_castore_dam.protocols import EventStore, Message, MessageChannel
from airflow_provider_castore_dam.timestamps import format_timestamp


def data_interval(context: Context) -> tuple[str, str] | None:
    """The run's data interval as inclusive ``from`` / ``to`` timestamps, ``[start, end)``:
    ``to`` is a millisecond before the end, so consecutive intervals share no event (events
    and filters are to the millisecond). None for a run without one (no time-based
    schedule)."""
    start, end = context.get("data_interval_start"), context.get("data_interval_end")
    if start is None or end is None or not start < end:
        return None
    last = end - dt.timedelta(milliseconds=1)
    return format_timestamp(start), format_timestamp(last)


class BasePourOperator(BaseOperator):
    """What the four pour operators share: connections, channel, rate limit, dry run,
    progress logging and a clean stop on kill."""

    template_fields: Sequence[str] = (
        "event_store_conn_id",
        "message_channel_conn_id",
        "rate_limit",
        "pour_dry_run",
        "resume_from",
        "log_messages",
        "count_first",
    )
    template_fields_renderers: ClassVar[dict[str, str]] = {
        "options": "json",
        "filters": "json",
        "resume_from": "json",
    }
    ui_color = "#f2d4b6"

    def __init__(
        self,
        *,
        event_store_conn_id: str = CastoreEventStoreHook.default_conn_name,
        message_channel_conn_id: str = CastoreMessageChannelHook.default_conn_name,
        rate_limit: float | str | None = None,
        dry_run: bool | str = False,
        progress_interval: float = 5.0,
        resume_from: Mapping[str, Any] | str | None = None,
        log_messages: bool | str = False,
        count_first: bool | str = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.log_messages = log_messages
        self.count_first = count_first
        self.resume_from = resume_from
        self.event_store_conn_id = event_store_conn_id
        self.message_channel_conn_id = message_channel_conn_id
        self.rate_limit = rate_limit
        # BaseOperator.dry_run() is a method (render templates only): keep it usable.
        self.pour_dry_run = dry_run
        self.progress_interval = progress_interval
        self._progress: PourProgress | None = None
        self._opened_stores: list[EventStore] = []
        self._poured: tuple[Mapping[str, Any], bool] | None = None

    def event_store(self, event_store_id: str) -> EventStore:
        """The store from the connection; closed (its connections released) when the pour
        ends."""
        store = CastoreEventStoreHook(self.event_store_conn_id).get_event_store(event_store_id)
        self._opened_stores.append(store)
        return store

    def _close_stores(self) -> None:
        while self._opened_stores:
            close = getattr(self._opened_stores.pop(), "close", None)
            if close is not None:
                close()

    def pour(
        self, channel: MessageChannel, rate_limit: float | None, **engine: Any
    ) -> Mapping[str, Any]:
        """Run the engine's utility; ``engine`` holds its keyword arguments (``progress``,
        ``checkpoint``, ``on_checkpoint``)."""
        raise NotImplementedError

    def message_channel(self) -> MessageChannel:
        """Where the pour goes (not for dry runs): the message channel connection's."""
        return CastoreMessageChannelHook(self.message_channel_conn_id).get_message_channel()

    def execute(self, context: Context) -> dict[str, Any]:
        dry_run = rendered_bool(self.pour_dry_run, "dry_run")
        rate_limit = rendered_rate_limit(self.rate_limit)
        checkpoints = None if dry_run else TaskCheckpoints.of(context, self.resume_from)
        if checkpoints is not None and not checkpoints.kept_across_retries:
            self.log.warning(
                "No task instance in the context: a retry of this pour would start it over"
            )
        # A dry run is its own count.
        count_first = rendered_bool(self.count_first, "count_first") and not dry_run
        total = self._count() if count_first else None
        counting = DryRunMessageChannel() if dry_run else None
        channel: MessageChannel = counting or self.message_channel()
        if rendered_bool(self.log_messages, "log_messages"):
            channel = LoggedMessageChannel(channel, self._log_message)
        self._progress = PourProgress(self._log_progress, self.progress_interval, total=total)
        try:
            if checkpoints is None:
                result = dict(self.pour(channel, rate_limit, progress=self._progress))
            else:
                result = dict(self._pour_resuming(channel, rate_limit, checkpoints))
        except Exception:
            if checkpoints is not None and checkpoints.last is not None:
                self.log.error(
                    "Pour failed; a retry of this task resumes from its last checkpoint. "
                    "To resume it after clearing the task, pass it as resume_from: %s",
                    json.dumps(checkpoints.last),
                )
            raise
        finally:
            self._close_stores()
            close = getattr(channel, "close", None)
            if close is not None:
                close()
        if checkpoints is not None:
            checkpoints.finished()
        if counting is not None:
            result["dry_run"] = counting.summary()
            self.log.info("Dry run, nothing published: %s", result["dry_run"])
        self._poured = (result, dry_run)
        report = self._progress.final(poured_count(result))
        self.log.info("Pour done:\n%s", summary_table(result, report))
        extra = asset_extra(result)
        if attach_to_outlets(self.outlets, context.get("outlet_events"), extra):
            self.log.info("Asset events carry the counts: %s", extra)
        self.log.info("Result: %s", result)
        return result

    def lineage_outputs(self, result: Mapping[str, Any]) -> dict[tuple[str, str], int]:
        """Per OpenLineage dataset written, the messages poured into it: the channel's."""
        channel = CastoreMessageChannelHook(self.message_channel_conn_id).lineage_dataset()
        return {channel: poured_count(result)}

    def _lineage_of(self, result: Mapping[str, Any], dry_run: bool) -> PourLineage | None:
        """What the pour read and wrote, for OpenLineage; None (and a warning) when the
        connections cannot tell."""
        inputs = result.get("digest", {}).get("inputs", {})
        store_ids = inputs.get("event_store_ids") or [inputs.get("event_store_id")]
        hook = CastoreEventStoreHook(self.event_store_conn_id)
        try:
            lineage = PourLineage()
            lineage.read(hook.lineage_dataset(str(store_id)) for store_id in store_ids)
            if not dry_run:
                for dataset, count in self.lineage_outputs(result).items():
                    lineage.wrote(dataset, count)
        except Exception as error:
            self.log.warning("No lineage for this pour: %s", error)
            return None
        return lineage

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """Inputs: the stores read; outputs: the queue, bus or store written, with the
        messages poured as row count (see :mod:`~.lineage`); worked out here, where only the
        OpenLineage provider asks, from the result ``execute`` kept."""
        return operator_lineage(None if self._poured is None else self._lineage_of(*self._poured))

    def _count(self) -> int:
        """What the pour will publish, counted by a dry run of it first."""
        try:
            counted = self.pour(DryRunMessageChannel(), None)
        finally:
            self._close_stores()
        total = poured_count(counted)
        self.log.info("A dry run counted %d messages to pour", total)
        return total

    def _log_message(self, message: Message, replay: bool) -> None:
        self.log.info("Published (replay=%s): %s", replay, message)

    def _pour_resuming(
        self, channel: MessageChannel, rate_limit: float | None, checkpoints: TaskCheckpoints
    ) -> Mapping[str, Any]:
        """The pour, from the checkpoint of an earlier try (else from ``resume_from``), saving
        a checkpoint after every confirmed batch. An earlier try's checkpoint that does not
        fit this pour (its arguments changed) is dropped with a warning."""
        saved = checkpoints.saved()
        checkpoint = saved or checkpoints.given()
        if checkpoint is not None:
            self.log.info(
                "Resuming the pour from %s: %s",
                "an earlier try's checkpoint" if saved else "resume_from",
                json.dumps(checkpoint.get("result")),
            )
        engine = {"progress": self._progress, "on_checkpoint": checkpoints.save}
        try:
            return self.pour(channel, rate_limit, checkpoint=checkpoint, **engine)
        except CheckpointMismatchError as error:
            if saved is None:
                raise
            self.log.warning("Not resuming (%s); starting the pour over", error)
            return self.pour(channel, rate_limit, checkpoint=None, **engine)

    def _log_progress(self, report: ProgressReport) -> None:
        self.log.info("%s", progress_line(report))

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
        "filters",
    )

    def __init__(
        self,
        *,
        event_store_id: str,
        options: Mapping[str, Any] | None = None,
        filters: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.event_store_id = event_store_id
        self.options = options
        self.filters = filters

    def pour(
        self, channel: MessageChannel, rate_limit: float | None, **engine: Any
    ) -> Mapping[str, Any]:
        return pour_event_store_aggregate_ids(
            self.event_store(self.event_store_id),
            channel,
            rendered_options(self.options),
            rate_limit,
            filters=rendered_filters(self.filters),
            **engine,
        )


class EventPourOperator(BasePourOperator):
    """A pour of events, which a transform may change (``transform``: the import path of a
    function, see :mod:`~airflow_provider_castore_dam.dam.transforms`) and whose event stores
    it may pour under other ids (``rename_event_stores``)."""

    template_fields: Sequence[str] = (
        *BasePourOperator.template_fields,
        "transform",
        "rename_event_stores",
        "data_interval_filters",
    )

    def __init__(
        self,
        *,
        transform: str | None = None,
        rename_event_stores: Mapping[str, str] | None = None,
        data_interval_filters: bool | str = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.transform = transform
        self.rename_event_stores = rename_event_stores
        self.data_interval_filters = data_interval_filters
        self.filters: Any = None
        self._data_interval: tuple[str, str] | None = None

    def execute(self, context: Context) -> dict[str, Any]:
        self._data_interval = None
        if rendered_bool(self.data_interval_filters, "data_interval_filters"):
            self._data_interval = data_interval(context)
        return super().execute(context)

    def pour_filters(self) -> Any:
        """The rendered filters; without ``from`` and ``to``, in a run with a data interval
        (a DAG with a time-based schedule), the interval: ``[start, end)``."""
        filters = rendered_filters(self.filters)
        interval = self._data_interval
        if interval is None or not isinstance(filters, Mapping | None):
            return filters
        if filters is not None and ("from" in filters or "to" in filters):
            return filters
        start, end = interval
        self.log.info("Pouring the run's data interval [%s, %s)", start, end)
        return {**(filters or {}), "from": start, "to": end}

    def transforms(self) -> dict[str, Any]:
        """The engine's ``transform`` and ``rename_event_stores`` arguments, as rendered."""
        transform = self.transform.strip() if isinstance(self.transform, str) else None
        return {
            "transform": transform or None,
            "rename_event_stores": rendered_literal(
                self.rename_event_stores, "rename_event_stores", "a dict of event store ids"
            ),
        }


class PourAggregateEventsOperator(EventPourOperator):
    """Pours the events of one aggregate
    (:func:`~airflow_provider_castore_dam.dam.pour_aggregate_events`)."""

    template_fields: Sequence[str] = (
        *EventPourOperator.template_fields,
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
        self, channel: MessageChannel, rate_limit: float | None, **engine: Any
    ) -> Mapping[str, Any]:
        return pour_aggregate_events(
            self.event_store(self.event_store_id),
            channel,
            self.aggregate_id,
            rendered_options(self.options),
            self.pour_filters(),
            rate_limit,
            **self.transforms(),
            **engine,
        )


class PartitionablePourOperator(EventPourOperator):
    """A pour of one partition of the aggregates (``partition``: ``{"index", "count"}`` or
    ``[index, count]``; None for all), or of all of them spread over mapped tasks with
    :meth:`partitioned`."""

    template_fields: Sequence[str] = (*EventPourOperator.template_fields, "partition")

    def __init__(self, *, partition: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.partition = partition

    @classmethod
    def partitioned(cls, *, task_id: str, partitions: int, **kwargs: Any) -> PartitionedPour:
        """A task group that pours ``partitions`` partitions in mapped tasks of this operator
        (``kwargs`` as for the operator) and combines their results (see
        :mod:`~airflow_provider_castore_dam.operators.partitioned`)."""
        return partitioned_pour(cls, task_id=task_id, partitions=partitions, **kwargs)

    def rendered_partition(self) -> Any:
        """The partition as given, or parsed from what a template renders."""
        return rendered_literal(self.partition, "partition", "[index, count] or its JSON")


class PourEventStoreEventsOperator(PartitionablePourOperator):
    """Pours every event of one event store in timestamp order
    (:func:`~airflow_provider_castore_dam.dam.pour_event_store_events`)."""

    template_fields: Sequence[str] = (
        *PartitionablePourOperator.template_fields,
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
        self, channel: MessageChannel, rate_limit: float | None, **engine: Any
    ) -> Mapping[str, Any]:
        return pour_event_store_events(
            self.event_store(self.event_store_id),
            channel,
            self.pour_filters(),
            rate_limit,
            partition=self.rendered_partition(),
            **self.transforms(),
            **engine,
        )


class PourEventStoreCollectionEventsOperator(PartitionablePourOperator):
    """Pours the events of several event stores of one connection, merged in timestamp order
    (:func:`~airflow_provider_castore_dam.dam.pour_event_store_collection_events`).

    ``event_store_ids``: a list, or a comma-separated string (e.g. from a template)."""

    template_fields: Sequence[str] = (
        *PartitionablePourOperator.template_fields,
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
        self, channel: MessageChannel, rate_limit: float | None, **engine: Any
    ) -> Mapping[str, Any]:
        stores = [
            self.event_store(store_id)
            for store_id in rendered_event_store_ids(self.event_store_ids)
        ]
        return pour_event_store_collection_events(
            stores,
            channel,
            self.pour_filters(),
            rate_limit,
            partition=self.rendered_partition(),
            **self.transforms(),
            **engine,
        )
