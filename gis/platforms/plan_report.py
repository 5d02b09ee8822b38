"""The plan report (规划报告): HTML or PDF with maps of each corridor drawn from our own data.

Contents: the request and assumptions (rules figures, as-of date, the three-lands run and the
tax year used), the invariants the engine checked, the indicator changes the plan implies
(industrial land against the floor, the corridors' share, land converted to M0, redeveloped and
exiting; 亩均税收 before and after for analysts), the allocation tables per district, platform and
corridor, and for each corridor a map: the corridor outline, its platforms outlined by kind and
its blocks filled by function. No base map is needed (nothing is fetched).

Maps are matplotlib figures of the EPSG:4549 geometry (metres; axes in km), embedded in the HTML
as PNG; the PDF is written by matplotlib's PdfPages (pip only). Chinese text needs a CJK font:
the first of ``CJK_FONTS`` that matplotlib finds (Debian: fonts-wqy-microhei; any Noto Sans CJK /
Source Han Sans works); without one the report still renders, with a note. Public callers get the
report without 亩均税收 figures.
"""

from __future__ import annotations

import base64
import html
import io
import logging
import textwrap
from datetime import UTC, datetime

import matplotlib

matplotlib.use("Agg")

import geopandas as gpd  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib import font_manager  # noqa: E402
from matplotlib.backends.backend_pdf import PdfPages  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from sqlalchemy import Engine, text  # noqa: E402

from gis.core import vocabulary  # noqa: E402
from gis.platforms.layout_plan import get_plan  # noqa: E402
from gis.platforms.platform_kinds import KIND_LABELS  # noqa: E402

log = logging.getLogger("landlink")
logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)  # no bold CJK face: fine

CJK_FONTS = (
    "WenQuanYi Micro Hei",
    "WenQuanYi Zen Hei",
    "Noto Sans CJK SC",
    "Noto Sans SC",
    "Source Han Sans SC",
    "Source Han Sans CN",
    "SimHei",
    "Microsoft YaHei",
)
FUNCTION_COLORS = vocabulary.colours("block_function")
FUNCTION_LABELS = {
    t.code: f"{t.label} {t.english}" for t in vocabulary.vocabulary("block_function").terms
}
KIND_COLORS = vocabulary.colours("platform_kind")


def cjk_font() -> str | None:
    """The first CJK font matplotlib can use, or None."""
    names = {f.name for f in font_manager.fontManager.ttflist}
    return next((f for f in CJK_FONTS if f in names), None)


def setup_fonts() -> str | None:
    """matplotlib set up for Chinese text (the first of ``CJK_FONTS``): the font, or None."""
    font = cjk_font()
    if font:
        plt.rcParams["font.sans-serif"] = [font, "DejaVu Sans"]
        plt.rcParams["font.family"] = "sans-serif"
    else:
        log.warning("no CJK font found for the plan report; install fonts-wqy-microhei")
    plt.rcParams["axes.unicode_minus"] = False
    plt.rcParams["pdf.fonttype"] = 42
    return font


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


def km_axes(ax, bounds: tuple[float, float, float, float]) -> None:
    """Frame ``ax`` on ``bounds`` (EPSG:4549 metres, padded 4 %), equal aspect, axes in km: a map
    of our own geometry with no base map."""
    minx, miny, maxx, maxy = bounds
    pad = 0.04 * max(maxx - minx, maxy - miny, 1.0)
    ax.set_xlim(minx - pad, maxx + pad)
    ax.set_ylim(miny - pad, maxy + pad)
    ax.set_aspect("equal")
    ticks = ax.get_xticks()
    ax.set_xticks(ticks)
    ax.set_xticklabels([f"{t / 1000:.0f}" for t in ticks], fontsize=7)
    yt = ax.get_yticks()
    ax.set_yticks(yt)
    ax.set_yticklabels([f"{t / 1000:.0f}" for t in yt], fontsize=7)
    ax.set_xlabel("EPSG:4549 x (km)", fontsize=8)
    ax.set_ylabel("EPSG:4549 y (km)", fontsize=8)
    ax.set_xlim(minx - pad, maxx + pad)
    ax.set_ylim(miny - pad, maxy + pad)


