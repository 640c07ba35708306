"""Settings from the environment (``RISKMAP_*``) or a ``.env`` file."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RISKMAP_", env_file=".env", extra="ignore")

    database_url: str = Field(
        "sqlite:///var/riskmap.db",
        description="the store: sqlite:///relative/path.db, sqlite:////absolute/path.db, a plain "
        "file path, or postgresql://user:password@host:5432/db (PostgreSQL + PostGIS)",
    )
    h3_resolution: int = Field(10, ge=5, le=13, description="H3 resolution of community cells")
    policy: str = Field("cn-three-zone", description="preset name or rule file of the service")
    cache_size: int = Field(16, ge=1, description="zone snapshots kept in memory")
    max_upload_mb: float = Field(50.0, gt=0, description="largest ingest request body (MB)")
    rate_limit_per_minute: int = Field(
        600, ge=0, description="requests a minute per client on /v1/status* (0: no limit)"
    )
    request_timeout_s: float = Field(60.0, gt=0, description="time limit of a request")
    auth_failures_per_minute: int = Field(
        10, ge=1, description="failed authentications a minute per client before 429 (api/auth.py)"
    )
    min_public_count: int = Field(
        5, ge=1, description="smallest case count shown to the public (analysts see all)"
    )


@lru_cache
def get_settings() -> Settings:
    return Settings()
