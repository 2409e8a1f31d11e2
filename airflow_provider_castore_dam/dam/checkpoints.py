"""Checkpoints: where a pour stands, so that a new run continues it without skipping anything.

A checkpoint is a JSON dict, saved whenever the channel has confirmed every message up to a
later place in the pour order (see :mod:`.in_flight`):

- ``utility``, ``inputs``: which pour it belongs to (the normalised store ids, filters and
  options); resuming a different pour from it is refused (:class:`CheckpointMismatchError`).
- ``positions``: per event store, the last confirmed message's place in the pour order:
  ``{"pour_timestamp", "aggregate_id", "version"}`` for the event pours,
  ``{"initial_event_timestamp", "aggregate_id"}`` for aggregate ids, ``{"version"}`` for one
  aggregate's events.
- ``result``: the pour's result up to that point (counts, first and last poured, and the
  digest of the confirmed messages, which a resumed pour continues: :mod:`.digest`).

Resuming pours only what comes after each store's position, so a crash re-publishes at most
the channel's ``max_in_flight`` publish calls (one with calls one at a time): at-least-once.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple, TypedDict

from airflow_provider_castore_dam.dam.digest import Digest, parse_store_digests
from airflow_provider_castore_dam.dam.inputs import parse_rate_limit
from airflow_provider_castore_dam.dam.pourer import MessagePourer
from airflow_provider_castore_dam.dam.progress import PourProgress
from airflow_provider_castore_dam.dam.transforms import (
    Entry,
    Offsets,
    Transformer,
    apply_offsets,
    transformer_for,
)
from airflow_provider_castore_dam.errors import InvalidPourInputError
from airflow_provider_castore_dam.protocols import (
    Message,
    MessageChannel,
    ScannedAggregate,
    ScanPosition,
)

CHECKPOINT_FORMAT = 2


class _CheckpointFields(TypedDict):
    format: int
    utility: str
    inputs: dict[str, Any]
    positions: dict[str, dict[str, Any]]
    result: dict[str, Any]


class Checkpoint(_CheckpointFields, total=False):
    version_offsets: Offsets
    """With a transform: the version offsets at the positions (see :mod:`.transforms`)."""


class CheckpointMismatchError(InvalidPourInputError):
    """The checkpoint was saved by another pour (other utility, stores, filters or options)."""


def parse_checkpoint(value: object, utility: str, inputs: Mapping[str, Any]) -> Checkpoint | None:
    """``value`` checked as a checkpoint of this very pour; ``None`` stays ``None``."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise InvalidPourInputError(
            f"checkpoint must be a dict saved by this version of the engine (format "
            f"{CHECKPOINT_FORMAT}), not {_shown(value)}"
        )
    if value.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointMismatchError(
            f"checkpoint was saved by another version of the engine (format "
            f"{value.get('format')!r}, not {CHECKPOINT_FORMAT}): it cannot resume this pour"
        )
    for name, kind in (("utility", str), ("inputs", dict), ("positions", dict), ("result", dict)):
        if not isinstance(value.get(name), kind):
            raise InvalidPourInputError(
                f"checkpoint {name} must be a {kind.__name__}, not {_shown(value.get(name))}"
            )
    if value["utility"] != utility or value["inputs"] != dict(inputs):
        raise CheckpointMismatchError(
            f"checkpoint was saved by {value['utility']} with {value['inputs']}, not by "
            f"{utility} with {dict(inputs)}: it cannot resume this pour"
        )
    for store_id, position in value["positions"].items():
        if not isinstance(position, dict):
            raise InvalidPourInputError(
                f"checkpoint position of {store_id!r} must be a dict, not {_shown(position)}"
            )
    checkpoint = Checkpoint(
        format=CHECKPOINT_FORMAT,
        utility=utility,
        inputs=dict(inputs),
        positions={store_id: dict(p) for store_id, p in value["positions"].items()},
        result=dict(value["result"]),
    )
    offsets = value.get("version_offsets", {})
    if not isinstance(offsets, dict) or not all(
        isinstance(by_id, dict)
        and all(isinstance(n, int) and not isinstance(n, bool) for n in by_id.values())
        for by_id in offsets.values()
    ):
        raise InvalidPourInputError(
            f"checkpoint version_offsets must map store ids to {{aggregate id: int}}, "
            f"not {_shown(offsets)}"
        )
    if offsets:
        checkpoint["version_offsets"] = {store: dict(by_id) for store, by_id in offsets.items()}
    return checkpoint


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


