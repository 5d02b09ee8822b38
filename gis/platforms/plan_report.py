"""The plan report (用地布局规划报告): HTML, PDF or Word (.docx), with a map of each corridor.

Contents: the request and assumptions (rules figures, as-of date, the three-lands run and the
tax year used), the invariants the engine checked, the indicator changes the plan implies
(industrial land against the floor, the corridors' share, land converted to M0, redeveloped and
exiting; 亩均税收 before and after for analysts), for each corridor a map (the corridor outline,
its platforms outlined by kind and its blocks filled by function), and the allocation tables per
district, platform and corridor. All text is Chinese. Public callers get no 亩均税收 figures.

Maps come from the one map renderer, ``gis/map/print_map.py``: vector SVG in EPSG:4549 with a
scale bar, a north arrow and a legend (labels and colours from ``gis.core.vocabulary``); no base
map is fetched. The PDF is the HTML laid out by WeasyPrint (A4, wide tables on landscape pages,
page numbers in the footer; CJK lines broken by the layout engine), so the maps stay vectors.
The .docx (python-docx, for WPS / Word) carries the same headings and tables and each map as a
PNG drawn by the same renderer (legend inside the picture).
"""

from __future__ import annotations

import html
from datetime import datetime

import geopandas as gpd
from sqlalchemy import Engine, text

from gis.core import vocabulary
from gis.map import print_map as pm
from gis.platforms.layout_plan import get_plan
from gis.platforms.platform_kinds import KIND_LABELS

FUNCTION_COLORS = vocabulary.colours("block_function")
FUNCTION_LABELS = vocabulary.labels("block_function")
KIND_COLORS = vocabulary.colours("platform_kind")
MAP_MM = (178.0, 125.0)  # a corridor map's frame, mm (A4 portrait: 180 mm between margins)


def _frames(engine: Engine, plan_id: int) -> tuple[gpd.GeoDataFrame, ...]:
    with engine.connect() as conn:
        corridors = gpd.read_postgis(
            text("SELECT code, name, geom FROM corridors ORDER BY code"), conn, geom_col="geom"
        )
        platforms = gpd.read_postgis(
            text(
                """
                SELECT p.code, p.name, pl.kinds ->> p.code AS kind, p.geom
                FROM platforms p, plans pl WHERE pl.id = :id ORDER BY p.code
                """
            ),
            conn,
            geom_col="geom",
            params={"id": plan_id},
        )
        blocks = gpd.read_postgis(
            text(
                "SELECT block_no, corridor_code, function, geom FROM plan_blocks "
                "WHERE plan_id = :id ORDER BY block_no"
            ),
            conn,
            geom_col="geom",
            params={"id": plan_id},
        )
    return corridors, platforms, blocks


def corridor_layers(corridor, near: gpd.GeoDataFrame, mine: gpd.GeoDataFrame) -> list:
    """The map layers of one corridor: its outline, its platforms by kind (outlined, named) and
    its blocks by function, styled from the vocabulary."""
    kind_v = vocabulary.vocabulary("platform_kind")
    line = vocabulary.colours("corridor").get(corridor.code, vocabulary.colour("map", "chart"))
    layers = [
        pm.MapLayer(
            vocabulary.vocabulary("corridor").title,
            [corridor.geom],
            ["#f4f4f4"],
            [line],
            linewidth=1.4,
            linestyle="--",
            legend=[pm.LegendEntry(f"{corridor.name}({corridor.code})", line, "line")],
        )
    ]
    kinds = [k if k in KIND_COLORS else None for k in near.kind]
    cols = [KIND_COLORS.get(k or "", kind_v.other_colour) for k in kinds]
    layers.append(
        pm.MapLayer(
            "工业平台(四类平台)",
            list(near.geom),
            ["none"] * len(near),
            cols,
            linewidth=1.2,
            legend=[
                pm.LegendEntry(KIND_LABELS[k], c, "outline")
                for k, c in KIND_COLORS.items()
                if k in set(kinds)
            ]
            + (
                [pm.LegendEntry(kind_v.other_label, kind_v.other_colour, "outline")]
                if None in kinds
                else []
            ),
            labels=[
                (pt.x, pt.y, p.name)
                for p in near.itertuples()
                for pt in [p.geom.representative_point()]
            ],
        )
    )
    layers.append(
        pm.MapLayer(
            vocabulary.vocabulary("block_function").title,
            list(mine.geom),
            [FUNCTION_COLORS[f] for f in mine.function],
            ["none"] * len(mine),
            linewidth=0.0,
            legend=[pm.LegendEntry(FUNCTION_LABELS[f], c) for f, c in FUNCTION_COLORS.items()],
        )
    )
    return layers


