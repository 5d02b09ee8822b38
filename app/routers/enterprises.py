"""Enterprises, the A/B/C/D evaluation, §7 indicators and backward capacity over HTTP.

JSON by default; ``?format=csv|xlsx`` for the tables. Public callers see classes and names, never
tax, energy or emission figures (an analyst token shows them).
"""

from __future__ import annotations

import json
from datetime import date

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse, Response
from sqlalchemy import Engine

from app.deps import Caller, caller, engine_dep, require
from app.errors import ApiError
from app.params import Offset, Year
from gis.economy import evaluation_read as er
from gis.serving import export
from gis.serving.export import Field

router = APIRouter(tags=["enterprises and evaluation (亩均论英雄)"])

FORMAT = Query("json", pattern="^(json|csv|xlsx)$", description="json, csv or xlsx")
MAX_PAGE = 10_000


def _json(body: dict) -> JSONResponse:
    def default(v):
        if isinstance(v, date):
            return v.isoformat()
        raise TypeError(type(v))

    return JSONResponse(json.loads(json.dumps(body, default=default, ensure_ascii=False)))


def _file(fmt: str, rows: list[dict], fields: list[Field], name: str) -> Response:
    data, media, fname = export.write(fmt, rows, [None] * len(rows), fields, name)
    return Response(
        data, media_type=media, headers={"Content-Disposition": f'attachment; filename="{fname}"'}
    )


def _flat_indicators(items: list[dict], key: str, prefix: str) -> set[str]:
    names: set[str] = set()
    for it in items:
        for k, v in (it.get(key) or {}).items():
            it[f"{prefix}{k}"] = v
            names.add(k)
    return names


EVAL_FIELDS = [
    Field("uscc", "TYSHXYDM", "统一社会信用代码"),
    Field("name", "QYMC", "企业名称"),
    Field("year", "ND", "年度", "int"),
    Field("group", "GROUP", "规上/规下"),
    Field("industry_code", "HYDM", "行业代码"),
    Field("score", "SCORE", "综合得分", "float"),
    Field("class", "CLASS", "评价类别", vocab="eval_class"),
    Field("rank", "RANK", "排名", "int"),
    Field("group_size", "N", "参评企业数", "int"),
    Field("area_mu", "AREA_MU", "用地(亩)", "float"),
    Field("land_basis", "LANDBASIS", "用地依据"),
    Field("not_evaluated_reason", "NOTEVAL", "未参评原因"),
    Field("not_graded_reason", "NOTGRADED", "不分类原因"),
    Field("district", "XZQDM", "行政区"),
    Field("platform", "PTDM", "平台"),
    Field("flags", "BDLX", "不达标", "list"),
]


@router.get("/api/evaluations")
def list_evaluations(
    year: Year | None = Query(None, description="ND (default: the latest evaluated year)"),
    group: str | None = Query(
        None, pattern="^(above|below)$", description="above 规上 / below 规下"
    ),
    klass: str | None = Query(None, alias="class", pattern="^[ABCD]$"),
    limit: int | None = Query(None, ge=1, le=MAX_PAGE),
    offset: Offset = 0,
    format: str = FORMAT,
    who: Caller = Depends(caller),
    engine: Engine = Depends(engine_dep),
) -> Response:
    """The A/B/C/D evaluation (§2): score, class, rank, indicators, or why not graded."""
    with engine.connect() as conn:
        res = er.evaluations(conn, year, group, who.analyst, klass, limit, offset)
    if res["year"] is None:
        raise ApiError(404, "no evaluation yet: import output (CC) or run 'landlink evaluate'")
    if format in ("csv", "xlsx"):
        items = res["items"]
        names = _flat_indicators(items, "indicators", "v_")
        _flat_indicators(items, "points", "p_")
        extra = [Field(f"v_{n}", f"V{i}", n, "float") for i, n in enumerate(sorted(names))]
        extra += [Field(f"p_{n}", f"P{i}", f"{n} points", "float") for i, n in
                  enumerate(sorted(names))]  # fmt: skip
        return _file(format, items, EVAL_FIELDS + extra, f"evaluations_{res['year']}")
    return _json(res)


