"""The Celery harness's own DAG: eight mapped tasks that sleep, then say where they ran.

``params.sleep``: seconds each task sleeps (long enough, a worker can be killed meanwhile).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.sdk import DAG, Param, task

with DAG(
    dag_id="castore_celery_harness",
    schedule=None,
    max_active_runs=1,
    params={"sleep": Param(1.0, type="number")},
    tags=["castore", "test"],
) as dag:

    @task(retries=2, retry_delay=timedelta(seconds=1))
    def nap(item: int, **context: Any) -> dict[str, Any]:
        import time

        from airflow.sdk.api.client import get_hostname

        time.sleep(float(context["params"]["sleep"]))
        return {"item": item, "hostname": get_hostname(), "try": context["ti"].try_number}

    nap.expand(item=list(range(8)))
