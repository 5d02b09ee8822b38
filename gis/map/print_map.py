"""The one map renderer for print: vector maps of our own layers with a scale bar and a north arrow.

Used by ``GET /api/print`` (出图: a titled map page with 图名, 图例, 比例尺, 指北针, 制图单位 and
制图日期), by the layout plan's report (a map per corridor) and by the yearly publication (zone
maps). Geometry is drawn in EPSG:4549 (CGCS2000 3-degree Gauss-Kruger, CM 120°E, metres), so the
map has one true scale: the map frame is ``width_mm`` × ``height_mm`` on paper, and the ground
extent is widened in one direction to the frame's proportions, so that 1 mm on paper is
``scale / 1000`` m on the ground. North is grid north (up); at Hangzhou the meridian convergence
of EPSG:4549 is under 0.2°, below what a north arrow shows.

The figure is drawn by matplotlib and written as SVG (text kept as text in a CJK font, so
WeasyPrint lays it into a PDF as vectors and pdftotext reads it) or as PNG for .docx. Labels and
colours come from ``gis.core.vocabulary``, the same as the map page's. Everything here reads; no
function writes to the database.

``page_layers`` reads the map page's layers (``PRINT_LAYERS``, named as the page names them) from
PostGIS within a bbox; ``print_pdf`` lays out the printed page (A4 or A3, portrait or landscape)
through WeasyPrint.
"""

from __future__ import annotations

import base64
import html
import io
import math
from dataclasses import dataclass, field
from datetime import date

import matplotlib

matplotlib.use("Agg")

import geopandas as gpd  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import shapely  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch, Polygon, Rectangle  # noqa: E402
from shapely.geometry.base import BaseGeometry  # noqa: E402
from sqlalchemy import Engine, text  # noqa: E402

from gis.core import vocabulary  # noqa: E402
from gis.serving import collections  # noqa: E402

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
# the CSS font stack of every printed page and report (the same fonts, in the same order)
CSS_FONTS = ", ".join(f'"{f}"' for f in CJK_FONTS) + ", sans-serif"

# paper sizes, mm (ISO 216), portrait
PAPER_MM = {"A4": (210.0, 297.0), "A3": (297.0, 420.0)}
ORIENTATIONS = ("portrait", "landscape")
MAX_FEATURES = 50_000  # features one layer of a printed map draws (more: the print says so)
MAX_BBOX_DEG = 6.0  # widest bbox printed, degrees (EPSG:4549's zone is 3° wide)
MAX_LABELS = 80  # labels one layer writes; more would cover the map


class PrintError(ValueError):
    """A print request that cannot be drawn (bad bbox, layer, size or orientation)."""


class RestrictedLayer(PermissionError):
    """A layer that carries restricted figures (亩均税收) asked for without an analyst token."""


# ---- what a map is made of --------------------------------------------------------------------


@dataclass(frozen=True)
class LegendEntry:
    label: str
    colour: str  # fill colour, or the line's colour for kind "line"
    kind: str = "fill"  # fill | line | outline (an unfilled polygon)


@dataclass
class MapLayer:
    """Features ready to draw: geometries in EPSG:4549 with a face and an edge colour each."""

    title: str
    geoms: list[BaseGeometry]
    faces: list[str]  # colour or "none"
    edges: list[str]
    alpha: float = 1.0  # of the faces
    linewidth: float = 0.5  # pt
    linestyle: str = "-"
    legend: list[LegendEntry] = field(default_factory=list)
    labels: list[tuple[float, float, str]] = field(default_factory=list)  # x, y (4549), text
    label_size: float = 7.0
    note: str | None = None  # printed under the legend (e.g. features left out)


def cjk_font() -> str | None:
    """The first of ``CJK_FONTS`` matplotlib can use, or None."""
    from matplotlib import font_manager

    names = {f.name for f in font_manager.fontManager.ttflist}
    return next((f for f in CJK_FONTS if f in names), None)


def setup_fonts() -> str | None:
    """matplotlib set up for Chinese text and vector output: the font, or None."""
    import logging

    logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)
    font = cjk_font()
    if font:
        plt.rcParams["font.sans-serif"] = [font, "DejaVu Sans"]
        plt.rcParams["font.family"] = "sans-serif"
    else:
        logging.getLogger("landlink").warning("no CJK font for maps; install fonts-wqy-microhei")
    plt.rcParams["axes.unicode_minus"] = False
    plt.rcParams["svg.fonttype"] = "none"  # text stays text (WeasyPrint draws it, pdftotext reads)
    plt.rcParams["pdf.fonttype"] = 42
    return font


