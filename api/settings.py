"""Settings from the environment (``RISKMAP_*``) or a ``.env`` file, one class per concern:
the store (:class:`StoreSettings`), rules and caching (:class:`RuleSettings`), limits of
requests and computations (:class:`LimitSettings`), privacy (:class:`PrivacySettings`),
bounds on ingested input (:class:`InputSettings`) and the map page (:class:`MapSettings`).
:class:`Settings` is all of them; each variable keeps its one name
(``RISKMAP_DATABASE_URL``...)."""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from typing import Any, cast

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

_CONFIG = SettingsConfigDict(env_prefix="RISKMAP_", env_file=".env", extra="ignore")


class StoreSettings(BaseSettings):
    """Where the data is kept."""

    model_config = _CONFIG

    database_url: str = Field(
        "sqlite:///var/riskmap.db",
        description="the store: sqlite:///relative/path.db, sqlite:////absolute/path.db, a plain "
        "file path, or postgresql://user:password@host:5432/db (PostgreSQL + PostGIS)",
    )


class RuleSettings(BaseSettings):
    """Which rules the service answers with, and what it keeps computed."""

    model_config = _CONFIG

    h3_resolution: int = Field(10, ge=5, le=13, description="H3 resolution of community cells")
    policy: str = Field("cn-three-zone", description="preset name or rule file of the service")
    policies: str = Field(
        "",
        description="comma-separated presets or rule files anonymous callers may name with "
        "?policy= besides RISKMAP_POLICY (always public); any other preset needs an API key",
    )
    cache_size: int = Field(16, ge=1, description="zone snapshots kept in memory")
    scan_replications: int = Field(
        999, ge=0, le=99_999, description="Monte Carlo replications of the scan of /v1/alerts"
    )
    tile_cache_mb: float = Field(
        64.0, ge=0, description="vector tiles kept in memory (MB, least recently used out)"
    )
    tile_merge_features: int = Field(
        500,
        ge=1,
        description="the zones tiles merge the zones of each level into one feature at the "
        "zooms where a tile over the city would hold more than this many zones on average "
        "(a large city seen whole: a few shapes to draw, not thousands)",
    )
    prerender_zoom: int = Field(
        12,
        ge=-1,
        le=16,
        description="the public zones and communities tiles of each status snapshot computed "
        "ahead, and the district outlines' tiles, are rendered into the tile cache up to this "
        "zoom (-1: none)",
    )
    timezone: str = Field(
        "",
        description="time zone of 'today' (an IANA name such as Asia/Shanghai, or UTC): the "
        "date of the served status snapshots and of a missing at=; they roll over at its "
        "midnight (default: the machine's local zone)",
    )
    snapshot_dir: str = Field(
        "",
        description="directory of the stored status snapshots (default: <file>.snapshots "
        "beside a SQLite store, var/snapshots/<hash> for PostgreSQL; none: not stored)",
    )

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        from riskmap.api.clock import timezone_of

        timezone_of(value)  # raises ValueError naming the setting
        return value.strip()