def _field(position: Mapping[str, Any], name: str, kind: type, store_id: str) -> Any:
    value = position.get(name)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise InvalidPourInputError(
            f"checkpoint position of {store_id!r} needs {name} as {kind.__name__}, "
            f"not {_shown(value)}"
        )
    return value


def event_position(position: Mapping[str, Any], store_id: str) -> ScanPosition:
    return (
        _field(position, "pour_timestamp", str, store_id),
        _field(position, "aggregate_id", str, store_id),
        _field(position, "version", int, store_id),
    )


def event_positions(resumed: Checkpoint | None) -> dict[str, ScanPosition]:
    """Per event store id, its place in the pour order in a resumed event pour."""
    if resumed is None:
        return {}
    return {
        store_id: event_position(position, store_id)
        for store_id, position in resumed["positions"].items()
    }


def aggregate_position(position: Mapping[str, Any], store_id: str) -> tuple[str, str]:
    return (
        _field(position, "initial_event_timestamp", str, store_id),
        _field(position, "aggregate_id", str, store_id),
    )


def version_position(position: Mapping[str, Any], store_id: str) -> int:
    return int(_field(position, "version", int, store_id))


# --------------------------------------------------------------------------- positions


def _event_message_position(message: Message, pour_timestamp: str | None) -> dict[str, Any]:
    event = message["event"]
    return {
        "pour_timestamp": pour_timestamp or event["timestamp"],
        "aggregate_id": event["aggregateId"],
        "version": event["version"],
    }


def _aggregate_message_position(message: Message, _: str | None) -> dict[str, Any]:
    return {
        "initial_event_timestamp": message["initialEventTimestamp"],
        "aggregate_id": message["aggregateId"],
    }


def _version_message_position(message: Message, _: str | None) -> dict[str, Any]:
    return {"version": message["event"]["version"]}


POSITION_OF = {
    "pour_event_store_events": _event_message_position,
    "pour_event_store_collection_events": _event_message_position,
    "pour_event_store_aggregate_ids": _aggregate_message_position,
    "pour_aggregate_events": _version_message_position,
}


class CheckpointLedger:
    """Messages handed to the pourer and not yet confirmed, in order, with their pour
    timestamps (or, with a transform, the :class:`~.transforms.Entry` of each). Confirmations
    (:meth:`confirmed`) move each store's position forward and save a checkpoint. Holds at
    most the messages between two confirmations."""

    def __init__(
        self,
        utility: str,
        inputs: Mapping[str, Any],
        resumed: Checkpoint | None,
        result: Callable[[], Mapping[str, Any]],
        save: Callable[[Checkpoint], None],
    ) -> None:
        self._utility = utility
        self._inputs = dict(inputs)
        self._position_of = POSITION_OF[utility]
        self._positions = {} if resumed is None else dict(resumed["positions"])
        self._result = result
        self._save = save
        self._offsets: Offsets = {} if resumed is None else resumed.get("version_offsets", {})
        self._pending: deque[tuple[Message, str | None] | Entry] = deque()

    def add(
        self, messages: Sequence[Message], pour_timestamps: Iterable[str] | None = None
    ) -> None:
        if pour_timestamps is None:
            self._pending.extend((message, None) for message in messages)
        else:
            self._pending.extend(zip(messages, pour_timestamps, strict=True))

    def add_entries(self, entries: Iterable[Entry]) -> None:
        """The entries of transformed messages, one per message handed to the pourer."""
        self._pending.extend(entries)

    def confirmed(self, count: int) -> None:
        if count <= 0:
            return
        at_boundary = True
        for _ in range(count):
            entry = self._pending.popleft()
            if isinstance(entry, Entry):
                for message, pour_timestamp in entry.positions:
                    self._move(message, pour_timestamp)
                apply_offsets(self._offsets, entry.offsets)
                at_boundary = bool(entry.positions)
            else:
                self._move(*entry)
        if at_boundary:  # not within a fanned-out event: counts and positions agree
            self._save(self.checkpoint())

    def _move(self, message: Message, pour_timestamp: str | None) -> None:
        self._positions[message["eventStoreId"]] = self._position_of(message, pour_timestamp)

    def checkpoint(self) -> Checkpoint:
        checkpoint = Checkpoint(
            format=CHECKPOINT_FORMAT,
            utility=self._utility,
            inputs=dict(self._inputs),
            positions={store_id: dict(p) for store_id, p in self._positions.items()},
            result=dict(self._result()),
        )
        if self._offsets:
            checkpoint["version_offsets"] = {s: dict(ids) for s, ids in self._offsets.items()}
        return checkpoint