# ---- scale ------------------------------------------------------------------------------------


def nice_length(target_m: float) -> float:
    """The largest 1, 2 or 5 × 10^k metres not above ``target_m`` (at least 1 m)."""
    if target_m < 1:
        return 1.0
    k = 10 ** math.floor(math.log10(target_m))
    return max(m * k for m in (1, 2, 5) if m * k <= target_m)


def length_label(m: float) -> str:
    """A round length as printed on a scale bar: ``500 米`` or ``2 千米``."""
    if m >= 1000:
        km = m / 1000
        return f"{km:g} 千米"
    return f"{m:g} 米"


def fit_extent(
    bounds: tuple[float, float, float, float], width_mm: float, height_mm: float, pad: float = 0.0
) -> tuple[float, float, float, float]:
    """``bounds`` (EPSG:4549 m) padded by ``pad`` of its larger side and widened in one
    direction to the frame's proportions, centred."""
    minx, miny, maxx, maxy = bounds
    w = max(maxx - minx, 1.0)
    h = max(maxy - miny, 1.0)
    p = pad * max(w, h)
    w, h = w + 2 * p, h + 2 * p
    cx, cy = (minx + maxx) / 2, (miny + maxy) / 2
    ratio = width_mm / height_mm
    if w / h > ratio:
        h = w / ratio
    else:
        w = h * ratio
    return cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2


def scale_of(extent: tuple[float, float, float, float], width_mm: float) -> float:
    """The scale denominator of ``extent`` drawn ``width_mm`` wide (ground m per paper m)."""
    return (extent[2] - extent[0]) / (width_mm / 1000.0)


def round_scale(scale: float) -> str:
    """``1:25,300`` style: the denominator to three significant figures."""
    if scale <= 0:
        return "1:—"
    digits = max(0, int(math.floor(math.log10(scale))) - 2)
    return f"1:{round(scale / 10**digits) * 10**digits:,.0f}"


# ---- drawing ----------------------------------------------------------------------------------


@dataclass
class MapFigure:
    """A drawn map: the figure, its extent (EPSG:4549 m), its scale denominator and legend."""

    fig: object
    extent: tuple[float, float, float, float]
    scale: float
    width_mm: float
    height_mm: float
    legend: list[tuple[str, list[LegendEntry], str | None]]  # (layer title, entries, note)

    def svg(self) -> bytes:
        buf = io.BytesIO()
        self.fig.savefig(buf, format="svg")
        return buf.getvalue()

    def png(self, dpi: int = 200) -> bytes:
        buf = io.BytesIO()
        self.fig.savefig(buf, format="png", dpi=dpi)
        return buf.getvalue()

    def close(self) -> None:
        plt.close(self.fig)


def _draw_scale_bar(ax, extent, width_mm: float, height_mm: float, scale: float) -> None:
    """Two-segment bar at the lower left, 8 mm in, with 0, half and the whole length."""
    minx, miny, maxx, maxy = extent
    per_mm = (maxx - minx) / width_mm  # ground m per paper mm
    length = nice_length(0.25 * (maxx - minx))
    x0 = minx + 8 * per_mm
    y0 = miny + 8 * per_mm
    bar_h = 1.6 * per_mm
    ax.add_patch(
        Rectangle(
            (x0 - 2 * per_mm, y0 - 3 * per_mm),
            length + 8 * per_mm,
            10 * per_mm,
            facecolor="white",
            edgecolor="none",
            alpha=0.85,
            zorder=20,
        )
    )
    for i in range(2):
        ax.add_patch(
            Rectangle(
                (x0 + i * length / 2, y0),
                length / 2,
                bar_h,
                facecolor="black" if i == 0 else "white",
                edgecolor="black",
                linewidth=0.6,
                zorder=21,
            )
        )
    for v, lab in (
        (0, "0"),
        (length / 2, f"{length / 2 / (1000 if length >= 1000 else 1):g}"),
        (length, length_label(length)),
    ):
        ax.text(
            x0 + v,
            y0 + bar_h + 0.8 * per_mm,
            lab,
            fontsize=6.5,
            ha="center",
            va="bottom",
            zorder=22,
        )
    ax.text(
        x0,
        y0 - 0.8 * per_mm,
        f"比例尺 {round_scale(scale)}",
        fontsize=6.5,
        ha="left",
        va="top",
        zorder=22,
    )


