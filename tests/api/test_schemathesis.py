"""Property-based tests of the whole OpenAPI spec (schemathesis): no answer is a server error
and answers match their declared schemas and content types."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
)

from riskmap.api.main import app
from riskmap.api.settings import Settings
from tests.api.helpers import wait_ready
from tests.helpers import running

schema = schemathesis.openapi.from_asgi("/openapi.json", app)


@pytest.fixture(autouse=True)
def _store(sample_db: Path) -> Iterator[None]:
    s = Settings(
        database_url=f"sqlite:///{sample_db}",
        max_upload_mb=1,
        rate_limit_per_minute=0,
        scan_replications=19,  # /v1/alerts: the scan's speed is for bench/, not this test
    )
    with running(s) as client:
        wait_ready(client, s)  # today's status is served (a 503 before it is by design)
        yield


@schema.parametrize()
@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_api_conforms(case) -> None:  # type: ignore[no-untyped-def]
    # the first answer of a date computes its zones: on a loaded machine that can take longer
    # than schemathesis' 10 s default (this test checks conformance, never speed)
    case.call_and_validate(
        checks=[not_a_server_error, content_type_conformance, response_schema_conformance],
        timeout=120,
    )
