"""A real Airflow deployment with the CeleryExecutor, each component a process on 127.0.0.1.

``AirflowCelery.start()`` migrates the (PostgreSQL) metadata database once, then runs the
api-server, scheduler, dag-processor, triggerer and one ``airflow celery worker`` per name in
``workers``, all in one temporary ``AIRFLOW_HOME`` with their output in ``<home>/components``.
Redis is the broker (one queue named for the session, so nothing else's tasks are taken nor
ours given away); the result backend is the metadata database. Each worker process exports its
own name in ``CASTORE_DAM_TEST_HOSTNAME``, which ``tests.celery.hostname.worker_hostname``
(``[core] hostname_callable``) returns, so task instances record which worker ran them.

The configuration is in config.py. The REST API needs no login; reads of task instances and
XComs go to the metadata database directly.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import psutil

from tests.celery.config import REDIS_URL, WORKER_CONCURRENCY, deployment_env
from tests.celery.hostname import HOSTNAME_ENV
from tests.celery.metadata import MetadataDb
from tests.infra import LOOPBACK, die_with_parent, free_port

TERMINAL_RUN_STATES = {"success", "failed"}

T = TypeVar("T")


def wait_for(what: str, probe: Callable[[], T | None], timeout: float, every: float = 0.5) -> T:
    """``probe()``'s first truthy value; TimeoutError naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


