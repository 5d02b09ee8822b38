"""The map page (地图): index.html and its static files, the page's settings, local glyphs.

Everything the page loads comes from this server: MapLibre GL JS and ECharts are vendored into
app/static/vendor/ from npm at set-up (``make web``); no CDN. So are Swagger UI and ReDoc, which
serve the API's documentation at ``/docs`` and ``/redoc`` (also the OGC ``service-doc``). Every
page refers to its files by relative URLs, so it works under a gateway's prefix too.

A base map is optional (``LANDLINK_BASEMAP_URL``: an XYZ raster tile URL, e.g. 天地图 with its
``tk=`` key, or the bureau's own); without one, district outlines and labels draw the city.
"""

from __future__ import annotations

import html
from pathlib import Path
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, Response
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.errors import ApiError
from app.links import public_base

STATIC = Path(__file__).resolve().parent.parent / "static"

router = APIRouter(tags=["map page"])


class PageSettings(BaseSettings):
    """``LANDLINK_BASEMAP_URL`` (XYZ raster template with {z}/{x}/{y}; tokens included),
    ``LANDLINK_BASEMAP_ATTRIBUTION``, ``LANDLINK_BASEMAP_MAXZOOM``; 天地图's 矢量 / 影像 presets
    with ``LANDLINK_TIANDITU_TK`` (``_HOST``, ``_ATTRIBUTION``: docs/MAP_PAGE.md)."""

    model_config = SettingsConfigDict(env_prefix="LANDLINK_", env_file=".env", extra="ignore")
    basemap_url: str | None = None
    basemap_attribution: str = ""
    basemap_maxzoom: int = 18
    # 天地图: a browser key (public by design: it is sent in every tile URL the browser fetches)
    # turns on the 矢量 / 影像 presets, each a base layer and its 注记 (label) overlay.
    tianditu_tk: str | None = None
    # host replacing t{0-7}.tianditu.gov.cn, e.g. a 政务版 (government-network) service; may
    # carry "{s}" for the subdomain digit; a scheme may be given (default https)
    tianditu_host: str | None = None
    # the 审图号 shown with the map (天地图's own; check the current number on its site)
    tianditu_attribution: str = "天地图 审图号：GS(2024)0568号"


def _vendored(name: str, what: str) -> None:
    """503 naming the fix when app/static/vendor/ lacks ``name`` (``make web`` not run)."""
    if not (STATIC / "vendor" / name).exists():
        raise ApiError(
            503,
            f"{what} is not installed: run 'make web' (npm ci, then copies MapLibre GL JS, "
            "ECharts, Swagger UI and ReDoc into app/static/vendor/)",
        )


@router.get("/", include_in_schema=False)
def index(request: Request) -> HTMLResponse:
    """index.html with ``<base href>`` set to where the page is served (the gateway's prefix
    included), against which the page resolves every request it makes."""
    _vendored("maplibre-gl.js", "the map page's JavaScript")
    page = (STATIC / "index.html").read_text(encoding="utf-8")
    base = html.escape(urlsplit(public_base(request)).path.rstrip("/") + "/", quote=True)
    page = page.replace('<base href="/">', f'<base href="{base}">', 1)
    return HTMLResponse(page, headers={"Cache-Control": "no-cache"})


# The documentation pages may load nothing from outside this server (ReDoc's bundle, for one,
# would fetch its logo from cdn.redoc.ly): the browser is told so, and hides what it refused.
_DOC_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; connect-src 'self'"
)


def _api_doc(request: Request, make, js: str, what: str, **files) -> HTMLResponse:  # type: ignore[no-untyped-def]
    """An API documentation page from FastAPI's ``make`` (relative URLs: the page lives at
    ``<prefix>/docs``, its files at ``<prefix>/static/vendor/``)."""
    _vendored(js, what)
    page = make(
        openapi_url=request.app.openapi_url.lstrip("/"),
        title=f"{request.app.title} — API",
        **files,
    )
    page.headers["Cache-Control"] = "no-cache"
    page.headers["Content-Security-Policy"] = _DOC_CSP
    return page


@router.get("/docs", include_in_schema=False)
def swagger_ui(request: Request) -> HTMLResponse:
    """Swagger UI from app/static/vendor/."""
    return _api_doc(
        request,
        get_swagger_ui_html,
        "swagger-ui-bundle.js",
        "Swagger UI (the /docs page)",
        swagger_js_url="static/vendor/swagger-ui-bundle.js",
        swagger_css_url="static/vendor/swagger-ui.css",
        swagger_favicon_url="static/vendor/favicon.png",
        # no badge from validator.swagger.io: nothing is fetched from outside
        swagger_ui_parameters={"validatorUrl": None},
    )


@router.get("/redoc", include_in_schema=False)
def redoc(request: Request) -> HTMLResponse:
    """ReDoc's standalone bundle from app/static/vendor/, without Google Fonts."""
    return _api_doc(
        request,
        get_redoc_html,
        "redoc.standalone.js",
        "ReDoc (the /redoc page)",
        redoc_js_url="static/vendor/redoc.standalone.js",
        redoc_favicon_url="static/vendor/favicon.png",
        with_google_fonts=False,
    )


TIANDITU_PRESETS = {"vec": ("vec", "cva"), "img": ("img", "cia")}  # base, 注记 overlay


def _tianditu_url(s: PageSettings, layer: str, n: int) -> str:
    """天地图's WMTS GetTile as an XYZ template for ``layer`` (vec, cva, img, cia) in Web
    Mercator (``_w``), on subdomain ``n`` (0–7) or the configured host."""
    host = s.tianditu_host or "t{s}.tianditu.gov.cn"
    if "://" not in host:
        host = "https://" + host
    host = host.rstrip("/").replace("{s}", str(n))
    return (
        f"{host}/{layer}_w/wmts?SERVICE=WMTS&REQUEST=GetTile&VERSION=1.0.0&LAYER={layer}"
        "&STYLE=default&TILEMATRIXSET=w&FORMAT=tiles&TILEMATRIX={z}&TILEROW={y}&TILECOL={x}"
        f"&tk={s.tianditu_tk}"
    )


def _tianditu(s: PageSettings) -> dict:
    """The 矢量 and 影像 presets: for each, the base and 注记 tile URLs over t0–t7 (one URL when
    a host override without ``{s}`` is set), the attribution and the zoom limit."""
    many = s.tianditu_host is None or "{s}" in s.tianditu_host
    ns = range(8) if many else range(1)
    presets = {
        name: {
            "base": [_tianditu_url(s, base, n) for n in ns],
            "labels": [_tianditu_url(s, labels, n) for n in ns],
        }
        for name, (base, labels) in TIANDITU_PRESETS.items()
    }
    return {
        "presets": presets,
        "default": "vec",
        "attribution": s.tianditu_attribution,
        "maxzoom": s.basemap_maxzoom,
    }


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
    tianditu = _tianditu(s) if s.tianditu_tk else None
    paths = set(request.app.openapi().get("paths", {}))  # built once, then cached by FastAPI
    tiles = any(p.startswith("/tiles/") and p.endswith(".json") and "{" in p for p in paths)
    return {
        "basemap": basemap,
        "tianditu": tianditu,
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
