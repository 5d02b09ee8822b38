"""The FastAPI application: routers from app/routers, JSON errors, static map page."""

from __future__ import annotations

from fastapi import FastAPI

from app import dblimits, errors
from app.deps import TokenGate
from app.routers import (
    admission,
    audit,
    enterprises,
    land,
    mapdata,
    ogc,
    plans,
    platforms,
    registry,
    tiles,
    web,
)


def create_app() -> FastAPI:
    app = FastAPI(
        title="landlink",
        description="工业用地经济地理信息系统 — industrial-land economic GIS: registry, "
        "project-land-output linkage, three kinds of land, OGC API and tiles.",
        version="0.1.0",
    )
    app.add_middleware(tiles.CachedTiles)  # cached public tiles before routing (issue 5)
    app.add_middleware(TokenGate)  # Bearer tokens only; audit of restricted reads
    errors.install(app)  # after the middleware above, so that its errors are answered too
    dblimits.install(app)  # outermost: every request's SQL has a statement timeout
    app.include_router(registry.router)
    app.include_router(audit.router)
    app.include_router(ogc.router)
    app.include_router(tiles.router)
    app.include_router(land.router)
    app.include_router(enterprises.router)
    app.include_router(mapdata.router)
    app.include_router(platforms.router)
    app.include_router(admission.router)
    app.include_router(plans.router)
    app.include_router(web.router)
    return app


app = create_app()
