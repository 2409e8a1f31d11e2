"""Running Castore itself (Node.js scripts in this folder) from the tests.

Without Node.js the conformance tests skip with a reason on a developer's machine; when ``CI``
is set they fail instead, so CI can never pass without them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from tests.infra import skip_unless_ci

INTEROP = Path(__file__).parent
CASTORE_1 = INTEROP.parent / "interop_castore_1"
"""Castore 1.25.3's DynamoDB adapters, in a package of their own."""


def require_castore(folder: Path = INTEROP) -> None:
    """Skip (or fail under CI) when Node.js is missing; install the pinned packages if needed."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        skip_unless_ci("Node.js and npm are needed to run Castore for the conformance tests")
    if not (folder / "node_modules" / "@castore" / "core").is_dir():
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=folder,
            check=True,
        )


def run_castore(
    script: str,
    env: dict[str, str],
    stdin: Any = None,
    timeout: float = 180,
    folder: Path = INTEROP,
) -> Any:
    """Run ``node <script>`` in ``folder`` (this one: Castore 2.4.2) with ``env`` added;
    return its stdout parsed as JSON."""
    require_castore(folder)
    completed = subprocess.run(
        ["node", script],
        cwd=folder,
        env={**os.environ, **env},
        input=None if stdin is None else json.dumps(stdin),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if completed.returncode != 0:
        raise AssertionError(
            f"node {script} exited {completed.returncode}:\n{completed.stderr}\n{completed.stdout}"
        )
    return json.loads(completed.stdout)
