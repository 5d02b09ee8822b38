"""The FastAPI application: routers from app/routers, JSON errors, static map page."""

from __future__ import annotations

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.gzip import DEFAULT_EXCLUDED_CONTENT_TYPES, GZipMiddleware

from app import dblimits, errors, links
from app.deps import TokenGate
from app.routers import (
    admission,
    audit,
    enterprises,
    feed,
    land,
    mapdata,
    ogc,
    ogc_edit,
    plans,
    platforms,
    printing,
    publications,
    registry,
    reports,
    row_edits,
    rows,
    survey,
    targets,
    tasks,
    tiles,
    vocabulary,
    web,
)
from gis.core.config import get_settings

_NOT_GZIPPED = (
    tiles.MVT,
    "application/x-protobuf",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/geopackage+sqlite3",
    "application/pdf",
)


def _add_http_middleware(app: FastAPI) -> None:
    """gzip, CORS and the trusted proxies' headers (outside everything else, in that order
    from the inside out; settings in gis/core/config.py)."""
    s = get_settings()
    # gzip for what compresses: JSON, GeoJSON, CSV, HTML, JavaScript; not vector tiles (cached
    # and served by the thousand a second, where the CPU matters more) nor zip, XLSX, GeoPackage
    app.add_middleware(
        GZipMiddleware,
        minimum_size=s.gzip_min_bytes,
        compresslevel=6,
        exclude_content_types=(*DEFAULT_EXCLUDED_CONTENT_TYPES, *_NOT_GZIPPED),
    )
    origins = links.cors_origins()
    if origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type", "If-None-Match"],
            expose_headers=[
                "Content-Disposition",
                "ETag",
                "X-Tile-Cache",
                "X-Import-Errors",
                "X-Import-Batch",
            ],
            max_age=600,
        )
    app.add_middleware(links.ForwardedHeaders, trusted=s.forwarded_allow_ips)


def create_app() -> FastAPI:
    app = FastAPI(
        title="landlink",
        description="工业用地经济地理信息系统 — industrial-land economic GIS: registry, "
        "project-land-output linkage, three kinds of land, OGC API and tiles.",
        version="0.1.0",
        docs_url=None,  # /docs and /redoc: app/routers/web.py, from vendored files (no CDN)
        redoc_url=None,
    )
    app.add_middleware(tiles.CachedTiles)  # cached public tiles before routing
    app.add_middleware(TokenGate)  # Bearer tokens only; audit of restricted reads
    errors.install(app)  # after the middleware above, so that its errors are answered too
    dblimits.install(app)  # every request's SQL has a statement timeout (middleware that
    # does not raise; gzip, CORS and the proxy headers go outside it)
    _add_http_middleware(app)
    app.include_router(registry.router)
    app.include_router(rows.router)
    app.include_router(row_edits.router)
    app.include_router(feed.router)
    app.include_router(audit.router)
    app.include_router(ogc.router)
    app.include_router(ogc_edit.router)
    app.include_router(tiles.router)
    app.include_router(land.router)
    app.include_router(enterprises.router)
    app.include_router(mapdata.router)
    app.include_router(printing.router)
    app.include_router(platforms.router)
    app.include_router(admission.router)
    app.include_router(plans.router)
    app.include_router(survey.router)
    app.include_router(targets.router)
    app.include_router(tasks.router)
    app.include_router(publications.router)
    app.include_router(reports.router)
    app.include_router(vocabulary.router)
    app.include_router(web.router)
    generated = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            ogc.reads_answer_400(generated()["paths"])  # generated() keeps what it made
        return app.openapi_schema

    app.openapi = openapi
    return app


app = create_app()