class LimitSettings(BaseSettings):
    """Limits of requests and computations."""

    model_config = _CONFIG

    max_upload_mb: float = Field(50.0, gt=0, description="largest ingest request body (MB)")
    max_batch_points: int = Field(
        100_000, ge=1, le=10_000_000, description="most points in one POST /v1/status/batch"
    )
    device_cells_res: int = Field(
        9,
        ge=5,
        le=12,
        description="H3 resolution of the boundary cells of GET /v1/zones/cells (coarser when "
        "the answer would pass RISKMAP_MAX_DEVICE_ITEMS)",
    )
    max_device_items: int = Field(
        250_000,
        ge=100,
        description="most items (cells, boundary cells, polygon vertices) in one GET "
        "/v1/zones/cells answer: coarsened down to resolution 5 to fit, then 413",
    )
    rate_limit_per_minute: int = Field(
        0,
        ge=0,
        description="requests a minute per client on /v1/status* (0, the default: no limit)",
    )
    rate_limit_storage: str = Field(
        "",
        description="where the rate limit's counters are kept (a `limits` storage URI): "
        "memory:// (the default of one process), riskmap+sqlite:///path/limits.db (a file "
        "shared by the worker processes of one machine: the default of serve --workers N), "
        "or redis://host:6379 for servers on several machines",
    )
    trusted_proxies: str = Field(
        "",
        description="comma-separated addresses or networks (CIDR) of the reverse proxies and "
        "gateways in front of the server: only their X-Forwarded-For is believed",
    )
    workers: int = Field(
        1, ge=1, le=64, description="worker processes (set by riskmap serve --workers)"
    )

    @field_validator("rate_limit_storage")
    @classmethod
    def _storage(cls, value: str) -> str:
        from urllib.parse import urlparse

        from limits.storage import SCHEMES

        scheme = urlparse(value).scheme
        known_scheme = scheme in SCHEMES or scheme == "riskmap+sqlite"
        if value and (not known_scheme or scheme.startswith("async+")):
            known = ", ".join(sorted({"memory", "riskmap+sqlite", "redis", "memcached"}))
            raise ValueError(f"{value!r}: not a rate limit storage (expected one of {known}://)")
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: str) -> str:
        for part in value.split(","):
            if part.strip():
                try:
                    ipaddress.ip_network(part.strip(), strict=False)
                except ValueError:
                    raise ValueError(
                        f"{part.strip()!r} is not an address or network (CIDR)"
                    ) from None
        return value

    request_timeout_s: float = Field(
        60.0, gt=0, description="time limit of a request (GET: its computation stops too)"
    )
    max_history_days: int = Field(
        366, ge=1, le=3660, description="longest period of a history or aggregates request"
    )
    max_history_events: int = Field(
        100_000, ge=1, description="most events in one /v1/zones/history answer (then 422)"
    )
    max_items: int = Field(
        10_000,
        ge=1,
        description="most features in one page of /collections/{id}/items (and of /v1/zones, "
        "/v1/communities with ?limit=)",
    )
    max_h3_cells: int = Field(
        50_000,
        ge=1,
        description="most cells in one answer of /collections/{id}/h3 (more: 422)",
    )
    max_computations: int = Field(2, ge=1, description="zone computations running at once")
    max_queued: int = Field(8, ge=0, description="computations waiting for a slot (then 503)")
    max_memory_mb: float | None = Field(
        None,
        gt=0,
        description="the process's memory ceiling (MB): no new computation above 80% of it, "
        "running ones stop above it; default half of the machine's (or cgroup's) memory",
    )
    shutdown_timeout_s: int = Field(
        5, ge=0, description="on SIGTERM, how long requests may still finish"
    )
    auth_failures_per_minute: int = Field(
        10, ge=1, description="failed authentications a minute per client before 429 (api/auth.py)"
    )


class PrivacySettings(BaseSettings):
    """What the public may see."""

    model_config = _CONFIG

    min_public_count: int = Field(
        5, ge=1, description="smallest case count shown to the public (analysts see all)"
    )
    cell_key_secret: SecretStr | None = Field(
        None,
        description="secret of the record keys that perturb public case counts (default: one "
        "made for the store and kept in it)",
    )

    @field_validator("cell_key_secret")
    @classmethod
    def _long_secret(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and len(v.get_secret_value()) < 16:
            raise ValueError("RISKMAP_CELL_KEY_SECRET must have at least 16 characters")
        return v


class InputSettings(BaseSettings):
    """Bounds on ingested input (:class:`geo.io.InputLimits`)."""

    model_config = _CONFIG

    max_id_length: int = Field(128, ge=1, description="longest id (characters)")
    max_field_bytes: int = Field(65_536, ge=64, description="largest field; more rejects the row")
    max_json_depth: int = Field(32, ge=4, description="deepest nesting of a JSON body or file")
    max_vertices: int = Field(100_000, ge=4, description="most vertices of one community")
    max_community_area_km2: float = Field(
        50_000.0, gt=0, description="largest geodesic area of one community (km²)"
    )
    allow_large_polygons: bool = Field(
        False, description="accept communities over the area limit or crossing the antimeridian"
    )
    max_unpacked_mb: float = Field(
        200.0, gt=0, description="largest unpacked size of a zip archive or Parquet file (MB)"
    )


class MapSettings(BaseSettings):
    """The planner map page."""

    model_config = _CONFIG

    map_tile_features: int = Field(
        5_000,
        ge=1,
        description="the planner map draws the communities from the zoom at which a tile "
        "over the city holds at most this many of them on average (a large city: its zones "
        "are filled below it)",
    )
    basemap_url: str = Field(
        "",
        description="the organisation's own raster tiles drawn under the planner map, a URL "
        "template such as https://tiles.example.org/{z}/{x}/{y}.png (default: none; the page "
        "then loads nothing from anywhere but the server)",
    )

    @field_validator("basemap_url")
    @classmethod
    def _tile_template(cls, v: str) -> str:
        if not v.strip():  # the default: no import of the map package (CLI start-up)
            return ""
        from riskmap.tiles.deck import check_basemap_url

        return check_basemap_url(v.strip())


class Settings(
    StoreSettings, RuleSettings, LimitSettings, PrivacySettings, InputSettings, MapSettings
):
    """Every setting (each concern's class holds its own)."""

    model_config = _CONFIG


def get_settings_of(app: Any) -> Settings:
    """The settings an application runs with (its dependency override of
    :func:`get_settings`, as in tests, else the environment's)."""
    overrides = getattr(app, "dependency_overrides", {})
    return cast(Settings, overrides.get(get_settings, get_settings)())


@lru_cache
def get_settings() -> Settings:
    return Settings()