def corridor_maps(
    engine: Engine, plan: dict, legend_in_figure: bool = False
) -> dict[str, tuple[str, pm.MapFigure]]:
    """{corridor code: (name, the drawn map)}: the corridor, platforms by kind, blocks by
    function, ``MAP_MM`` on paper. Close each figure when done (``MapFigure.close``)."""
    corridors, platforms, blocks = _frames(engine, plan["id"])
    out: dict[str, tuple[str, pm.MapFigure]] = {}
    for c in corridors.itertuples():
        near = platforms[platforms.intersects(c.geom)]
        mine = blocks[blocks.corridor_code == c.code]
        layers = corridor_layers(c, near, mine)
        out[c.code] = (
            c.name,
            pm.draw(layers, c.geom.bounds, *MAP_MM, pad=0.04, legend_in_figure=legend_in_figure),
        )
    return out


# ---- tables -----------------------------------------------------------------------------------

ALLOC_COLUMNS = [
    ("code", "代码"),
    ("name", "名称"),
    ("kind", "平台类型"),
    ("tax_per_mu", "亩均税收 万元/亩"),
    ("industrial_mu_today", "现状工业用地 亩"),
    ("capacity_mu", "可供容量 亩"),
    ("new_mu", "新增 亩"),
    ("corridor_mu", "其中走廊内 亩"),
    ("m0_mu", "转M0 亩"),
    ("redevelop_mu", "再开发 亩"),
    ("exit_mu", "退出 亩"),
    ("industrial_mu_after", "规划后工业用地 亩"),
]


def _fmt(v) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:,.2f}"
    return str(v)


def allocation_table(plan: dict, level: str, analyst: bool) -> tuple[list[str], list[list[str]]]:
    cols = [
        (k, label)
        for k, label in ALLOC_COLUMNS
        if (analyst or k != "tax_per_mu")
        and (level == "platform" or k not in ("kind", "tax_per_mu"))
    ]
    rows = []
    for r in plan["allocations"][level]:
        row = []
        for k, _ in cols:
            v = r.get(k)
            if k == "industrial_mu_after":  # today + new − exit (M0 stays industrial land)
                v = r["industrial_mu_today"] + r["new_mu"] - r["exit_mu"]
            if k == "kind" and v:
                v = KIND_LABELS.get(v, v)
            row.append(_fmt(v))
        rows.append(row)
    return [label for _, label in cols], rows


def block_rows(plan: dict) -> tuple[list[str], list[list[str]]]:
    """Blocks per corridor and function: count, area and idle + low-efficiency land (亩)."""
    from gis.core.plan_models import FUNCTIONS

    agg: dict[tuple[str, str], list[float]] = {}
    for f in plan["blocks"]["features"]:
        p = f["properties"]
        a = agg.setdefault((p["corridor_code"], p["function"]), [0, 0.0, 0.0])
        a[0] += 1
        a[1] += p["area_mu"]
        a[2] += p["flagged_mu"]
    rows = [
        [c, FUNCTION_LABELS[fn], str(int(v[0])), _fmt(v[1]), _fmt(v[2])]
        for c in sorted({k[0] for k in agg})
        for fn in FUNCTIONS
        if (v := agg.get((c, fn)))
    ]
    return ["走廊", "功能", "地块组数", "面积(亩)", "其中闲置+低效(亩)"], rows


