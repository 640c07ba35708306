"""Helpers shared by the tests (imported, never through conftest)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def need_shared(path: Path) -> Path:
    """``path`` under ../shared: a test that needs it fails in CI (``CI=true``) when it is
    missing, and skips with the reason elsewhere (a clone without ../shared beside it)."""
    if not path.exists():
        msg = f"shared test data missing at {path} (../shared beside the repository)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return path
