"""What the HTTP benchmarks share (``bench/http.py``, ``bench/tiles.py --http``): a built store
of a city, servers in processes of their own (riskmap, the reference API, tipg), ``wrk`` runs
and their parsing, and the memory of a server's processes.

Cities end today (the service's default date), so they are rebuilt once a day, under
``var/bench/cities/<name>-<date>/`` (city files and a SQLite store, ingested with the
``riskmap`` command line as a user would).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
RISKMAP = BIN / "riskmap"
VAR = REPO / "var" / "bench"
PG_DB = "riskmap_bench"


@dataclass(frozen=True)
class CitySpec:
    name: str
    communities: int
    cases: int
    days: int


SAMPLE = CitySpec("sample", 2_000, 5_000, 60)
SCALE = CitySpec("scale", 100_000, 1_000_000, 120)


def city_spec(scale: bool, communities: int | None = None, cases: int | None = None) -> CitySpec:
    if communities:
        return CitySpec(f"c{communities}", communities, cases or communities * 5, 60)
    return SCALE if scale else SAMPLE


@dataclass(frozen=True)
class City:
    spec: CitySpec
    folder: Path
    store: Path  # the SQLite store as built (copied for each run that writes)
    bbox: tuple[float, float, float, float]  # the communities' extent (lon/lat)


def say(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def riskmap_cli(db: str, *args: str, capture: bool = False) -> str:
    """``riskmap --db DB ARGS``; raises with its output when it fails."""
    res = subprocess.run(
        [str(RISKMAP), "--db", db, *args],
        capture_output=True,
        text=True,
        env=os.environ | {"COLUMNS": "200"},
    )
    if res.returncode != 0:
        raise RuntimeError(f"riskmap {' '.join(args)} failed:\n{res.stdout}\n{res.stderr}")
    return res.stdout if capture else ""


def build_city(spec: CitySpec) -> City:
    """The city's files and store (made once a day: the city ends today)."""
    today = dt.date.today().isoformat()
    folder = VAR / "cities" / f"{spec.name}-{today}"
    store = folder / "store.db"
    done = folder / ".built"
    if not done.exists():
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        db = f"sqlite:///{store}"
        t = time.perf_counter()
        say(f"building the {spec.name} city ({spec.communities:,} communities) in {folder}")
        riskmap_cli(
            db,
            "sample",
            "--out",
            str(folder),
            "--communities",
            str(spec.communities),
            "--cases",
            str(spec.cases),
            "--days",
            str(spec.days),
            "--end",
            today,
        )
        ext = "parquet"
        riskmap_cli(db, "ingest", "communities", str(folder / f"communities.{ext}"))
        riskmap_cli(db, "ingest", "units", str(folder / f"subdistricts.{ext}"))
        riskmap_cli(db, "ingest", "units", str(folder / f"districts.{ext}"))
        riskmap_cli(db, "ingest", "cases", str(folder / "cases.parquet"))
        import geopandas as gpd

        bounds = gpd.read_parquet(folder / "communities.parquet").total_bounds
        (folder / "bbox.json").write_text(json.dumps([float(v) for v in bounds]))
        done.write_text(f"{time.perf_counter() - t:.1f} s\n")
        say(f"built in {time.perf_counter() - t:.1f} s")
    w, s, e, n = json.loads((folder / "bbox.json").read_text())
    return City(spec, folder, store, (w, s, e, n))