def indicator_rows(plan: dict, analyst: bool) -> list[tuple[str, str, str]]:
    t = plan["totals"]
    rows = [
        (
            "工业用地总量(亩)",
            _fmt(t["industrial_mu_today"]),
            _fmt(t["industrial_mu_after"]),
        ),
        (
            "工业用地底线(两底线, 亩)",
            _fmt(plan["request"]["floor_mu"]),
            _fmt(plan["request"]["floor_mu"]),
        ),
        (
            "走廊内工业用地(亩)",
            _fmt(t["corridor_industrial_mu_today"]),
            _fmt(t["corridor_industrial_mu_after"]),
        ),
        (
            "走廊工业用地占比",
            _fmt(t["corridor_share_of_industrial_today"]),
            _fmt(t["corridor_share_of_industrial_after"]),
        ),
        ("新增工业用地(亩)", "0", _fmt(t["new_land_mu"])),
        ("其中走廊内(亩)", "0", _fmt(t["corridor_new_mu"])),
        ("退出(亩)", "0", _fmt(t["exit_mu"])),
        ("转创新型产业 M0(亩)", "0", _fmt(t["blocks"]["to_m0"]["area_mu"])),
        (
            "再开发的闲置和低效用地(亩)",
            "0",
            _fmt(t["blocks"]["redevelop"]["flagged_mu"]),
        ),
    ]
    if analyst and t.get("tax_per_mu_today") is not None:
        rows.append(
            (
                "亩均税收(万元/亩)",
                _fmt(t["tax_per_mu_today"]),
                _fmt(t.get("tax_per_mu_after")),
            )
        )
    return rows


def assumption_rows(plan: dict) -> list[tuple[str, str]]:
    r = plan["request"]
    w = r.get("weights") or {}
    return [
        ("方案", f"{plan['name']} 第 {plan['version']} 版(方案编号 {plan['id']})"),
        ("目标年", str(plan["target_year"])),
        ("基准日", plan["as_of"]),
        ("税收年度", _fmt(plan.get("tax_year"))),
        ("新增工业用地(亩)", _fmt(float(r["new_land_mu"]))),
        ("工业用地底线(亩)", _fmt(float(r["floor_mu"]))),
        ("新增用地走廊内最低占比", _fmt(r.get("corridor_min_share"))),
        (
            "权重",
            f"亩均税收 {w.get('tax')}, 走廊 {w.get('corridor')}, 平台类型 "
            + ", ".join(f"{KIND_LABELS.get(k, k)} {v}" for k, v in (w.get("kinds") or {}).items()),
        ),
        ("三块地检测批次", _fmt(plan.get("detection_run_id"))),
        ("规则校验码", plan["rules_hash"]),
        ("依据", "杭政办函〔2017〕127号; 本系统领域规则 §4、§5、§8; rules.toml [plan]"),
        (
            "可供容量",
            "可开发比例 × 平台内空闲土地(平台范围 − 现状地块 − 供地范围), 单位亩; "
            "见 docs/PLATFORMS_AND_PLAN.md",
        ),
    ]


# ---- the report as sections (one content for HTML, PDF and .docx) -----------------------------

INVARIANT_LABELS = {
    "quota": "新增用地全部分配",
    "floor": "规划后工业用地不低于底线(两底线)",
    "corridor_share": "新增用地走廊内占比不低于下限",
    "phase_out_none": "逐步退出型平台不分配新增用地",
    "capacity": "各平台分配不超过可供容量",
}
FIGURE_LABELS = {
    "allocated_mu": "已分配(亩)",
    "quota_mu": "新增指标(亩)",
    "industrial_mu_after": "规划后工业用地(亩)",
    "floor_mu": "底线(亩)",
    "share": "走廊内占比",
    "min_share": "最低占比",
    "corridor_mu": "走廊内(亩)",
    "phase_out_mu": "逐步退出型平台(亩)",
}
LEVELS = (("district", "分区"), ("platform", "工业平台"), ("corridor", "走廊"))


