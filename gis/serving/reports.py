"""报表: the report sheets a bureau files, as XLSX (``export.tables_xlsx``, the one sheet writer)
and PDF (the same tables as HTML through WeasyPrint).

Each report's numbers come from the functions the API's endpoints call: the three lands from
``gis.lands.land_summary.list_items`` (``/api/land/unsupplied``, ``/idle``, ``/low-efficiency``
of the latest detection run), A/B/C/D from ``gis.economy.evaluation_read.evaluations``
(``/api/evaluations``) and 亩均 figures from ``evaluation_read.area_indicators``
(``/api/indicators?level=platform``), which withhold restricted figures (亩均税收, energy,
emissions) unless ``analyst``. Areas in 亩 (m² ÷ ``M2_PER_MU``). See docs/EXPORTS.md.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from sqlalchemy import Engine, text

from gis.core import vocabulary
from gis.core.layers import M2_PER_MU
from gis.economy import evaluation_read as er
from gis.lands.detection import ZONE_LEVELS
from gis.lands.land_summary import LandQuery, list_items
from gis.serving.export import Field, Sheet, made_by, sheet_layout, tables_xlsx


class ReportError(ValueError):
    """A report that cannot be made as asked (unknown name, no data for the year)."""


@dataclass(frozen=True)
class Report:
    name: str
    title: str  # Chinese
    description: str
    build: Callable[[Engine, int | None, bool], list[Sheet]]


def _zone_names(engine: Engine, level: str) -> dict[str, str]:
    with engine.connect() as conn:
        rows = conn.execute(text(f"SELECT code, name FROM {ZONE_LEVELS[level]} ORDER BY code"))
        return {r.code: r.name for r in rows}


def _zone_fields(level: str) -> list[Field]:
    label = {"district": "区县", "platform": "平台"}[level]
    return [Field("code", "CODE", f"{label}代码"), Field("name", "NAME", f"{label}名称")]


def _land(engine: Engine, kind: str, analyst: bool) -> list[dict]:
    """Every row of one kind in the latest run, as ``/api/land/{kind}?status=all`` lists it."""
    status = ["all"] if kind != "low_efficiency" else None
    res = list_items(engine, kind, LandQuery(status=status, limit=None), analyst)
    return res["items"]


def _mu(m2: float | None) -> float:
    return (m2 or 0.0) / M2_PER_MU


def unsupplied_by_year(engine: Engine, year: int | None, analyst: bool) -> list[Sheet]:
    """批而未供 by approval year × 区县: approvals, approved, supplied and unsupplied 亩 and
    供地率 (supplied ÷ approved); approvals of ``year`` and before (all when None)."""
    names = _zone_names(engine, "district")
    acc: dict[tuple, dict] = {}
    for it in _land(engine, "unsupplied", analyst):
        y = int(str(it["approved_on"])[:4]) if it["approved_on"] else None
        if year is not None and (y is None or y > year):
            continue
        key = (y or 0, it["district"] or "")
        a = acc.setdefault(
            key,
            {
                "approval_year": y,
                "code": it["district"],
                "name": names.get(it["district"], "不在任何区县"),
                "approvals": 0,
                "approved_mu": 0.0,
                "supplied_mu": 0.0,
                "unsupplied_mu": 0.0,
            },
        )
        a["approvals"] += 1
        a["approved_mu"] += _mu(it["approved_m2"])
        a["supplied_mu"] += _mu(it["supplied_m2"])
        a["unsupplied_mu"] += it["unsupplied_mu"] or 0.0
    rows = [acc[k] for k in sorted(acc)]
    for r in rows:
        for k in ("approved_mu", "supplied_mu", "unsupplied_mu"):
            r[k] = round(r[k], 4)
        r["supply_rate"] = (
            round(r["supplied_mu"] / r["approved_mu"], 4) if r["approved_mu"] else None
        )
    fields = [
        Field("approval_year", "PZND", "批准年度", "int"),
        *_zone_fields("district"),
        Field("approvals", "PCS", "批次(个)", "int"),
        Field("approved_mu", "PZMJ", "批准面积(亩)", "float"),
        Field("supplied_mu", "GDMJ", "已供面积(亩)", "float"),
        Field("unsupplied_mu", "WGMJ", "未供面积(亩)", "float"),
        Field("supply_rate", "GDL", "供地率", "float"),
    ]
    return [Sheet("批而未供(按批准年度、区县)", fields, rows, sums=("approvals",))]


def _zone_by_term(
    items: list[dict],
    level: str,
    names: dict[str, str],
    terms: list,
    codes_of: Callable[[dict], list[str] | None],
    total_label: str,
) -> tuple[list[Field], list[dict]]:
    """Rows per zone (``level``'s code in each item) with, per vocabulary term, the items (宗)
    and their 亩 that ``codes_of(item)`` names (an item named by two terms counts under both),
    and every item once in the total; an item for which ``codes_of`` gives None is left out."""
    outside = {"district": "不在任何区县", "platform": "不在任何平台"}[level]
    acc: dict[str, dict] = {}
    for it in items:
        codes = codes_of(it)
        if codes is None:
            continue
        code = it[level] or ""
        a = acc.get(code)
        if a is None:
            a = acc[code] = {"code": it[level], "name": names.get(code, outside)}
            for t in terms:
                a[f"{t.code}_count"], a[f"{t.code}_mu"] = 0, 0.0
            a["total_count"], a["total_mu"] = 0, 0.0
        for c in codes:
            a[f"{c}_count"] += 1
            a[f"{c}_mu"] += it["area_mu"] or 0.0
        a["total_count"] += 1
        a["total_mu"] += it["area_mu"] or 0.0
    fields = list(_zone_fields(level))
    for t in terms:
        fields += [
            Field(f"{t.code}_count", "N", f"{t.label}(宗)", "int"),
            Field(f"{t.code}_mu", "MU", f"{t.label}(亩)", "float"),
        ]
    fields += [
        Field("total_count", "N", f"{total_label}(宗)", "int"),
        Field("total_mu", "MU", f"{total_label}(亩)", "float"),
    ]
    rows = [acc[k] for k in sorted(acc)]
    for r in rows:
        for k in r:
            if k.endswith("_mu"):
                r[k] = round(r[k], 4)
    return fields, rows


def idle_disposal(engine: Engine, year: int | None, analyst: bool) -> list[Sheet]:
    """闲置土地 per 区县 by its status (处置: 逾期, 闲置满一年 征收闲置费, 满两年 可收回, 部分开发后
    中止): supply records (宗) and 亩 of each status of ``idle_status`` that is flagged."""
    statuses = [t for t in vocabulary.vocabulary("idle_status").terms if t.flagged]
    flagged = {t.code for t in statuses}
    fields, rows = _zone_by_term(
        _land(engine, "idle", analyst),
        "district",
        _zone_names(engine, "district"),
        statuses,
        lambda it: [it["status"]] if it["status"] in flagged else None,
        "合计",
    )
    sums = tuple(f.name for f in fields if f.kind == "int")
    return [Sheet("闲置土地处置情况(按区县)", fields, rows, sums=sums)]


def low_efficiency_by_reason(engine: Engine, year: int | None, analyst: bool) -> list[Sheet]:
    """低效用地 per platform by reason: parcels (宗) and 亩 per reason (a parcel with two reasons
    counts under both), and the parcels once each."""
    fields, rows = _zone_by_term(
        _land(engine, "low_efficiency", analyst),
        "platform",
        _zone_names(engine, "platform"),
        vocabulary.vocabulary("low_efficiency_reason").terms,
        lambda it: it["reason_codes"] or [],
        vocabulary.label("land_kind", "low_efficiency"),
    )
    sums = tuple(f.name for f in fields if f.kind == "int")
    return [Sheet("低效用地(按平台、原因)", fields, rows, sums=sums)]


def abcd_summary(engine: Engine, year: int | None, analyst: bool) -> list[Sheet]:
    """A/B/C/D 分类汇总 per 区县 and per platform: enterprises and 用地(亩) of each class and of
    those not graded, from the evaluation of ``year`` (default the latest)."""
    with engine.connect() as conn:
        res = er.evaluations(conn, year, None, analyst)
    if res["year"] is None:
        raise ReportError("no evaluation yet: import output (CC) or run 'landlink evaluate'")
    classes = [(t.code, t.label) for t in vocabulary.vocabulary("eval_class").terms]
    classes.append(("none", vocabulary.vocabulary("eval_class").other_label or "未评价"))
    sheets = []
    for level, label in (("district", "区县"), ("platform", "平台")):
        names = _zone_names(engine, level)
        acc: dict[str, dict] = {}
        for it in res["items"]:
            code = it.get(level) or ""
            a = acc.get(code)
            if a is None:
                a = acc[code] = {"code": it.get(level), "name": names.get(code, f"不在任何{label}")}
                for c, _ in classes:
                    a[f"{c}_count"], a[f"{c}_mu"] = 0, 0.0
            c = it["class"] or "none"
            a[f"{c}_count"] += 1
            a[f"{c}_mu"] += it["area_mu"] or 0.0
        fields = list(_zone_fields(level))
        for c, lab in classes:
            fields += [
                Field(f"{c}_count", "N", f"{lab}(家)", "int"),
                Field(f"{c}_mu", "MU", f"{lab}用地(亩)", "float"),
            ]
        rows = [acc[k] for k in sorted(acc)]
        for r in rows:
            for k in r:
                if k.endswith("_mu"):
                    r[k] = round(r[k], 4)
        sums = tuple(f.name for f in fields if f.kind == "int")
        sheets.append(Sheet(f"{res['year']}年A/B/C/D分类汇总(按{label})", fields, rows, sums=sums))
    return sheets


def per_mu_ranking(engine: Engine, year: int | None, analyst: bool) -> list[Sheet]:
    """亩均 figures per platform with rank (§7 indicators at platform level, as
    ``/api/indicators?level=platform``; restricted ones only for analysts)."""
    with engine.connect() as conn:
        res = er.area_indicators(conn, "platform", year, analyst)
    if res["year"] is None:
        raise ReportError("no indicators yet: import output (CC) or run 'landlink evaluate'")
    fields = list(_zone_fields("platform"))
    for ind in res["indicators"]:
        lab = vocabulary.label("indicator", ind)
        fields += [Field(ind, "V", lab, "float"), Field(f"{ind}_rank", "R", f"{lab}排名", "int")]
    rows = []
    for z in res["items"]:
        row = {"code": z["code"], "name": z["name"]}
        for ind, v in z["indicators"].items():
            row[ind], row[f"{ind}_rank"] = v["value"], v["rank"]
        rows.append(row)
    return [Sheet(f"{res['year']}年平台亩均效益及排名", fields, rows)]


REPORTS: dict[str, Report] = {
    r.name: r
    for r in (
        Report(
            "unsupplied-by-year",
            "批而未供统计表",
            "批而未供 by approval year × 区县, with 供地率",
            unsupplied_by_year,
        ),  # fmt: skip
        Report(
            "idle-disposal",
            "闲置土地处置情况表",
            "闲置土地 and its 处置 status per 区县",
            idle_disposal,
        ),  # fmt: skip
        Report(
            "low-efficiency-by-reason",
            "低效用地统计表",
            "低效用地 by reason per platform",
            low_efficiency_by_reason,
        ),  # fmt: skip
        Report(
            "abcd-summary",
            "企业A/B/C/D分类汇总表",
            "A/B/C/D 分类汇总 per 区县 and platform",
            abcd_summary,
        ),  # fmt: skip
        Report(
            "per-mu-ranking",
            "平台亩均效益排名表",
            "亩均 figures per platform with rank",
            per_mu_ranking,
        ),  # fmt: skip
    )
}


def catalogue() -> list[dict]:
    """The reports: name, Chinese title, what it holds."""
    return [
        {"name": r.name, "title": r.title, "description": r.description} for r in REPORTS.values()
    ]


def sheets(
    engine: Engine, name: str, year: int | None, analyst: bool
) -> tuple[Report, list[Sheet]]:
    if name not in REPORTS:
        raise ReportError(f"unknown report {name!r}; one of {', '.join(REPORTS)}")
    rep = REPORTS[name]
    return rep, rep.build(engine, year, analyst)


def _html(title: str, sheets_: list[Sheet], unit: str, made_on: date) -> str:
    from gis.map.print_map import cjk_font

    font = cjk_font() or "sans-serif"
    out = [
        '<!DOCTYPE html><html lang="zh-CN"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>",
        f"@page {{ size: A4 landscape; margin: 12mm; }} body {{ font-family: '{font}'; "
        "font-size: 8pt; } h1 { font-size: 14pt; text-align: center; } h2 { font-size: 11pt; }"
        " .meta { display: flex; justify-content: space-between; } table { border-collapse:"
        " collapse; width: 100%; margin-bottom: 6mm; } th, td { border: 0.5pt solid #333;"
        " padding: 1mm; } td.n { text-align: right; } tr.total td { font-weight: bold; }",
        "</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    for s in sheets_:
        cols, body = sheet_layout(s)
        out.append(f"<h2>{html.escape(s.title)}</h2>")
        out.append(
            f'<div class="meta"><span>制表单位: {html.escape(unit)}</span>'
            f"<span>制表日期: {made_on.isoformat()}</span></div>"
        )
        out.append("<table><thead><tr>")
        out += [f"<th>{html.escape(c.label)}</th>" for c in cols]
        out.append("</tr></thead><tbody>")
        for i, r in enumerate(body):
            cls = ' class="total"' if i == len(body) - 1 else ""
            cells = []
            for v in r:
                if isinstance(v, float):
                    cells.append(f'<td class="n">{v:,.4f}'.rstrip("0").rstrip(".") + "</td>")
                elif isinstance(v, int):
                    cells.append(f'<td class="n">{v}</td>')
                else:
                    cells.append(f"<td>{html.escape('' if v is None else str(v))}</td>")
            out.append(f"<tr{cls}>{''.join(cells)}</tr>")
        out.append("</tbody></table>")
    out.append("</body></html>")
    return "".join(out)


MEDIA = {
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "pdf": "application/pdf",
}


def render(
    engine: Engine,
    name: str,
    year: int | None,
    fmt: str,
    analyst: bool,
    made_on: date | None = None,
) -> tuple[bytes, str, str]:
    """A report as ``xlsx`` or ``pdf``: (content, media type, file name). 制表单位 is
    ``export.made_by()`` (rules.toml [publication] publisher), 制表日期 ``made_on`` (today)."""
    if fmt not in MEDIA:
        raise ReportError(f"format must be xlsx or pdf, not {fmt!r}")
    rep, sh = sheets(engine, name, year, analyst)
    made_on = made_on or date.today()
    unit = made_by()
    title = f"{year}年{rep.title}" if year else rep.title
    if fmt == "xlsx":
        data = tables_xlsx(sh, title, made_on, unit=unit)
    else:
        from weasyprint import HTML

        data = HTML(string=_html(title, sh, unit, made_on)).write_pdf()
    return data, MEDIA[fmt], f"{name}_{year or 'latest'}.{fmt}"