def work_store(city: City, run_dir: Path) -> str:
    """A copy of the city's store for one run (the run writes to it), as a URL."""
    run_dir.mkdir(parents=True, exist_ok=True)
    dst = run_dir / "store.db"
    shutil.rmtree(str(dst) + ".snapshots", ignore_errors=True)  # a first start: none stored
    for suffix in ("", "-wal", "-shm"):
        src = Path(str(city.store) + suffix)
        if src.exists():
            shutil.copyfile(src, str(dst) + suffix)
        else:
            Path(str(dst) + suffix).unlink(missing_ok=True)
    return f"sqlite:///{dst}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Proc:
    """A server in a process group of its own (its workers included), logging to a file."""

    def __init__(self, name: str, argv: list[str], log: Path, env: dict[str, str], port: int):
        self.name, self.argv, self.log, self.env, self.port = name, argv, log, env, port
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.started = 0.0

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            self.started = time.perf_counter()
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=os.environ | self.env,
                cwd=REPO,
                start_new_session=True,
            )

    def wait_for(self, path: str, timeout: float, ok: tuple[int, ...] = (200,)) -> float:
        """Seconds from the start until ``path`` answers a status of ``ok``."""
        assert self.proc is not None
        deadline = time.perf_counter() + timeout
        with httpx.Client(base_url=self.url, timeout=max(timeout, 5)) as client:
            while time.perf_counter() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"{self.name} exited: {self.tail()}")
                try:
                    if client.get(path).status_code in ok:
                        return time.perf_counter() - self.started
                except httpx.HTTPError:
                    pass
                time.sleep(0.05)
        raise RuntimeError(f"{self.name}: {path} not ready in {timeout:.0f} s: {self.tail()}")

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""

    def kill(self) -> None:
        """SIGKILL to the whole group (a crash: no clean shutdown)."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)
        self.proc = None

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=30)
        self.proc = None

    def __enter__(self) -> Proc:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait_idle(self, timeout: float, below: float = 0.1, window: float = 3.0) -> float:
        """Seconds until the server's processes together use less than ``below`` of one core
        over ``window`` seconds (its background work done: the first snapshot's tiles rendered
        ahead, other workers' snapshots read): load phases then measure the server as it
        serves, not its start-up. Gives up quietly after ``timeout`` (returns it)."""
        import psutil

        assert self.proc is not None
        t0 = time.perf_counter()
        root = psutil.Process(self.proc.pid)
        while time.perf_counter() - t0 < timeout:
            procs = [root, *root.children(recursive=True)]
            before = sum(sum(p.cpu_times()[:2]) for p in procs if p.is_running())
            time.sleep(window)
            after = sum(sum(p.cpu_times()[:2]) for p in procs if p.is_running())
            if (after - before) / window < below:
                return time.perf_counter() - t0
        return timeout

    def memory(self) -> dict[str, Any]:
        """RSS (and USS: pages of the process alone) in MB of each worker process: the
        supervisor's children (multiprocessing's resource tracker left out), or the server's
        process itself when it has no workers."""
        import psutil

        assert self.proc is not None
        root = psutil.Process(self.proc.pid)
        workers = [
            p for p in root.children() if "resource_tracker" not in " ".join(p.cmdline())
        ] or [root]
        rss, uss = [], []
        for p in workers:
            m = p.memory_full_info()
            rss.append(m.rss / 2**20)
            uss.append(m.uss / 2**20)
        return {
            "workers": len(workers),
            "rss_mb": [round(v, 1) for v in rss],
            "uss_mb": [round(v, 1) for v in uss],
            "max_rss_mb": round(max(rss), 1),
            "total_rss_mb": round(sum(rss), 1),
        }


def riskmap_server(db: str, workers: int, log: Path, env: dict[str, str] | None = None) -> Proc:
    port = free_port()
    argv = [str(RISKMAP), "--db", db, "serve", "--port", str(port), "--workers", str(workers)]
    return Proc("riskmap", argv, log, {"RISKMAP_RATE_LIMIT_PER_MINUTE": "0"} | (env or {}), port)


def reference_server(dsn: str, workers: int, log: Path, pool: int = 8) -> Proc:
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "bench.reference_api",
        "--dsn",
        dsn,
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--pool",
        str(pool),
    ]
    return Proc("reference", argv, log, {}, port)


# -- PostgreSQL ----------------------------------------------------------------------------


def pg_dsn() -> str:
    """The benchmark's database (created, with PostGIS, on the local server that
    ``.ci/postgres`` installs and starts)."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    admin = os.environ.get("RISKMAP_TEST_POSTGRES", "postgresql:///postgres")
    subprocess.run(["bash", str(REPO / ".ci" / "postgres")], check=True)
    with psycopg.connect(admin, autocommit=True) as conn:
        found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (PG_DB,))
        if found.fetchone() is None:
            conn.execute(f"CREATE DATABASE {PG_DB}")
    params = conninfo_to_dict(admin)
    params["dbname"] = PG_DB
    dsn = make_conninfo(**params)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    return dsn


# -- wrk -----------------------------------------------------------------------------------

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if not m:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse_wrk(out: str) -> dict[str, Any]:
    """Requests/s, p50 / p90 / p99 (ms), answers that were not 2xx/3xx and socket errors of a
    ``wrk --latency`` run."""
    res: dict[str, Any] = {"non_2xx": 0, "socket_errors": 0}
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    res["rps"] = float(m.group(1)) if m else float("nan")
    m = re.search(r"(\d+) requests in", out)
    res["requests"] = int(m.group(1)) if m else 0
    for q in ("50", "90", "99"):
        m = re.search(rf"^\s+{q}(?:\.000)?%\s+(\S+)", out, re.M)
        res[f"p{q}_ms"] = round(_ms(m.group(1)), 2) if m else float("nan")
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    if m:
        res["non_2xx"] = int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        res["socket_errors"] = sum(int(g) for g in m.groups())
    return res


