"""What a scenario gets: the options, the sizes, where results go, and the services it needs,
each started on first use and stopped at the end of the run."""

from __future__ import annotations

import argparse
import contextlib
from dataclasses import dataclass
from typing import Any

from tests.benchmarks.castore_reference import reference_available
from tests.benchmarks.common import log
from tests.benchmarks.postgres import Postgres, temporary_database
from tests.benchmarks.table import Row


@dataclass
class Context:
    args: argparse.Namespace
    sizes: dict[str, Any]
    stack: contextlib.ExitStack
    results: dict[str, Any]
    rows: list[Row]
    _pg: Postgres | None = None
    _moto: Any = None
    _reference: str | bool | None = False  # False: not checked yet

    @property
    def pg(self) -> Postgres:
        if self._pg is None:
            self._pg = self.stack.enter_context(temporary_database())
        return self._pg

    @property
    def postgres_origin(self) -> str | None:
        """Where the PostgreSQL server came from, if a scenario used one."""
        return self._pg.origin if self._pg is not None else None

    @property
    def moto(self) -> Any:
        if self._moto is None:
            from tests.benchmarks import moto_server

            latency = self.args.aws_latency_ms
            self._moto = self.stack.enter_context(moto_server.start(latency))
            log(f"moto server at {self._moto.endpoint_url}, {latency:g} ms added per request")
        return self._moto

    def reference_problem(self) -> str | None:
        if self._reference is False:
            self._reference = (
                "skipped (--no-reference)" if self.args.no_reference else reference_available()
            )
        return self._reference  # type: ignore[return-value]

    def aws_client(self, service: str) -> Any:
        from tests.benchmarks.moto_server import aws_client

        return aws_client(self.moto.endpoint_url, service)
