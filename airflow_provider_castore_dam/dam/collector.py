"""Fewer garbage-collector passes while a pour runs.

A pour allocates a few container objects per event (a row, the event and its payload, a
message) and frees them a batch later, by reference counting. CPython starts a collector pass
every 700 container allocations not yet freed, so each batch of 500 events sets off several
passes that walk the whole batch and find nothing to free: a quarter of the time of a
PostgreSQL pour (see docs/performance.md). While any pour runs, the youngest generation's
threshold is raised to :data:`POUR_GC_THRESHOLD`, a few batches' worth; cycles are still
collected, only less often, and the threshold is put back when the last pour ends.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

POUR_GC_THRESHOLD = 20_000
"""Container allocations between two passes of the youngest generation during a pour."""

_lock = threading.Lock()
_pours = 0
_restore: tuple[tuple[int, int, int], tuple[int, int, int]] | None = None
"""(threshold before the first running pour, threshold it set), while pours run."""


@contextmanager
def fewer_collections() -> Iterator[None]:
    """Raise the youngest generation's threshold while the block runs (nested and concurrent
    pours share one raise). A threshold of 0 (collection turned off) or one already higher is
    left alone, and so is one that someone else changed in the meantime."""
    global _pours, _restore
    with _lock:
        if _pours == 0:
            before = gc.get_threshold()
            if 0 < before[0] < POUR_GC_THRESHOLD:
                gc.set_threshold(POUR_GC_THRESHOLD, *before[1:])
                _restore = (before, gc.get_threshold())
        _pours += 1
    try:
        yield
    finally:
        with _lock:
            _pours -= 1
            if _pours == 0 and _restore is not None:
                before, raised = _restore
                _restore = None
                if gc.get_threshold() == raised:
                    gc.set_threshold(*before)
