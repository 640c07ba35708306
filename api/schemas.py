"""Response models of the routes that answer with plain dictionaries (ingest reports, keys,
audit, policies, health, GeoJSON layers, scan alerts), so that ``/openapi.json`` documents
every answer. The status, history and aggregates models live beside their routes."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from riskmap.geo.policy import Policy


class RejectedRow(BaseModel):
    row: int = Field(description="row (or feature) number in the file, from 1")
    field: str
    reason: str


class IngestReport(BaseModel):
    """What an ingest request did: every row read is accepted or rejected with its reason."""

    model_config = ConfigDict(extra="allow")

    batch_id: int
    kind: str = Field(description="cases, communities, metrics or units")
    rows_read: int
    accepted: int
    inserted: int
    updated: int
    unchanged: int
    rejected: int
    rejects: list[RejectedRow]
    warnings: list[str]


class StoredIngestReport(IngestReport):
    """An ingest report as the store keeps it."""

    source: str | None = Field(description="the file or request the batch came from")
    created: str = Field(description="when the batch was written (ISO 8601, UTC)")
    key_id: str | None = Field(description="who wrote it: a key id, or cli:<os user>")
    data_version: int | None = Field(description="the data version the batch made")


class NewKeyAnswer(BaseModel):
    key_id: str
    role: str
    name: str
    key: str = Field(description="the key itself: shown only in this answer")


class KeyInfo(BaseModel):
    key_id: str
    role: str
    name: str
    created: str
    revoked: str | None


class AuditRow(BaseModel):
    at: str
    actor: str | None = Field(
        description="a key id, cli:<os user> for the command line, client:<address> for a "
        "failed authentication"
    )
    key_id: str | None = Field(description="the actor when it is a key")
    action: str
    detail: str | None


class Health(BaseModel):
    status: Literal["ok"]
    data_version: int


class LevelSummary(BaseModel):
    id: str
    label: str
    color: str


class PolicySummary(BaseModel):
    id: str
    name: str
    active: bool = Field(description="the service's default rule (RISKMAP_POLICY)")
    public: bool = Field(description="callers without an API key may request it")
    public_precision: dict[str, Any] | None
    levels: list[LevelSummary]


class PolicyList(BaseModel):
    default: str
    public: list[str]
    policies: list[PolicySummary]


class PolicyDetail(Policy):
    """A rule in full (the rule-file format, see README) and whether the public may ask
    for it."""

    public: bool


class Feature(BaseModel):
    type: Literal["Feature"]
    id: str
    geometry: dict[str, Any] = Field(description="a GeoJSON geometry (RFC 7946)")
    properties: dict[str, Any]


class FeatureCollection(BaseModel):
    """A GeoJSON FeatureCollection (RFC 7946); every feature has a stable ``id``."""

    type: Literal["FeatureCollection"]
    features: list[Feature]
    numberMatched: int | None = Field(  # noqa: N815 (OGC API Features' name)
        None, description="with bbox, limit or offset: the features meeting bbox (and level)"
    )
    numberReturned: int | None = Field(  # noqa: N815
        None, description="with bbox, limit or offset: the features in this answer"
    )
    links: list[dict[str, Any]] | None = Field(
        None, description="with limit or offset: self, and the next / prev pages when there are"
    )


class AlertPlace(BaseModel):
    id: str = Field(description="community id")
    name: str | None


class Alert(BaseModel):
    """A signal of the prospective space-time scan: a circle of communities and a window of
    days ending on the analysis date with more cases than the rest of the data predicts."""

    id: str = Field(description="alert-<centre community>-<first day>")
    center: AlertPlace = Field(description="the community the circle is centred on")
    communities: list[AlertPlace] = Field(description="the circle's communities, nearest first")
    start: dt.date = Field(description="first day of the window")
    end: dt.date = Field(description="last day of the window (the analysis date)")
    p_value: float = Field(description="Monte Carlo p-value")
    recurrence_days: float = Field(
        description="recurrence interval in days (1 / p for a daily analysis)"
    )
    geometry: dict[str, Any] = Field(description="the union of the communities (GeoJSON)")
    observed: int | None = Field(None, description="cases in the cylinder (API key only)")
    expected: float | None = Field(None, description="cases expected (API key only)")
    llr: float | None = Field(None, description="log-likelihood ratio (API key only)")
    radius_km: float | None = Field(None, description="circle radius in km (API key only)")


class Alerts(BaseModel):
    """The scan signals of a date (README, "Space-time scan")."""

    at: dt.date = Field(description="the analysis date")
    study_start: dt.date = Field(description="first day of the study period (365 days)")
    data_version: int
    replications: int = Field(description="Monte Carlo replications (RISKMAP_SCAN_REPLICATIONS)")
    min_recurrence_days: float = Field(description="a cluster signals from this interval on")
    exact: bool = Field(description="true with an API key: counts and statistics included")
    withheld: int = Field(
        description="signals not shown: fewer than RISKMAP_MIN_PUBLIC_COUNT cases (public only)"
    )
    alerts: list[Alert] = Field(description="most likely first")


class DeviceLevel(BaseModel):
    """One level of ``GET /v1/zones/cells`` (README, "Status on the device")."""

    id: str
    label: str
    color: str
    rank: int = Field(description="higher ranks win where levels overlap ('none' is 0)")
    cells: list[str] = Field(
        description="compact H3 cells (hex) wholly inside the level's zones: a point is in the "
        "level when its cell at `resolution`, or a parent of it, is listed"
    )
    boundary: dict[str, list[int]] = Field(
        description="H3 cells (hex) of `resolution` that a zone boundary of the level crosses: "
        "the positions in `polygons` of the polygons to test a point of the cell against"
    )
    polygons: list[list[list[list[float]]]] = Field(
        description="zone polygons: rings (exterior first, then holes) of [lon, lat]; a point "
        "on an edge or a vertex is covered"
    )


class DeviceNone(BaseModel):
    id: str = Field(description="'none'")
    label: str
    color: str


class DeviceCells(BaseModel):
    """The zones as H3 cells and exact polygons, for a device to decide its own status."""

    policy: str
    at: dt.date
    public: bool = Field(description="the public view of the zones (no API key)")
    resolution: int = Field(description="H3 resolution of a point's cell (boundary cells)")
    data_version: int
    computed_at: dt.datetime = Field(description="when the zones were computed (UTC)")
    data_through: dt.date | None = Field(description="the last report date of that data")
    items: int = Field(description="cells, boundary cells and polygon vertices of the answer")
    none: DeviceNone = Field(description="label and colour of a place in no zone")
    levels: list[DeviceLevel] = Field(description="the rule's levels, highest rank first")
