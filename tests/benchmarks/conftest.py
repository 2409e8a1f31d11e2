"""The benchmarks are not tests: keep pytest from collecting anything here.

Run them with ``python -m tests.benchmarks.run`` (see docs/performance.md).
"""

collect_ignore_glob = ["*"]
