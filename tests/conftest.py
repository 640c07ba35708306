"""Shared fixtures (helpers are in tests/helpers.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import SHARED, need_shared


@pytest.fixture
def shared_dir() -> Path:
    return need_shared(SHARED)


# -- PostgreSQL + PostGIS (`make test` installs and starts it: .ci/postgres) ----------------
PG_ADMIN = os.environ.get("RISKMAP_TEST_POSTGRES", "postgresql:///postgres")
PG_TEST_DB = "riskmap_test"


def _pg_missing(why: str) -> None:
    msg = f"PostgreSQL + PostGIS unavailable at {PG_ADMIN}: {why} (`make test` starts it)"
    if os.environ.get("CI"):
        pytest.fail(msg)
    pytest.skip(msg)


@pytest.fixture(scope="session")
def pg_server() -> str:
    """URL of a database with PostGIS on the test server; fails in CI when there is none."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    try:
        with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=5) as conn:
            if (
                conn.execute("SELECT 1 FROM pg_database WHERE datname=%s", (PG_TEST_DB,)).fetchone()
                is None
            ):
                conn.execute(f"CREATE DATABASE {PG_TEST_DB}")
    except psycopg.Error as e:
        _pg_missing(str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__)
    params = conninfo_to_dict(PG_ADMIN)
    params["dbname"] = PG_TEST_DB
    url = make_conninfo(**params)
    with psycopg.connect(url, autocommit=True) as conn:
        try:
            conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
        except psycopg.Error as e:
            _pg_missing(f"no PostGIS extension ({e})")
    return _as_url(params)


def _as_url(params: dict[str, object], schema: str | None = None) -> str:
    """A postgresql:// URL (the store takes URLs) of libpq parameters."""
    from urllib.parse import quote

    user = f"{quote(str(params['user']))}@" if params.get("user") else ""
    host = quote(str(params.get("host", "")), safe="")
    port = f":{params['port']}" if params.get("port") else ""
    query = {k: v for k, v in params.items() if k not in ("user", "host", "port", "dbname")}
    if schema:
        query["options"] = f"-csearch_path={schema},public"
    qs = "&".join(f"{k}={quote(str(v), safe='')}" for k, v in query.items())
    return f"postgresql://{user}{host}{port}/{params['dbname']}" + (f"?{qs}" if qs else "")


@pytest.fixture
def pg_url(pg_server: str) -> Iterator[str]:
    """A PostgreSQL store URL of its own (a fresh schema of the test database)."""
    import uuid

    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield _as_url(conninfo_to_dict(pg_server), schema)
    finally:
        with psycopg.connect(pg_server, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty store on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'r.db'}"
    return str(request.getfixturevalue("pg_url"))
