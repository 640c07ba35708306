"""A store holding the default-size sample city, built once per test session."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from riskmap.api.deps import _service_for
from riskmap.api.ingest import ingest_cases, ingest_communities
from riskmap.api.main import app
from riskmap.api.settings import Settings, get_settings
from riskmap.api.store import Store
from riskmap.data.generator import generate_city, write_city

END = dt.date(2024, 3, 31)


@pytest.fixture(scope="session")
def sample_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sample")
    write_city(generate_city(seed=7, end=END), out)
    return out


@pytest.fixture(scope="session")
def sample_db(sample_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("db") / "riskmap.db"
    store = Store.open(db)
    ingest_communities(store, sample_dir / "communities.geojson")
    rep = ingest_cases(store, sample_dir / "cases.csv", today=END)
    assert rep.counts.rejected == 0
    store.close()
    return db


@contextmanager
def served(settings: Settings) -> Iterator[TestClient]:
    """A client of the app running with these settings."""
    app.dependency_overrides[get_settings] = lambda: settings
    try:
        yield TestClient(app)
    finally:
        app.dependency_overrides.clear()
        _service_for.cache_clear()


@pytest.fixture
def client(sample_db: Path) -> Iterator[TestClient]:
    with served(Settings(database_url=f"sqlite:///{sample_db}", rate_limit_per_minute=0)) as c:
        yield c
