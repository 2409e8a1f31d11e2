"""Reads of the deployment's metadata database (task instances, earlier tries, XComs)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import dict_row


@dataclass(frozen=True)
class MetadataDb:
    dsn: str

    @contextlib.contextmanager
    def _connect(self) -> Iterator[psycopg.Connection[dict[str, Any]]]:
        with psycopg.connect(self.dsn, autocommit=True, row_factory=dict_row) as conn:
            yield conn

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        """Every task instance of the run: task_id, map_index, state, hostname, try_number."""
        with self._connect() as conn:
            return conn.execute(
                "SELECT task_id, map_index, state, hostname, try_number FROM task_instance"
                " WHERE dag_id = %s AND run_id = %s ORDER BY task_id, map_index",
                (dag_id, run_id),
            ).fetchall()

    def earlier_tries(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        """The tries before each task instance's current one (``task_instance_history``)."""
        with self._connect() as conn:
            return conn.execute(
                "SELECT task_id, map_index, state, hostname, try_number"
                " FROM task_instance_history WHERE dag_id = %s AND run_id = %s"
                " ORDER BY task_id, map_index, try_number",
                (dag_id, run_id),
            ).fetchall()

    def xcom(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> Any:
        with self._connect() as conn:
            row = conn.execute(
                "SELECT value FROM xcom WHERE dag_id = %s AND run_id = %s AND task_id = %s"
                " AND map_index = %s AND key = 'return_value'",
                (dag_id, run_id, task_id, map_index),
            ).fetchone()
        if row is None:
            raise LookupError(f"no XCom return_value of {task_id}[{map_index}] in {run_id}")
        value = row["value"]
        return json.loads(value) if isinstance(value, (str, bytes)) else value
