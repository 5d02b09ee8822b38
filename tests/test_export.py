"""Every list as a file, opened again (pyogrio, openpyxl, csv, GDAL's ogrinfo) and compared field
by field with the JSON answer of the same request."""

from __future__ import annotations

import csv
import io
import subprocess
import zipfile
from datetime import date, datetime

import openpyxl
import pandas as pd
import pyogrio
import pytest

from gis.lands.land_summary import KINDS, SUMMARY_FIELDS
from gis.serving.export import spreadsheet_cell
from tests.land_helpers import city, detect, rows
from tests.test_land_api import analyst

AS_OF = date(2025, 6, 30)
PATHS = {
    "unsupplied": "/api/land/unsupplied",
    "idle": "/api/land/idle",
    "low_efficiency": "/api/land/low-efficiency",
}


@pytest.fixture
def exported(http, db):
    city(db)
    detect(db, AS_OF)
    return http, db


def reference(http, kind: str, headers=None) -> list[dict]:
    params = {"status": "all"} if kind != "low_efficiency" else {}
    return http.get(PATHS[kind], params=params, headers=headers).json()["items"]


def fetch(http, kind: str, fmt: str, headers=None) -> bytes:
    params = {"status": "all"} if kind != "low_efficiency" else {}
    r = http.get(PATHS[kind], params={**params, "format": fmt}, headers=headers)
    assert r.status_code == 200, r.text
    return r


def expected_cell(value, kind: str):
    """What a JSON value becomes in a tabular file."""
    import json

    if value is None:
        return None
    if kind == "list":
        return ";".join(value) or None
    if kind == "bool":
        return "是" if value else "否"
    if kind == "json":
        return json.loads(json.dumps(value))
    return spreadsheet_cell(value)  # text a spreadsheet would run as a formula: escaped


def same(got, want, kind: str, where: str) -> None:
    import json

    if want is None:
        assert got is None or got == "" or pd.isna(got), where
    elif kind == "float":
        assert float(got) == pytest.approx(float(want), rel=1e-9), where
    elif kind == "int":
        assert int(got) == int(want), where
    elif kind == "date":
        if isinstance(got, datetime):
            got = got.date().isoformat()
        elif hasattr(got, "isoformat"):
            got = got.isoformat()[:10]
        assert str(got)[:10] == want, where
    elif kind == "json":
        assert json.loads(got) == want, where
    else:
        assert got == want, where


def bureau_csv(content: bytes) -> tuple[list[str], list[dict], list[str], list[str]]:
    """A bureau CSV read as a person and a script read it: (Chinese headers, rows keyed by the
    codes of row 2, the 合计 row, the 制表单位/制表日期 line)."""
    lines = list(csv.reader(io.StringIO(content.decode("utf-8-sig"))))
    labels, codes, body, total, footer = lines[0], lines[1], lines[2:-2], lines[-2], lines[-1]
    assert total[0].startswith("合计(") and footer[0].startswith("制表单位: ")
    return labels, [dict(zip(codes, r, strict=True)) for r in body], total, footer


def bureau_xlsx(content: bytes) -> tuple[list, list[str], list[dict], dict, object]:
    """The first sheet of a bureau export: (rows 1–2, Chinese headers, rows keyed by codes,
    the 合计 row keyed by codes, the worksheet)."""
    ws = openpyxl.load_workbook(io.BytesIO(content)).worksheets[0]
    values = list(ws.iter_rows(values_only=True))
    labels, codes = list(values[2]), list(values[3])
    rows = [dict(zip(codes, r, strict=True)) for r in values[4:-1]]
    total = dict(zip(codes, values[-1], strict=True))
    assert str(values[-1][0]).startswith("合计(")
    return values[:2], labels, rows, total, ws


def expected_label(item: dict, f) -> object:
    """The Chinese label a coded field shows, from the vocabulary (never a copy here)."""
    from gis.core import vocabulary

    v = item[f.name]
    if v is None:
        return None
    if f.kind == "list":
        return ";".join(vocabulary.label(f.vocab, c) for c in v) or None
    return vocabulary.label(f.vocab, v)


def check_bureau_rows(ref: list[dict], rows: list[dict], fields, blank) -> None:
    assert len(rows) == len(ref)
    for item, row in zip(ref, rows, strict=True):
        for f in fields:
            got = blank(row[f.name])
            same(got, expected_cell(item[f.name], f.kind), f.kind, f.name)
            if f.vocab:
                assert blank(row[f"{f.name}_label"]) == expected_label(item, f), f.name
            if f.name.endswith("_m2") and item[f.name] is not None:
                ha = float(row[f.name[:-3] + "_ha"])
                assert ha == pytest.approx(item[f.name] / 10_000, abs=1e-4), f.name


