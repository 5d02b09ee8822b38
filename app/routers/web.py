"""The map page (地图): index.html and its static files, the page's settings, local glyphs.

Everything the page loads comes from this server: MapLibre GL JS and ECharts are vendored into
app/static/vendor/ from npm at set-up (``make web``); no CDN. A base map is optional
(``LANDLINK_BASEMAP_URL``: an XYZ raster tile URL, e.g. 天地图 with its ``tk=`` key, or the
bureau's own); without one, district outlines and labels draw the city.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, Response
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.errors import ApiError

STATIC = Path(__file__).resolve().parent.parent / "static"

router = APIRouter(tags=["map page"])


class PageSettings(BaseSettings):
    """``LANDLINK_BASEMAP_URL`` (XYZ raster template with {z}/{x}/{y}; tokens included),
    ``LANDLINK_BASEMAP_ATTRIBUTION``, ``LANDLINK_BASEMAP_MAXZOOM``."""

    model_config = SettingsConfigDict(env_prefix="LANDLINK_", env_file=".env", extra="ignore")
    basemap_url: str | None = None
    basemap_attribution: str = ""
    basemap_maxzoom: int = 18


@router.get("/", include_in_schema=False)
def index() -> FileResponse:
    page = STATIC / "index.html"
    if not (STATIC / "vendor" / "maplibre-gl.js").exists():
        raise ApiError(
            503,
            "the map page's JavaScript is not installed: run 'make web' (npm ci, then copies "
            "MapLibre GL JS and ECharts into app/static/vendor/)",
        )
    return FileResponse(page, headers={"Cache-Control": "no-cache"})


@router.get("/app-config.json", include_in_schema=False)
def page_config(request: Request) -> dict:
    """What the page needs to know at start: the optional base map, and whether this server
    has vector tiles (a ``/tiles/{layer}.json`` TileJSON route), else the page draws GeoJSON."""
    s = PageSettings()
    basemap = None
    if s.basemap_url:
        basemap = {
            "tiles": [s.basemap_url],
            "attribution": s.basemap_attribution,
            "maxzoom": s.basemap_maxzoom,
        }
    paths = set(request.app.openapi().get("paths", {}))  # built once, then cached by FastAPI
    tiles = any(p.startswith("/tiles/") and p.endswith(".json") and "{" in p for p in paths)
    return {
        "basemap": basemap,
        "tiles": tiles,
        "indicators": "/api/indicators" in paths,
        "platforms": "/api/platforms" in paths,
    }


@router.get("/glyphs/{fontstack}/{glyph_range}.pbf", include_in_schema=False)
def glyphs(fontstack: str, glyph_range: str) -> Response:
    """An empty glyph set: the page draws Chinese labels with the browser's own font
    (MapLibre's ``localIdeographFontFamily``), so no font files are needed offline."""
    return Response(b"", media_type="application/x-protobuf")


_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".json": "application/json",
    ".png": "image/png",
    ".svg": "image/svg+xml",
}


@router.get("/static/{path:path}", include_in_schema=False)
def static(path: str) -> FileResponse:
    """app/static/<path>; nothing outside that folder."""
    f = (STATIC / path).resolve()
    if not f.is_relative_to(STATIC) or not f.is_file():
        raise ApiError(404, f"no static file {path!r}; is the page installed ('make web')?")
    vendor = f.is_relative_to(STATIC / "vendor")
    return FileResponse(
        f,
        media_type=_TYPES.get(f.suffix),
        headers={"Cache-Control": "max-age=86400" if vendor else "no-cache"},
    )
