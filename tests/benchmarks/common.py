"""What every part of the benchmark shares: the progress log, error summaries, where it runs."""

from __future__ import annotations

import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent
STORE = "POKEMONS"
"""The event store id of every scenario's (first) store."""
STARTED = time.monotonic()


def log(text: str) -> None:
    sys.stderr.write(f"[{time.monotonic() - STARTED:7.1f}s] {text}\n")
    sys.stderr.flush()


def describe(error: BaseException) -> str:
    text = f"{type(error).__name__}: {error}".strip()
    return text if len(text) < 600 else text[:600] + "..."