@pytest.mark.parametrize("kind", list(PATHS))
def test_csv_and_xlsx_field_by_field(exported, kind):
    from gis.core.rules import get_rules

    unit = get_rules().publication.publisher
    http, db = exported
    ref = reference(http, kind, analyst(db))
    assert ref
    fields = KINDS[kind].fields
    area = next(f.name for f in fields if f.name.endswith("_mu"))
    r = fetch(http, kind, "csv", analyst(db))
    assert r.headers["content-type"].startswith("text/csv")
    assert r.content.startswith(b"\xef\xbb\xbf")
    labels, table, total, footer = bureau_csv(r.content)
    assert labels[0] == fields[0].label and "状态" in labels or kind == "low_efficiency"
    assert "低效原因" in labels or kind != "low_efficiency"
    check_bureau_rows(ref, table, fields, lambda v: v or None)
    assert total[0] == f"合计({len(ref)})"
    col = next(i for i, c in enumerate(bureau_csv(r.content)[1][0]) if c == area)
    assert float(total[col]) == pytest.approx(sum(i[area] or 0 for i in ref), abs=1e-3)
    assert footer[:2] == [f"制表单位: {unit}", f"制表日期: {date.today().isoformat()}"]
    for item, row in zip(ref, table, strict=True):
        if item.get("status") == "supplied":  # nothing left: no geometry, no centroid
            assert row["lon"] == row["lat"] == ""
        else:
            assert 119 < float(row["lon"]) < 121 and 29 < float(row["lat"]) < 31

    r = fetch(http, kind, "xlsx", analyst(db))
    assert "attachment" in r.headers["content-disposition"]
    top, labels, rows, total, ws = bureau_xlsx(r.content)
    assert "清单" in top[0][0]
    assert top[1][:2] == (f"制表日期: {date.today().isoformat()}", f"制表单位: {unit}")
    assert labels[0] == fields[0].label and "中心点经度(度)" in labels
    check_bureau_rows(ref, rows, fields, lambda v: v)
    assert total[area] == pytest.approx(sum(i[area] or 0 for i in ref), abs=1e-3)
    assert ws.freeze_panes == "B5"
    widths = {c: ws.column_dimensions[c].width for c in ("A", "B")}
    assert all(w >= 8 for w in widths.values())
    # a column is at least as wide as its Chinese header (two cells a character)
    assert ws.column_dimensions["A"].width >= 2 * len(labels[0])


@pytest.mark.parametrize("kind", list(PATHS))
def test_geopackage_field_by_field(exported, kind, tmp_path):
    http, db = exported
    ref = reference(http, kind, analyst(db))
    path = tmp_path / "x.gpkg"
    path.write_bytes(fetch(http, kind, "gpkg", analyst(db)).content)
    gdf = pyogrio.read_dataframe(path)
    assert gdf.crs.to_epsg() == 4549
    assert len(gdf) == len(ref)
    for item, (_, row) in zip(ref, gdf.iterrows(), strict=True):
        for f in KINDS[kind].fields:
            same(row[f.name], expected_cell(item[f.name], f.kind), f.kind, f.name)
    if kind == "unsupplied":
        areas = {r["approval_id"]: r["unsupplied_m2"] for r in ref}
        for _, row in gdf.iterrows():
            got = 0 if row.geometry is None else row.geometry.area
            assert got == pytest.approx(areas[row["approval_id"]])


def _unzip(content: bytes, tmp_path):
    with zipfile.ZipFile(io.BytesIO(content)) as z:
        names = sorted(z.namelist())
        z.extractall(tmp_path)
    return names


@pytest.mark.parametrize("kind", list(PATHS))
def test_zipped_shapefile_field_by_field(exported, kind, tmp_path):
    http, db = exported
    ref = reference(http, kind, analyst(db))
    r = fetch(http, kind, "shp", analyst(db))
    assert r.headers["content-type"] == "application/zip"
    zpath = tmp_path / "x.zip"
    zpath.write_bytes(r.content)
    names = _unzip(r.content, tmp_path)
    stem = kind
    assert {f"{stem}.{e}" for e in ("shp", "shx", "dbf", "prj", "cpg")} <= set(names)
    assert "FIELDS.csv" in names
    assert (tmp_path / f"{stem}.cpg").read_text() == "936"
    assert (tmp_path / f"{stem}.dbf").read_bytes()[29] == 0x4D  # LDID 77: Chinese GBK
    info = pyogrio.read_info(tmp_path / f"{stem}.shp")
    assert all(len(n.encode()) <= 10 for n in info["fields"])
    gdf = pyogrio.read_dataframe(tmp_path / f"{stem}.shp")
    assert gdf.crs.to_epsg() == 4549
    assert len(gdf) == len(ref)
    fields = KINDS[kind].fields
    for item, (_, row) in zip(ref, gdf.iterrows(), strict=True):
        for f in fields:
            want = expected_cell(item[f.name], f.kind)
            if f.kind == "json":  # long JSON text may be cut at 254 bytes in a DBF
                text = row[f.short] or ""
                assert len(text.encode("gbk")) <= 254
                continue
            if isinstance(want, str):
                # text longer than a DBF field (254 bytes in GBK) is cut on a character
                b = want.encode("gbk")
                want = b[:254].decode("gbk", errors="ignore") if len(b) > 254 else want
            same(row[f.short], want, f.kind, f"{f.name} ({f.short})")
    # the DBF really is GBK: the Chinese text's GBK bytes are in it
    dbf = (tmp_path / f"{stem}.dbf").read_bytes()
    chinese = {
        "unsupplied": "杭州市2019年第1批次",
        "idle": "闲置土地",
        "low_efficiency": "杭州甲公司",
    }[kind]
    assert chinese.encode("gbk") in dbf and chinese.encode("utf-8") not in dbf