def png(fig) -> bytes:
    """A matplotlib figure as PNG bytes (the figure closed)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def corridor_maps(engine: Engine, plan: dict, dpi: int = 110) -> dict[str, tuple[str, bytes]]:
    """{corridor code: (name, PNG bytes)}: the corridor, platforms by kind, blocks by function."""
    setup_fonts()
    corridors, platforms, blocks = _frames(engine, plan["id"])
    out: dict[str, tuple[str, bytes]] = {}
    for c in corridors.itertuples():
        fig, ax = plt.subplots(figsize=(10, 7.5), dpi=dpi)
        gpd.GeoSeries([c.geom]).plot(
            ax=ax, facecolor="#f4f4f4", edgecolor="#555555", linestyle="--", linewidth=1.0
        )
        near = platforms[platforms.intersects(c.geom)]
        for kind, grp in near.groupby("kind"):
            grp.plot(
                ax=ax,
                facecolor="none",
                edgecolor=KIND_COLORS.get(
                    kind, vocabulary.vocabulary("platform_kind").other_colour
                ),
                linewidth=1.2,
            )
        mine = blocks[blocks.corridor_code == c.code]
        for fn, grp in mine.groupby("function"):
            grp.plot(ax=ax, color=FUNCTION_COLORS[fn], edgecolor="none")
        for p in near.itertuples():
            pt = p.geom.representative_point()
            ax.annotate(p.name, (pt.x, pt.y), fontsize=7, ha="center", color="#333333")
        km_axes(ax, c.geom.bounds)
        handles = [
            Patch(facecolor=FUNCTION_COLORS[f], label=FUNCTION_LABELS[f]) for f in FUNCTION_COLORS
        ] + [
            Patch(facecolor="none", edgecolor=KIND_COLORS[k], label=KIND_LABELS[k])
            for k in KIND_COLORS
            if k in set(near.kind)
        ]
        ax.legend(handles=handles, loc="best", fontsize=7, framealpha=0.9)
        ax.set_title(
            f"{c.name} ({c.code}) — {plan['name']} v{plan['version']}, {plan['target_year']}",
            fontsize=11,
        )
        out[c.code] = (c.name, png(fig))
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
    return ["走廊 corridor", "功能 function", "地块组 blocks", "面积 亩", "闲置+低效 亩"], rows


def indicator_rows(plan: dict, analyst: bool) -> list[tuple[str, str, str]]:
    t = plan["totals"]
    rows = [
        (
            "工业用地总量 industrial land (亩)",
            _fmt(t["industrial_mu_today"]),
            _fmt(t["industrial_mu_after"]),
        ),
        ("两底线 floor (亩)", _fmt(plan["request"]["floor_mu"]), _fmt(plan["request"]["floor_mu"])),
        (
            "走廊工业用地 corridor industrial land (亩)",
            _fmt(t["corridor_industrial_mu_today"]),
            _fmt(t["corridor_industrial_mu_after"]),
        ),
        (
            "走廊占比 corridors' share of industrial land",
            _fmt(t["corridor_share_of_industrial_today"]),
            _fmt(t["corridor_share_of_industrial_after"]),
        ),
        ("新增工业用地 new industrial land (亩)", "0", _fmt(t["new_land_mu"])),
        ("其中走廊内 of which in the corridors (亩)", "0", _fmt(t["corridor_new_mu"])),
        ("退出 exit (亩)", "0", _fmt(t["exit_mu"])),
        ("转M0 to M0 (亩)", "0", _fmt(t["blocks"]["to_m0"]["area_mu"])),
        (
            "再开发 idle + low-efficiency land redeveloped (亩)",
            "0",
            _fmt(t["blocks"]["redevelop"]["flagged_mu"]),
        ),
    ]
    if analyst and t.get("tax_per_mu_today") is not None:
        rows.append(
            (
                "亩均税收 tax per mu (万元/亩)",
                _fmt(t["tax_per_mu_today"]),
                _fmt(t.get("tax_per_mu_after")),
            )
        )
    return rows


def assumption_rows(plan: dict) -> list[tuple[str, str]]:
    r = plan["request"]
    w = r.get("weights") or {}
    return [
        ("方案 scenario", f"{plan['name']} v{plan['version']} (plan {plan['id']})"),
        ("目标年 target year", str(plan["target_year"])),
        ("基准日 as of", plan["as_of"]),
        ("税收年度 tax year", _fmt(plan.get("tax_year"))),
        ("新增工业用地 new land (亩)", _fmt(float(r["new_land_mu"]))),
        ("工业用地底线 floor (亩)", _fmt(float(r["floor_mu"]))),
        ("走廊最低占比 corridor minimum share", _fmt(r.get("corridor_min_share"))),
        (
            "权重 weights",
            f"tax {w.get('tax')}, corridor {w.get('corridor')}, kinds "
            + ", ".join(f"{k} {v}" for k, v in (w.get("kinds") or {}).items()),
        ),
        ("三块地检测 three-lands run", _fmt(plan.get("detection_run_id"))),
        ("规则 rules hash", plan["rules_hash"]),
        ("依据 sources", "DOMAIN_RULES §4, §5, §8; 杭政办函〔2017〕127号; rules.toml [plan]"),
        (
            "容量 capacity",
            "developable share × vacant platform land (platform − parcels − "
            "supply records), in 亩; see docs/PLATFORMS_AND_PLAN.md",
        ),
    ]


# ---- HTML -------------------------------------------------------------------------------------


def _html_table(head: list[str], rows: list[list[str]]) -> str:
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows
    )
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def render_html(engine: Engine, plan_id: int, analyst: bool = False) -> str:
    plan = get_plan(engine, plan_id, analyst, geometry=False)
    maps = corridor_maps(engine, plan)
    parts = [
        "<!doctype html><html lang='zh-CN'><head><meta charset='utf-8'>",
        f"<title>{html.escape(plan['name'])} v{plan['version']} — 用地布局规划报告</title>",
        "<style>body{font-family:sans-serif;margin:2em;max-width:1100px}"
        "table{border-collapse:collapse;margin:0.5em 0 1.5em}"
        "td,th{border:1px solid #bbb;padding:2px 6px;font-size:13px;text-align:right}"
        "td:first-child,th:first-child,td:nth-child(2){text-align:left}"
        ".ok{color:#1a7f37}.bad{color:#c00}img{max-width:100%}</style></head><body>",
        f"<h1>用地布局规划报告 Layout plan report: {html.escape(plan['name'])} "
        f"v{plan['version']}</h1>",
        f"<p>Generated {datetime.now(UTC).isoformat(timespec='seconds')} from plan "
        f"{plan['id']} (created {html.escape(plan['created_at'])} by "
        f"{html.escape(plan['created_by'])}).</p>",
        "<h2>假设 Assumptions</h2>",
        _html_table(["item", "value"], [list(r) for r in assumption_rows(plan)]),
        "<h2>约束校验 Invariants</h2>",
        _html_table(
            ["invariant", "holds", "figures"],
            [
                [
                    k,
                    "yes" if v["holds"] else "NO",
                    ", ".join(f"{a}={_fmt(b)}" for a, b in v.items() if a != "holds"),
                ]
                for k, v in plan["invariants"].items()
            ],
        ),
        "<h2>指标变化 Indicator changes</h2>",
        _html_table(
            ["indicator", "today", "after the plan"],
            [list(r) for r in indicator_rows(plan, analyst)],
        ),
    ]
    if analyst and plan["totals"].get("tax_note"):
        parts.append(f"<p><small>{html.escape(plan['totals']['tax_note'])}</small></p>")
    if plan["notes"]:
        parts.append(
            "<ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in plan["notes"]) + "</ul>"
        )
    for code, (name, png) in maps.items():
        b64 = base64.b64encode(png).decode()
        parts.append(f"<h2>{html.escape(name)} ({code})</h2>")
        parts.append(f"<img alt='map of {html.escape(name)}' src='data:image/png;base64,{b64}'>")
    head, rows = block_rows(plan)
    parts.append("<h2>走廊地块功能 Corridor blocks by function</h2>")
    parts.append(_html_table(head, rows))
    for level, title in (
        ("district", "分区 Districts"),
        ("platform", "平台 Platforms"),
        ("corridor", "走廊 Corridors"),
    ):
        head, rows = allocation_table(plan, level, analyst)
        parts.append(f"<h2>新增用地分配 Allocation — {title}</h2>")
        parts.append(_html_table(head, rows))
    parts.append("</body></html>")
    return "\n".join(parts)


# ---- PDF --------------------------------------------------------------------------------------

A4 = (8.27, 11.69)


def _text_page(pdf: PdfPages, title: str, sections: list[tuple[str, list[tuple]]]) -> None:
    fig = plt.figure(figsize=A4)
    fig.text(0.06, 0.96, title, fontsize=14, weight="bold", va="top")
    y = 0.91
    for heading, rows in sections:
        fig.text(0.06, y, heading, fontsize=11, weight="bold", va="top")
        y -= 0.025
        for row in rows:
            for line in textwrap.wrap("   ".join(str(x) for x in row), 110) or [""]:
                if y < 0.05:
                    break
                fig.text(0.08, y, line, fontsize=7.5, va="top")
                y -= 0.018
        y -= 0.015
    pdf.savefig(fig)
    plt.close(fig)


def _table_pages(pdf: PdfPages, title: str, head: list[str], rows: list[list[str]]) -> None:
    per_page = 40
    for start in range(0, max(len(rows), 1), per_page):
        chunk = rows[start : start + per_page] or [["—"] * len(head)]
        fig = plt.figure(figsize=(A4[1], A4[0]))  # landscape
        ax = fig.add_axes([0.02, 0.02, 0.96, 0.88])
        ax.axis("off")
        fig.text(
            0.02,
            0.96,
            title + (f" ({start // per_page + 1})" if len(rows) > per_page else ""),
            fontsize=12,
            weight="bold",
            va="top",
        )
        tbl = ax.table(cellText=chunk, colLabels=head, loc="upper center", cellLoc="right")
        tbl.auto_set_font_size(False)
        tbl.set_fontsize(7)
        tbl.auto_set_column_width(list(range(len(head))))
        tbl.scale(1, 1.15)
        pdf.savefig(fig)
        plt.close(fig)


def render_pdf(engine: Engine, plan_id: int, analyst: bool = False) -> bytes:
    font = setup_fonts()
    plan = get_plan(engine, plan_id, analyst, geometry=False)
    maps = corridor_maps(engine, plan, dpi=150)
    buf = io.BytesIO()
    with PdfPages(
        buf,
        metadata={"Title": f"{plan['name']} v{plan['version']} layout plan", "Creator": "landlink"},
    ) as pdf:
        inv = [
            (
                k,
                "holds" if v["holds"] else "BROKEN",
                ", ".join(f"{a}={_fmt(b)}" for a, b in v.items() if a != "holds"),
            )
            for k, v in plan["invariants"].items()
        ]
        notes = [(n,) for n in plan["notes"]]
        if font is None:
            notes.append(("no CJK font was found: Chinese text may not show",))
        _text_page(
            pdf,
            f"用地布局规划报告 Layout plan: {plan['name']} v{plan['version']}",
            [
                ("假设 Assumptions", assumption_rows(plan)),
                ("约束校验 Invariants", inv),
                ("指标变化 Indicators (today → after)", indicator_rows(plan, analyst)),
                ("备注 Notes", notes),
            ],
        )
        for _name, png in maps.values():
            fig = plt.figure(figsize=(A4[1], A4[0]))
            ax = fig.add_axes([0.01, 0.01, 0.98, 0.98])
            ax.imshow(plt.imread(io.BytesIO(png)))
            ax.axis("off")
            pdf.savefig(fig)
            plt.close(fig)
        head, rows = block_rows(plan)
        _table_pages(pdf, "走廊地块功能 Corridor blocks by function", head, rows)
        for level, title in (
            ("district", "分区 Districts"),
            ("platform", "平台 Platforms"),
            ("corridor", "走廊 Corridors"),
        ):
            head, rows = allocation_table(plan, level, analyst)
            _table_pages(pdf, f"新增用地分配 Allocation — {title}", head, rows)
    return buf.getvalue()


def render(engine: Engine, plan_id: int, fmt: str, analyst: bool = False) -> tuple[bytes, str]:
    """(body, media type) of the report in ``fmt`` (html | pdf)."""
    if fmt == "pdf":
        return render_pdf(engine, plan_id, analyst), "application/pdf"
    if fmt == "html":
        return render_html(engine, plan_id, analyst).encode("utf-8"), "text/html; charset=utf-8"
    raise ValueError(f"format {fmt!r}: html or pdf")