def _draw_north_arrow(ax, extent, width_mm: float) -> None:
    """An arrow pointing to grid north with 北 above it, at the upper right."""
    minx, miny, maxx, maxy = extent
    per_mm = (maxx - minx) / width_mm
    cx = maxx - 12 * per_mm
    top = maxy - 9 * per_mm
    h, w = 11 * per_mm, 3.2 * per_mm
    ax.add_patch(
        Rectangle(
            (cx - 5 * per_mm, top - h - 2 * per_mm),
            10 * per_mm,
            h + 8 * per_mm,
            facecolor="white",
            edgecolor="none",
            alpha=0.85,
            zorder=20,
        )
    )
    base = top - h
    ax.add_patch(
        Polygon(
            [(cx, top), (cx - w, base), (cx, base + 0.3 * h)],
            closed=True,
            facecolor="black",
            edgecolor="black",
            linewidth=0.6,
            zorder=21,
        )
    )
    ax.add_patch(
        Polygon(
            [(cx, top), (cx + w, base), (cx, base + 0.3 * h)],
            closed=True,
            facecolor="white",
            edgecolor="black",
            linewidth=0.6,
            zorder=21,
        )
    )
    ax.text(
        cx, top + 0.8 * per_mm, "北", fontsize=9, ha="center", va="bottom", weight="bold", zorder=22
    )


def _legend_handles(legend) -> list:
    handles = []
    for title, entries, _note in legend:
        handles.append(Patch(facecolor="none", edgecolor="none", label=title))
        for e in entries:
            if e.kind == "line":
                handles.append(Line2D([0], [0], color=e.colour, linewidth=1.6, label=e.label))
            elif e.kind == "outline":
                handles.append(Patch(facecolor="none", edgecolor=e.colour, label=e.label))
            else:
                handles.append(
                    Patch(facecolor=e.colour, edgecolor="#555555", linewidth=0.3, label=e.label)
                )
    return handles


def draw(
    layers: list[MapLayer],
    bounds: tuple[float, float, float, float],
    width_mm: float,
    height_mm: float,
    pad: float = 0.0,
    legend_in_figure: bool = False,
    background: str | None = None,
) -> MapFigure:
    """The map of ``layers`` (first drawn first) over ``bounds`` (EPSG:4549 m), its frame
    ``width_mm`` × ``height_mm``, with a scale bar and a north arrow; the legend drawn in the
    figure only when asked (PNG for .docx; the printed page writes it beside the map)."""
    setup_fonts()
    extent = fit_extent(bounds, width_mm, height_mm, pad)
    scale = scale_of(extent, width_mm)
    fig = plt.figure(figsize=(width_mm / 25.4, height_mm / 25.4))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(extent[0], extent[2])
    ax.set_ylim(extent[1], extent[3])
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    for s in ax.spines.values():
        s.set_linewidth(0.8)
    ax.set_facecolor(background or "white")
    clip = shapely.box(*extent)
    for layer in layers:
        if not layer.geoms:
            continue
        gs = gpd.GeoSeries(layer.geoms)
        faces = [f for f in layer.faces]
        has_fill = any(f != "none" for f in faces)
        if has_fill:
            gs.plot(ax=ax, color=faces, alpha=layer.alpha, edgecolor="none", linewidth=0)
        gs.boundary.plot(
            ax=ax, color=layer.edges, linewidth=layer.linewidth, linestyle=layer.linestyle
        )
        for x, y, t in layer.labels[:MAX_LABELS]:
            if clip.contains(shapely.Point(x, y)):
                ax.text(
                    x,
                    y,
                    t,
                    fontsize=layer.label_size,
                    ha="center",
                    va="center",
                    color=vocabulary.colour("map", "label"),
                    zorder=15,
                    bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.6, "pad": 0.6},
                )
    ax.set_xlim(extent[0], extent[2])
    ax.set_ylim(extent[1], extent[3])
    ax.set_xlabel("")
    ax.set_ylabel("")
    _draw_scale_bar(ax, extent, width_mm, height_mm, scale)
    _draw_north_arrow(ax, extent, width_mm)
    legend = [(lay.title, lay.legend, lay.note) for lay in layers if lay.legend or lay.note]
    if legend_in_figure and legend:
        lg = ax.legend(
            handles=_legend_handles(legend),
            loc="lower right",
            fontsize=6.5,
            framealpha=0.9,
            title="图例",
            title_fontsize=7.5,
        )
        lg.set_zorder(30)
    return MapFigure(fig, extent, scale, width_mm, height_mm, legend)