def ensure_wrk() -> str:
    """The ``wrk`` executable (Debian's package, installed by ``.ci/bench``)."""
    exe = shutil.which("wrk")
    if exe is None:
        subprocess.run(["bash", str(REPO / ".ci" / "bench")], check=True)
        exe = shutil.which("wrk")
    if exe is None:
        raise RuntimeError("wrk is not installed (as root: bash .ci/bench, or apt-get install wrk)")
    return exe


def run_wrk(
    url: str,
    lua: str,
    duration: float,
    threads: int = 2,
    connections: int = 32,
    timeout: float = 10.0,
) -> dict[str, Any]:
    """``wrk -t -c -d --latency -s script URL``; ``lua``: the script's text."""
    exe = ensure_wrk()
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(lua)
        script = f.name
    try:
        res = subprocess.run(
            [
                exe,
                f"-t{threads}",
                f"-c{connections}",
                f"-d{max(1, round(duration))}s",
                f"--timeout={timeout:g}s",
                "--latency",
                "-s",
                script,
                url,
            ],
            capture_output=True,
            text=True,
            timeout=duration + timeout + 60,
        )
    finally:
        os.unlink(script)
    if res.returncode != 0:
        raise RuntimeError(f"wrk failed: {res.stderr or res.stdout}")
    out = parse_wrk(res.stdout)
    out["command"] = f"wrk -t{threads} -c{connections} -d{max(1, round(duration))}s --latency"
    return out


def status_lua(path: str, bbox: tuple[float, float, float, float]) -> str:
    """A wrk script: GET ``path?lat=&lon=`` at uniformly random points of ``bbox``; each
    thread has its own seed."""
    w, s, e, n = bbox
    return f"""
local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("seed", counter)
end
function init(args)
  math.randomseed(1000003 * seed)
end
request = function()
  local lon = {w!r} + math.random() * {e - w!r}
  local lat = {s!r} + math.random() * {n - s!r}
  return wrk.format("GET", string.format("{path}?lat=%.6f&lon=%.6f", lat, lon))
end
"""


def paths_lua(paths: list[str], headers: dict[str, str] | None = None) -> str:
    """A wrk script cycling through ``paths`` (each thread from its own offset), with
    ``headers``."""
    items = ",\n".join(json.dumps(p) for p in paths)
    hdrs = ", ".join(f"[{json.dumps(k)}] = {json.dumps(v)}" for k, v in (headers or {}).items())
    return f"""
local paths = {{
{items}
}}
local headers = {{ {hdrs} }}
local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("offset", counter * 7919)
end
local i = 0
function init(args)
  i = offset % #paths
end
request = function()
  i = i % #paths + 1
  return wrk.format("GET", paths[i], headers)
end
"""


def asyncpg_url(dsn: str) -> str:
    """A postgresql:// URL of the libpq ``dsn`` that asyncpg and pydantic's ``PostgresDsn``
    accept (a socket directory as a percent-encoded host)."""
    from urllib.parse import quote

    import psycopg

    with psycopg.connect(dsn) as conn:
        info = conn.info
        host = info.host or "localhost"
        return (
            f"postgresql://{quote(info.user, safe='')}@{quote(host, safe='')}:{info.port}"
            f"/{quote(info.dbname, safe='')}"
        )


def tipg_server(dsn: str, tables: list[str], workers: int, log: Path) -> Proc:
    """tipg (``tipg.main:app``) under uvicorn serving ``tables`` (``schema.table``) only."""
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "uvicorn",
        "tipg.main:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]
    env = {
        "DATABASE_URL": asyncpg_url(dsn),
        "TIPG_DB_SCHEMAS": json.dumps(sorted({t.split(".")[0] for t in tables})),
        "TIPG_DB_TABLES": json.dumps(tables),
        "TIPG_DB_FUNCTIONS": "[]",
        "TIPG_DB_EXCLUDE_FUNCTION_SCHEMAS": '["public", "pg_catalog"]',
    }
    return Proc("tipg", argv, log, env, port)


def main() -> None:
    """``python -m bench.serving [--scale | --communities N]``: build a city's store ahead."""
    import argparse

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("--scale", action="store_true", help="the scale city (100,000 communities)")
    ap.add_argument("--communities", type=int, help="a city of this many communities")
    ap.add_argument("--cases", type=int, help="its cases (default 5 per community)")
    args = ap.parse_args()
    city = build_city(city_spec(args.scale, args.communities, args.cases))
    print(city.folder)


if __name__ == "__main__":
    main()
