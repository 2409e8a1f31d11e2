"""Sorting more items than memory should hold: sorted runs spilled to temporary files, merged.

Items are gathered into runs of ``run_items``; each full run is sorted and written to an
anonymous temporary file (a :class:`Spool`: pickled chunks of ``CHUNK_ITEMS``). The sorted
output is a heap merge of the runs, reading each a chunk at a time. Whenever ``fan_in`` runs
are on disk they are merged into one, so no more than ``fan_in`` files are ever read at once.
Items held in memory:

    at most  run_items + fan_in * CHUNK_ITEMS

whatever the number of items. Input that fits in one run never touches the disk.
"""

from __future__ import annotations

import heapq
import itertools
import pickle
import tempfile
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any, Generic, TypeVar

T = TypeVar("T")

RUN_ITEMS = 10_000
FAN_IN = 16
CHUNK_ITEMS = 256


class Spool(Generic[T]):
    """Items written to an anonymous temporary file in pickled chunks, read back in the same
    order, a chunk at a time; the file is created on the first write and deleted on close."""

    def __init__(self, directory: str | None = None, prefix: str = "castore-dam-spool-") -> None:
        self._directory = directory
        self._prefix = prefix
        self._file: IO[bytes] | None = None

    def write(self, chunk: list[T]) -> None:
        if self._file is None:
            # Open for the spool's life, closed by close(): no context manager fits.
            self._file = tempfile.TemporaryFile(  # noqa: SIM115
                prefix=self._prefix, dir=self._directory
            )
        pickle.dump(chunk, self._file, protocol=pickle.HIGHEST_PROTOCOL)

    def chunks(self) -> Iterator[list[T]]:
        if self._file is None:
            return
        self._file.seek(0)
        while True:
            try:
                yield pickle.load(self._file)
            except EOFError:
                return

    def __iter__(self) -> Iterator[T]:
        for chunk in self.chunks():
            yield from chunk

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


def _run(items: Iterable[T], directory: str | None) -> Spool[T]:
    """A sorted run on disk (``items`` already sorted), in chunks of ``CHUNK_ITEMS``."""
    run: Spool[T] = Spool(directory, prefix="castore-dam-run-")
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, CHUNK_ITEMS)):
        run.write(chunk)
    return run


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
    runs: list[Spool[T]] = []

    def compact() -> None:
        merged = _run(heapq.merge(*runs, key=key), directory)
        for run in runs:
            run.close()
        runs[:] = [merged]

    try:
        buffer: list[T] = []
        for item in items:
            buffer.append(item)
            if len(buffer) >= run_items:
                buffer.sort(key=key)
                runs.append(_run(buffer, directory))
                buffer = []
                if len(runs) >= fan_in:
                    compact()
        buffer.sort(key=key)
        yield from heapq.merge(buffer, *runs, key=key)
    finally:
        for run in runs:
            run.close()
