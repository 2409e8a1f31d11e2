from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from airflow_provider_castore_dam.dam.transforms import TransformError
from airflow_provider_castore_dam.errors import (
    MessageChannelError,
    PourInterruptedError,
    PourStoppedError,
)

_CAUSES = {PourStoppedError: "stopped on request", TransformError: "stopped by its transform"}


@contextmanager
def interrupted_by_channel(result: Callable[[], Mapping[str, Any]]) -> Iterator[None]:
    """Turn a channel failure or a stop request into :class:`PourInterruptedError` carrying
    the partial result."""
    try:
        yield
    except (MessageChannelError, PourStoppedError, TransformError) as error:
        partial = dict(result())
        cause = _CAUSES.get(type(error), "interrupted")
        raise PourInterruptedError(
            f"pour {cause}: {error}; confirmed before that: {partial}", result=partial
        ) from error