def _invariant_rows(plan: dict) -> list[list[str]]:
    return [
        [
            INVARIANT_LABELS.get(k, k),
            "满足" if v["holds"] else "不满足",
            ", ".join(f"{FIGURE_LABELS.get(a, a)} {_fmt(b)}" for a, b in v.items() if a != "holds")
            or "—",
        ]
        for k, v in plan["invariants"].items()
    ]


def sections(plan: dict, analyst: bool) -> list[tuple]:
    """The report's content in order: ("h1"|"h2"|"h3"|"p"|"note", text), ("table", head, rows,
    wide) and ("map", corridor code, caption)."""
    out: list[tuple] = [
        ("h1", f"{plan['name']} 第 {plan['version']} 版 用地布局规划报告"),
        (
            "p",
            f"方案编号 {plan['id']}; 由 {plan['created_by']} 于 "
            f"{plan['created_at'][:19].replace('T', ' ')} 编制; "
            f"报告生成于 {datetime.now():%Y年%m月%d日 %H:%M}。",
        ),
        ("h2", "一、假设与依据"),
        ("table", ["项目", "取值"], [list(r) for r in assumption_rows(plan)], False),
        ("h2", "二、约束校验"),
        ("table", ["约束", "是否满足", "数值"], _invariant_rows(plan), False),
        ("h2", "三、指标变化"),
        (
            "table",
            ["指标", "现状", "规划后"],
            [list(r) for r in indicator_rows(plan, analyst)],
            False,
        ),
    ]
    if analyst and plan["totals"].get("tax_note"):
        out.append(("note", f"注: {plan['totals']['tax_note']}"))
    for n in plan["notes"]:
        out.append(("note", f"备注: {n}"))
    out.append(("h2", "四、走廊规划图"))
    out.append(("map", None, None))  # the corridors' maps, one section each
    head, rows = block_rows(plan)
    out += [("h2", "五、走廊地块组功能"), ("table", head, rows, False)]
    out.append(("h2", "六、新增工业用地分配"))
    for level, title in LEVELS:
        head, rows = allocation_table(plan, level, analyst)
        out += [("h3", f"按{title}"), ("table", head, rows, len(head) > 9)]
    return out


# ---- HTML and PDF -----------------------------------------------------------------------------

CSS = f"""
@page {{ size: A4; margin: 15mm 15mm 18mm 15mm;
  @bottom-center {{ content: "第 " counter(page) " 页 / 共 " counter(pages) " 页";
    font-size: 9pt; }} }}
@page wide {{ size: A4 landscape; }}
section.wide {{ page: wide; }}
body {{ font-family: {pm.CSS_FONTS}; font-size: 10pt; line-height: 1.5; }}
h1 {{ font-size: 18pt; text-align: center; }}
h2 {{ font-size: 14pt; border-bottom: 1.5pt solid {vocabulary.colour("map", "chart")};
  margin-top: 8mm; }}
h3 {{ font-size: 11.5pt; }}
table {{ border-collapse: collapse; margin: 2mm 0 5mm; font-size: 8.5pt; }}
td, th {{ border: 0.5pt solid #999; padding: 1pt 4pt; text-align: right; }}
th {{ background: #e8edf3; }}
td:first-child, th:first-child, td:nth-child(2) {{ text-align: left; }}
thead {{ display: table-header-group; }} tr {{ page-break-inside: avoid; }}
.note {{ font-size: 9pt; color: #333; }}
figure {{ margin: 2mm 0 6mm; page-break-inside: avoid; }}
figcaption {{ text-align: center; font-size: 9.5pt; margin-top: 1mm; }}
img.map {{ border: 0; }}
{pm.LEGEND_CSS}
"""