def svg_img(mf: MapFigure, alt: str) -> str:
    """The map as an HTML ``<img>`` of its SVG, sized in mm so that its scale holds."""
    b64 = base64.b64encode(mf.svg()).decode()
    return (
        f'<img class="map" alt="{html.escape(alt)}" style="width:{mf.width_mm:g}mm;'
        f'height:{mf.height_mm:g}mm" src="data:image/svg+xml;base64,{b64}">'
    )


def legend_html(legend) -> str:
    """The legend as HTML: each layer's title and its entries with their colours."""
    out = ['<div class="legend"><div class="legend-title">图例</div>']
    for title, entries, note in legend:
        out.append(f'<div class="legend-layer"><b>{html.escape(title)}</b>')
        for e in entries:
            if e.kind == "line":
                sw = f"border-top:2px solid {e.colour};height:0;margin-top:5px"
            elif e.kind == "outline":
                sw = f"border:1.5px solid {e.colour}"
            else:
                sw = f"background:{e.colour};border:0.5px solid #555"
            out.append(f'<span class="entry"><i style="{sw}"></i>{html.escape(e.label)}</span>')
        if note:
            out.append(f'<span class="note">{html.escape(note)}</span>')
        out.append("</div>")
    out.append("</div>")
    return "".join(out)


LEGEND_CSS = """
.legend { font-size: 8pt; line-height: 1.35; }
.legend-title { font-weight: bold; font-size: 9.5pt; margin-bottom: 1mm; }
.legend-layer { margin-bottom: 1mm; }
.legend-layer b { margin-right: 2mm; }
.legend .entry { display: inline-block; margin-right: 3mm; white-space: nowrap; }
.legend .entry i { display: inline-block; width: 5mm; height: 3mm; margin-right: 1mm;
  vertical-align: -0.4mm; }
.legend .note { color: #555; font-size: 7pt; }
"""


# ---- classed colours (choropleths) ------------------------------------------------------------


def classed(
    values: list[float | None], n: int = 5, cmap: str = "YlGnBu", unit: str = ""
) -> tuple[list[str], list[LegendEntry]]:
    """Colours of ``values`` in ``n`` quantile classes (None: grey), and their legend."""
    known = sorted(v for v in values if v is not None)
    no_data = vocabulary.colour("map", "no_data")
    if not known:
        return [no_data] * len(values), [LegendEntry("无数据或不予公布", no_data)]
    edges = sorted({known[min(len(known) - 1, int(i * len(known) / n))] for i in range(n)})
    edges.append(known[-1])
    k = max(len(edges) - 1, 1)
    ramp = plt.get_cmap(cmap)
    colours = [matplotlib.colors.to_hex(ramp(0.15 + 0.8 * i / max(k - 1, 1))) for i in range(k)]

    def cls(v: float) -> int:
        for i in range(k - 1, -1, -1):
            if v >= edges[i]:
                return i
        return 0

    out = [no_data if v is None else colours[cls(v)] for v in values]
    suffix = f" {unit}" if unit else ""
    legend = [
        LegendEntry(f"{edges[i]:,.1f} – {edges[i + 1]:,.1f}{suffix}", colours[i]) for i in range(k)
    ]
    if any(v is None for v in values):
        legend.append(LegendEntry("无数据或不予公布", no_data))
    return out, legend


# ---- the map page's layers from PostGIS -------------------------------------------------------

PARCEL_COLOURS = ("use", "class", "tax")  # the page's 着色 choices for 现状工业用地


@dataclass(frozen=True)
class PrintLayer:
    id: str  # the map page's layer id (= the collection id)
    title: str
    restricted: bool = False


PRINT_LAYERS: dict[str, PrintLayer] = {
    p.id: p
    for p in (
        PrintLayer("districts", "行政区"),
        PrintLayer("corridors", vocabulary.vocabulary("corridor").title),
        PrintLayer("platforms", "工业平台(四类平台)"),
        PrintLayer("parcels", "现状工业用地"),
        PrintLayer("unsupplied", vocabulary.label("land_kind", "unsupplied")),
        PrintLayer("idle", "供而未用 / 闲置(按状态)"),
        PrintLayer("low_efficiency", "低效用地(按原因)"),
    )
}
DEFAULT_LAYERS = ("districts", "corridors", "platforms", "parcels")


