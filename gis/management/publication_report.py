"""The yearly publication as a Chinese report, HTML, PDF or Word, from the frozen edition only.

Title, 发布单位, date and edition, contents, then each section with its tables and notes; a chart
(the platforms' composite scores, matplotlib) and two maps (districts coloured by 亩均产值,
platforms by their composite score, in quantile classes) drawn by the one map renderer,
``gis/map/print_map.py``, from the outlines frozen with the edition (EPSG:4549; scale bar, north
arrow, legend; no base map). Suppressed figures print as "—" with the table's note. The PDF is
the HTML laid out by WeasyPrint (A4, page numbers in the footer; maps and chart stay vector SVG);
the .docx (python-docx) has the same headings and tables, maps and chart as PNG. Chinese text
needs a CJK font (fonts-wqy-microhei, ``print_map.CJK_FONTS``).

Long tables are cut in print: the enterprise list prints at most ``MAX_PRINTED_ROWS`` rows per
class (the JSON holds every row, and the note says so).
"""

from __future__ import annotations

import base64
import html
import io

from gis.core import vocabulary
from gis.management.publication import SUPPRESSED
from gis.map import print_map as pm

MAP_MM = (178.0, 140.0)  # a zone map's frame on an A4 portrait page (180 mm between margins)

MAX_PRINTED_ROWS = 200


def _fmt(v) -> str:
    """A figure as printed (text, not escaped)."""
    if v is None:
        return ""
    if isinstance(v, bool):
        return "是" if v else "否"
    if isinstance(v, float):
        return f"{v:,.2f}"
    return str(v)


def _table_parts(t: dict, rows: list[dict]) -> tuple[list[str], list[list[str]], bool]:
    """(header labels, body cells as text, wide): a rank printed in its figure's cell, "—"
    for a suppressed figure; wide (a landscape page) past 12 columns."""
    names = {c["name"] for c in t["columns"]}
    ranks = {c["name"][: -len("_rank")] for c in t["columns"] if c["name"].endswith("_rank")}
    ranks &= names
    cols = [c for c in t["columns"] if not (c["name"].endswith("_rank") and
                                            c["name"][: -len("_rank")] in ranks)]  # fmt: skip
    head = [
        c["label"]
        + (f"({c['unit']})" if c.get("unit") else "")
        + ("(排名)" if c["name"] in ranks else "")
        for c in cols
    ]
    body = []
    for r in rows:
        hidden = set(r.get("suppressed") or ())
        cells = []
        for c in cols:
            if c["name"] in hidden:
                cells.append(SUPPRESSED)
                continue
            rank = r.get(f"{c['name']}_rank") if c["name"] in ranks else None
            cells.append(_fmt(r.get(c["name"])) + (f" ({rank})" if rank is not None else ""))
        body.append(cells)
    return head, body, len(cols) > 12


def _table_html(t: dict, rows: list[dict] | None = None) -> str:
    """A table with its title and notes, wide tables on landscape pages."""
    head, body, wide = _table_parts(t, t["rows"] if rows is None else rows)
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    tr = "".join(
        "<tr>"
        + "".join(
            f'<td class="sup">{SUPPRESSED}</td>'
            if v == SUPPRESSED
            else f"<td>{html.escape(v)}</td>"
            for v in r
        )
        + "</tr>"
        for r in body
    )
    notes = "".join(f'<p class="note">注: {html.escape(n)}</p>' for n in t.get("notes", []))
    cls = ' class="wide"' if wide else ""
    return (
        f"<section{cls}><h3>{html.escape(t['title'])}</h3><table><thead><tr>{th}</tr>"
        f"</thead><tbody>{tr}</tbody></table>{notes}</section>"
    )