def _ogrinfo(target: str) -> str:
    r = subprocess.run(
        ["ogrinfo", "-ro", "-al", target], capture_output=True, text=True, encoding="utf-8"
    )
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_ogrinfo_reads_chinese_from_gpkg_and_zipped_shapefile(exported, tmp_path):
    http, db = exported
    for kind, chinese in [("unsupplied", "杭州市2019年第1批次"), ("idle", "可无偿收回")]:
        g = tmp_path / f"{kind}.gpkg"
        g.write_bytes(fetch(http, kind, "gpkg").content)
        out = _ogrinfo(str(g))
        assert chinese in out
        assert "CGCS2000" in out or "4549" in out
        z = tmp_path / f"{kind}.zip"
        z.write_bytes(fetch(http, kind, "shp").content)
        out = _ogrinfo(f"/vsizip/{z}")
        assert chinese in out, out[:2000]
        assert "PZWH (String" in out or "DZJGH (String" in out


def test_public_exports_hold_no_tax_figures(exported, tmp_path):
    http, db = exported
    for fmt in ("csv", "json"):
        body = http.get(PATHS["low_efficiency"], params={"format": fmt}).content.decode("utf-8")
        assert "tax_per_mu" in body and '"figure": 4.0' not in body and "4.0" not in body
    full = http.get(PATHS["low_efficiency"], params={"format": "csv"}, headers=analyst(db))
    assert "4.0" in full.content.decode("utf-8")


def test_summary_exports(exported, tmp_path):
    http, db = exported
    ref = http.get("/api/land/summary", params={"level": "district"}).json()["items"]
    r = http.get("/api/land/summary", params={"level": "district", "format": "shp"})
    _unzip(r.content, tmp_path)
    gdf = pyogrio.read_dataframe(tmp_path / "summary_district.shp")
    assert list(gdf["NAME"]) == [i["name"] for i in ref] == ["上城区", "建德市"]
    for item, (_, row) in zip(ref, gdf.iterrows(), strict=True):
        for f in SUMMARY_FIELDS:
            same(row[f.short], item[f.name], f.kind, f.name)
    gj = http.get("/api/land/summary", params={"level": "district", "format": "geojson"}).json()
    assert gj["features"][0]["geometry"]["type"] == "MultiPolygon"


def test_empty_list_exports(exported, tmp_path):
    http, db = exported
    for fmt in ("csv", "xlsx", "gpkg", "shp"):
        r = http.get(PATHS["unsupplied"], params={"district": "330999", "format": fmt})
        assert r.status_code == 200, (fmt, r.text)
    assert rows(db, "SELECT count(*) AS n FROM detection_runs")[0]["n"] == 1


def test_geopackage_has_chinese_column_aliases(exported, tmp_path):
    import sqlite3

    http, db = exported
    path = tmp_path / "idle.gpkg"
    path.write_bytes(fetch(http, "idle", "gpkg", analyst(db)).content)
    con = sqlite3.connect(path)
    aliases = dict(
        con.execute(
            "SELECT column_name, name FROM gpkg_data_columns WHERE table_name = 'idle'"
        ).fetchall()
    )
    ext = con.execute(
        "SELECT count(*) FROM gpkg_extensions WHERE extension_name = 'gpkg_schema'"
    ).fetchone()[0]
    con.close()
    assert aliases == {f.name: f.label for f in KINDS["idle"].fields}
    assert ext == 2
    assert len(pyogrio.read_dataframe(path)) == len(reference(http, "idle", analyst(db)))


def test_shapefile_encoding_read_from_either_the_cpg_or_the_ldid(exported, tmp_path):
    """GDAL (QGIS) reads the Chinese from the .cpg alone and from the DBF's LDID byte alone:
    a copy that lost one of them still opens right."""
    http, db = exported
    _unzip(fetch(http, "idle", "shp").content, tmp_path)
    shp = tmp_path / "idle.shp"
    assert "可无偿收回" in _ogrinfo(str(shp))
    cpg = shp.with_suffix(".cpg")
    cpg.unlink()  # LDID 77 alone
    assert "可无偿收回" in _ogrinfo(str(shp))
    cpg.write_text("936")
    dbf = bytearray(shp.with_suffix(".dbf").read_bytes())
    dbf[29] = 0  # the .cpg alone
    shp.with_suffix(".dbf").write_bytes(bytes(dbf))
    assert "可无偿收回" in _ogrinfo(str(shp))
    cpg.unlink()
    # neither: GDAL reads the bytes as they are and the Chinese is lost (the check can fail)
    dbf[29] = 0
    shp.with_suffix(".dbf").write_bytes(bytes(dbf))
    r = subprocess.run(["ogrinfo", "-ro", "-al", str(shp)], capture_output=True)
    assert r.returncode == 0 and "可无偿收回" not in r.stdout.decode("utf-8", "replace")
