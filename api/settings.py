"""Settings from the environment (``RISKMAP_*``) or a ``.env`` file."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RISKMAP_", env_file=".env", extra="ignore")

    database_url: str = Field(
        "sqlite:///var/riskmap.db",
        description="sqlite:///relative/path.db, sqlite:////absolute/path.db or a plain file path",
    )
    h3_resolution: int = Field(10, ge=5, le=13, description="H3 resolution of community cells")
    policy: str = Field("cn-three-zone", description="preset name or rule file of the service")
    cache_size: int = Field(16, ge=1, description="zone snapshots kept in memory")
    max_upload_mb: float = Field(50.0, gt=0, description="largest ingest request body (MB)")
    rate_limit_per_minute: int = Field(
        600, ge=0, description="requests a minute per client on /v1/status* (0: no limit)"
    )
    request_timeout_s: float = Field(60.0, gt=0, description="time limit of a request")
    min_public_count: int = Field(
        5, ge=1, description="smallest case count shown to the public (analysts see all)"
    )


def database_path(url: str) -> Path:
    """The SQLite file of a database URL (or plain path)."""
    if url.startswith("sqlite:///"):
        return Path(url[len("sqlite:///") :])
    if "://" in url:
        raise ValueError(
            f"unsupported database URL {url!r}: this version stores data in SQLite "
            "(sqlite:///path/to/file.db or a plain path)"
        )
    return Path(url)


@lru_cache
def get_settings() -> Settings:
    return Settings()
