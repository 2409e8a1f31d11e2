"""Sorting more items than memory should hold: sorted runs spilled to temporary files, merged.

Items are gathered into runs of ``run_items``; each full run is sorted and written to an
anonymous temporary file (pickled chunks of ``CHUNK_ITEMS``). The sorted output is a heap merge
of the runs, reading each a chunk at a time. Whenever ``fan_in`` runs are on disk they are
merged into one, so no more than ``fan_in`` files are ever read at once. Items held in memory:

    at most  run_items + fan_in * CHUNK_ITEMS

whatever the number of items. Input that fits in one run never touches the disk.
"""

from __future__ import annotations

import heapq
import pickle
import tempfile
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any, TypeVar

T = TypeVar("T")

RUN_ITEMS = 10_000
FAN_IN = 16
CHUNK_ITEMS = 256


class _Run:
    """A sorted run on disk, deleted when closed."""

    def __init__(self, items: Iterable[Any], directory: str | None) -> None:
        # Open for the run's life, closed by close(): no context manager fits.
        self._file: IO[bytes] = tempfile.TemporaryFile(  # noqa: SIM115
            prefix="castore-dam-run-", dir=directory
        )
        chunk: list[Any] = []
        for item in items:
            chunk.append(item)
            if len(chunk) == CHUNK_ITEMS:
                pickle.dump(chunk, self._file, protocol=pickle.HIGHEST_PROTOCOL)
                chunk = []
        if chunk:
            pickle.dump(chunk, self._file, protocol=pickle.HIGHEST_PROTOCOL)

    def __iter__(self) -> Iterator[Any]:
        self._file.seek(0)
        while True:
            try:
                chunk = pickle.load(self._file)
            except EOFError:
                return
            yield from chunk

    def close(self) -> None:
        self._file.close()


def external_sort(
    items: Iterable[T],
    key: Callable[[T], Any],
    *,
    run_items: int = RUN_ITEMS,
    fan_in: int = FAN_IN,
    directory: str | None = None,
) -> Iterator[T]:
    """``items`` sorted by ``key`` (ties in no particular order), with bounded memory.

    Temporary files go to ``directory`` (default: :func:`tempfile.gettempdir`) and are deleted
    when the sort ends or its iterator is closed."""
    if run_items < 1 or fan_in < 2:
        raise ValueError("external_sort needs run_items >= 1 and fan_in >= 2")
    runs: list[_Run] = []

    def compact() -> None:
        merged = _Run(heapq.merge(*runs, key=key), directory)
        for run in runs:
            run.close()
        runs[:] = [merged]

    try:
        buffer: list[T] = []
        for item in items:
            buffer.append(item)
            if len(buffer) >= run_items:
                buffer.sort(key=key)
                runs.append(_Run(buffer, directory))
                buffer = []
                if len(runs) >= fan_in:
                    compact()
        buffer.sort(key=key)
        yield from heapq.merge(buffer, *runs, key=key)
    finally:
        for run in runs:
            run.close()
