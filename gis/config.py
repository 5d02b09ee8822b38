"""Settings: one pydantic-settings class, read from the environment (prefix LANDLINK_) and .env.

``DATABASE_URL`` (no prefix, as every PostgreSQL tool spells it) points everything at another
database; without it landlink uses its own local cluster under ``.pgdata/``.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LANDLINK_", env_file=".env", extra="ignore")

    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("DATABASE_URL", "LANDLINK_DATABASE_URL")
    )
    # The project's own local cluster (used when DATABASE_URL is not set).
    pg_data_dir: Path = PROJECT_ROOT / ".pgdata"
    pg_port: int = 55432
    pg_bin_dir: Path = Path("/usr/lib/postgresql/15/bin")
    db_name: str = "landlink"
    db_user: str = "landlink"

    host: str = "127.0.0.1"
    port: int = 8000
    rules_file: Path = Path(__file__).resolve().parent / "rules.toml"
    # Rows per COPY chunk when loading; bounds peak memory on big files.
    copy_chunk_rows: int = 50_000

    @property
    def local_cluster(self) -> bool:
        return self.database_url is None

    @property
    def sqlalchemy_url(self) -> str:
        """The URL SQLAlchemy uses (psycopg 3 driver)."""
        if self.database_url:
            url = self.database_url
            for prefix in ("postgres://", "postgresql://"):
                if url.startswith(prefix):
                    return "postgresql+psycopg://" + url[len(prefix) :]
            return url
        return f"postgresql+psycopg://{self.db_user}@127.0.0.1:{self.pg_port}/{self.db_name}"


@lru_cache
def get_settings() -> Settings:
    return Settings()