# --------------------------------------------------------------------------- resuming


def aggregates_after(
    aggregates: Iterable[ScannedAggregate], position: tuple[str, str] | None
) -> Iterator[ScannedAggregate]:
    """The listing after ``position`` (initial timestamp, aggregate id), for a listing that
    starts at that timestamp. Aggregates tied with it come in the store's fixed order: those
    up to the position's are skipped; should it not be among them, they are all poured."""
    if position is None:
        yield from aggregates
        return
    timestamp, aggregate_id = position
    held: list[ScannedAggregate] | None = []
    for aggregate in aggregates:
        if held is not None and aggregate["initial_event_timestamp"] == timestamp:
            if aggregate["aggregate_id"] == aggregate_id:
                held = None
            else:
                held.append(aggregate)
            continue
        if held:
            yield from held
        held = None
        yield aggregate
    if held:
        yield from held


POURED_COUNT = {
    "pour_event_store_events": "poured_event_count",
    "pour_event_store_collection_events": "poured_event_count",
    "pour_event_store_aggregate_ids": "poured_aggregate_id_count",
    "pour_aggregate_events": "poured_event_count",
}


class ResumablePour(NamedTuple):
    pourer: MessagePourer
    resumed: Checkpoint | None
    """The checkpoint this pour continues, checked against its inputs."""
    ledger: CheckpointLedger | None
    """Tells ``on_checkpoint`` after every confirmed batch; ``None`` without it."""
    transformer: Transformer | None = None
    """Applies the pour's transform and renames (see :mod:`.transforms`), if any."""


def start_pour(
    utility: str,
    inputs: Mapping[str, Any],
    message_channel: MessageChannel,
    rate_limit: object,
    progress: PourProgress | None,
    checkpoint: object,
    on_checkpoint: object,
    result: Callable[[], Mapping[str, Any]],
) -> ResumablePour:
    """The pourer of a pour that may continue ``checkpoint`` and save new ones: its count
    starts at the resumed pour's, and each confirmed batch moves the ledger on."""
    resumed = parse_checkpoint(checkpoint, utility, inputs)
    if on_checkpoint is not None and not callable(on_checkpoint):
        raise InvalidPourInputError(
            "on_checkpoint must be a callable taking the checkpoint dict, not "
            f"{_shown(on_checkpoint)}"
        )
    ledger = (
        None
        if on_checkpoint is None
        else CheckpointLedger(utility, inputs, resumed, result, on_checkpoint)
    )
    pourer = MessagePourer(
        message_channel,
        parse_rate_limit(rate_limit),
        progress,
        already_poured=resumed_result(resumed, POURED_COUNT[utility], 0),
        digest=_digest_to_continue(resumed, inputs),
        on_confirmed=None if ledger is None else ledger.confirmed,
    )
    expect_repeats = getattr(message_channel, "expect_repeats", None)
    if resumed is not None and callable(expect_repeats):
        # A destination that checks what is already there (an event store) must take the
        # interrupted try's own writes, which the resumed pour publishes again, as written.
        expect_repeats(pourer.window)
    offsets = {} if resumed is None else resumed.get("version_offsets", {})
    return ResumablePour(pourer, resumed, ledger, transformer_for(inputs, offsets))


def _digest_to_continue(resumed: Checkpoint | None, inputs: Mapping[str, Any]) -> Digest:
    """The resumed pour's digest, or an empty one for the pour's stores."""
    if resumed is None:
        renames = inputs.get("rename_event_stores") or {}
        store_ids = inputs.get("event_store_ids") or [inputs["event_store_id"]]
        return Digest(renames.get(store_id, store_id) for store_id in store_ids)
    saved = resumed["result"].get("digest")
    stores = saved.get("event_stores") if isinstance(saved, Mapping) else None
    return Digest.of(parse_store_digests(stores, "checkpoint digest"))


def resumed_result(resumed: Checkpoint | None, name: str, default: Any = None) -> Any:
    """A value of the resumed pour's result (what it had confirmed), else ``default``."""
    return default if resumed is None else resumed["result"].get(name, default)
