"""The survey's 家底 over HTTP: the summary by district or platform, its three lists, the XLSX.

Reads only (gis/management/survey.py); open to every caller: no tax, energy or emission figure
is in it, and enterprise names, USCC and holders are public in this system.
"""

from __future__ import annotations

import json
from datetime import date
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from sqlalchemy import Engine

from app.deps import engine_dep
from app.errors import ApiError
from app.links import link, request_link
from app.params import Offset, Year
from gis.management import survey as sv
from gis.serving.export import MEDIA_TYPES

router = APIRouter(tags=["survey (家底调查)"])

LEVEL = Query("district", pattern="^(district|platform)$", description="district or platform")
YEAR = Query(None, description="output year (ND) of the land basis of unlinked enterprises")
MAX_PAGE = 10_000


def _read(engine: Engine, level: str, year: int | None, only: str | None = None) -> sv.Frames:
    try:
        return sv.survey(engine, level, year, only)
    except sv.SurveyError as e:
        raise ApiError(404 if "year" in str(e) else 400, str(e)) from None


def _xlsx(data: bytes, name: str, ascii_name: str) -> Response:
    """An XLSX attachment: its Chinese file name (RFC 5987) and an ASCII one for old clients."""
    disposition = f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name)}"
    return Response(
        data, media_type=MEDIA_TYPES["xlsx"], headers={"Content-Disposition": disposition}
    )


def _names(level: str) -> tuple[str, str]:
    day = date.today().isoformat()
    return f"家底调查_{sv.LEVEL_LABELS[level]}_{day}.xlsx", f"survey_{level}_{day}.xlsx"


def _list_hrefs(request: Request, level: str, year: int | None) -> dict[str, str]:
    q = f"level={level}" + (f"&year={year}" if year else "")
    return {n: link(request, f"/api/survey/lists/{n}", q) for n in sv.LIST_NAMES}


@router.get("/api/survey")
async def survey(
    request: Request,
    level: str = LEVEL,
    year: Year | None = YEAR,
    format: str = Query("json", pattern="^(json|xlsx)$"),
    engine: Engine = Depends(engine_dep),
) -> Response:
    """家底: per district or platform (a row for land outside every zone, and the city), the
    industrial land (亩, 公顷) by actual use (SJYT) and by place on the chain of land, and the
    counts of the three lists to reconcile, each with the link to its full list."""
    fr = await run_in_threadpool(_read, engine, level, year)
    if format == "xlsx":
        data = await run_in_threadpool(sv.workbook, fr)
        return _xlsx(data, *_names(level))
    body = sv.summary(fr, _list_hrefs(request, level, year))
    body["links"] = [
        {"rel": "self", "href": request_link(request)},
        {
            "rel": "alternate",
            "type": MEDIA_TYPES["xlsx"],
            "href": link(request, "/api/survey.xlsx", f"level={level}"),
        },
    ]
    return JSONResponse(body)


@router.get("/api/survey.xlsx")
async def survey_xlsx(
    level: str = LEVEL, year: Year | None = YEAR, engine: Engine = Depends(engine_dep)
) -> Response:
    """The survey as an XLSX workbook: by use, by chain and the three lists, a sheet each."""
    fr = await run_in_threadpool(_read, engine, level, year)
    data = await run_in_threadpool(sv.workbook, fr)
    return _xlsx(data, *_names(level))


@router.get("/api/survey/lists/{name}")
async def survey_list(
    request: Request,
    name: str,
    level: str = LEVEL,
    code: str | None = Query(
        None, description="XZQDM or PTDM (largest share; an enterprise by its point); outside"
    ),
    year: Year | None = YEAR,
    limit: int = Query(100, ge=1, le=MAX_PAGE),
    offset: Offset = 0,
    format: str = Query("json", pattern="^(json|xlsx)$", description="xlsx: the whole list"),
    engine: Engine = Depends(engine_dep),
) -> Response:
    """One of the lists the survey reconciles: unlinked-enterprises (enterprises matched to no
    parcel), parcels-without-enterprise, holder-mismatch (the holder's QLRDM is none of the
    enterprises on the parcel, or not filled); paged, or the whole list as XLSX."""
    if name not in sv.LIST_NAMES:
        raise ApiError(404, f"no survey list {name!r}; lists: {', '.join(sv.LIST_NAMES)}")
    fr = await run_in_threadpool(_read, engine, level, year, name)
    try:
        if format == "xlsx":
            data = await run_in_threadpool(sv.list_workbook, fr, name, code)
            day = date.today().isoformat()
            return _xlsx(
                data, f"{sv.LIST_TITLES[name]}_{level}_{day}.xlsx", f"survey_{name}_{level}.xlsx"
            )
        result = sv.list_items(fr, name, code, limit, offset)
    except sv.SurveyError as e:
        raise ApiError(400, str(e)) from None
    links = [{"rel": "self", "href": request_link(request)}]
    if offset + len(result["items"]) < result["number_matched"]:
        links.append({"rel": "next", "href": request_link(request, offset=offset + limit)})
    body = {
        "name": name,
        "title": sv.LIST_TITLES[name],
        "level": level,
        "year": fr.year,
        "fields": [{"name": f.name, "label": f.label} for f in sv.list_fields(name, level)],
        "numberMatched": result["number_matched"],
        "numberReturned": len(result["items"]),
        "items": result["items"],
        "links": links,
    }
    return JSONResponse(json.loads(json.dumps(body, ensure_ascii=False, default=str)))
