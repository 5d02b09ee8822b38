"""Reading input files into frames: shapefile, GeoPackage, GeoJSON, CSV, XLSX.

Text encodings follow the contract: a shapefile's ``.cpg`` wins; without one the ``encoding``
option, else GB18030 (a superset of GBK). Bytes that do not decode in the chosen encoding are
refused, never guessed (data read with the wrong encoding and saved again is damaged for good).
CSV is UTF-8 (with or without BOM) or GB18030, detected strictly unless ``encoding`` is given.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from gis.core.layers import Layer
from gis.ingest.errors import InputError
from gis.ingest.limits import check_columns, check_lines, check_xlsx

SPATIAL_SUFFIXES = {".shp", ".gpkg", ".geojson", ".json", ".gdb"}
TABLE_SUFFIXES = {".csv", ".xlsx", ".xls"}
DEFAULT_SHAPEFILE_ENCODING = "GB18030"

# Code pages as written in .cpg files -> Python codec names.
_CPG_ALIASES = {
    "936": "gbk",
    "65001": "utf-8",
    "950": "cp950",
    "1252": "cp1252",
    "54936": "gb18030",
    "UTF8": "utf-8",
    "GB2312": "gbk",
    "ANSI 936": "gbk",
}


@dataclass
class RawFrame:
    """What was read: the frame (columns upper-cased), its CRS and how the text was decoded."""

    frame: pd.DataFrame  # a GeoDataFrame for spatial files
    crs: object | None  # pyproj-compatible CRS or None
    encoding: str
    encoding_source: str
    row_label: str  # "feature" (0-based FID) or "row" (spreadsheet row, header = 1)
    row_offset: int  # add to the 0-based position to get the label
    notes: tuple[str, ...] = ()  # for the report's notes (a doubt about the encoding)


def python_codec(name: str, file: str, source: str = "the encoding option") -> str:
    """The Python codec for a text encoding's name (as given with --encoding or in a .cpg);
    InputError (422) for a name that is no text encoding ("base64", garbage, empty)."""
    key = name.strip().upper()
    codec = _CPG_ALIASES.get(key, name.strip())
    try:
        info = codecs.lookup(codec)
        "a".encode(info.name)  # LookupError for codecs that are not text encodings (base64)
        return info.name
    except (LookupError, ValueError, TypeError):  # ValueError: a NUL; UnicodeError ("undefined")
        shown = name if len(name) <= 40 else name[:40] + "..."
        raise InputError(
            file,
            f"unknown text encoding {shown!r} ({source}); give a known one such as GBK, "
            "GB18030 or UTF-8",
            field="encoding",
            status=422,
        ) from None


def _check_dbf_decodes(
    dbf: Path, codec: str, file: str, probe_utf8: bool = False
) -> tuple[str, str] | None:
    """Refuse a DBF whose character fields do not decode strictly in ``codec``. With
    ``probe_utf8``: returns the first non-ASCII value as (field, its bytes decoded as UTF-8)
    when every non-ASCII value also decodes as UTF-8 (as a file written in UTF-8 would; text
    written in GBK hardly ever does), else None."""
    data = dbf.read_bytes()
    if len(data) < 32:
        raise InputError(file, "the .dbf file is truncated")
    n, header_len, rec_len = struct.unpack("<IHH", data[4:12])
    fields = []
    pos, offset = 32, 1
    while pos + 32 <= header_len and data[pos] != 0x0D:
        name = data[pos : pos + 11].split(b"\0")[0].decode("ascii", "replace")
        ftype, flen = chr(data[pos + 11]), data[pos + 16]
        if ftype == "C":
            fields.append((name, offset, flen))
        offset += flen
        pos += 32
    body = data[header_len : header_len + n * rec_len]
    if n == 0 or not fields or len(body) < n * rec_len:
        return None
    recs = np.frombuffer(body, dtype=np.uint8).reshape(n, rec_len)
    as_utf8: tuple[str, str] | None = None
    all_utf8 = probe_utf8 and codec != "utf-8"
    for name, off, flen in fields:
        col = np.ascontiguousarray(recs[:, off : off + flen])
        high = (col >= 0x80).any(axis=1)
        if not high.any():
            continue
        # decode the whole column in one go, one value per line; find the row only on failure
        block = np.concatenate([col, np.full((n, 1), 0x0A, np.uint8)], axis=1).tobytes()
        if all_utf8:
            try:
                block.decode("utf-8")
                if as_utf8 is None:
                    raw = col[int(np.argmax(high))].tobytes().rstrip(b" \0")
                    as_utf8 = (name, raw.decode("utf-8"))
            except UnicodeDecodeError:  # (a value cut inside a character counts as not UTF-8)
                all_utf8 = False
        try:
            block.decode(codec)
            continue
        except UnicodeDecodeError as e:
            r = e.start // (flen + 1)
        except UnicodeError:  # a codec that fails without a position
            r = 0
        raw = col[r].tobytes().rstrip(b" \0")
        try:
            raw.decode(codec)
            bad_at = -1
        except UnicodeDecodeError as e2:
            bad_at = e2.start
        except UnicodeError:
            bad_at = 0
        raise InputError(
            file,
            f"feature {r}: text does not decode as {codec} at byte {bad_at} "
            f"({raw!r}); give the right encoding with --encoding or a .cpg file",
            field=name,
        )
    return as_utf8 if all_utf8 else None


def _gdb_layer(path: Path, name: str | None, file: str) -> str:
    """The layer of a File Geodatabase (a ``.gdb`` folder, GDAL's OpenFileGDB driver) to read:
    ``name`` when it holds it, else its only layer; several and none named: refused, listed."""
    import pyogrio

    try:
        names = [str(n) for n in pyogrio.list_layers(path)[:, 0]]
    except Exception as e:
        raise InputError(file, f"cannot be read as a File Geodatabase: {e}") from None
    if name is not None:
        if name not in names:
            raise InputError(
                file,
                f"no layer {name!r} in the geodatabase; it holds: {', '.join(names)}",
                field="sheet",
            )
        return name
    if len(names) != 1:
        raise InputError(
            file,
            f"the geodatabase holds {len(names)} layers ({', '.join(names)}); "
            "name the one to import with --layer NAME",
            field="sheet",
        )
    return names[0]


def read_spatial(
    path: Path, encoding: str | None, file: str, layer_name: str | None = None
) -> RawFrame:
    """A spatial file as a frame; ``layer_name`` picks the layer of a ``.gdb`` folder."""
    import pyogrio  # and geopandas with it: imported by spatial files only

    suffix = path.suffix.lower()
    enc_arg = None
    notes: tuple[str, ...] = ()
    gdb_layer = _gdb_layer(path, layer_name, file) if suffix == ".gdb" else None
    if suffix == ".shp":
        cpg = path.with_suffix(".cpg")
        if not cpg.exists():
            cpg = next(
                (p for p in path.parent.glob(path.stem + ".*") if p.suffix.lower() == ".cpg"), cpg
            )
        if cpg.exists():
            with open(cpg, "rb") as f:  # a code page name is short; read no more than that
                declared = f.read(256).decode("ascii", "replace").strip()
            codec = python_codec(declared, file, f"from {cpg.name}")
            source = f".cpg ({declared})"
        elif encoding:
            codec, source = python_codec(encoding, file), "--encoding option"
            enc_arg = codec
        else:
            codec, source = python_codec(DEFAULT_SHAPEFILE_ENCODING, file), "default (GB18030)"
            enc_arg = codec
        dbf = next(
            (p for p in path.parent.glob(path.stem + ".*") if p.suffix.lower() == ".dbf"), None
        )
        if dbf is None:
            raise InputError(file, "the shapefile has no .dbf attribute file beside it")
        by_default = not cpg.exists() and not encoding
        also_utf8 = _check_dbf_decodes(dbf, codec, file, probe_utf8=by_default)
        if also_utf8 is not None:
            field, text = also_utf8
            notes = (
                f"the shapefile has no .cpg and its text was read as {codec}, the contract's "
                f"default; every text is also valid UTF-8, as if the file were written in UTF-8 "
                f"({field} {text!r} in UTF-8). If the names look garbled, add a .cpg holding "
                "UTF-8 (or --encoding utf-8) and import again",
            )
    else:
        codec, source = "utf-8", "format (UTF-8)"
    try:
        gdf = pyogrio.read_dataframe(
            path, layer=gdb_layer, encoding=enc_arg, use_arrow=True, fid_as_index=True
        )
    except Exception as e:  # pyogrio raises DataSourceError, DataLayerError, ...
        raise InputError(file, f"cannot be read as a spatial layer: {e}") from None
    gdf.columns = [c if c == "geometry" else str(c).strip().upper() for c in gdf.columns]
    return RawFrame(gdf, gdf.crs, codec, source, "feature", 0, notes)


def _decode_text(raw: bytes, encoding: str | None, file: str) -> tuple[str, str, str]:
    if encoding:
        codec = python_codec(encoding, file)
        try:
            return (
                raw.decode("utf-8-sig" if codec == "utf-8" else codec),
                codec,
                "--encoding option",
            )
        except UnicodeDecodeError as e:
            raise InputError(
                file, f"text does not decode as {codec} at byte {e.start}", field="encoding"
            ) from None
    try:
        return raw.decode("utf-8-sig"), "utf-8", "detected (UTF-8)"
    except UnicodeDecodeError:
        pass
    try:
        return raw.decode("gb18030"), "gb18030", "detected (GB18030)"
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise InputError(
            file,
            f"line {line}: text is neither UTF-8 nor GB18030 (byte {e.start}); "
            "give the encoding with --encoding",
            field="encoding",
        ) from None


def _header_columns(data: bytes) -> int:
    """Columns of a CSV's first line (read on its own, before the whole file is parsed)."""
    end = data.find(b"\n")
    head = (data if end < 0 else data[:end]).decode("utf-8", "replace")
    return len(next(csv.reader([head]), []))


def _check_sheet_columns(path: Path, sheet: str | None, file: str) -> None:
    """Refuse a sheet wider than ``max_columns`` (naming it) before pandas makes a frame of it."""
    from python_calamine import CalamineWorkbook

    try:
        wb = CalamineWorkbook.from_path(str(path))
        names = wb.sheet_names
        name = names[0] if sheet is None and names else sheet
        if name not in names:
            return  # pandas names what is missing
        width = wb.get_sheet_by_name(name).width
    except Exception as e:
        raise InputError(file, f"cannot be read as XLSX: {e}") from None
    check_columns(width, file, f"sheet {name!r}")


def _read_sheet(path: Path, sheet: str | None, file: str, engine: str, kind: str) -> pd.DataFrame:
    """The sheet ``sheet`` (else the first) of a workbook as a frame of cells, read by pandas'
    ``engine`` (python-calamine: for .xls the text is decoded by the encoding the workbook
    declares); ``kind`` names the format in errors. Calamine reads the cells there are, not
    the range a sheet declares, so a sheet declaring A1:XFD1048576 around two cells is read as
    two cells."""
    try:
        return pd.read_excel(
            path, sheet_name=sheet if sheet is not None else 0, dtype=object, engine=engine
        )
    except ValueError as e:
        raise InputError(file, f"cannot read sheet {sheet!r}: {e}", field="sheet") from None
    except Exception as e:
        raise InputError(file, f"cannot be read as {kind}: {e}") from None


def _read_xls(path: Path, sheet: str | None, file: str) -> tuple[pd.DataFrame, str, str]:
    """An Excel 97–2003 workbook (.xls, BIFF) through python-calamine, no larger than the
    upload limit (it is read whole)."""
    from gis.core.config import get_settings

    limit = get_settings().max_upload_bytes
    if path.stat().st_size > limit:
        raise InputError(file, f"the workbook is larger than {limit} bytes")
    return _read_sheet(path, sheet, file, "calamine", "XLS"), "utf-8", "XLS (calamine)"


def read_table(path: Path, encoding: str | None, sheet: str | None, file: str) -> RawFrame:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        data = path.read_bytes()
        check_lines(data, file)
        check_columns(_header_columns(data), file, "the header (line 1)")
        text, codec, source = _decode_text(data, encoding, file)
        del data
        try:
            df = pd.read_csv(
                io.StringIO(text), dtype=str, keep_default_na=False, skipinitialspace=True
            )
        except Exception as e:
            raise InputError(file, f"cannot be read as CSV: {e}") from None
    elif suffix == ".xlsx":
        # the parts' unpacked sizes bound what is read (a zip bomb is refused unread); then
        # python-calamine, 0.004 s for a one-row sheet where openpyxl took 0.13 s
        check_xlsx(path, file)
        _check_sheet_columns(path, sheet, file)
        df = _read_sheet(path, sheet, file, "calamine", "XLSX")
        codec, source = "utf-8", "XLSX (Unicode)"
    elif suffix == ".xls":
        df, codec, source = _read_xls(path, sheet, file)
    else:
        raise InputError(file, f"unsupported table format {suffix!r}; use .csv, .xlsx or .xls")
    check_columns(len(df.columns), file, "the table")
    df.columns = [str(c).strip().upper().lstrip("\ufeff") for c in df.columns]
    df.index = pd.RangeIndex(len(df))
    return RawFrame(df, None, codec, source, "row", 2)


# "label(code)" with ASCII or full-width parentheses: 企业名称(QYMC), 企业名称（QYMC）
_LABEL_CODE = re.compile(r"^(?P<label>.*?)\s*[(（]\s*(?P<code>[A-Za-z][A-Za-z0-9_]*)\s*[)）]$")
# a label's trailing unit: 工业总产值(万元) is also written 工业总产值
_UNIT = re.compile(r"\s*\([^()]*\)$")


def _label_key(text: str) -> str:
    """A label compared loosely: full-width parentheses as ASCII, no spaces, m² as m2."""
    t = text.replace("（", "(").replace("）", ")").replace("²", "2")
    return "".join(t.split()).upper()


def _labels(layer: Layer) -> dict[str, str]:
    """The layer's labels (loosely compared) -> field codes: each full label, and the label
    without its unit where no other field's label reads the same."""
    full = {_label_key(f.label): f.code for f in layer.table_fields if f.label}
    short: dict[str, str | None] = {}
    for f in layer.table_fields:
        base = _label_key(_UNIT.sub("", f.label))
        if base and base not in full:
            short[base] = f.code if base not in short else None  # two fields: neither
    return {**{k: v for k, v in short.items() if v}, **full}


def header_codes(columns: Iterable[object], layer: Layer, file: str) -> list[str]:
    """A table's headers as the layer's field codes. A header may be the code (``QYMC``, any
    case), the Chinese label (``企业名称``; a label with a unit also without it: ``工业总产值``
    for ``工业总产值(万元)``) or both as ``label(code)`` (``企业名称(QYMC)``, full-width
    parentheses too); a leading or trailing ``*`` (a required-field mark) is ignored. A header
    that names no field stays as it is, upper-cased, so that the import's warning names it; two
    headers naming one field are an InputError."""
    fields = {f.code: f for f in layer.table_fields}
    codes = set(fields)
    labels = _labels(layer)
    out: list[str] = []
    given: dict[str, str] = {}
    for col in columns:
        raw = str(col).strip().lstrip("\ufeff")
        text = raw.strip("*").strip()
        name = text.upper()
        if name not in codes:
            m = _LABEL_CODE.match(text)
            if m and m.group("code").upper() in codes:
                name = m.group("code").upper()
            else:
                name = labels.get(_label_key(text), name)
        if name in codes:
            if name in given:
                raise InputError(
                    file,
                    f"columns {given[name]!r} and {raw!r} both give field {name} "
                    f"({fields[name].label}); keep one",
                    field=name,
                )
            given[name] = raw
        out.append(name)
    return out


def read_file(
    path: Path, encoding: str | None = None, sheet: str | None = None, layer: Layer | None = None
) -> RawFrame:
    """Read any supported file; raises InputError naming the file and the reason. With
    ``layer``, the headers are read as its field codes (:func:`header_codes`)."""
    file = path.name
    if not path.exists():
        raise InputError(file, f"no such file: {path}")
    suffix = path.suffix.lower()
    if suffix in SPATIAL_SUFFIXES:
        raw = read_spatial(path, encoding, file, sheet)
    elif suffix in TABLE_SUFFIXES:
        raw = read_table(path, encoding, sheet, file)
    else:
        raise InputError(
            file,
            f"unsupported format {suffix!r}; use .shp, .gpkg, .geojson, .gdb, .csv, .xlsx or .xls",
        )
    if layer is not None:
        cols = list(raw.frame.columns)
        attrs = [i for i, c in enumerate(cols) if c != "geometry"]
        for i, code in zip(attrs, header_codes([cols[i] for i in attrs], layer, file), strict=True):
            cols[i] = code
        raw.frame.columns = cols
    return raw


ROWS_CRS = "EPSG:4490"  # GeoJSON sent to the row API: CGCS2000 lon/lat unless Content-Crs says


def read_records(body: object, file: str, crs: str | None = None) -> RawFrame:
    """Rows sent as JSON: an array of rows, or a GeoJSON FeatureCollection (or one Feature).

    A row is either ``{"properties": {...}, "geometry": GeoJSON}`` (the row API's own shape) or
    a flat object of contract field codes. Geometry is read in ``crs`` (default CGCS2000 lon/lat,
    EPSG:4490); ``crs="EPSG:4549"`` with shapely geometries is how a stored geometry is sent back
    unchanged. Rows are labelled ``row N``, counted from 0 in the array. InputError (422) names
    the row for a body that is not rows or a geometry that is not GeoJSON."""
    if isinstance(body, dict) and body.get("type") == "FeatureCollection":
        items = body.get("features")
    elif isinstance(body, dict) and body.get("type") == "Feature":
        items = [body]
    else:
        items = body
    if not isinstance(items, list) or not items:
        raise InputError(
            file,
            "send a JSON array of rows (objects of contract field codes, or "
            '{"properties": {...}, "geometry": {...}}) or a GeoJSON FeatureCollection',
            status=422,
        )
    props: list[dict] = []
    geoms: list[object] = []
    spatial = False
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise InputError(file, f"row {i}: not a JSON object", status=422)
        p = item.get("properties") if "properties" in item else item
        if p is None:
            p = {}
        if not isinstance(p, dict):
            raise InputError(file, f"row {i}: properties must be an object", status=422)
        props.append({str(k).strip().upper(): _cell(v) for k, v in p.items()})
        g = item.get("geometry") if "properties" in item else None
        spatial = spatial or "geometry" in item
        geoms.append(_geometry_of(g, i, file))
    df = pd.DataFrame(props, index=pd.RangeIndex(len(props)), dtype=object)
    check_columns(len(df.columns), file, "the rows")
    if not spatial:
        return RawFrame(df, None, "utf-8", "JSON (Unicode)", "row", 0)
    import geopandas as gpd
    from pyproj import CRS

    given = CRS.from_user_input(crs or ROWS_CRS)
    gdf = gpd.GeoDataFrame(df, geometry=pd.Series(geoms, index=df.index, dtype=object), crs=given)
    return RawFrame(gdf, given, "utf-8", "JSON (Unicode)", "row", 0)


def _cell(v: object) -> object:
    """A JSON value as a file cell: lists joined by ';' (the contract's list separator)."""
    if isinstance(v, list):
        return ";".join(str(x) for x in v)
    return v


def _geometry_of(g: object, i: int, file: str) -> object:
    if g is None:
        return None
    import shapely
    from shapely.geometry import shape

    if not isinstance(g, dict) and isinstance(g, shapely.Geometry):
        return g
    try:
        return shape(g)  # type: ignore[arg-type]
    except Exception as e:  # shapely raises several kinds for bad GeoJSON
        raise InputError(
            file, f"row {i}: geometry is not GeoJSON ({e})", field="geometry", status=422
        ) from None