def parse_bbox(bbox: str | None) -> tuple[float, float, float, float]:
    """``minlon,minlat,maxlon,maxlat`` (EPSG:4490 degrees) checked; PrintError saying why."""
    if not bbox:
        raise PrintError(
            "bbox is required: minlon,minlat,maxlon,maxlat in EPSG:4490 degrees (the map page "
            "sends its view's)"
        )
    parts = [p.strip() for p in (bbox or "").split(",")]
    if len(parts) != 4:
        raise PrintError(
            f"bbox {bbox!r}: four numbers minlon,minlat,maxlon,maxlat (EPSG:4490 degrees)"
        )
    try:
        a, b, c, d = (float(p) for p in parts)
    except ValueError:
        raise PrintError(f"bbox {bbox!r}: not numbers (minlon,minlat,maxlon,maxlat)") from None
    if not all(math.isfinite(v) for v in (a, b, c, d)):
        raise PrintError(f"bbox {bbox!r}: not finite")
    if not (-180 <= a <= 180 and -180 <= c <= 180 and -90 <= b <= 90 and -90 <= d <= 90):
        raise PrintError(f"bbox {bbox!r}: longitudes within ±180, latitudes within ±90 (degrees)")
    if a >= c or b >= d:
        raise PrintError(f"bbox {bbox!r}: minlon < maxlon and minlat < maxlat")
    if c - a > MAX_BBOX_DEG or d - b > MAX_BBOX_DEG:
        raise PrintError(
            f"bbox {bbox!r}: at most {MAX_BBOX_DEG:g}° across (EPSG:4549, the printed map's "
            "projection, is a 3° zone around 120°E)"
        )
    return a, b, c, d


def parse_layers(layers: str | None, analyst: bool, parcel_colour: str) -> list[str]:
    """The layer ids of ``layers`` (comma list, the map page's names; empty: the page's
    default), checked; PrintError for an unknown one, RestrictedLayer for 亩均税收 unsigned."""
    if parcel_colour not in PARCEL_COLOURS:
        raise PrintError(f"parcel_colour {parcel_colour!r}: one of {', '.join(PARCEL_COLOURS)}")
    ids = [x.strip() for x in (layers or "").split(",") if x.strip()] or list(DEFAULT_LAYERS)
    bad = [x for x in ids if x not in PRINT_LAYERS]
    if bad:
        raise PrintError(
            f"unknown layer {', '.join(repr(b) for b in bad)}; layers: {', '.join(PRINT_LAYERS)}"
        )
    if parcel_colour == "tax" and "parcels" in ids and not analyst:
        raise RestrictedLayer(
            "parcels coloured by 亩均税收 (parcel_colour=tax) carry tax figures: they need an "
            "analyst token (Authorization: Bearer …); print parcel_colour=use or class instead"
        )
    return list(dict.fromkeys(ids))


def paper(size: str, orientation: str) -> tuple[float, float]:
    """(width, height) of the page in mm; PrintError for an unknown size or orientation."""
    if size not in PAPER_MM:
        raise PrintError(f"size {size!r}: one of {', '.join(PAPER_MM)}")
    if orientation not in ORIENTATIONS:
        raise PrintError(f"orientation {orientation!r}: one of {', '.join(ORIENTATIONS)}")
    w, h = PAPER_MM[size]
    return (h, w) if orientation == "landscape" else (w, h)


def bbox_4549(engine: Engine, bbox: tuple[float, float, float, float]) -> tuple[float, ...]:
    """The EPSG:4549 extent (m) of a lon/lat bbox in EPSG:4490 (its edges densified)."""
    with engine.connect() as conn:
        r = conn.execute(
            text(
                "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM (SELECT "
                "ST_Transform(ST_Segmentize(ST_MakeEnvelope(:a, :b, :c, :d, 4490), 0.01), 4549)"
                "::box2d AS e) s"
            ),
            {"a": bbox[0], "b": bbox[1], "c": bbox[2], "d": bbox[3]},
        ).one()
    return tuple(float(v) for v in r)


