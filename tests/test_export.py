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


@pytest.mark.parametrize("kind", list(PATHS))
def test_csv_and_xlsx_field_by_field(exported, kind):
    http, db = exported
    ref = reference(http, kind, analyst(db))
    assert ref
    fields = KINDS[kind].fields
    r = fetch(http, kind, "csv", analyst(db))
    assert r.headers["content-type"].startswith("text/csv")
    assert r.content.startswith(b"\xef\xbb\xbf")
    table = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert len(table) == len(ref)
    assert list(table[0]) == [f.name for f in fields] + ["lon", "lat"]
    for item, row in zip(ref, table, strict=True):
        for f in fields:
            same(row[f.name] or None, expected_cell(item[f.name], f.kind), f.kind, f.name)
        if item.get("status") == "supplied":  # nothing left: no geometry, no centroid
            assert row["lon"] == row["lat"] == ""
        else:
            assert 119 < float(row["lon"]) < 121 and 29 < float(row["lat"]) < 31

    r = fetch(http, kind, "xlsx", analyst(db))
    assert "attachment" in r.headers["content-disposition"]
    wb = openpyxl.load_workbook(io.BytesIO(r.content))
    ws = wb.worksheets[0]
    values = list(ws.iter_rows(values_only=True))
    assert list(values[0]) == [f.name for f in fields] + ["lon", "lat"]
    assert len(values) - 1 == len(ref)
    for item, row in zip(ref, values[1:], strict=True):
        cells = dict(zip(values[0], row, strict=True))
        for f in fields:
            same(cells[f.name], expected_cell(item[f.name], f.kind), f.kind, f.name)
    labels = {r[0]: r[2] for r in wb["fields"].iter_rows(min_row=2, values_only=True)}
    assert labels[fields[0].name] == fields[0].label


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
    assert (tmp_path / f"{stem}.cpg").read_text().strip().upper() in ("GBK", "936", "CP936")
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