def _html_table(head: list[str], rows: list[list[str]]) -> str:
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows
    )
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def render_html(engine: Engine, plan_id: int, analyst: bool = False) -> str:
    """The report as one HTML page (maps inline as SVG), also what WeasyPrint lays out."""
    plan = get_plan(engine, plan_id, analyst, geometry=False)
    maps = corridor_maps(engine, plan)
    parts = [
        "<!doctype html><html lang='zh-CN'><head><meta charset='utf-8'>",
        f"<title>{html.escape(plan['name'])} 第 {plan['version']} 版 用地布局规划报告</title>",
        f"<style>{CSS}</style></head><body>",
    ]
    try:
        for item in sections(plan, analyst):
            kind = item[0]
            if kind in ("h1", "h2", "h3"):
                parts.append(f"<{kind}>{html.escape(item[1])}</{kind}>")
            elif kind == "p":
                parts.append(f"<p>{html.escape(item[1])}</p>")
            elif kind == "note":
                parts.append(f"<p class='note'>{html.escape(item[1])}</p>")
            elif kind == "table":
                _, head, rows, wide = item
                cls = " class='wide'" if wide else ""
                parts.append(f"<section{cls}>{_html_table(head, rows)}</section>")
            elif kind == "map":
                for i, (code, (name, mf)) in enumerate(maps.items(), 1):
                    cap = f"图{i} {name}({code})用地布局规划图 比例尺 {pm.round_scale(mf.scale)}"
                    parts.append(
                        f"<h3>{html.escape(name)}({code})</h3><figure>"
                        f"{pm.svg_img(mf, cap)}{pm.legend_html(mf.legend)}"
                        f"<figcaption>{html.escape(cap)}</figcaption></figure>"
                    )
    finally:
        for _, mf in maps.values():
            mf.close()
    parts.append("</body></html>")
    return "\n".join(parts)


def render_pdf(engine: Engine, plan_id: int, analyst: bool = False) -> bytes:
    """The report as PDF: the HTML laid out by WeasyPrint (maps stay vector)."""
    from weasyprint import HTML

    return HTML(string=render_html(engine, plan_id, analyst)).write_pdf()


def render_docx(engine: Engine, plan_id: int, analyst: bool = False) -> bytes:
    """The report as Word (.docx): the same headings, text and tables; maps as PNG."""
    from gis.map import docx_out

    plan = get_plan(engine, plan_id, analyst, geometry=False)
    doc = docx_out.new_document(f"{plan['name']} 第 {plan['version']} 版 用地布局规划报告")
    maps = corridor_maps(engine, plan, legend_in_figure=True)
    try:
        for item in sections(plan, analyst):
            kind = item[0]
            if kind in ("h1", "h2", "h3"):
                doc.add_heading(item[1], level={"h1": 0, "h2": 1, "h3": 2}[kind])
            elif kind in ("p", "note"):
                docx_out.paragraph(doc, item[1], small=kind == "note")
            elif kind == "table":
                docx_out.table(doc, item[1], item[2])
            elif kind == "map":
                for i, (code, (name, mf)) in enumerate(maps.items(), 1):
                    doc.add_heading(f"{name}({code})", level=2)
                    cap = f"图{i} {name}({code})用地布局规划图 比例尺 {pm.round_scale(mf.scale)}"
                    docx_out.picture(doc, mf.png(dpi=200), MAP_MM[0] - 15, cap)
    finally:
        for _, mf in maps.values():
            mf.close()
    return docx_out.to_bytes(doc)


DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
FORMATS = ("html", "pdf", "docx")


def render(engine: Engine, plan_id: int, fmt: str, analyst: bool = False) -> tuple[bytes, str]:
    """(body, media type) of the report in ``fmt`` (html | pdf | docx)."""
    if fmt == "pdf":
        return render_pdf(engine, plan_id, analyst), "application/pdf"
    if fmt == "docx":
        return render_docx(engine, plan_id, analyst), DOCX
    if fmt == "html":
        return render_html(engine, plan_id, analyst).encode("utf-8"), "text/html; charset=utf-8"
    raise ValueError(f"format {fmt!r}: html, pdf or docx")
