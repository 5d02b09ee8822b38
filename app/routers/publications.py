"""The platforms' assessment (考核评价) and the yearly publication (每年公布) over HTTP.

Reading is open: public callers get the assessment without the values of restricted indicators
(their points and every score and rank are shown) and the public audience of a publication
(disclosure control applied); analyst and admin tokens get everything. Publishing freezes an
edition, an act of the bureau: it needs an admin token (the CLI ``landlink publish`` is the
usual way).
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from sqlalchemy import Engine

from app.deps import Caller, caller, engine_dep, require
from app.errors import ApiError
from app.params import DbInt, Year
from gis.core.plan_models import KINDS
from gis.management import assessment as am
from gis.management import publication as pb

router = APIRouter(tags=["assessment and publications (考核评价与年度公布)"])


def _assess(engine: Engine, year: int | None, who: Caller) -> dict:
    with engine.connect() as conn:
        res = am.assess(conn, year)
    if res["year"] is None:
        raise ApiError(
            404, "no §7 indicators yet: import output (CC) and run 'landlink analyse-all'"
        )
    return res if who.sees(True) else am.public_assessment(res)


@router.get("/api/assessment")
def list_assessment(
    year: Year | None = Query(None, description="ND (default: the latest year with indicators)"),
    kind: str | None = Query(None, description=f"a platform kind: one of {', '.join(KINDS)}"),
    who: Caller = Depends(caller),
    engine: Engine = Depends(engine_dep),
) -> dict:
    """Every platform's composite score, rank overall and within its kind, explained per
    component (value, normalised score, weight, points)."""
    if kind is not None and kind not in KINDS:
        raise ApiError(400, f"kind {kind!r}: use one of {', '.join(KINDS)}")
    res = _assess(engine, year, who)
    return am.only_kind(res, kind) if kind else res


@router.get("/api/assessment/{platform_code}")
def platform_assessment(
    platform_code: str,
    year: Year | None = Query(None, description="ND (default: the latest year with indicators)"),
    who: Caller = Depends(caller),
    engine: Engine = Depends(engine_dep),
) -> dict:
    """One platform's assessment, explained per component."""
    item = am.platform(_assess(engine, year, who), platform_code)
    if item is None:
        raise ApiError(
            404, f"no platform with PTDM {platform_code!r}; GET /api/assessment lists them"
        )
    return item


@router.get("/api/publications")
def list_publications(engine: Engine = Depends(engine_dep)) -> dict:
    """Every frozen edition: year, edition, who and when, note, sections, hashes."""
    items = pb.list_publications(engine)
    return {"count": len(items), "items": items}


@router.post("/api/publications", status_code=201)
async def publish(
    year: Annotated[Year, Query(description="ND: the year to freeze")],
    note: str | None = Query(None, max_length=2000, description="why this edition"),
    who: Caller = Depends(require("admin")),
    engine: Engine = Depends(engine_dep),
) -> dict:
    """Freeze ``year`` as its next edition (admin); the answer says what differs from the
    previous edition."""
    try:
        res = await run_in_threadpool(pb.publish, engine, year, f"token:{who.name}", note)
    except pb.PublicationError as e:
        raise ApiError(409, str(e)) from None
    return {k: res[k] for k in ("year", "edition", "created_at", "created_by", "note",
                                "contents", "content_hash", "diff")}  # fmt: skip


@router.get("/api/publications/{year}")
async def get_publication(
    year: Year,
    edition: DbInt | None = Query(None, ge=1, description="default: the latest edition"),
    format: Literal["json", "html", "pdf", "docx"] = Query(
        "json", description="json (as frozen); html, pdf (WeasyPrint, vector maps) or docx"
    ),
    who: Caller = Depends(caller),
    engine: Engine = Depends(engine_dep),
) -> Response:
    """One edition as frozen (JSON), or its Chinese report (html, pdf, docx). Public callers get the
    public audience; analyst and admin tokens the full one."""
    audience = "analyst" if who.sees(True) else "public"
    try:
        pub = await run_in_threadpool(pb.get, engine, year, edition, audience, format != "json")
    except pb.PublicationError as e:
        raise ApiError(404, str(e)) from None
    if format == "json":
        return Response(pb.canonical(pub), media_type="application/json")
    from gis.management.publication_report import render

    body, media = await run_in_threadpool(render, pub, format)
    headers = {}
    if format in ("pdf", "docx"):
        how = "inline" if format == "pdf" else "attachment"
        headers["Content-Disposition"] = (
            f'{how}; filename="publication-{year}-{pub["edition"]}-{audience}.{format}"'
        )
    return Response(body, media_type=media, headers=headers)
