"""The ingest routes accept the media types of the readers' format table (geo.io.FORMATS)."""

from __future__ import annotations

from riskmap.api.routers import ingest
from riskmap.geo.io import CASES, COMMUNITIES, METRICS, UNITS, media_types


def test_the_ingest_router_takes_its_content_types_from_the_table() -> None:
    assert media_types(CASES) == ingest.CASE_TYPES
    assert media_types(COMMUNITIES) == ingest.COMMUNITY_TYPES
    assert media_types(UNITS) == ingest.UNIT_TYPES
    assert media_types(METRICS) == ingest.METRIC_TYPES
    assert ingest.CASE_TYPES["application/x-ndjson"] == ".ndjson"