def _vocab_style(name: str, codes: list[str | None]) -> tuple[list[str], list[LegendEntry]]:
    """Colours of ``codes`` in vocabulary ``name`` (unknown: its other colour) and the legend
    of the codes present, in the vocabulary's order."""
    v = vocabulary.vocabulary(name)
    cols = vocabulary.colours(name)
    other = v.other_colour or vocabulary.colour("map", "no_data")
    out = [cols.get(c or "", other) for c in codes]
    present = set(codes)
    legend = [LegendEntry(t.label, t.colour) for t in v.terms if t.colour and t.code in present]
    if any((c or "") not in cols for c in codes):
        legend.append(LegendEntry(v.other_label or "其他", other))
    return out, legend


def _rows(conn, c: collections.Collection, props: list[str], env, tol: float) -> list:
    sel = ", ".join(f"{c.prop(p).sql} AS {p}" for p in props)
    sql = f"""
        SELECT ST_AsBinary(ST_SimplifyPreserveTopology({c.geom}, :tol)) AS wkb,
               ST_X(ST_PointOnSurface({c.geom})) AS lx, ST_Y(ST_PointOnSurface({c.geom})) AS ly
               {", " + sel if sel else ""}
        FROM {c.source}
        WHERE {c.where} AND {c.geom} IS NOT NULL
          AND {c.geom} && ST_MakeEnvelope(:x0, :y0, :x1, :y1, 4549)
        ORDER BY {c.key} LIMIT {MAX_FEATURES + 1}
    """
    return conn.execute(
        text(sql), {"tol": tol, "x0": env[0], "y0": env[1], "x1": env[2], "y1": env[3]}
    ).all()


def page_layers(
    engine: Engine,
    ids: list[str],
    extent: tuple[float, float, float, float],
    parcel_colour: str = "use",
    tolerance_m: float = 0.0,
) -> list[MapLayer]:
    """The map page's layers ``ids`` (checked by :func:`parse_layers`) within ``extent``
    (EPSG:4549 m), styled as the page styles them, drawn in the page's order. Geometry is
    simplified by ``tolerance_m`` (a tenth of a paper mm is invisible). A layer whose tables do
    not exist yet (no detection run) is drawn empty with a note."""
    from gis.map.map_layers import parcel_tax_bands

    out: list[MapLayer] = []
    mp = vocabulary.colour  # noqa: N806
    with engine.connect() as conn:
        reg = collections.registry(conn)
        for lid in [x for x in PRINT_LAYERS if x in ids]:
            spec = PRINT_LAYERS[lid]
            c = reg.get(lid)
            if c is None:
                out.append(MapLayer(spec.title, [], [], [], note="无数据(尚未检测)"))
                continue
            props = {
                "districts": ["name", "main_urban"],
                "corridors": ["code", "name"],
                "platforms": ["name", "kind"],
                "parcels": ["parcel_no", "actual_use", "eval_class"],
                "unsupplied": ["status"],
                "idle": ["status"],
                "low_efficiency": ["reason_codes"],
            }[lid]
            rows = _rows(conn, c, props, extent, tolerance_m)
            note = None
            if len(rows) > MAX_FEATURES:
                rows = rows[:MAX_FEATURES]
                note = f"范围内要素过多, 只绘出前 {MAX_FEATURES} 个"
            geoms = [shapely.from_wkb(bytes(r.wkb)) for r in rows]
            n = len(rows)
            labels: list[tuple[float, float, str]] = []
            if lid == "districts":
                faces = [
                    mp("map", "district_main" if r.main_urban else "district_other") for r in rows
                ]
                lay = MapLayer(
                    spec.title,
                    geoms,
                    faces,
                    [mp("map", "district_line")] * n,
                    alpha=0.9,
                    linewidth=1.0,
                    legend=[
                        LegendEntry(
                            vocabulary.label("map", "district_main"), mp("map", "district_main")
                        ),
                        LegendEntry(
                            vocabulary.label("map", "district_other"), mp("map", "district_other")
                        ),
                        LegendEntry(
                            vocabulary.label("map", "district_line"),
                            mp("map", "district_line"),
                            "line",
                        ),
                    ],
                    labels=[(r.lx, r.ly, r.name) for r in rows if r.name],
                    label_size=9,
                )
                out.append(lay)
                continue
            if lid == "corridors":
                edges, legend = _vocab_style("corridor", [r.code for r in rows])
                lay = MapLayer(
                    spec.title,
                    geoms,
                    ["none"] * n,
                    edges,
                    linewidth=1.6,
                    linestyle="--",
                    legend=[LegendEntry(e.label, e.colour, "line") for e in legend],
                )
                out.append(lay)
                continue
            if lid == "platforms":
                cols, legend = _vocab_style("platform_kind", [r.kind for r in rows])
                labels = [(r.lx, r.ly, r.name) for r in rows if r.name]
                lay = MapLayer(
                    spec.title,
                    geoms,
                    cols,
                    cols,
                    alpha=0.12,
                    linewidth=1.2,
                    legend=[LegendEntry(e.label, e.colour, "outline") for e in legend],
                    labels=labels,
                )
                out.append(lay)
                continue
            if lid == "parcels":
                if parcel_colour == "tax":
                    bands = parcel_tax_bands(engine)["parcels"]
                    cols, legend = _vocab_style(
                        "tax_band", [(bands.get(r.parcel_no) or [None, None])[1] for r in rows]
                    )
                    title = f"{spec.title}(亩均税收)"
                elif parcel_colour == "class":
                    cols, legend = _vocab_style("eval_class", [r.eval_class for r in rows])
                    title = f"{spec.title}(评价等级)"
                else:
                    cols, legend = _vocab_style("actual_use", [r.actual_use for r in rows])
                    title = f"{spec.title}(实际用途)"
                out.append(
                    MapLayer(
                        title,
                        geoms,
                        cols,
                        [mp("map", "parcel_line")] * n,
                        alpha=0.75,
                        linewidth=0.2,
                        legend=legend,
                        note=note,
                    )
                )
                continue
            if lid in ("unsupplied", "idle"):
                vname = f"{lid}_status"
                cols, legend = _vocab_style(vname, [r.status for r in rows])
                out.append(
                    MapLayer(
                        spec.title,
                        geoms,
                        cols,
                        [mp("map", f"{lid}_line")] * n,
                        alpha=0.6 if lid == "unsupplied" else 0.8,
                        linewidth=0.5,
                        legend=legend,
                        note=note,
                    )
                )
                continue
            # low_efficiency: the first reason in the vocabulary's order, as the page colours it
            order = [t.code for t in vocabulary.vocabulary("low_efficiency_reason").terms]
            firsts = []
            for r in rows:
                have = set((r.reason_codes or "").split(";"))
                firsts.append(next((k for k in order if k in have), None))
            cols, legend = _vocab_style("low_efficiency_reason", firsts)
            out.append(
                MapLayer(
                    spec.title,
                    geoms,
                    cols,
                    [mp("map", "low_efficiency_line")] * n,
                    alpha=0.8,
                    linewidth=0.5,
                    legend=legend,
                    note=note,
                )
            )
    return out