@dataclass
class Component:
    name: str
    argv: list[str]
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)  # on top of the deployment's
    proc: subprocess.Popen[bytes] | None = None
    log_offset: int = 0  # the log's size when the current process started

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_text(self, since_launch: bool = False) -> str:
        if not self.log_path.exists():
            return ""
        with self.log_path.open("rb") as log:
            log.seek(self.log_offset if since_launch else 0)
            return log.read().decode(errors="replace")

    def processes(self) -> list[psutil.Process]:
        """The component's process and all its descendants (task processes have their own
        process groups, so ``killpg`` alone would miss them)."""
        if not self.running():
            return []
        assert self.proc is not None
        try:
            root = psutil.Process(self.proc.pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []


def _signal_all(processes: Sequence[psutil.Process], sig: int) -> None:
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.send_signal(sig)


@dataclass
class AirflowCelery:
    home: Path
    metadata: str  # SQLAlchemy URL of the metadata database
    metadata_dsn: str  # the same database, as a libpq DSN for direct reads
    workers: Sequence[str] = ("celery-worker-a", "celery-worker-b")
    env_extra: Mapping[str, str] = field(default_factory=dict)  # connections, AWS settings
    api_port: int = field(default_factory=free_port)
    token: str = field(default_factory=lambda: secrets.token_hex(4))
    secret_key: str = field(default_factory=lambda: secrets.token_urlsafe(32), repr=False)
    """Signs the Execution API's tokens: the same in the scheduler and the api-server."""
    components: dict[str, Component] = field(default_factory=dict, init=False)

    @property
    def db(self) -> MetadataDb:
        return MetadataDb(self.metadata_dsn)

    @property
    def api_url(self) -> str:
        return f"http://{LOOPBACK}:{self.api_port}"

    @property
    def queue(self) -> str:
        return f"castore-dam-test-{self.token}"

    def env(self) -> dict[str, str]:
        return deployment_env(
            self.home,
            metadata=self.metadata,
            api_url=self.api_url,
            queue=self.queue,
            secret_key=self.secret_key,
            extra=self.env_extra,
        )

    def _component(self, name: str, *args: str, env: Mapping[str, str] | None = None) -> None:
        argv = [sys.executable, "-m", "airflow", *args]
        log_path = self.home / "components" / f"{name}.log"
        self.components[name] = Component(name, argv, log_path, dict(env or {}))

    def _define_components(self) -> None:
        self._component("api-server", "api-server", "-H", LOOPBACK, "-p", str(self.api_port))
        self._component("scheduler", "scheduler")
        self._component("dag-processor", "dag-processor")
        self._component("triggerer", "triggerer", "--skip-serve-logs")
        for name in self.workers:
            self._component(
                name,
                "celery",
                "worker",
                "--celery-hostname",
                f"{name}-{self.token}@{LOOPBACK}",
                "--queues",
                self.queue,
                "--concurrency",
                str(WORKER_CONCURRENCY),
                "--pid",
                str(self.home / f"{name}.pid"),
                "--skip-serve-logs",
                "--without-mingle",
                "--without-gossip",
                env={HOSTNAME_ENV: name},
            )

    # ------------------------------------------------------------------ processes

    def start(self, timeout: float = 180) -> None:
        """Migrate the database, start every component, wait until all are up."""
        (self.home / "components").mkdir(parents=True, exist_ok=True)
        self._define_components()
        migrate = self.home / "components" / "db-migrate.log"
        with migrate.open("wb") as out:
            done = subprocess.run(
                [sys.executable, "-m", "airflow", "db", "migrate"],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env(),
                timeout=timeout,
            )
        if done.returncode != 0:
            tail = migrate.read_text(errors="replace")[-4000:]
            raise RuntimeError(f"airflow db migrate failed:\n{tail}")
        for component in self.components.values():
            self.launch(component.name)
        wait_for("the api-server to report every component healthy", self._healthy, timeout)
        for name in self.workers:
            wait_for(f"{name} to be ready", lambda n=name: self._worker_ready(n), timeout)

    def launch(self, name: str) -> None:
        component = self.components[name]
        with component.log_path.open("ab") as out:
            component.log_offset = out.tell()
            component.proc = subprocess.Popen(
                component.argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**self.env(), **component.env},
                cwd=self.home,
                start_new_session=True,  # a process group of its own, for kill_component
                preexec_fn=die_with_parent(signal.SIGTERM),
            )

    def kill_component(self, name: str) -> list[int]:
        """SIGKILL the component and every process below it (Celery's pool, the task
        supervisors and task processes); the pids killed."""
        component = self.components[name]
        processes = component.processes()
        _signal_all(processes, signal.SIGKILL)
        if component.proc is not None:
            component.proc.wait(10)
        psutil.wait_procs(processes, timeout=10)
        return [process.pid for process in processes]

    def stop(self, timeout: float = 15) -> None:
        """SIGTERM everything (workers first), SIGKILL what is left after ``timeout`` s."""
        order = [*self.workers, "scheduler", "triggerer", "dag-processor", "api-server"]
        trees = [self.components[name].processes() for name in order if name in self.components]
        _signal_all([tree[0] for tree in trees if tree], signal.SIGTERM)
        _gone, alive = psutil.wait_procs([p for tree in trees for p in tree], timeout=timeout)
        _signal_all(alive, signal.SIGKILL)
        psutil.wait_procs(alive, timeout=5)
        for component in self.components.values():
            if component.proc is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    component.proc.wait(5)

    def forget_broker_state(self) -> None:
        """Delete what the session left in the shared Redis database: its queue and bindings,
        the pidbox bindings of its workers (a killed worker never unbinds) and the messages
        a killed worker left unacknowledged."""
        import redis

        client = redis.Redis.from_url(REDIS_URL)
        try:
            for key in client.scan_iter(match=f"*{self.token}*"):
                client.delete(key)
            for key in client.scan_iter(match="_kombu.binding.*", _type="set"):
                for member in client.smembers(key):
                    if self.token.encode() in member:
                        client.srem(key, member)
            for tag, payload in client.hscan_iter("unacked"):
                if json.loads(payload)[-1] == self.queue:  # [message, exchange, routing key]
                    client.hdel("unacked", tag)
                    client.zrem("unacked_index", tag)
        finally:
            client.close()

    def _worker_ready(self, name: str) -> bool:
        component = self.components[name]
        if not component.running():
            raise RuntimeError(f"{name} exited:\n{component.log_text()[-3000:]}")
        return " ready." in component.log_text(since_launch=True)

    def relaunch_worker(self, name: str, timeout: float = 60) -> None:
        """Start a worker again (after :meth:`kill_component`); wait until it is ready."""
        self.launch(name)
        wait_for(f"{name} ready", lambda: self._worker_ready(name), timeout)

    def _healthy(self) -> bool:
        for component in self.components.values():
            if not component.running():
                raise RuntimeError(
                    f"{component.name} exited with {component.proc and component.proc.returncode}:"
                    f"\n{component.log_text()[-3000:]}"
                )
        try:
            health = self.api("GET", "/api/v2/monitor/health")
        except (OSError, RuntimeError):
            return False
        parts = ("metadatabase", "scheduler", "triggerer", "dag_processor")
        return all((health.get(part) or {}).get("status") == "healthy" for part in parts)

    # ------------------------------------------------------------------ REST API

    def api(self, method: str, path: str, body: Any = None, timeout: float = 30) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.api_url + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json", "Accept": "application/json"},
        )
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(request, timeout=timeout) as response:
                text = response.read().decode()
        except urllib.error.HTTPError as error:
            detail = error.read().decode(errors="replace")
            raise RuntimeError(f"{method} {path}: HTTP {error.code}: {detail}") from error
        return json.loads(text) if text else None

    def wait_for_dag(self, dag_id: str, timeout: float = 90) -> None:
        """Until the dag-processor has serialized ``dag_id``; its import error if it has one."""

        def parsed() -> bool:
            try:
                self.api("GET", f"/api/v2/dags/{dag_id}/details")
                return True
            except RuntimeError as error:
                if "HTTP 404" not in str(error):
                    raise
            errors = self.api("GET", "/api/v2/importErrors")["import_errors"]
            failing = [e for e in errors if Path(e["filename"]).stem == dag_id]
            if failing:
                raise RuntimeError(f"{dag_id} does not import:\n{failing[0]['stack_trace']}")
            return False

        wait_for(f"DAG {dag_id} to be parsed", parsed, timeout)

    def unpause(self, dag_id: str) -> None:
        self.api("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})

    def trigger(self, dag_id: str, conf: Mapping[str, Any]) -> str:
        """Unpause ``dag_id`` and trigger a run of it with ``conf``; its run id."""
        self.unpause(dag_id)
        run = self.api(
            "POST", f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": None, "conf": dict(conf)}
        )
        return str(run["dag_run_id"])

    def run_state(self, dag_id: str, run_id: str) -> str:
        return str(self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id)}")["state"])

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 240) -> str:
        """The run's final state (``success`` or ``failed``)."""

        def finished() -> str | None:
            state = self.run_state(dag_id, run_id)
            return state if state in TERMINAL_RUN_STATES else None

        return wait_for(f"run {run_id} of {dag_id} to finish", finished, timeout, every=1)

    # ------------------------------------------------------------------ diagnostics

    def diagnostics(self, lines: int = 40, task_logs: int = 10, width: int = 400) -> str:
        """The last ``lines`` of every component's output and of the newest task logs (each
        line cut at ``width`` characters)."""

        def tail(text: str, count: int) -> str:
            return "\n".join(line[:width] for line in text.splitlines()[-count:])

        parts = []
        for component in self.components.values():
            code = component.proc.returncode if component.proc else None
            state = "running" if component.running() else f"exited with {code}"
            parts.append(
                f"===== {component.name} ({state}) {component.log_path}\n"
                + tail(component.log_text(), lines)
            )
        logs = sorted(
            (self.home / "logs").glob("dag_id=*/**/*.log"), key=lambda p: p.stat().st_mtime
        )
        for path in logs[-task_logs:]:
            text = path.read_text(errors="replace")
            parts.append(f"===== task log {path.relative_to(self.home)}\n{tail(text, lines // 2)}")
        return "\n\n".join(parts)
