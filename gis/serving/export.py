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

from gis.core.layers import STORAGE_SRID

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
_TO_WGS84 = Transformer.from_crs(STORAGE_SRID, 4326, always_xy=True)


@dataclass(frozen=True)
class Field:
    name: str  # API name
    short: str  # shapefile name, <= 10 ASCII characters
    label: str  # Chinese label
    kind: FieldKind = "text"

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


def _csv(rows: list[dict], geoms: list, fields: list[Field]) -> bytes:
    lon, lat = _centroids(geoms) if rows else ([], [])
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow([spreadsheet_cell(f.name) for f in fields] + ["lon", "lat"])
    for i, r in enumerate(rows):
        cells = [_flat(r.get(f.name), f.kind) for f in fields]
        w.writerow(
            ["" if c is None else spreadsheet_cell(_json_value(c)) for c in cells]
            + [lon[i], lat[i]]
        )
    return ("\ufeff" + buf.getvalue()).encode("utf-8")


def _xlsx(rows: list[dict], geoms: list, fields: list[Field], title: str) -> bytes:
    lon, lat = _centroids(geoms) if rows else ([], [])
    wb = Workbook(write_only=True)
    ws = wb.create_sheet(title[:31])
    ws.append(_xlsx_row(ws, [f.name for f in fields] + ["lon", "lat"]))
    for i, r in enumerate(rows):
        ws.append(_xlsx_row(ws, [_flat(r.get(f.name), f.kind) for f in fields] + [lon[i], lat[i]]))
    meta = wb.create_sheet("fields")
    meta.append(_xlsx_row(meta, ["field", "shapefile", "label", "type"]))
    for f in fields:
        meta.append(_xlsx_row(meta, [f.name, f.short, f.label, f.kind]))
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


@dataclass(frozen=True)
class Sheet:
    """A table as a bureau prints it: ``fields`` (labels in Chinese, with units) and ``rows``;
    the 合计 row sums the fields named in ``sums``; ``note`` goes beside the 制表日期."""

    title: str
    fields: list[Field]
    rows: list[dict]
    sums: tuple[str, ...] = ()
    note: str | None = None


TABLE_HEADER_ROW = 3  # heading on row 1, 制表日期 on row 2, the column headers on row 3


def tables_xlsx(sheets: list[Sheet], heading: str, made_on: date) -> bytes:
    """A workbook of tables, one sheet each: the heading (A1), ``制表日期: YYYY-MM-DD`` and the
    sheet's note (row 2), the Chinese headers (row ``TABLE_HEADER_ROW``), frozen below them
    with the first column, the rows, then a 合计 row with the sum of each field in ``sums``
    (rounded to 4 decimals) and the number of rows. Cells go through ``_xlsx_row`` as every
    export's do."""
    wb = Workbook(write_only=True)
    for s in sheets:
        ws = wb.create_sheet(s.title[:31])
        ws.freeze_panes = f"B{TABLE_HEADER_ROW + 1}"
        for i, f in enumerate(s.fields):
            ws.column_dimensions[get_column_letter(i + 1)].width = max(10, 2 * len(f.label) + 2)
        ws.append(_xlsx_row(ws, [f"{heading} · {s.title}"]))
        ws.append(_xlsx_row(ws, [f"制表日期: {made_on.isoformat()}", s.note]))
        ws.append(_xlsx_row(ws, [f.label for f in s.fields]))
        for r in s.rows:
            ws.append(_xlsx_row(ws, [_json_value(_flat(r.get(f.name), f.kind)) for f in s.fields]))
        total: list[Any] = [f"合计({len(s.rows)})"]
        for f in s.fields[1:]:
            if f.name in s.sums:
                total.append(round(sum(float(r.get(f.name) or 0) for r in s.rows), 4))
            else:
                total.append(None)
        ws.append(_xlsx_row(ws, total))
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
            encoding="GBK",
            geometry_type="MultiPolygon",
            use_arrow=True,
        )
        if not path.with_suffix(".cpg").exists():  # GDAL writes it; make sure
            path.with_suffix(".cpg").write_text("GBK")
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
) -> tuple[bytes, str, str]:
    """One of the file formats (csv, xlsx, gpkg, shp): (content, media type, file name).

    ``geoms`` are WKB in EPSG:4549, one per row (None where a row has no geometry).
    """
    if fmt == "csv":
        data = _csv(rows, geoms, fields)
    elif fmt == "xlsx":
        data = _xlsx(rows, geoms, fields, layer)
    elif fmt == "gpkg":
        data = _gpkg(rows, geoms, fields, layer)
    elif fmt == "shp":
        data = _shp(rows, geoms, fields, layer)
    else:
        raise ValueError(f"unknown export format {fmt!r}; one of {', '.join(FORMATS)}")
    ext = "zip" if fmt == "shp" else fmt
    return data, MEDIA_TYPES[fmt], f"{layer}.{ext}"
