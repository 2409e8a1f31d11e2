"""Benchmarks of the pour engine: ``python -m tests.benchmarks.run`` (not a test suite)."""
