"""Migrations between event stores: a collection pour whose channel is an event store."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from airflow_provider_castore_dam.hooks.event_store import CastoreEventStoreHook
from airflow_provider_castore_dam.operators.pour import PourEventStoreCollectionEventsOperator
from airflow_provider_castore_dam.protocols import MessageChannel
from airflow_provider_castore_dam.stores.destination import parse_conflict_policy


class MigrateEventStoreOperator(PourEventStoreCollectionEventsOperator):
    """Copies event stores of ``event_store_conn_id`` into the event store table of
    ``destination_conn_id`` (a ``castore_event_store`` connection of kind postgres,
    dynamodb-single-table or dynamodb-legacy), written as Castore's adapters write it.

    Takes every argument of :class:`PourEventStoreCollectionEventsOperator`: ``filters``
    (``event_types``, ``aggregate_ids``...), ``transform`` and ``rename_event_stores``,
    ``partition`` and :meth:`partitioned`, ``rate_limit``, ``dry_run``, checkpoints.
    ``conflict``: ``fail`` (default: an event already in the destination stops the
    migration, naming it), ``skip_identical`` or ``overwrite`` (Castore's ``force``). The
    message channel connection is not used.
    """

    template_fields: Sequence[str] = (
        *PourEventStoreCollectionEventsOperator.template_fields,
        "destination_conn_id",
        "conflict",
    )
    ui_color = "#e3d4f2"

    def __init__(self, *, destination_conn_id: str, conflict: str = "fail", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.destination_conn_id = destination_conn_id
        self.conflict = conflict

    def lineage_outputs(self, result: Mapping[str, Any]) -> dict[tuple[str, str], int]:
        """The destination's tables, with the events written to each."""
        hook = CastoreEventStoreHook(self.destination_conn_id)
        outputs: dict[tuple[str, str], int] = {}
        for store_id, digest in result.get("digest", {}).get("event_stores", {}).items():
            dataset = hook.lineage_dataset(store_id)
            outputs[dataset] = outputs.get(dataset, 0) + int(digest["count"])
        return outputs

    def message_channel(self) -> MessageChannel:
        conflict = parse_conflict_policy(self.conflict)
        return CastoreEventStoreHook(self.destination_conn_id).get_destination(conflict)
