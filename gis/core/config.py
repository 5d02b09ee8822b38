"""Settings: one pydantic-settings class, read from the environment (prefix LANDLINK_) and .env.

``DATABASE_URL`` (no prefix, as every PostgreSQL tool spells it) points everything at another
database; without it landlink uses its own local cluster under ``.pgdata/``.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parents[2]


class TileSettings(BaseModel):
    """Vector tiles and OGC API Features: serving limits, not domain rules.

    Set from the environment as JSON, e.g. ``LANDLINK_TILES='{"cache_entries": 0}'``.
    """

    parcel_min_zoom: int = 13  # below: districts/platforms with parcel aggregates instead
    max_zoom: int = 18  # deepest zoom served (TileJSON maxzoom; clients overzoom beyond)
    feature_cap: int = 20_000  # most features one MVT layer of one tile carries
    # the byte budget of a tile: above it, fewer features (largest kept) until it fits
    max_tile_bytes: int = 500_000
    # from this zoom a tile's 4549 -> 3857 reprojection is an affine fit (< 0.5 tile px off)
    affine_min_zoom: int = 13
    # layers too dense to draw below a zoom (empty tiles there; TileJSON minzoom says so)
    layer_min_zoom: dict[str, int] = {"supplies": 12, "approvals": 10, "enterprises": 12}
    # Douglas-Peucker tolerance in tile pixels (of 4096) by which geometries are simplified;
    # 0 at and above ``parcel_min_zoom`` keeps every parcel vertex a pixel can show.
    simplify_px_low: float = 2.0
    simplify_px_high: float = 0.0
    extent: int = 4096
    buffer: int = 64  # tile buffer in tile pixels (ST_AsMVTGeom), also the && margin
    # low-zoom zone colours: A/B/C/D by a zone's 亩均税收 rank among the zones of its level (top
    # 25 %, to 70 %, to 95 %, the rest). A rendering choice (four colour bands, the §2 shares
    # reused), not a domain rule: the rules rank enterprises, not zones.
    zone_class_cutoffs: tuple[float, float, float] = (0.25, 0.70, 0.95)
    cache_entries: int = 20_000  # in-process tile cache size (tiles); 0 disables it
    cache_max_bytes: int = 256 * 1024 * 1024
    cache_poll_seconds: float = 0.5  # how often a worker reads the invalidation log
    max_age_seconds: int = 60  # Cache-Control max-age for tiles
    items_default_limit: int = 1000  # also the OpenAPI limit default, QGIS's page size
    items_max_limit: int = 10_000
    exact_count_below: int = 50_000  # numberMatched: exact COUNT(*) below, planner estimate above
    # a CQL2 filter is refused (400) past these: its length, its terms (comparisons, LIKE, IN,
    # BETWEEN, ...) and its depth (nested parentheses and NOTs)
    filter_max_chars: int = 20_000
    filter_max_terms: int = 200
    filter_max_depth: int = 20


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
    # Behind a gateway (app/links.py): the URL clients reach this server at, prefix included
    # (e.g. https://gis.example.gov.cn/gis; without a path, `serve --root-path` is added). Every
    # link the server writes starts with it. Unset: the X-Forwarded-Host/-Proto/-Port of a proxy
    # in forwarded_allow_ips, else the address the connection came in on; never the Host header.
    public_url: str | None = None
    # proxies (IPs, CIDRs, comma list; "*" any) whose X-Forwarded-* headers are believed
    forwarded_allow_ips: str = ""
    # browser origins allowed by CORS: comma list or JSON list, "*" any; empty: no CORS headers
    cors_origins: str = ""
    gzip_min_bytes: int = 1024  # JSON, GeoJSON, CSV, HTML answers above this are gzipped
    rules_file: Path = Path(__file__).resolve().parent / "rules.toml"
    # Rows per COPY chunk when loading; bounds peak memory on big files.
    copy_chunk_rows: int = 50_000
    # Imports (CLI and HTTP alike): what one file may hold. An upload, and an archive's members
    # once unpacked (an XLSX is an archive too), stay under max_upload_bytes (413 above it).
    max_upload_bytes: int = 512 * 1024 * 1024
    max_archive_members: int = 1_000  # files in one uploaded zip
    max_columns: int = 1_000  # columns of a CSV or XLSX sheet
    max_line_bytes: int = 1024 * 1024  # one line of a CSV
    max_report_errors: int = 1_000  # problems listed in an import report (all are counted)
    # how long an import waits for another import of the same layer before it is refused
    import_lock_wait_seconds: float = 60.0
    # How long one SQL statement of an HTTP request may run (ms; 0: no limit); a request cut
    # short answers 503. Imports, detections and plans started over HTTP get the job limit.
    # The CLI (analyses, imports) is never limited.
    statement_timeout_ms: int = 30_000
    job_statement_timeout_ms: int = 1_800_000
    tiles: TileSettings = TileSettings()

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
