"""Transforms (upcasters) and event store renames, applied to each event between the read and
the channel.

``transform(event_store_id, event)`` returns the event to pour in its place, a list of events
(fanned out, in that order), or None (dropped). It is given as a callable importable by path
(a module-level function) or as its import path, ``"package.module:function"``: the path is
what checkpoints and digests record, so a resumed pour or a reconciliation runs it again.
``rename_event_stores`` maps event store ids to the ids to pour them under
(``{"POKEMONS": "POKEMONS_V2"}``).

**Versions stay contiguous per aggregate.** A transform may change anything in an event but
its ``aggregateId``; the engine numbers what it returns: the outputs of an event of version
``v`` get versions ``v + o``, ``v + o + 1``... where ``o``, the aggregate's offset, is how
many more events than it read the transform has returned for the aggregate so far in this
pour (dropped: one less; fanned out to ``k``: ``k - 1`` more). A pour that reads each
aggregate from its version 1 therefore pours versions 1, 2, 3... with no gap; one that starts
later (``from``, ``min_version``) numbers from where it starts. The offsets of the aggregates
whose count changed are kept in memory and in checkpoints (a transform that changes the count
of every aggregate keeps one number per aggregate).

An error in a transform, or a return value that is not an event, a list of events or None,
stops the pour naming the event: nothing after it is published.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_castore_dam.errors import CastoreDamError, InvalidPourInputError
from airflow_provider_castore_dam.protocols import EventDetail, Message

Transform = Callable[[str, EventDetail], Any]
Offsets = dict[str, dict[str, int]]
"""Per event store id and aggregate id, the aggregate's version offset (never 0)."""


class TransformError(CastoreDamError):
    """A transform failed on an event, or returned something that is not events.
    ``before`` holds the messages of its call that came before the event (and their
    checkpoint entries), which may still be poured."""

    before: tuple[list[Message], list[Entry]] = ([], [])


def load_transform(path: str) -> Transform:
    """The callable at ``"package.module:function"`` (or ``"package.module.function"``)."""
    module_name, _, attribute = path.partition(":") if ":" in path else path.rpartition(".")
    if not module_name or not attribute:
        raise InvalidPourInputError(
            f"transform must be an import path 'package.module:function', not {path!r}"
        )
    try:
        target: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as error:
        raise InvalidPourInputError(f"cannot import transform {path!r}: {error}") from error
    if not callable(target):
        raise InvalidPourInputError(f"transform {path!r} is not callable")
    return target  # type: ignore[no-any-return]


def transform_path(transform: object) -> str:
    """The import path of ``transform`` (a path, or a module-level callable)."""
    if isinstance(transform, str):
        load_transform(transform)
        return transform
    module = getattr(transform, "__module__", None)
    name = getattr(transform, "__qualname__", None)
    if not callable(transform) or not module or not name or "<" in name:
        raise InvalidPourInputError(
            "transform must be a module-level function or its import path "
            f"('package.module:function'), so that resumes and reconciliations can run it "
            f"again; not {transform!r}"
        )
    path = f"{module}:{name}"
    if load_transform(path) is not transform:
        raise InvalidPourInputError(f"transform {transform!r} is not what {path!r} imports")
    return path


def parse_renames(value: object) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and k and isinstance(v, str) and v for k, v in value.items()
    ):
        raise InvalidPourInputError(
            f"rename_event_stores must map event store ids to non-empty ids, not {value!r}"
        )
    return dict(value)


@dataclass(frozen=True)
class Entry:
    """What confirming one poured message tells the checkpoint: the places in the read
    (store id, message as read, pour timestamp) and the offsets it settles. An output that
    is not the last of its event has none: a checkpoint cannot stop within an event."""

    positions: list[tuple[Message, str | None]] = field(default_factory=list)
    offsets: list[tuple[str, str, int]] = field(default_factory=list)


