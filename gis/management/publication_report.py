"""The yearly publication as a Chinese report, HTML or PDF, drawn from the frozen edition only.

Title, 发布单位, date and edition, contents, then each section with its tables and notes; a chart
(the platforms' composite scores) and two maps (districts coloured by 亩均产值, platforms by their
composite score) drawn with matplotlib from the outlines frozen with the edition (no base map;
gis/platforms/plan_report.py's helpers). Suppressed figures print as "—" with the table's note.
The PDF is the HTML laid out by WeasyPrint (A4, page numbers in the footer); Chinese text needs a
CJK font (fonts-wqy-microhei, ``plan_report.cjk_font``).

Long tables are cut in print: the enterprise list prints at most ``MAX_PRINTED_ROWS`` rows per
class (the JSON holds every row, and the note says so).
"""

from __future__ import annotations

import base64
import html

from gis.core import vocabulary
from gis.management.publication import SUPPRESSED
from gis.platforms import plan_report

MAX_PRINTED_ROWS = 200


def _fmt(v, unit: str | None = None) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "是" if v else "否"
    if isinstance(v, float):
        return f"{v:,.2f}"
    return html.escape(str(v))


def _table_html(t: dict, rows: list[dict] | None = None) -> str:
    """A table; a rank column printed in its figure's cell, "—" for a suppressed figure, wide
    tables on landscape pages."""
    rows = t["rows"] if rows is None else rows
    names = {c["name"] for c in t["columns"]}
    ranks = {c["name"][: -len("_rank")] for c in t["columns"] if c["name"].endswith("_rank")}
    ranks &= names
    cols = [c for c in t["columns"] if not (c["name"].endswith("_rank") and
                                            c["name"][: -len("_rank")] in ranks)]  # fmt: skip
    head = "".join(
        f"<th>{html.escape(c['label'])}"
        + (f"<br><small>({html.escape(c['unit'])})</small>" if c.get("unit") else "")
        + ("<br><small>(排名)</small>" if c["name"] in ranks else "")
        + "</th>"
        for c in cols
    )
    body = []
    for r in rows:
        hidden = set(r.get("suppressed") or ())
        cells = []
        for c in cols:
            if c["name"] in hidden:
                cells.append(f'<td class="sup">{SUPPRESSED}</td>')
                continue
            v = _fmt(r.get(c["name"]))
            rank = r.get(f"{c['name']}_rank") if c["name"] in ranks else None
            cells.append(f"<td>{v}" + (f" ({rank})" if rank is not None else "") + "</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    notes = "".join(f'<p class="note">注: {html.escape(n)}</p>' for n in t.get("notes", []))
    wide = ' class="wide"' if len(cols) > 12 else ""
    return (
        f"<section{wide}><h3>{html.escape(t['title'])}</h3><table><thead><tr>{head}</tr>"
        f"</thead><tbody>{''.join(body)}</tbody></table>{notes}</section>"
    )


def _img(data: bytes, alt: str) -> str:
    b64 = base64.b64encode(data).decode()
    return f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{b64}"><figcaption>{html.escape(alt)}</figcaption></figure>'  # noqa: E501


def _tables(content: dict) -> dict[str, dict]:
    return {t["id"]: t for s in content["sections"].values() for t in s["tables"]}


def score_chart(content: dict) -> bytes | None:
    """Bar chart of the platforms' composite scores (best first, at most 30)."""
    import matplotlib.pyplot as plt

    t = _tables(content).get("assessment.platforms")
    rows = [r for r in (t or {}).get("rows", []) if r.get("score") is not None][:30]
    if not rows:
        return None
    plan_report.setup_fonts()
    fig, ax = plt.subplots(figsize=(9, 0.28 * len(rows) + 1.2), dpi=110)
    ax.barh([r["name"] or r["code"] for r in rows][::-1], [r["score"] for r in rows][::-1],
            color=vocabulary.colour("map", "chart"))  # fmt: skip
    ax.set_xlabel("综合得分(分)", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.set_xlim(0, 100)
    ax.set_title(f"{content['year']}年度工业平台考核评价综合得分", fontsize=10)
    return plan_report.png(fig)


def zone_map(content: dict, geometry: dict, level: str, table_id: str, column: str, title: str):
    """A choropleth of ``column`` of table ``table_id`` over the frozen outlines of ``level``
    (suppressed or missing figures grey): PNG bytes, or None without outlines."""
    import geopandas as gpd
    import matplotlib.pyplot as plt
    import shapely

    feats = geometry.get(level) or []
    t = _tables(content).get(table_id)
    if not feats or t is None:
        return None
    values = {r["code"]: r.get(column) for r in t["rows"]}
    gdf = gpd.GeoDataFrame(
        {"code": [f["code"] for f in feats], "value": [values.get(f["code"]) for f in feats]},
        geometry=[shapely.geometry.shape(f["geom"]) for f in feats],
    )
    plan_report.setup_fonts()
    fig, ax = plt.subplots(figsize=(9, 7), dpi=110)
    if level == "platform" and geometry.get("district"):
        gpd.GeoSeries([shapely.geometry.shape(f["geom"]) for f in geometry["district"]]).plot(
            ax=ax, facecolor="none", edgecolor="#999999", linewidth=0.5
        )
    gdf["value"] = gdf["value"].astype(float)
    known = gdf[gdf.value.notna()]
    unknown = gdf[gdf.value.isna()]
    if not unknown.empty:
        unknown.plot(ax=ax, facecolor="#dddddd", edgecolor="#777777", linewidth=0.4, hatch="//")
    if not known.empty:
        known.plot(ax=ax, column="value", cmap="YlGnBu", edgecolor="#555555", linewidth=0.4,
                   legend=True, legend_kwds={"shrink": 0.6})  # fmt: skip
    plan_report.km_axes(ax, tuple(gdf.total_bounds))
    ax.set_title(f"{title}(灰色斜线: 无数据或不予公布)", fontsize=10)
    return plan_report.png(fig)


CSS = """
@page { size: A4; margin: 18mm 14mm 18mm 14mm;
  @bottom-center { content: "第 " counter(page) " 页 / 共 " counter(pages) " 页";
    font-size: 9pt; } }
@page wide { size: A4 landscape; }
section.wide { page: wide; }
body { font-family: "WenQuanYi Micro Hei", "Noto Sans CJK SC", sans-serif; font-size: 9.5pt; }
h1 { text-align: center; font-size: 20pt; margin-top: 50mm; }
.cover p { text-align: center; font-size: 12pt; }
.cover { page-break-after: always; }
.toc { page-break-after: always; }
h2 { page-break-before: always; border-bottom: 2px solid CHART; }
table { border-collapse: collapse; width: 100%; margin: 4px 0 8px; font-size: 7.5pt; }
th, td { border: 1px solid #888; padding: 1px 3px; }
th { background: #e8edf3; }
td { text-align: right; } td:nth-child(2) { text-align: left; }
thead { display: table-header-group; } tr { page-break-inside: avoid; }
td.sup { text-align: center; color: #555; }
.note { font-size: 8pt; color: #444; margin: 0 0 6px; }
figure { text-align: center; margin: 6px 0; page-break-inside: avoid; }
figure img { max-width: 100%; max-height: 200mm; }
"""


def _css() -> str:
    return CSS.replace("CHART", vocabulary.colour("map", "chart"))


def render_html(pub: dict) -> str:
    """The report of one edition (``publication.get(..., geometry=True)``) as HTML."""
    content = pub["content"]
    public = pub["audience"] == "public"
    out = [
        '<!DOCTYPE html><html lang="zh-CN"><head><meta charset="utf-8">',
        f"<title>{html.escape(content['title'])}</title><style>{_css()}</style></head><body>",
        '<div class="cover">',
        f"<h1>{html.escape(content['title'])}</h1>",
        f"<p>发布单位: {html.escape(content['publisher'])}</p>",
        f"<p>发布日期: {pub['created_at'][:10]} · 第 {pub['edition']} 版</p>",
        f"<p>数据截至: {pub['as_of'] or '—'} · {'公开版' if public else '内部版(含受限数据)'}</p>",
        f"<p>{html.escape(content['basis'])}</p>",
        f"<p><small>内容校验码 {pub['audience_hash'][:16]} · 规则 {pub['rules_hash']}</small></p>",
        '</div><div class="toc"><h2 style="page-break-before: avoid">目录</h2><ol>',
    ]
    for c in content["contents"]:
        extra = "" if c["present"] else f" <small>(本期无: {html.escape(c['note'] or '')})</small>"
        link = f"<a href=\"#{c['section']}\">{html.escape(c['title'])}</a>" if c["present"] \
            else html.escape(c["title"])  # fmt: skip
        out.append(f"<li>{link}{extra}</li>")
    out.append("</ol>")
    if content.get("disclosure"):
        d = content["disclosure"]
        out.append(
            f'<p class="note">公开版说明: 不公布{html.escape(d["restricted"])}; '
            f"企业数少于 {d['min_enterprises']} 家的区域数据以“{SUPPRESSED}”表示 "
            f"({html.escape(d['source'])})。</p>"
        )
    if pub.get("diff") and not pub["diff"].get("unchanged"):
        n = sum(len(t["changed"]) for t in pub["diff"]["tables"])
        out.append(
            f'<p class="note">与第 {pub["diff"]["against_edition"]} 版相比: {n} 项数据变化, '
            f"{len(pub['diff']['tables'])} 张表有变化。</p>"
        )
    out.append("</div>")
    geometry = pub.get("geometry") or {}
    for c in content["contents"]:
        if not c["present"]:
            continue
        s = content["sections"][c["section"]]
        out.append(f'<h2 id="{c["section"]}">{html.escape(s["title"])}</h2>')
        if c["section"] == "indicators":
            m = zone_map(content, geometry, "district", "indicators.district", "output_per_mu",
                         "各区县亩均产值(万元/亩)")  # fmt: skip
            if m:
                out.append(_img(m, "图1 各区县亩均产值"))
        if c["section"] == "assessment":
            ch = score_chart(content)
            if ch:
                out.append(_img(ch, "图2 工业平台考核评价综合得分"))
            m = zone_map(content, geometry, "platform", "assessment.platforms", "score",
                         "工业平台考核评价综合得分(分)")  # fmt: skip
            if m:
                out.append(_img(m, "图3 工业平台考核评价综合得分分布"))
        for t in s["tables"]:
            if t["id"] == "evaluation.enterprises":
                for k in ("A", "B", "C", "D"):
                    rows = [r for r in t["rows"] if r["class"] == k]
                    part = {**t, "title": f"{t['title']}: {vocabulary.label('eval_class', k)}",
                            "notes": list(t["notes"])}  # fmt: skip
                    if len(rows) > MAX_PRINTED_ROWS:
                        part["notes"].append(
                            f"共 {len(rows)} 家, 此处印前 {MAX_PRINTED_ROWS} 家; 完整名单见 JSON 版"
                        )
                    out.append(_table_html(part, rows[:MAX_PRINTED_ROWS]))
            else:
                out.append(_table_html(t))
    out.append("</body></html>")
    return "".join(out)


def render_pdf(pub: dict) -> bytes:
    """The report as PDF (WeasyPrint)."""
    from weasyprint import HTML

    return HTML(string=render_html(pub)).write_pdf()


# Rendered reports by edition (year, number, when it was made), audience (and its content's hash)
# and format: an edition never changes (its content is checked against its hash when read), so
# its report is rendered once per process (a public PDF of the sample city takes 10-19 s). The
# few most recent are kept.
_RENDERED: dict[tuple, tuple[bytes, str]] = {}
_RENDERED_MAX = 8


def render(pub: dict, fmt: str) -> tuple[bytes, str]:
    """(body, media type) of the report in ``fmt`` (html | pdf), rendered once per edition,
    audience and format."""
    key = (
        pub["year"],
        pub["edition"],
        str(pub.get("created_at")),
        pub["audience"],
        pub["audience_hash"],
        fmt,
    )
    if key in _RENDERED:
        return _RENDERED[key]
    if fmt == "pdf":
        out = render_pdf(pub), "application/pdf"
    else:
        out = render_html(pub).encode("utf-8"), "text/html; charset=utf-8"
    while len(_RENDERED) >= _RENDERED_MAX:
        _RENDERED.pop(next(iter(_RENDERED)))
    _RENDERED[key] = out
    return out