def printed_tables(s: dict):
    """(table, rows) of a section as printed: the enterprise list split by class, at most
    ``MAX_PRINTED_ROWS`` rows each (the note says so)."""
    for t in s["tables"]:
        if t["id"] != "evaluation.enterprises":
            yield t, t["rows"]
            continue
        for k in ("A", "B", "C", "D"):
            rows = [r for r in t["rows"] if r["class"] == k]
            part = {**t, "title": f"{t['title']}: {vocabulary.label('eval_class', k)}",
                    "notes": list(t["notes"])}  # fmt: skip
            if len(rows) > MAX_PRINTED_ROWS:
                part["notes"].append(
                    f"共 {len(rows)} 家, 此处印前 {MAX_PRINTED_ROWS} 家; 完整名单见 JSON 版"
                )
            yield part, rows[:MAX_PRINTED_ROWS]


def cover_lines(pub: dict) -> list[str]:
    """The cover's lines under the title."""
    content = pub["content"]
    public = pub["audience"] == "public"
    return [
        f"发布单位: {content['publisher']}",
        f"发布日期: {pub['created_at'][:10]} · 第 {pub['edition']} 版",
        f"数据截至: {pub['as_of'] or '—'} · {'公开版' if public else '内部版(含受限数据)'}",
        content["basis"],
    ]


def front_notes(pub: dict) -> list[str]:
    """The disclosure note (public edition) and the change against the previous edition."""
    content = pub["content"]
    out = []
    if content.get("disclosure"):
        d = content["disclosure"]
        out.append(
            f"公开版说明: 不公布{d['restricted']}; 企业数少于 {d['min_enterprises']} 家的区域数据"
            f"以“{SUPPRESSED}”表示 ({d['source']})。"
        )
    if pub.get("diff") and not pub["diff"].get("unchanged"):
        n = sum(len(t["changed"]) for t in pub["diff"]["tables"])
        out.append(
            f"与第 {pub['diff']['against_edition']} 版相比: {n} 项数据变化, "
            f"{len(pub['diff']['tables'])} 张表有变化。"
        )
    return out


def _figure(img: str, caption: str, legend: str = "") -> str:
    return f"<figure>{img}{legend}<figcaption>{html.escape(caption)}</figcaption></figure>"


def _tables(content: dict) -> dict[str, dict]:
    return {t["id"]: t for s in content["sections"].values() for t in s["tables"]}


def score_rows(content: dict) -> list[dict]:
    t = _tables(content).get("assessment.platforms")
    return [r for r in (t or {}).get("rows", []) if r.get("score") is not None][:30]


def score_chart(content: dict, fmt: str = "svg") -> bytes | None:
    """Bar chart of the platforms' composite scores (best first, at most 30), SVG (vector, for
    HTML and PDF) or PNG (for .docx); None without scores."""
    import matplotlib.pyplot as plt

    rows = score_rows(content)
    if not rows:
        return None
    pm.setup_fonts()
    fig, ax = plt.subplots(figsize=(6.9, 0.22 * len(rows) + 1.0))
    ax.barh([r["name"] or r["code"] for r in rows][::-1], [r["score"] for r in rows][::-1],
            color=vocabulary.colour("map", "chart"))  # fmt: skip
    ax.set_xlabel("综合得分(分)", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.set_xlim(0, 100)
    ax.set_title(f"{content['year']}年度工业平台考核评价综合得分", fontsize=10)
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, bbox_inches="tight", dpi=200)
    plt.close(fig)
    return buf.getvalue()


