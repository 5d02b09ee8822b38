"""Writing result lists as files: JSON, GeoJSON, CSV, XLSX, GeoPackage and zipped Shapefile.

Input: a list of rows (dicts keyed by the API's field names), their geometries as WKB in
EPSG:4549 (or None), and the field list (name, ≤ 10-character shapefile name, Chinese label,
type). Output: bytes, a media type and a file name.

- GeoJSON: RFC 7946, coordinates in WGS84 lon/lat (CRS84).
- GeoPackage: EPSG:4549 (storage CRS, metres), UTF-8, field names as in the API.
- Shapefile: EPSG:4549 with .prj, attributes in GBK with a ``.cpg`` saying so, field names of at
  most 10 characters (``Field.short``; the mapping is in the zip as ``FIELDS.csv`` and in
  docs/THREE_LANDS.md), text cut to the 254-byte DBF limit on a character boundary, all in one
  zip so ArcGIS opens it as it is.
- CSV (UTF-8 with BOM, so Excel reads the Chinese) and XLSX (openpyxl; a second sheet lists the
  fields): no geometry, the centroid as ``lon`` / ``lat`` (WGS84) instead. Every cell of both
  goes through ``spreadsheet_cell``: text a spreadsheet would run as a formula is escaped
  (OWASP, CSV injection), numbers stay numbers; XLSX text cells are always typed as text.
- Tables as a bureau prints them (``tables_xlsx``: summaries and lists, one sheet each, Chinese
  headers with units, a frozen header, a 合计 row, the 制表日期), through the same cells.

Lists become ``;``-joined text and booleans 是 / 否 in the tabular and file formats; nested
objects become JSON text.
"""

from __future__ import annotations

import csv
import io
import json
import re
import tempfile
import zipfile
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.utils import get_column_letter
from pyproj import Transformer

from gis.core.layers import M2_PER_MU, STORAGE_SRID

FORMATS = ("json", "geojson", "csv", "xlsx", "gpkg", "shp")
FieldKind = Literal["text", "float", "int", "date", "bool", "list", "json"]
MEDIA_TYPES = {
    "json": "application/json",
    "geojson": "application/geo+json",
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "gpkg": "application/geopackage+sqlite3",
    "shp": "application/zip",
}
SHP_TEXT_BYTES = 254
# The DBF's language driver byte (offset 29): 0x4D = 77, "Chinese GBK (PRC)" (code page 936),
# which ArcGIS and GDAL read when there is no .cpg; the .cpg says the same as a code page
# number, the form ArcGIS documents and GDAL turns into CP936 (docs/EXPORTS.md).
SHP_LDID = "LDID/77"
SHP_CPG = "936"
_TO_WGS84 = Transformer.from_crs(STORAGE_SRID, 4326, always_xy=True)


@dataclass(frozen=True)
class Field:
    name: str  # API name
    short: str  # shapefile name, <= 10 ASCII characters
    label: str  # Chinese label, with the unit in brackets where there is one
    kind: FieldKind = "text"
    vocab: str | None = None  # gis.core.vocabulary whose labels the codes get in a table

    def __post_init__(self) -> None:
        if len(self.short.encode("ascii")) > 10:
            raise ValueError(f"shapefile field name {self.short!r} is over 10 characters")


# OWASP "CSV Injection": a cell starting with one of these is read as a formula (or a DDE
# command) by Excel, LibreOffice or WPS. The full-width forms are ours: Chinese input methods
# type them and some spreadsheets take them for the ASCII signs.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n", "\uff1d", "\uff0b", "\uff0d", "\uff20")


