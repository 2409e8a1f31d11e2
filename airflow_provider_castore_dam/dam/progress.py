"""Watching a running pour from outside: periodic progress reports and a clean stop."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class ProgressReport:
    poured_count: int
    elapsed_seconds: float
    total: int | None = None
    """Messages the pour will publish in all, when known (a count or a dry run first)."""

    @property
    def rate(self) -> float:
        """Messages per second since the pour started."""
        return self.poured_count / self.elapsed_seconds if self.elapsed_seconds > 0 else 0.0

    @property
    def percent(self) -> float | None:
        if not self.total:
            return None
        return min(100.0, 100.0 * self.poured_count / self.total)

    @property
    def eta_seconds(self) -> float | None:
        """Seconds left at the rate so far, when the total is known."""
        if self.total is None or self.rate <= 0:
            return None
        return max(0, self.total - self.poured_count) / self.rate


class PourProgress:
    """Passed to a pour as ``progress=``: calls ``report`` at most every ``interval`` seconds
    with what the channel confirmed so far, and stops the pour when :meth:`stop` is called
    (from any thread) before its next publish call."""

    def __init__(
        self,
        report: Callable[[ProgressReport], None] | None = None,
        interval: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        total: int | None = None,
    ) -> None:
        self._report = report
        self.total = total
        self._interval = interval
        self._clock = clock
        self._started = clock()
        self._last_report = self._started
        self._stop = threading.Event()

    def stop(self) -> None:
        self._stop.set()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def record(self, poured_count: int) -> None:
        now = self._clock()
        if self._report is not None and now - self._last_report >= self._interval:
            self._last_report = now
            self._report(ProgressReport(poured_count, now - self._started, self.total))

    def final(self, poured_count: int) -> ProgressReport:
        """The report of a finished pour."""
        return ProgressReport(poured_count, self._clock() - self._started, self.total)
