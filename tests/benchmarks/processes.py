"""Child processes that print one JSON document, run under a time limit."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import tempfile
import threading
from collections.abc import Sequence
from typing import Any

from tests.benchmarks.common import REPO, log


def run_measured(
    cmd: Sequence[str], *, env: dict[str, str] | None = None, timeout: float
) -> dict[str, Any]:
    """Run ``cmd`` (which prints one JSON document); return it with the child's own peak RSS
    as seen by ``wait4`` (``child_maxrss_kb``: this child only, but Linux counts the parent's
    RSS at fork/exec time in it, so it is an upper bound; the child's own VmHWM, read after
    exec, is the measure used)."""
    with tempfile.TemporaryFile() as stderr:
        proc = subprocess.Popen(list(cmd), stdout=subprocess.PIPE, stderr=stderr, cwd=REPO, env=env)
        killer = _Killer(proc, timeout)
        try:
            stdout = proc.stdout.read() if proc.stdout else b""
        finally:
            killer.cancel()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.stdout:
            proc.stdout.close()
        stderr.seek(0)
        err = stderr.read().decode(errors="replace")
    if proc.returncode != 0 or not stdout.strip():
        lines = [line for line in err.strip().splitlines() if line.strip()]
        last = lines[-1].strip() if lines else "no output"
        killed = f" (killed after {timeout:.0f}s)" if killer.fired else ""
        log(f"{cmd[0]} ... exited {proc.returncode}{killed}; its stderr ends with:\n{err[-3000:]}")
        raise RuntimeError(f"exited {proc.returncode}{killed}: {last}")
    document = json.loads(stdout.decode().strip().splitlines()[-1])
    document["child_maxrss_kb"] = usage.ru_maxrss
    if err.strip():
        document["stderr_tail"] = err[-2000:]
    return document


class _Killer:
    def __init__(self, proc: subprocess.Popen[bytes], timeout: float) -> None:
        self.fired = False
        self._proc = proc
        self._timer = threading.Timer(timeout, self._kill)
        self._timer.daemon = True
        self._timer.start()

    def _kill(self) -> None:
        self.fired = True
        with contextlib.suppress(OSError):
            self._proc.kill()

    def cancel(self) -> None:
        self._timer.cancel()