# ---- the printed page -------------------------------------------------------------------------

PAGE_MARGIN_MM = 10.0
TITLE_MM = 14.0  # the title's band
FOOT_MIN_MM = 36.0  # the band under the map: legend, scale, coordinates, unit and date
FOOT_MAX_SHARE = 0.45  # of the page's height: the legend's band grows up to this
META_MM = 67.0  # the right-hand column (scale, coordinate system, 制图单位, 制图日期)
LEGEND_PT = 8.0


def _text_mm(s: str, pt: float) -> float:
    """The width of ``s`` set in ``pt`` points, mm (CJK glyphs square, others about half)."""
    em = pt * 25.4 / 72
    return sum(em * (1.0 if ord(c) >= 0x2E80 else 0.55) for c in s)


def legend_height_mm(legend, width_mm: float, pt: float = LEGEND_PT) -> float:
    """The height ``legend_html`` takes ``width_mm`` wide: its entries set inline and wrapped
    whole, as WeasyPrint sets them (``LEGEND_CSS``), with a margin of error added."""
    line = pt * 25.4 / 72 * 1.35
    h = 5.5  # the title 图例
    for title, entries, note in legend:
        x, lines = _text_mm(title, pt) + 2, 1
        for e in entries:
            w = 5 + 1 + _text_mm(e.label, pt) + 3
            if x + w > width_mm:
                lines, x = lines + 1, 0.0
            x += w
        if note:
            lines += 1
        h += lines * line + 1
    return h * 1.15 + 2


def issuing_unit() -> str:
    """制图单位: the configured issuing unit, the same as the yearly publication's 发布单位."""
    from gis.core.rules import get_rules

    return get_rules().publication.publisher