class Transformer:
    """Applies a transform and renames to messages as read, numbering versions."""

    def __init__(
        self,
        transform: Transform | None,
        path: str | None,
        renames: Mapping[str, str],
        offsets: Offsets,
    ) -> None:
        self._transform = transform
        self._path = path
        self._renames = dict(renames)
        self._offsets = {store: dict(by_id) for store, by_id in offsets.items()}
        self._carried = Entry()

    def apply(
        self, messages: Sequence[Message], pour_timestamps: Sequence[str | None]
    ) -> tuple[list[Message], list[Entry]]:
        """The messages to pour, and one checkpoint entry for each: an event dropped at the
        end of the call tells the next message's entry."""
        outputs: list[Message] = []
        entries: list[Entry] = []
        for message, pour_timestamp in zip(messages, pour_timestamps, strict=True):
            store_id, event = message["eventStoreId"], message["event"]
            aggregate_id = event["aggregateId"]
            try:
                events = self._call(store_id, event)
            except TransformError as error:
                error.before = (outputs, entries)
                raise
            offset = self._offsets.get(store_id, {}).get(aggregate_id, 0)
            poured_id = self._renames.get(store_id, store_id)
            for index, output in enumerate(events):
                numbered = {
                    **output,
                    "aggregateId": aggregate_id,
                    "version": event["version"] + offset + index,
                }
                outputs.append({"eventStoreId": poured_id, "event": numbered})
                entries.append(Entry())
            new_offset = offset + len(events) - 1
            self._carried.positions.append((message, pour_timestamp))
            if new_offset != offset:
                update = (store_id, aggregate_id, new_offset)
                apply_offsets(self._offsets, [update])
                self._carried.offsets.append(update)
            if events:  # the last output of this event carries it (and the dropped before)
                entries[-1] = self._carried
                self._carried = Entry()
        return outputs, entries

    def _call(self, store_id: str, event: EventDetail) -> list[EventDetail]:
        if self._transform is None:
            return [event]
        where = (
            f"event {event['version']} of aggregate {event['aggregateId']!r} "
            f"of event store {store_id!r}"
        )
        try:
            returned = self._transform(store_id, dict(event))
        except Exception as error:
            raise TransformError(
                f"transform {self._path} failed on {where}: {type(error).__name__}: {error}"
            ) from error
        events = [] if returned is None else returned if isinstance(returned, list) else [returned]
        for output in events:
            if not isinstance(output, dict):
                raise TransformError(
                    f"transform {self._path} returned {str(returned)[:200]} for {where}: an "
                    "event, a list of events or None was expected"
                )
            if output.get("aggregateId", event["aggregateId"]) != event["aggregateId"]:
                raise TransformError(
                    f"transform {self._path} moved {where} to aggregate "
                    f"{output.get('aggregateId')!r}: a transform keeps the aggregate id"
                )
        return events


def apply_offsets(offsets: Offsets, updates: list[tuple[str, str, int]]) -> None:
    """``offsets`` after the updates of confirmed entries (a zero offset is dropped)."""
    for store_id, aggregate_id, offset in updates:
        by_id = offsets.setdefault(store_id, {})
        if offset:
            by_id[aggregate_id] = offset
        else:
            by_id.pop(aggregate_id, None)
            if not by_id:
                del offsets[store_id]


def parse_transforms(transform: object, rename_event_stores: object) -> dict[str, Any]:
    """The inputs a transform and renames add to a pour's (none when neither is given)."""
    inputs: dict[str, Any] = {}
    if transform is not None:
        inputs["transform"] = transform_path(transform)
    renames = parse_renames(rename_event_stores)
    if renames:
        inputs["rename_event_stores"] = renames
    return inputs


def transformer_for(inputs: Mapping[str, Any], offsets: Offsets) -> Transformer | None:
    """The transformer of a pour with these inputs (None without transform and renames),
    continuing ``offsets`` (a resumed pour's)."""
    path = inputs.get("transform")
    renames = inputs.get("rename_event_stores") or {}
    if path is None and not renames:
        return None
    return Transformer(None if path is None else load_transform(path), path, renames, offsets)