def zone_map(
    content: dict, geometry: dict, level: str, table_id: str, column: str, title: str,
    unit: str = "", legend_in_figure: bool = False,
) -> pm.MapFigure | None:  # fmt: skip
    """A choropleth of ``column`` of table ``table_id`` over the frozen outlines of ``level``
    (EPSG:4549; suppressed or missing figures grey) in five quantile classes, drawn by the one
    map renderer (``gis/map/print_map.py``: scale bar, north arrow, legend), ``MAP_MM`` on
    paper; None without outlines. Close it when done."""
    import shapely

    feats = geometry.get(level) or []
    t = _tables(content).get(table_id)
    if not feats or t is None:
        return None
    values = {r["code"]: r.get(column) for r in t["rows"]}
    hidden = {r["code"] for r in t["rows"] if column in (r.get("suppressed") or ())}
    vals = [
        None if f["code"] in hidden or values.get(f["code"]) is None else float(values[f["code"]])
        for f in feats
    ]
    geoms = [shapely.geometry.shape(f["geom"]) for f in feats]
    faces, legend = pm.classed(vals, unit=unit)
    layers = []
    if level == "platform" and geometry.get("district"):
        d = [shapely.geometry.shape(f["geom"]) for f in geometry["district"]]
        layers.append(pm.MapLayer(
            "行政区", d, [vocabulary.colour("map", "district_other")] * len(d),
            [vocabulary.colour("map", "district_line")] * len(d), alpha=0.5, linewidth=0.5,
            legend=[pm.LegendEntry(vocabulary.label("map", "district_line"),
                                   vocabulary.colour("map", "district_line"), "line")],
        ))  # fmt: skip
    layers.append(pm.MapLayer(title, geoms, faces, ["#555555"] * len(geoms), linewidth=0.4,
                              legend=legend))  # fmt: skip
    bounds = tuple(shapely.GeometryCollection(geoms).bounds)
    return pm.draw(layers, bounds, *MAP_MM, pad=0.03, legend_in_figure=legend_in_figure)


def zone_maps(content: dict, geometry: dict, legend_in_figure: bool = False) -> dict:
    """{section: [(caption, MapFigure)]}: 图1 the districts by 亩均产值, 图3 the platforms by
    their composite score."""
    out: dict[str, list] = {}
    for section, args, cap in (
        ("indicators", ("district", "indicators.district", "output_per_mu", "各区县亩均产值",
                        "万元/亩"), "图1 各区县亩均产值(万元/亩)"),
        ("assessment", ("platform", "assessment.platforms", "score", "工业平台综合得分", "分"),
         "图3 工业平台考核评价综合得分分布"),
    ):  # fmt: skip
        m = zone_map(content, geometry, *args, legend_in_figure=legend_in_figure)
        if m is not None:
            out.setdefault(section, []).append((f"{cap} 比例尺 {pm.round_scale(m.scale)}", m))
    return out


CSS = """
@page { size: A4; margin: 18mm 14mm 18mm 14mm;
  @bottom-center { content: "第 " counter(page) " 页 / 共 " counter(pages) " 页";
    font-size: 9pt; } }
@page wide { size: A4 landscape; }
section.wide { page: wide; }
body { font-family: FONTS; font-size: 9.5pt; }
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
figure img.chart { max-width: 100%; max-height: 200mm; }
figcaption { font-size: 9pt; }
"""


def _css() -> str:
    return (
        CSS.replace("CHART", vocabulary.colour("map", "chart")).replace("FONTS", pm.CSS_FONTS)
        + pm.LEGEND_CSS
    )