@router.get("/api/enterprises")
def list_enterprises(
    district: str | None = Query(None, description="XZQDM"),
    platform: str | None = Query(None, description="PTDM"),
    industry: str | None = Query(None, description="GB/T 4754 code or prefix"),
    klass: str | None = Query(None, alias="class", pattern="^[ABCD]$"),
    year: Year | None = Query(None, description="the year of the class shown (default: latest)"),
    q: str | None = Query(None, description="name (part) or USCC"),
    limit: int | None = Query(None, ge=1, le=MAX_PAGE),
    offset: Offset = 0,
    format: str = FORMAT,
    who: Caller = Depends(caller),
    engine: Engine = Depends(engine_dep),
) -> Response:
    """Enterprises with their district, platform, corridor and the year's class."""
    if limit is None and format == "json":
        limit = 100
    with engine.connect() as conn:
        res = er.enterprises(
            conn, who.analyst, district, platform, industry, klass, year, q, limit, offset
        )
    if format in ("csv", "xlsx"):
        fields = [
            Field("uscc", "TYSHXYDM", "统一社会信用代码"),
            Field("name", "QYMC", "企业名称"),
            Field("industry_code", "HYDM", "行业代码"),
            Field("above_size", "GMYS", "规模以上", "bool"),
            Field("parcel_nos", "DKBH", "地块", "list"),
            Field("district", "XZQDM", "行政区"),
            Field("platform", "PTDM", "平台"),
            Field("corridor", "ZLDM", "走廊"),
            Field("year", "ND", "年度", "int"),
            Field("class", "CLASS", "评价类别", vocab="eval_class"),
            Field("score", "SCORE", "综合得分", "float"),
            Field("rank", "RANK", "排名", "int"),
            Field("area_mu", "AREA_MU", "用地(亩)", "float"),
        ]
        return _file(format, res["items"], fields, "enterprises")
    return _json(res)


@router.get("/api/enterprises/{uscc}")
def enterprise_dossier(
    uscc: str, who: Caller = Depends(caller), engine: Engine = Depends(engine_dep)
) -> Response:
    """一企一档: parcels with link method, projects, every year's figures, scores, class, flags."""
    with engine.connect() as conn:
        try:
            return _json(er.dossier(conn, uscc.strip().upper(), who.analyst))
        except er.NotFound as e:
            raise ApiError(404, str(e)) from None


@router.get("/api/indicators")
def indicators(
    level: str = Query("district", pattern="^(district|platform|corridor)$"),
    year: Year | None = Query(None),
    format: str = FORMAT,
    who: Caller = Depends(caller),
    engine: Engine = Depends(engine_dep),
) -> Response:
    """§7 两底线 两降低 四提升 per zone: value, change on the year before, rank."""
    with engine.connect() as conn:
        res = er.area_indicators(conn, level, year, who.analyst)
    if res["year"] is None:
        raise ApiError(404, "no indicators yet: import output (CC) or run 'landlink evaluate'")
    if format in ("csv", "xlsx"):
        rows, fields = [], [Field("code", "CODE", "代码"), Field("name", "NAME", "名称")]
        for i, ind in enumerate(res["indicators"]):
            fields += [
                Field(f"{ind}", f"I{i}", ind, "float"),
                Field(f"{ind}_change", f"I{i}C", f"{ind} 同比变化", "float"),
                Field(f"{ind}_rank", f"I{i}R", f"{ind} 排名", "int"),
            ]
        for z in res["items"]:
            row = {"code": z["code"], "name": z["name"]}
            for ind, v in z["indicators"].items():
                row.update({ind: v["value"], f"{ind}_change": v["change"],
                            f"{ind}_rank": v["rank"]})  # fmt: skip
            rows.append(row)
        return _file(format, rows, fields, f"indicators_{level}_{res['year']}")
    return _json(res)


@router.get("/api/backward-capacity")
def backward_capacity(
    year: Year | None = Query(None),
    format: str = FORMAT,
    who: Caller = Depends(require("analyst")),
    engine: Engine = Depends(engine_dep),
) -> Response:
    """淘汰落后产能 candidates (§6): key industry, class D or C with a failed standard, land.
    Analysts only (names of enterprises proposed for elimination, with their BD notes)."""
    with engine.connect() as conn:
        res = er.backward_capacity(conn, year)
    if res["year"] is None:
        raise ApiError(404, "no evaluation yet: import output (CC) or run 'landlink evaluate'")
    who.reads("backward-capacity list", rows=len(res["items"]))
    who.reads("BD notes")
    if format in ("csv", "xlsx"):
        fields = [
            Field("uscc", "TYSHXYDM", "统一社会信用代码"),
            Field("name", "QYMC", "企业名称"),
            Field("industry_code", "HYDM", "行业代码"),
            Field("industry", "INDUSTRY", "重点行业"),
            Field("class", "CLASS", "评价类别", vocab="eval_class"),
            Field("failed_standards", "BDLX", "不达标", "list"),
            Field("area_mu", "AREA_MU", "可腾出用地(亩)", "float"),
            Field("land_basis", "LANDBASIS", "用地依据"),
            Field("district_code", "XZQDM", "行政区"),
            Field("reason", "REASON", "原因"),
        ]
        return _file(format, res["items"], fields, f"backward_capacity_{res['year']}")
    return _json(res)
