"""Helpers shared by the API tests (imported, never through conftest): the end date of the
sample city, a client of the app with given settings, and the ``riskmap serve`` process."""

from __future__ import annotations

import datetime as dt
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from fastapi.testclient import TestClient

from riskmap.api.settings import Settings
from tests.helpers import running

END = dt.date(2024, 3, 31)
RISKMAP = Path(sys.executable).with_name("riskmap")


def copy_store(src: Path, dest: Path) -> Path:
    """A copy of a SQLite store through SQLite's backup API: consistent (what is still in the
    write-ahead log is copied too), and it never opens the file behind SQLite's back (closing
    any other descriptor of a file drops this process's POSIX locks on it, which other
    processes' connections rely on). Tests whose servers run in other processes serve such a
    copy, never the session's shared store."""
    with sqlite3.connect(src) as a, sqlite3.connect(dest) as b:
        a.backup(b)
    a.close()
    b.close()
    return dest


@contextmanager
def served(settings: Settings) -> Iterator[TestClient]:
    """A client of the app running with these settings (its lifespan runs meanwhile)."""
    with running(settings) as c:
        yield c


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """``riskmap --db URL serve`` in a process of its own, that a test can kill."""

    def __init__(self, db: str, log: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.db = db
        self.args = list(args)  # more options of `serve`
        self.env = env or {}
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> None:
        env = os.environ | {"RISKMAP_RATE_LIMIT_PER_MINUTE": "0"} | self.env
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [str(RISKMAP), "--db", self.db, "serve", "--port", str(self.port), *self.args],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise AssertionError(f"server did not start in {timeout} s: {self.log.read_text()[-2000:]}")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


def wait_ready(
    client: TestClient, settings: Settings | None = None, timeout: float = 180.0, **params: str
) -> httpx.Response | None:
    """Wait until the server has today's status snapshot (api.snapshots). With ``settings``:
    of every public rule, watched on the service itself (no request is made: rate-limit tests
    count theirs); else the first answer of ``GET /v1/status`` (today, the service's rule, or
    ``params``) that is not the 503 of a server still computing it, returned. Fails after
    ``timeout`` seconds."""
    if settings is not None:
        from riskmap.api.access import public_rules
        from riskmap.api.deps import service_of

        service = service_of(client.app, settings)  # type: ignore[arg-type]
        rules = public_rules(settings)
        assert service.served is not None
        ready = service.served.wait_until(
            lambda: all(service.served_status(r) is not None for r in rules), timeout
        )
        assert ready, f"no status snapshot after {timeout} s"
        return None
    q = {"lat": "0", "lon": "0"} | params
    deadline = time.monotonic() + timeout
    while True:
        r = client.get("/v1/status", params=q)
        if r.status_code != 503 or time.monotonic() > deadline:
            assert r.status_code != 503, f"no status snapshot after {timeout} s: {r.text}"
            return r
        time.sleep(0.1)
