"""Session-wide test setup.

Airflow reads its configuration when first imported, so it is pointed at a throwaway home
(SQLite metadata database, this repository's example DAGs) before any test imports it.
"""

import atexit
import os
import shutil
import tempfile
from pathlib import Path

_AIRFLOW_HOME = tempfile.mkdtemp(prefix="castore-dam-airflow-")
atexit.register(shutil.rmtree, _AIRFLOW_HOME, True)
os.environ.update(
    {
        "AIRFLOW_HOME": _AIRFLOW_HOME,
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "True",
        "AIRFLOW__CORE__DAGS_FOLDER": str(Path(__file__).parent.parent / "example_dags"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{_AIRFLOW_HOME}/airflow.db",
    }
)

pytest_plugins = ["tests.infra"]
