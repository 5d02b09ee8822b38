"""报表 over HTTP: ``GET /api/reports`` lists them, ``GET /api/reports/{name}?year=&format=``
(xlsx or pdf) makes one (gis/serving/reports.py). Reads only; restricted figures (亩均税收 etc.)
only with an analyst or admin token, as in the endpoints the numbers come from."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from sqlalchemy import Engine

from app.deps import Caller, caller, engine_dep
from app.errors import ApiError
from app.params import Year
from gis.serving import reports as rp

router = APIRouter(tags=["reports (报表)"])


@router.get("/api/reports")
def list_reports() -> JSONResponse:
    """The report sheets: name, Chinese title, what each holds, and the formats."""
    return JSONResponse({"items": rp.catalogue(), "formats": list(rp.MEDIA)})


@router.get("/api/reports/{name}")
async def report(
    name: str,
    year: Year | None = Query(None, description="the year reported (default: the latest)"),
    format: str = Query("xlsx", pattern="^(xlsx|pdf)$", description="xlsx or pdf"),
    who: Caller = Depends(caller),
    engine: Engine = Depends(engine_dep),
) -> Response:
    """One report as a bureau files it: title, 制表单位, 制表日期, the tables with 合计."""
    if name not in rp.REPORTS:
        raise ApiError(
            404, f"unknown report {name!r}; one of {', '.join(rp.REPORTS)} (GET /api/reports)"
        )
    try:
        data, media, fname = await run_in_threadpool(
            rp.render, engine, name, year, format, who.analyst
        )
    except rp.ReportError as e:
        raise ApiError(404, str(e)) from None
    return Response(
        data, media_type=media, headers={"Content-Disposition": f'attachment; filename="{fname}"'}
    )