DEFAULT_TITLE = "杭州市工业用地现状图"


def print_html(
    engine: Engine,
    bbox: tuple[float, float, float, float],
    layers: list[str],
    size: str = "A4",
    orientation: str = "portrait",
    title: str | None = None,
    parcel_colour: str = "use",
    today: date | None = None,
) -> str:
    """The printed map page as HTML for WeasyPrint: 图名, the map (SVG, with 比例尺 and 指北针),
    图例, the scale as a ratio, 制图单位, 制图日期 and the coordinate system."""
    page_w, page_h = paper(size, orientation)
    map_w = page_w - 2 * PAGE_MARGIN_MM
    body_h = page_h - 2 * PAGE_MARGIN_MM - TITLE_MM
    foot_max = FOOT_MAX_SHARE * page_h
    env = bbox_4549(engine, bbox)
    # the layers are read for every frame the legend may leave the map (its height depends on
    # the entries present), then the map is drawn in the frame that is left
    tall = fit_extent(env, map_w, body_h - FOOT_MIN_MM)
    flat = fit_extent(env, map_w, body_h - foot_max)
    load = (min(tall[0], flat[0]), min(tall[1], flat[1]), max(tall[2], flat[2]),
            max(tall[3], flat[3]))  # fmt: skip
    tol = scale_of(tall, map_w) / 10_000  # 0.1 mm on paper, in metres
    lays = page_layers(engine, layers, load, parcel_colour, tol)
    legend = [(lay.title, lay.legend, lay.note) for lay in lays if lay.legend or lay.note]
    foot_h = min(max(FOOT_MIN_MM, legend_height_mm(legend, map_w - META_MM)), foot_max)
    map_h = body_h - foot_h
    mf = draw(lays, env, map_w, map_h, background=vocabulary.colour("map", "background"))
    try:
        img = svg_img(mf, title or DEFAULT_TITLE)
    finally:
        mf.close()
    when = (today or date.today()).strftime("%Y年%m月%d日")
    title = title or DEFAULT_TITLE
    css = f"""
@page {{ size: {size} {orientation}; margin: {PAGE_MARGIN_MM}mm; }}
body {{ margin: 0; font-family: {CSS_FONTS}; }}
h1 {{ height: {TITLE_MM}mm; margin: 0; font-size: {18 if size == "A4" else 24}pt;
  text-align: center; line-height: {TITLE_MM}mm; letter-spacing: 2pt; }}
.frame {{ width: {map_w}mm; height: {map_h}mm; overflow: hidden; }}
img.map {{ display: block; }}
div.foot {{ height: {foot_h - 6:.1f}mm; margin-top: 2mm; overflow: hidden; }}
table.foot {{ width: {map_w}mm; border-collapse: collapse; table-layout: fixed; }}
table.foot td {{ vertical-align: top; padding: 0; overflow: hidden; }}
td.meta {{ width: {META_MM - 3}mm; font-size: 8pt; line-height: 1.5; border-left: 0.5pt solid #999;
  padding-left: 3mm !important; }}
{LEGEND_CSS}
"""
    return (
        f'<!DOCTYPE html><html lang="zh-CN"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{css}</style></head><body>"
        f'<h1>{html.escape(title)}</h1><div class="frame">{img}</div>'
        f'<div class="foot"><table class="foot"><tr><td>{legend_html(mf.legend)}</td>'
        '<td class="meta">'
        f"<div>比例尺: {round_scale(mf.scale)}(图内比例尺以米、千米计)</div>"
        "<div>指北针: 图上方为北(坐标北)</div>"
        "<div>坐标系: CGCS2000 3度带高斯-克吕格投影 中央经线120°E(EPSG:4549)</div>"
        f"<div>制图单位: {html.escape(issuing_unit())}</div>"
        f"<div>制图日期: {when}</div>"
        "</td></tr></table></div></body></html>"
    )


def print_pdf(
    engine: Engine,
    bbox: tuple[float, float, float, float],
    layers: list[str],
    size: str = "A4",
    orientation: str = "portrait",
    title: str | None = None,
    parcel_colour: str = "use",
    today: date | None = None,
) -> bytes:
    """The printed map page as a one-page PDF (WeasyPrint; the map stays vector)."""
    from weasyprint import HTML

    page = print_html(engine, bbox, layers, size, orientation, title, parcel_colour, today)
    return HTML(string=page).write_pdf()
