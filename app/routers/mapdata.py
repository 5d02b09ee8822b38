"""What the map page asks besides tiles and the three-lands lists: search, a parcel's dossier,
whole layers as GeoJSON (the fallback while tiles are missing), parcels' 亩均税收 bands."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, Response
from sqlalchemy import Engine

from app.deps import Caller, caller, engine_dep, require
from app.errors import ApiError
from gis.map import map_layers, parcel_dossier
from gis.serving import search

router = APIRouter(tags=["map page"])


@router.get("/api/search")
async def search_places(
    q: str = Query(..., min_length=1, max_length=100, description="name, USCC, DKBH, DZJGH"),
    limit: int = Query(10, ge=1, le=50),
    engine: Engine = Depends(engine_dep),
) -> dict:
    """Enterprises by name or USCC, parcels by DKBH, supply records by 电子监管号 (DZJGH),
    approvals by PZWH; each with ``bbox`` and ``center`` in lon/lat (WGS84) to fly to."""
    hits = await run_in_threadpool(search.search, engine, q, limit)
    return {"q": q, "results": hits}


@router.get("/api/parcels/{dkbh}")
async def parcel(
    dkbh: str, who: Caller = Depends(caller), engine: Engine = Depends(engine_dep)
) -> JSONResponse:
    """地块档案: area (m², 亩), use, supply record and dates, approvals, its place on 批而未供 →
    供而未用 → 用而未尽 → 建而未投 → 投而未达标, enterprises with class (and, for analysts,
    亩均税收 by year), projects, and its three-lands findings with reasons."""
    try:
        d = await run_in_threadpool(parcel_dossier.dossier, engine, dkbh, who.analyst)
    except parcel_dossier.ParcelNotFound as e:
        raise ApiError(404, f"{e}; search for it with /api/search?q=") from None
    return JSONResponse(jsonable_encoder(d))


@router.get("/api/map/layers/{layer_id}.geojson")
async def layer_geojson(
    layer_id: str,
    props: str | None = Query(None, description="comma-separated property names (default all)"),
    points: bool = Query(False, description="a point on each feature's surface (for labels)"),
    who: Caller = Depends(caller),
    engine: Engine = Depends(engine_dep),
) -> Response:
    """A whole layer (the tiles' collections: districts, platforms, corridors, parcels, ...)
    as GeoJSON in lon/lat, with the same properties as the vector tiles."""
    try:
        names = [p.strip() for p in props.split(",") if p.strip()] if props else None
        body = await run_in_threadpool(
            map_layers.layer_geojson, engine, layer_id, who.analyst, names, points
        )
    except map_layers.LayerNotFound as e:
        raise ApiError(404, str(e)) from None
    except map_layers.BadProperty as e:
        raise ApiError(400, str(e)) from None
    return Response(body, media_type="application/geo+json")


@router.get("/api/map/parcel-tax")
async def parcel_tax(
    who: Caller = Depends(require("analyst")), engine: Engine = Depends(engine_dep)
) -> dict:
    """Analyst token: each parcel's 亩均税收 (万元/亩) in the latest year and its band."""
    return await run_in_threadpool(map_layers.parcel_tax_bands, engine)


@router.get("/api/whoami")
def whoami(who: Caller = Depends(caller)) -> dict:
    """The caller's role (``viewer`` without a token); 401 for an unknown token."""
    return {"role": who.role, "name": who.name, "analyst": who.has_role("analyst")}