def render_html(pub: dict) -> str:
    """The report of one edition (``publication.get(..., geometry=True)``) as HTML; maps and the
    chart inline as SVG (vectors in the PDF too)."""
    content = pub["content"]
    out = [
        '<!DOCTYPE html><html lang="zh-CN"><head><meta charset="utf-8">',
        f"<title>{html.escape(content['title'])}</title><style>{_css()}</style></head><body>",
        '<div class="cover">',
        f"<h1>{html.escape(content['title'])}</h1>",
        *(f"<p>{html.escape(line)}</p>" for line in cover_lines(pub)),
        f"<p><small>内容校验码 {pub['audience_hash'][:16]} · 规则 {pub['rules_hash']}</small></p>",
        '</div><div class="toc"><h2 style="page-break-before: avoid">目录</h2><ol>',
    ]
    for c in content["contents"]:
        extra = "" if c["present"] else f" <small>(本期无: {html.escape(c['note'] or '')})</small>"
        link = f"<a href=\"#{c['section']}\">{html.escape(c['title'])}</a>" if c["present"] \
            else html.escape(c["title"])  # fmt: skip
        out.append(f"<li>{link}{extra}</li>")
    out.append("</ol>")
    out += [f'<p class="note">{html.escape(n)}</p>' for n in front_notes(pub)]
    out.append("</div>")
    maps = zone_maps(content, pub.get("geometry") or {})
    try:
        for c in content["contents"]:
            if not c["present"]:
                continue
            s = content["sections"][c["section"]]
            out.append(f'<h2 id="{c["section"]}">{html.escape(s["title"])}</h2>')
            if c["section"] == "assessment":
                ch = score_chart(content)
                if ch:
                    b64 = base64.b64encode(ch).decode()
                    img = f'<img class="chart" alt="图2" src="data:image/svg+xml;base64,{b64}">'
                    out.append(_figure(img, "图2 工业平台考核评价综合得分"))
            for cap, m in maps.get(c["section"], []):
                out.append(_figure(pm.svg_img(m, cap), cap, pm.legend_html(m.legend)))
            for t, rows in printed_tables(s):
                out.append(_table_html(t, rows))
    finally:
        for ms in maps.values():
            for _, m in ms:
                m.close()
    out.append("</body></html>")
    return "".join(out)


def render_pdf(pub: dict) -> bytes:
    """The report as PDF (WeasyPrint)."""
    from weasyprint import HTML

    return HTML(string=render_html(pub)).write_pdf()


def render_docx(pub: dict) -> bytes:
    """The report as Word (.docx): cover, contents, sections with their tables and notes; the
    chart and maps as PNG (the maps' legends inside the picture)."""
    from gis.map import docx_out

    content = pub["content"]
    doc = docx_out.new_document(content["title"])
    doc.add_heading(content["title"], level=0)
    for line in cover_lines(pub):
        docx_out.paragraph(doc, line)
    doc.add_heading("目录", level=1)
    for i, c in enumerate(content["contents"], 1):
        extra = "" if c["present"] else f"(本期无: {c['note'] or ''})"
        docx_out.paragraph(doc, f"{i}. {c['title']}{extra}")
    for n in front_notes(pub):
        docx_out.paragraph(doc, n, small=True)
    maps = zone_maps(content, pub.get("geometry") or {}, legend_in_figure=True)
    try:
        for c in content["contents"]:
            if not c["present"]:
                continue
            s = content["sections"][c["section"]]
            doc.add_heading(s["title"], level=1)
            if c["section"] == "assessment":
                ch = score_chart(content, "png")
                if ch:
                    docx_out.picture(doc, ch, 160, "图2 工业平台考核评价综合得分")
            for cap, m in maps.get(c["section"], []):
                docx_out.picture(doc, m.png(dpi=200), 165, cap)
            for t, rows in printed_tables(s):
                doc.add_heading(t["title"], level=2)
                head, body, _ = _table_parts(t, rows)
                docx_out.table(doc, head, body)
                for n in t.get("notes", []):
                    docx_out.paragraph(doc, f"注: {n}", small=True)
    finally:
        for ms in maps.values():
            for _, m in ms:
                m.close()
    return docx_out.to_bytes(doc)


DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


# Rendered reports by edition (year, number, when it was made), audience (and its content's hash)
# and format: an edition never changes (its content is checked against its hash when read), so
# its report is rendered once per process (a public PDF of the sample city takes 10-19 s). The
# few most recent are kept.
_RENDERED: dict[tuple, tuple[bytes, str]] = {}
_RENDERED_MAX = 8


def render(pub: dict, fmt: str) -> tuple[bytes, str]:
    """(body, media type) of the report in ``fmt`` (html | pdf | docx), rendered once per edition,
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
    elif fmt == "docx":
        out = render_docx(pub), DOCX
    else:
        out = render_html(pub).encode("utf-8"), "text/html; charset=utf-8"
    while len(_RENDERED) >= _RENDERED_MAX:
        _RENDERED.pop(next(iter(_RENDERED)))
    _RENDERED[key] = out
    return out
