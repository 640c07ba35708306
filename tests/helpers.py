"""Helpers shared by the tests (imported, never through conftest)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from fastapi.testclient import TestClient

    from riskmap.api.settings import Settings


def need_shared(path: Path) -> Path:
    """``path`` under ../shared: a test that needs it fails in CI (``CI=true``) when it is
    missing, and skips with the reason elsewhere (a clone without ../shared beside it)."""
    if not path.exists():
        msg = f"shared test data missing at {path} (../shared beside the repository)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return path


@contextmanager
def running(settings: Settings, **client: Any) -> Iterator[TestClient]:
    """A client of the app (api.main.app) running with ``settings``: its lifespan runs for
    the block (services are opened when first needed and closed at its end); further
    ``TestClient(app)`` made inside share them."""
    from fastapi.testclient import TestClient

    from riskmap.api.main import app
    from riskmap.api.settings import get_settings

    app.dependency_overrides[get_settings] = lambda: settings
    try:
        with TestClient(app, **client) as c:
            yield c
    finally:
        app.dependency_overrides.clear()
