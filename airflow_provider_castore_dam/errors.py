"""Exceptions raised by the pour engine, the stores and the channels.

Every exception of this package derives from :class:`CastoreDamError`, so one ``except`` clause
catches them all.
"""

from __future__ import annotations

from typing import Any


class CastoreDamError(Exception):
    """Base class of every error raised by this package."""


class InvalidPourInputError(CastoreDamError, ValueError):
    """A pour argument is invalid. Raised before anything is published."""


class EventStoreError(CastoreDamError):
    """An event store could not be read (missing table, wrong layout, unreachable server...)."""


class MessageChannelError(CastoreDamError):
    """A message channel refused or could not confirm messages.

    ``confirmed_count`` is the number of messages of the failed call that the channel did confirm
    before giving up; they count as poured.
    """

    def __init__(self, message: str, *, confirmed_count: int = 0) -> None:
        super().__init__(message)
        self.confirmed_count = confirmed_count


class EventAlreadyExistsError(MessageChannelError):
    """An event store written to already holds this (event store, aggregate, version) and the
    conflict policy does not let the write go on (Castore's ``EventAlreadyExistsError``)."""

    def __init__(
        self, message: str, *, event_store_id: str, aggregate_id: str, version: int
    ) -> None:
        super().__init__(message)
        self.event_store_id = event_store_id
        self.aggregate_id = aggregate_id
        self.version = version


class PourInterruptedError(CastoreDamError):
    """A pour stopped before its end; ``result`` holds what the channel confirmed until then."""

    def __init__(self, message: str, *, result: dict[str, Any]) -> None:
        super().__init__(message)
        self.result = result


class PourStoppedError(CastoreDamError):
    """A pour was stopped on request (:meth:`PourProgress.stop`) between two publish calls."""


class ConnectionConfigError(CastoreDamError, ValueError):
    """An Airflow connection cannot describe an event store or a message channel."""
