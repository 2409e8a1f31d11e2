from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from airflow_provider_castore_dam.errors import MessageChannelError, PourInterruptedError


@contextmanager
def interrupted_by_channel(result: Callable[[], Mapping[str, Any]]) -> Iterator[None]:
    """Turn a channel failure into :class:`PourInterruptedError` carrying the partial result."""
    try:
        yield
    except MessageChannelError as error:
        partial = dict(result())
        raise PourInterruptedError(
            f"pour interrupted by the message channel: {error}; "
            f"confirmed before the failure: {partial}",
            result=partial,
        ) from error