def spreadsheet_cell(value: Any) -> Any:
    """A value as a CSV or XLSX cell may hold it: text that a spreadsheet would read as a
    formula gets a leading ``'`` (OWASP's rule), so it shows as the text it is; numbers,
    negative ones too, and empty cells are left as they are."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def _xlsx_row(ws: Any, values: list[Any]) -> list[Any]:
    """Cells of one XLSX row: escaped as in CSV, text always a text cell (never a formula or
    an error code such as ``#N/A``), characters XML cannot hold replaced by U+FFFD."""
    cells = []
    for v in values:
        v = spreadsheet_cell(v)
        if isinstance(v, str):
            c = WriteOnlyCell(ws, ILLEGAL_CHARACTERS_RE.sub("\ufffd", v))
            c.data_type = "s"
            cells.append(c)
        else:
            cells.append(v)
    return cells


def _flat(value: Any, kind: FieldKind) -> Any:
    """A value for a tabular cell: lists joined, booleans 是/否, objects as JSON text."""
    if value is None:
        return None
    if kind == "list":
        return ";".join(str(v) for v in value) or None
    if kind == "bool":
        return "是" if value else "否"
    if kind == "json":
        return json.dumps(value, ensure_ascii=False, default=str)
    return value


def _frame(rows: list[dict], fields: list[Field]) -> pd.DataFrame:
    cols: dict[str, Any] = {}
    for f in fields:
        vals = [_flat(r.get(f.name), f.kind) for r in rows]
        if f.kind == "float":
            cols[f.name] = pd.array([np.nan if v is None else float(v) for v in vals], "float64")
        elif f.kind == "int":
            cols[f.name] = pd.array(vals, dtype="Int64")
        elif f.kind == "date":  # datetime.date objects: Arrow date32, an OGR Date field
            cols[f.name] = pd.Series(
                [None if v is None else date.fromisoformat(str(v)[:10]) for v in vals],
                dtype="object",
            )
        else:
            cols[f.name] = pd.Series(vals, dtype="object")
    return pd.DataFrame(cols)


def _centroids(geoms: list[bytes | None]) -> tuple[list, list]:
    g = shapely.from_wkb(np.array(geoms, dtype=object))
    c = shapely.centroid(g)
    x, y = shapely.get_x(c), shapely.get_y(c)
    lon, lat = _TO_WGS84.transform(x, y)
    lon = [None if np.isnan(v) else round(float(v), 6) for v in np.atleast_1d(lon)]
    lat = [None if np.isnan(v) else round(float(v), 6) for v in np.atleast_1d(lat)]
    return lon, lat


def _json_value(v: Any) -> Any:
    if isinstance(v, (date, datetime)):
        return v.isoformat()
    return v


def to_geojson_features(rows: list[dict], geoms_4326: list[str | None]) -> list[dict]:
    """GeoJSON features from rows and their geometries already as GeoJSON text in CRS84."""
    return [
        {
            "type": "Feature",
            "geometry": json.loads(g) if g else None,
            "properties": {k: _json_value(v) for k, v in r.items()},
        }
        for r, g in zip(rows, geoms_4326, strict=True)
    ]


M2_PER_HA = 10_000.0
AREA_UNITS = ("(平方米)", "(亩)", "(公顷)")
LON_LAT = [
    Field("lon", "lon", "中心点经度(度)", "float"),
    Field("lat", "lat", "中心点纬度(度)", "float"),
]


@dataclass(frozen=True)
class Column:
    """One column of a bureau table: its Chinese header (with the unit), its machine code (the
    export's field name: what scripts read, unchanged from the JSON API) and how a row gives
    its cell."""

    code: str
    label: str
    kind: FieldKind
    value: Any  # Callable[[dict], Any]
    summed: bool = False


def is_area(name: str) -> bool:
    """An additive area field by its name: ``…_m2``, ``…_mu`` or ``…_ha``."""
    return name.endswith(("_m2", "_mu", "_ha"))


def _area_label(label: str, unit: str) -> str:
    for u in AREA_UNITS:
        if u in label:
            return label.replace(u, unit)
    return f"{label}{unit}"


def _vocab_cell(vocab: str, value: Any, kind: FieldKind) -> Any:
    from gis.core import vocabulary

    if value is None:
        return None
    if kind == "list":
        return ";".join(str(vocabulary.label(vocab, str(v))) for v in value) or None
    return vocabulary.label(vocab, str(value))


def table_columns(fields: list[Field]) -> list[Column]:
    """The columns a bureau table shows for ``fields``: a field with a vocabulary gives its
    Chinese label (code ``<name>_label``) and then its code under the field's own name (so a
    script reading ``status`` still reads ``idle_reclaimable``); an area in m² (``…_m2``) is
    followed by 亩 and 公顷 where the fields do not have them already; areas are summed in 合计."""
    names = {f.name for f in fields}
    cols: list[Column] = []
    for f in fields:

        def get(r: dict, f: Field = f) -> Any:
            return _json_value(_flat(r.get(f.name), f.kind))

        if f.vocab:
            cols.append(
                Column(
                    f"{f.name}_label",
                    f.label,
                    "text",
                    lambda r, f=f: _vocab_cell(f.vocab, r.get(f.name), f.kind),
                )
            )
            cols.append(Column(f.name, f"{f.label}代码", f.kind, get))
            continue
        summed = f.kind in ("float", "int") and is_area(f.name)
        cols.append(Column(f.name, f.label, f.kind, get, summed))
        if f.kind == "float" and f.name.endswith("_m2"):
            base = f.name[:-3]
            for suffix, per, unit in (("_mu", M2_PER_MU, "(亩)"), ("_ha", M2_PER_HA, "(公顷)")):
                if base + suffix in names:
                    continue

                def conv(r: dict, f: Field = f, per: float = per) -> Any:
                    v = r.get(f.name)
                    return None if v is None else round(float(v) / per, 4)

                cols.append(Column(base + suffix, _area_label(f.label, unit), "float", conv, True))
    return cols


def made_by() -> str:
    """制表单位: the issuing unit of the bureau's publication (rules.toml [publication]
    publisher), the same name the yearly publication prints."""
    from gis.core.rules import get_rules

    return get_rules().publication.publisher


def _total_row(cols: list[Column], rows: list[dict]) -> list[Any]:
    total: list[Any] = [f"合计({len(rows)})"]
    for c in cols[1:]:
        if c.summed:
            total.append(round(sum(float(c.value(r) or 0) for r in rows), 4))
        else:
            total.append(None)
    return total


def _csv(rows: list[dict], geoms: list, fields: list[Field], unit: str, made_on: date) -> bytes:
    """CSV: the Chinese headers, the codes (row 2), the rows, 合计, then 制表单位 and 制表日期
    on the last line."""
    lon, lat = _centroids(geoms) if rows else ([], [])
    rows = [{**r, "lon": lon[i], "lat": lat[i]} for i, r in enumerate(rows)]
    cols = table_columns(fields + LON_LAT)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow([spreadsheet_cell(c.label) for c in cols])
    w.writerow([spreadsheet_cell(c.code) for c in cols])
    for r in rows:
        w.writerow(["" if v is None else spreadsheet_cell(v) for v in (c.value(r) for c in cols)])
    w.writerow(["" if v is None else v for v in _total_row(cols, rows)])
    footer = [spreadsheet_cell(f"制表单位: {unit}"), f"制表日期: {made_on.isoformat()}"]
    w.writerow(footer + [""] * (len(cols) - 2))  # every line as wide: a rectangular table
    return ("\ufeff" + buf.getvalue()).encode("utf-8")


def _xlsx(
    rows: list[dict], geoms: list, fields: list[Field], title: str, unit: str, made_on: date
) -> bytes:
    lon, lat = _centroids(geoms) if rows else ([], [])
    rows = [{**r, "lon": lon[i], "lat": lat[i]} for i, r in enumerate(rows)]
    sheet = Sheet(title, fields + LON_LAT, rows, codes=True)
    return tables_xlsx([sheet], title, made_on, unit=unit)


@dataclass(frozen=True)
class Sheet:
    """A table as a bureau prints it: ``fields`` (labels in Chinese, with units) and ``rows``;
    the 合计 row sums the fields named in ``sums`` and every area (``is_area``); ``note`` goes
    beside the 制表日期; ``codes`` adds the machine codes as a second header row."""

    title: str
    fields: list[Field]
    rows: list[dict]
    sums: tuple[str, ...] = ()
    note: str | None = None
    codes: bool = False


TABLE_HEADER_ROW = 3  # heading on row 1, 制表日期 and 制表单位 on row 2, the headers on row 3


def _width(v: Any) -> int:
    """Display width of a cell in character cells: a CJK (wide) character counts two."""
    if v is None:
        return 0
    if isinstance(v, float):
        v = f"{v:.4f}".rstrip("0").rstrip(".")
    return sum(2 if ord(ch) > 0x2E7F else 1 for ch in str(v))


def sheet_layout(s: Sheet) -> tuple[list[Column], list[list[Any]]]:
    """The columns and the body (rows, then 合计) of a sheet, as every writer lays them out."""
    cols = table_columns(s.fields)
    if s.sums:
        cols = [
            Column(c.code, c.label, c.kind, c.value, c.summed or c.code in s.sums) for c in cols
        ]
    body = [[c.value(r) for c in cols] for r in s.rows]
    return cols, body + [_total_row(cols, s.rows)]


def tables_xlsx(sheets: list[Sheet], heading: str, made_on: date, unit: str | None = None) -> bytes:
    """The one writer of bureau-formatted workbooks (exports, reports, the survey, the
    publication's tables), one sheet per table: the heading (A1); ``制表日期: YYYY-MM-DD``,
    ``制表单位: …`` (``unit``, by default :func:`made_by`) and the sheet's note (row 2); the
    Chinese headers with units (row ``TABLE_HEADER_ROW``) and, for ``codes`` sheets, the machine
    codes below them; the rows; a 合计 row (sums of areas and ``sums``, to 4 decimals, and the
    number of rows). The header is frozen with the first column, columns are as wide as their
    widest cell (CJK counted double, 8 to 60). Cells go through ``_xlsx_row``."""
    unit = made_by() if unit is None else unit
    wb = Workbook(write_only=True)
    for s in sheets:
        cols, body = sheet_layout(s)
        ws = wb.create_sheet(re.sub(r"[\\[\]:*?/\\]", "·", s.title)[:31])
        header_rows = [[c.label for c in cols]] + ([[c.code for c in cols]] if s.codes else [])
        ws.freeze_panes = f"B{TABLE_HEADER_ROW + len(header_rows)}"
        for i in range(len(cols)):
            w = max(_width(r[i]) for r in header_rows + body)
            ws.column_dimensions[get_column_letter(i + 1)].width = min(60, max(8, w + 2))
        ws.append(_xlsx_row(ws, [f"{heading} · {s.title}" if s.title != heading else heading]))
        ws.append(_xlsx_row(ws, [f"制表日期: {made_on.isoformat()}", f"制表单位: {unit}", s.note]))
        for h in header_rows:
            ws.append(_xlsx_row(ws, h))
        for r in body:
            ws.append(_xlsx_row(ws, r))
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def _gbk_cut(s: Any) -> Any:
    """Text fitting a DBF field (254 bytes) in GBK, cut on a character boundary."""
    if not isinstance(s, str):
        return s
    b = s.encode("gbk", errors="replace")
    if len(b) <= SHP_TEXT_BYTES:
        return b.decode("gbk")
    return b[:SHP_TEXT_BYTES].decode("gbk", errors="ignore")


def _gdf(rows: list[dict], geoms: list, fields: list[Field]) -> gpd.GeoDataFrame:
    df = _frame(rows, fields)
    geom = shapely.from_wkb(np.array(geoms, dtype=object)) if rows else []
    return gpd.GeoDataFrame(df, geometry=gpd.GeoSeries(geom, crs=STORAGE_SRID), crs=STORAGE_SRID)


def _gpkg_aliases(path: Path, layer: str, fields: list[Field]) -> None:
    """The Chinese labels as column aliases: the GeoPackage schema extension's
    ``gpkg_data_columns`` (``name`` and ``title``), registered in ``gpkg_extensions``. GDAL 3.6
    (this machine's) does not write field aliases; GDAL ≥ 3.7 reads ``name`` as the alias and
    QGIS shows it."""
    import sqlite3

    con = sqlite3.connect(path)
    try:
        con.execute(
            "CREATE TABLE IF NOT EXISTS gpkg_data_columns (table_name TEXT NOT NULL,"
            " column_name TEXT NOT NULL, name TEXT, title TEXT, description TEXT,"
            " mime_type TEXT, constraint_name TEXT,"
            " CONSTRAINT pk_gdc PRIMARY KEY (table_name, column_name),"
            " CONSTRAINT gdc_tn UNIQUE (table_name, name))"
        )
        con.execute(
            "CREATE TABLE IF NOT EXISTS gpkg_extensions (table_name TEXT, column_name TEXT,"
            " extension_name TEXT NOT NULL, definition TEXT NOT NULL, scope TEXT NOT NULL,"
            " CONSTRAINT ge_tce UNIQUE (table_name, column_name, extension_name))"
        )
        for t in ("gpkg_data_columns", "gpkg_data_column_constraints"):
            con.execute(
                "INSERT OR IGNORE INTO gpkg_extensions VALUES (?, NULL, 'gpkg_schema',"
                " 'http://www.geopackage.org/spec121/#extension_schema', 'read-write')",
                (t,),
            )
        con.executemany(
            "INSERT OR REPLACE INTO gpkg_data_columns (table_name, column_name, name, title)"
            " VALUES (?, ?, ?, ?)",
            [(layer, f.name, f.label, f.label) for f in fields],
        )
        con.commit()
    finally:
        con.close()


def _gpkg(rows: list[dict], geoms: list, fields: list[Field], layer: str) -> bytes:
    with tempfile.TemporaryDirectory(prefix="landlink-export-") as tmp:
        path = Path(tmp) / f"{layer}.gpkg"
        pyogrio.write_dataframe(
            _gdf(rows, geoms, fields),
            path,
            layer=layer,
            driver="GPKG",
            geometry_type="MultiPolygon",
            use_arrow=True,
        )
        _gpkg_aliases(path, layer, fields)
        return path.read_bytes()


def _shp(rows: list[dict], geoms: list, fields: list[Field], layer: str) -> bytes:
    gdf = _gdf(rows, geoms, fields)
    for f in fields:
        if f.kind in ("text", "list", "json", "bool"):
            gdf[f.name] = gdf[f.name].map(_gbk_cut)
    gdf = gdf.rename(columns={f.name: f.short for f in fields})
    with tempfile.TemporaryDirectory(prefix="landlink-export-") as tmp:
        path = Path(tmp) / f"{layer}.shp"
        pyogrio.write_dataframe(
            gdf,
            path,
            driver="ESRI Shapefile",
            encoding=SHP_LDID,  # GDAL recodes text to CP936 and sets the DBF's LDID byte
            geometry_type="MultiPolygon",
            use_arrow=True,
        )
        path.with_suffix(".cpg").write_text(SHP_CPG)
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            for part in sorted(Path(tmp).iterdir()):
                z.write(part, part.name)
            mapping = io.StringIO()
            w = csv.writer(mapping, lineterminator="\r\n")
            w.writerow(["shapefile", "field", "label"])
            for f in fields:
                w.writerow([spreadsheet_cell(c) for c in (f.short, f.name, f.label)])
            z.writestr("FIELDS.csv", ("\ufeff" + mapping.getvalue()).encode("utf-8"))
        return buf.getvalue()


def write(
    fmt: str,
    rows: list[dict],
    geoms: list[bytes | None],
    fields: list[Field],
    layer: str,
    title: str | None = None,
    made_on: date | None = None,
    unit: str | None = None,
) -> tuple[bytes, str, str]:
    """One of the file formats (csv, xlsx, gpkg, shp): (content, media type, file name).

    ``geoms`` are WKB in EPSG:4549, one per row (None where a row has no geometry). CSV and
    XLSX are bureau tables: ``title`` (the Chinese heading; ``layer`` if not given), 制表单位
    (``unit``, by default :func:`made_by`) and 制表日期 (``made_on``, by default today).
    """
    made_on = made_on or date.today()
    unit = made_by() if unit is None else unit
    if fmt == "csv":
        data = _csv(rows, geoms, fields, unit, made_on)
    elif fmt == "xlsx":
        data = _xlsx(rows, geoms, fields, title or layer, unit, made_on)
    elif fmt == "gpkg":
        data = _gpkg(rows, geoms, fields, layer)
    elif fmt == "shp":
        data = _shp(rows, geoms, fields, layer)
    else:
        raise ValueError(f"unknown export format {fmt!r}; one of {', '.join(FORMATS)}")
    ext = "zip" if fmt == "shp" else fmt
    return data, MEDIA_TYPES[fmt], f"{layer}.{ext}"
