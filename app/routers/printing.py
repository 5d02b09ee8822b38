"""出图: the map page's view as a titled map PDF (gis/map/print_map.py draws it)."""

from __future__ import annotations

from datetime import date

from fastapi import APIRouter, Depends, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from sqlalchemy import Engine

from app.deps import Caller, caller, engine_dep
from app.errors import ApiError
from gis.map import print_map as pm

router = APIRouter(tags=["map page"])


@router.get(
    "/api/print",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}, "description": "a one-page PDF"}},
)
async def print_view(
    bbox: str | None = Query(
        None,
        max_length=200,
        description="minlon,minlat,maxlon,maxlat in EPSG:4490 (CGCS2000) degrees, as the OGC "
        "API's bbox (WGS84 coordinates are within a metre of them); the map covers it at least, "
        f"widened to the map frame's proportions; at most {pm.MAX_BBOX_DEG:g}° across; required",
        examples=["120.0,30.1,120.4,30.4"],
    ),
    layers: str | None = Query(
        None,
        max_length=500,
        description="comma list of the map page's layers, drawn in the page's order: "
        f"{', '.join(pm.PRINT_LAYERS)} (default: {', '.join(pm.DEFAULT_LAYERS)})",
    ),
    size: str = Query("A4", description=f"paper: {' | '.join(pm.PAPER_MM)}"),
    orientation: str = Query("portrait", description="portrait | landscape"),
    title: str | None = Query(
        None, max_length=60, description=f"图名 (default: {pm.DEFAULT_TITLE})"
    ),
    parcel_colour: str = Query(
        "use",
        description="how 现状工业用地 is coloured, as the page's 着色: use (实际用途), class "
        "(评价等级) or tax (亩均税收 band: an analyst token)",
    ),
    who: Caller = Depends(caller),
    engine: Engine = Depends(engine_dep),
) -> Response:
    """A one-page PDF of the view: 图名, the map (vector, EPSG:4549, with 比例尺 and 指北针),
    图例 (the page's labels and colours), 制图单位 (the publication's issuing unit) and 制图日期
    (today). 400 with the reason for a bad bbox, layer, size or orientation; 403 for parcels
    coloured by 亩均税收 without an analyst token. Reads only."""
    try:
        box = pm.parse_bbox(bbox)
        pm.paper(size, orientation)
        analyst = who.has_role("analyst")
        ids = pm.parse_layers(layers, analyst, parcel_colour)
    except pm.PrintError as e:
        raise ApiError(400, str(e)) from None
    except pm.RestrictedLayer as e:
        raise ApiError(403, str(e)) from None
    if parcel_colour == "tax" and "parcels" in ids:
        who.analyst  # noqa: B018 -- records the restricted read in the audit log
    pdf = await run_in_threadpool(
        pm.print_pdf, engine, box, ids, size, orientation, title, parcel_colour
    )
    name = f"map-{size}-{orientation}-{date.today():%Y%m%d}.pdf"
    return Response(
        pdf,
        media_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="{name}"'},
    )
