"""What the browser tests share (imported, never through conftest): Debian's Chromium driven
by playwright's Python package (its own browser download does not work here), where
screenshots go, and npm packages installed for the tests (.ci/npm).

`make test` installs Chromium (.ci/chromium) and the npm packages (.ci/npm); when one is
missing a browser test skips with the reason, except in CI (CI=true), where it fails.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.helpers import REPO

CHROMIUM = Path(os.environ.get("RISKMAP_TEST_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = REPO / "var" / "test-artifacts"
NPM = Path(os.environ.get("RISKMAP_TEST_NPM", REPO / "var" / "npm"))


def missing(why: str) -> None:
    """Skip with the reason; fail in CI (CI=true), where every component must be there."""
    if os.environ.get("CI"):
        pytest.fail(why)
    pytest.skip(why)


def playwright() -> Any:
    """playwright's ``sync_playwright``, or a skip (a failure in CI) when it or Chromium is
    missing."""
    why = None
    if not CHROMIUM.exists():
        why = f"no Chromium at {CHROMIUM} (`make test` installs it: .ci/chromium)"
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        why = "the playwright package is missing (`make install` installs the test extra)"
    if why:
        missing(why)
    return sync_playwright


@contextmanager
def chromium_browser() -> Iterator[Any]:
    """Debian's Chromium, headless."""
    sync_playwright = playwright()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM))
        try:
            yield browser
        finally:
            browser.close()


def npm_file(package: str, path: str) -> Path:
    """A file of an npm package installed by .ci/npm, or a skip (a failure in CI)."""
    f = NPM / "node_modules" / package / path
    if not f.is_file():
        missing(f"no {package} at {f} (`make test` installs it: .ci/npm)")
    return f


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def hosts(urls: list[str]) -> set[str | None]:
    """The hosts of the http(s) URLs among ``urls`` (data: and blob: URLs have none)."""
    return {urlsplit(u).hostname for u in urls if urlsplit(u).scheme in ("http", "https")}
