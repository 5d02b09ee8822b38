"""Layout plans (用地布局规划, DOMAIN_RULES §8) over HTTP: create, read, compare, report.

Creating a plan writes (the plan itself, nothing else), so it needs an analyst or admin token.
Reading is open; public callers get no 亩均税收 figures (in the tables, totals or the report).
A request the engine cannot satisfy is refused with 422 and the reason; nothing is written.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from pydantic import BaseModel, Field
from sqlalchemy import Engine

from app.deps import Caller, caller, engine_dep, require
from app.errors import ApiError
from app.params import BIGINT_MAX, AsOf, DbInt, Mu, Year
from gis.platforms import layout_plan as lp

router = APIRouter(tags=["layout plans (用地布局规划)"])


class PlanBody(BaseModel):
    name: str = Field("default", min_length=1, description="scenario name; versions count up")
    target_year: Year = Field(ge=2000, le=2100)
    floor_mu: Mu = Field(description="两底线: total industrial land stays >= this (亩)")
    new_land_mu: Mu = Field(description="new industrial land the city may supply (亩)")
    corridor_min_share: float | None = Field(
        None, ge=0, le=1, description="minimum share of the new land inside the corridors"
    )
    weights: dict | None = Field(
        None, description='{"tax": 1.0, "corridor": 1.0, "kinds": {"to_innovation": 0.5}}'
    )
    as_of: AsOf | None = None


def _not_found(fn, *args, **kw):
    try:
        return fn(*args, **kw)
    except lp.PlanNotFound as e:
        raise ApiError(404, f"{e}; GET /api/plans lists them") from None


@router.post("/api/plans", status_code=201)
def create_plan(
    body: PlanBody,
    who: Caller = Depends(require("analyst")),
    engine: Engine = Depends(engine_dep),
) -> dict:
    """Create a versioned scenario; 422 with the reason when it cannot hold its invariants."""
    req = lp.PlanRequest(
        target_year=body.target_year,
        floor_mu=body.floor_mu,
        new_land_mu=body.new_land_mu,
        corridor_min_share=body.corridor_min_share,
        weights=body.weights,
        name=body.name,
        as_of=body.as_of,
    )
    try:
        res = lp.create(engine, req, user=f"{who.role}:{who.name}")
    except lp.PlanRefused as e:
        raise ApiError(422, f"plan refused: {e.reason}", figures=e.figures) from None
    return {**res, "href": f"/api/plans/{res['id']}"}


@router.get("/api/plans")
def list_plans(who: Caller = Depends(caller), engine: Engine = Depends(engine_dep)) -> dict:
    items = lp.list_plans(engine, who.analyst)
    return {"count": len(items), "items": items}


@router.get("/api/plans/{plan_id}")
def get_plan(
    plan_id: DbInt,
    geometry: bool = Query(True, description="include block geometry (GeoJSON, EPSG:4326)"),
    who: Caller = Depends(caller),
    engine: Engine = Depends(engine_dep),
) -> dict:
    """The plan: request, totals, invariants, allocation tables and blocks (FeatureCollection)."""
    return _not_found(lp.get_plan, engine, plan_id, who.analyst, geometry)


@router.get("/api/plans/{plan_id}/compare/{other}")
def compare_plans(
    plan_id: DbInt,
    other: str,
    who: Caller = Depends(caller),
    engine: Engine = Depends(engine_dep),
) -> dict:
    """Compare with another plan (its id) or with today's land use (``today``)."""
    if other == "today":
        other_id = None
    elif other.isascii() and other.isdigit() and int(other) <= BIGINT_MAX:
        other_id = int(other)
    else:
        raise ApiError(400, f"compare with a plan id or 'today', not {other!r}")
    return _not_found(lp.compare, engine, plan_id, other_id, who.analyst)


@router.get("/api/plans/{plan_id}/report")
async def plan_report(
    plan_id: DbInt,
    format: Literal["html", "pdf", "docx"] = Query(
        "html",
        description="html; pdf (A4, laid out by WeasyPrint, vector maps, page numbers); docx "
        "(Word / WPS, maps as pictures)",
    ),
    who: Caller = Depends(caller),
    engine: Engine = Depends(engine_dep),
) -> Response:
    """The plan report (Chinese) with a map of each corridor (scale bar, north arrow, legend),
    allocation tables, indicators, assumptions."""
    from gis.platforms.plan_report import render

    body, media = await run_in_threadpool(_not_found, render, engine, plan_id, format, who.analyst)
    headers = {}
    if format == "pdf":
        headers["Content-Disposition"] = f'inline; filename="plan-{plan_id}.pdf"'
    if format == "docx":
        headers["Content-Disposition"] = f'attachment; filename="plan-{plan_id}.docx"'
    return Response(body, media_type=media, headers=headers)
