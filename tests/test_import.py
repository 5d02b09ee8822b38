"""Importing the contract's layers: every kind of bad input, encodings, CRSs, idempotency."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest
import shapely
from pyproj import Transformer
from sqlalchemy import text

from gis.core.gcj02 import gcj02_to_bd09, wgs84_to_gcj02
from gis.ingest import ImportOptions, ImportRejected, InputError, import_file
from tests.conftest import snapshot
from tests.factories import X0, Y0, box, districts, parcels, supplies, uscc, write_shp


def load_base(db, tmp_path):
    import_file(db, "xzq", districts(tmp_path))
    import_file(db, "gd", supplies(tmp_path))


def rejected(db, layer, path, **opts) -> dict:
    before = snapshot(db)
    with pytest.raises(ImportRejected) as exc:
        import_file(db, layer, path, ImportOptions(**opts))
    assert snapshot(db) == before, "a refused import must change nothing"
    return exc.value.report


def only_error(report: dict) -> dict:
    assert len(report["errors"]) == 1, report["errors"]
    return report["errors"][0]


def test_gbk_shapefile_with_cpg_loads_chinese_text(db, tmp_path):
    rep = import_file(db, "xzq", districts(tmp_path))
    assert (rep["inserted"], rep["encoding"]) == (2, "gbk")
    with db.connect() as c:
        names = c.execute(text("SELECT name FROM districts ORDER BY code")).scalars().all()
        area = c.execute(text("SELECT area_m2 FROM districts WHERE code='330102'")).scalar()
    assert names == ["上城区", "建德市"]
    assert area == pytest.approx(10_000 * 10_000)


def test_shapefile_without_cpg_defaults_to_gb18030_and_option_overrides(db, tmp_path):
    p = write_shp(
        tmp_path / "ZL.shp",
        [{"ZLDM": "CXKC", "ZLMC": "城西科创大走廊"}],
        [box(0)],
        encoding="GBK",
        cpg=False,
    )
    rep = import_file(db, "zl", p)
    assert "default (GB18030)" in rep["warnings"][0]
    with db.connect() as c:
        assert c.execute(text("SELECT name FROM corridors")).scalar() == "城西科创大走廊"
    # the same bytes declared UTF-8 do not decode: refused, never guessed
    with pytest.raises(InputError, match="does not decode as utf-8"):
        import_file(db, "zl", p, ImportOptions(encoding="UTF-8"))


def test_utf8_shapefile_without_cpg_read_as_gb18030_says_it_may_be_utf8(db, tmp_path):
    """钱塘 in UTF-8 is also valid GB18030 (閽卞): the contract's default reads it so, and the
    report says that every text is also UTF-8 and how to read it as such. A GBK file (the
    test above) gets no such note."""
    p = write_shp(
        tmp_path / "ZL.shp",
        [{"ZLDM": "CXKC", "ZLMC": "钱塘"}],
        [box(0)],
        encoding="UTF-8",
        cpg=False,
    )
    rep = import_file(db, "zl", p)
    note = next(w for w in rep["warnings"] if "also valid UTF-8" in w)
    assert "ZLMC '钱塘'" in note and "--encoding utf-8" in note
    again = import_file(db, "zl", p, ImportOptions(encoding="utf-8"))
    assert not any("also valid UTF-8" in w for w in again["warnings"])
    with db.connect() as c:
        assert c.execute(text("SELECT name FROM corridors")).scalar() == "钱塘"
    gbk = write_shp(
        tmp_path / "ZL2.shp",
        [{"ZLDM": "CXKC", "ZLMC": "城西科创大走廊"}],
        [box(0)],
        encoding="GBK",
        cpg=False,
    )
    assert not any("also valid UTF-8" in w for w in import_file(db, "zl", gbk)["warnings"])


def test_wrong_cpg_is_refused(db, tmp_path):
    p = write_shp(tmp_path / "ZL.shp", [{"ZLDM": "CXKC", "ZLMC": "城西科创大走廊"}], [box(0)])
    p.with_suffix(".cpg").write_text("UTF-8")
    before = snapshot(db)
    with pytest.raises(InputError) as e:
        import_file(db, "zl", p)
    assert e.value.field == "ZLMC" and "feature 0" in e.value.reason
    assert snapshot(db) == before


@pytest.mark.filterwarnings("ignore:'crs' was not provided:UserWarning")  # the point of it
def test_layer_without_crs_is_refused_unless_given(db, tmp_path):
    p = write_shp(
        tmp_path / "ZL.shp", [{"ZLDM": "CDZZ", "ZLMC": "城东智造大走廊"}], [box(0)], crs=None
    )
    with pytest.raises(InputError, match="no CRS"):
        import_file(db, "zl", p)
    rep = import_file(db, "zl", p, ImportOptions(crs="EPSG:4549"))
    assert rep["inserted"] == 1


def test_xian80_and_beijing54_are_refused_not_shifted(db, tmp_path):
    p = write_shp(
        tmp_path / "ZL.shp", [{"ZLDM": "CDZZ", "ZLMC": "城东智造大走廊"}], [box(0)], crs=2385
    )
    with pytest.raises(InputError, match="西安80.*七参数") as e:
        import_file(db, "zl", p)
    assert "EPSG:2385" in str(e.value)
    with db.connect() as c:
        assert c.execute(text("SELECT count(*) FROM corridors")).scalar_one() == 0
    # the user says the coordinates are CGCS2000 after all: loaded, with the override noted
    rep = import_file(db, "zl", p, ImportOptions(crs="EPSG:4549"))
    assert rep["inserted"] == 1
    qy = tmp_path / "QY.csv"
    pd.DataFrame(
        {
            "TYSHXYDM": [uscc(1), uscc(2)],
            "QYMC": ["甲", "乙"],
            "HYDM": ["3911", "2211"],
            "X": [120.1, X0 + 10],
            "Y": [30.2, Y0 + 10],
            "ZBXT": ["EPSG:4214", "EPSG:4549"],
        }
    ).to_csv(qy, index=False)
    rep = import_file(db, "qy", qy, ImportOptions(strict=False))
    assert any("北京54" in str(x) and "ZBXT" in str(x) for x in rep["errors"]), rep["errors"]


def test_file_geodatabase_layers(db, tmp_path):
    import geopandas as gpd
    import pyogrio

    gdb = tmp_path / "三调.gdb"
    zl = gpd.GeoDataFrame(
        {"ZLDM": ["CDZZ"], "ZLMC": ["城东智造大走廊"]}, geometry=[box(0)], crs=4549
    )
    pyogrio.write_dataframe(zl, gdb, layer="ZL", driver="OpenFileGDB")
    import_file(db, "zl", gdb)  # one layer: read without naming it
    with db.connect() as c:
        assert c.execute(text("SELECT name FROM corridors")).scalar_one() == "城东智造大走廊"
    other = zl.assign(ZLMC=["城西科创大走廊"], ZLDM=["CXKC"])
    pyogrio.write_dataframe(other, gdb, layer="ZL2", driver="OpenFileGDB")
    with pytest.raises(InputError, match="2 layers.*ZL.*ZL2.*--layer"):
        import_file(db, "zl", gdb)
    with pytest.raises(InputError, match="no layer 'XX'"):
        import_file(db, "zl", gdb, ImportOptions(sheet="XX"))
    rep = import_file(db, "zl", gdb, ImportOptions(sheet="ZL2"))
    assert rep["inserted"] == 1


def test_geographic_cgcs2000_is_projected_to_4549(db, tmp_path):
    t = Transformer.from_crs(4549, 4490, always_xy=True)
    lon0, lat0 = t.transform(X0, Y0)
    lon1, lat1 = t.transform(X0 + 200, Y0 + 100)
    p = write_shp(
        tmp_path / "PZ.shp",
        [{"PZWH": "浙政土字〔2019〕1号", "PZRQ": "20190101"}],
        [shapely.box(lon0, lat0, lon1, lat1)],
        crs=4490,
    )
    import_file(db, "pz", p)
    with db.connect() as c:
        x, y, area = c.execute(
            text("SELECT ST_XMin(geom), ST_YMin(geom), area_m2 FROM approvals")
        ).one()
    assert (x, y) == (pytest.approx(X0, abs=0.01), pytest.approx(Y0, abs=0.01))
    assert area == pytest.approx(200 * 100, rel=1e-3)


@pytest.mark.parametrize(
    "field,value,reason",
    [
        ("HTKGSJ", None, "required field is empty"),
        ("GDRQ", "2019-13-45", "unparsable date"),
        ("GDRQ", "sometime", "unparsable date"),
        ("SRRDM", uscc(1)[:-1] + ("0" if uscc(1)[-1] != "0" else "1"), "bad USCC check character"),
        ("SRRDM", "9133", "USCC must have 18 characters"),
        ("GDFS", "拍卖", "is not one of"),
        ("YDTZ", "lots", "not a number"),
        ("YDTZ", "-inf", "not a number"),
        ("YDTZ", "Infinity", "not a number"),
        ("YDTZ", "1e400", "not a number"),  # beyond double precision
        ("YDTZ", "1e308", "out of range"),
        ("YDTZ", "1e-320", "out of range"),
    ],
)
def test_bad_field_is_named_and_strict_changes_nothing(db, tmp_path, field, value, reason):
    load_base(db, tmp_path)
    p = supplies(
        tmp_path,
        3,
        "GD2.shp",
        **{
            field: [None if i != 1 else value for i in range(3)]
            if field in ("HTKGSJ",)
            else [
                value
                if i == 1
                else {"GDRQ": "2019-03-01", "SRRDM": uscc(i), "GDFS": "出让", "YDTZ": 1.0}[field]
                for i in range(3)
            ]
        },
    )
    if field == "HTKGSJ":  # only row 1 empty
        p = supplies(tmp_path, 3, "GD3.shp", HTKGSJ=["2019-09-01", None, "2019-09-01"])
    rep = rejected(db, "gd", p)
    err = only_error(rep)
    assert err["where"] == "feature 1" and err["field"] == field and reason in err["reason"]
    assert err["key"] == "3301022019B00001"
    assert rep["status"] == "rejected"


def test_lenient_loads_good_rows_and_reports_the_rest(db, tmp_path):
    import_file(db, "xzq", districts(tmp_path))
    p = supplies(tmp_path, 3, GDRQ=["2019-03-01", "2019-02-30", "2019/03/01"])
    rep = import_file(db, "gd", p, ImportOptions(strict=False))
    assert (rep["inserted"], rep["rejected"]) == (2, 1)
    assert only_error(rep)["where"] == "feature 1"
    with db.connect() as c:
        assert c.execute(text("SELECT count(*) FROM supplies")).scalar() == 2
        b = c.execute(text("SELECT status, rejected FROM import_batches WHERE layer = 'GD'")).one()
    assert tuple(b) == ("loaded", 1)


def test_duplicate_key_in_file(db, tmp_path):
    load_base(db, tmp_path)
    p = parcels(tmp_path, 3, DKBH=["DK-1", "DK-2", "DK-1"])
    rep = rejected(db, "dk", p)
    assert [e["where"] for e in rep["errors"]] == ["feature 0", "feature 2"]
    assert all("duplicate key DK-1" in e["reason"] for e in rep["errors"])


def test_parcel_key_no_layer_knows(db, tmp_path):
    load_base(db, tmp_path)
    p = parcels(tmp_path, 3, DZJGH=["3301022019B00000", "NOPE", None])
    err = only_error(rejected(db, "dk", p))
    assert err["field"] == "DZJGH" and "'NOPE' is not in layer GD" in err["reason"]
    # enterprises naming a parcel that no layer knows
    import_file(db, "dk", parcels(tmp_path, 3, name="DK_ok.shp"))
    qy = tmp_path / "QY.csv"
    pd.DataFrame(
        {
            "TYSHXYDM": [uscc(1), uscc(2)],
            "QYMC": ["甲", "乙"],
            "HYDM": ["3311", "3311"],
            "DKBH": ["DK-0001;DK-0002", "DK-0001;DK-9999"],
        }
    ).to_csv(qy, index=False)
    err = only_error(rejected(db, "qy", qy))
    assert err["where"] == "row 3" and "'DK-9999'" in err["reason"]


def test_invalid_geometry_repaired_or_rejected(db, tmp_path):
    import_file(db, "xzq", districts(tmp_path))
    bow = shapely.Polygon([(X0, Y0), (X0 + 100, Y0 + 100), (X0 + 100, Y0), (X0, Y0 + 100)])
    flat = shapely.Polygon([(X0, Y0), (X0 + 50, Y0), (X0 + 100, Y0)])
    recs = [{"PZWH": f"W{i}", "PZRQ": "2020-01-01"} for i in range(3)]
    p = write_shp(tmp_path / "PZ.shp", recs, [box(0), bow, flat])
    err = only_error(rejected(db, "pz", p))
    assert (err["where"], err["field"]) == ("feature 2", "geometry")
    assert "make_valid cannot turn it into" in err["reason"]
    rep = import_file(db, "pz", p, ImportOptions(strict=False))
    assert rep["inserted"] == 2 and any("repaired by make_valid" in w for w in rep["warnings"])
    with db.connect() as c:
        t, area = c.execute(
            text("SELECT GeometryType(geom), area_m2 FROM approvals WHERE doc_no='W1'")
        ).one()
    assert t == "MULTIPOLYGON" and area == pytest.approx(5000)


def test_empty_geometry_rejected(db, tmp_path):
    p = write_shp(
        tmp_path / "ZL.shp",
        [{"ZLDM": "A", "ZLMC": "甲"}, {"ZLDM": "B", "ZLMC": "乙"}],
        [box(0), None],
    )
    err = only_error(rejected(db, "zl", p))
    assert (err["where"], err["reason"]) == ("feature 1", "empty geometry")


def test_missing_required_column_names_it(db, tmp_path):
    p = tmp_path / "CC.csv"
    pd.DataFrame({"TYSHXYDM": [uscc(1)], "ND": [2024]}).to_csv(p, index=False)
    with pytest.raises(InputError, match="SJSJ missing"):
        import_file(db, "cc", p)


def test_reimport_is_idempotent_and_changes_are_recorded(db, tmp_path):
    load_base(db, tmp_path)
    p = parcels(tmp_path, 3)
    first = import_file(db, "dk", p)
    again = import_file(db, "dk", p)
    assert (first["inserted"], again["inserted"], again["updated"], again["unchanged"]) == (
        3,
        0,
        0,
        3,
    )
    with db.connect() as c:
        batches = c.execute(text("SELECT DISTINCT batch_id FROM parcels")).scalars().all()
    assert batches == [first["batch_id"]], "unchanged rows keep the batch that wrote them"
    changed = parcels(
        tmp_path,
        4,
        name="DK_v2.shp",
        JZMJ=[12000.0, 15000.0, 12000.0, 1.0],
        DZJGH=["3301022019B00000", "3301022019B00001", "3301022019B00002", None],
    )
    rep = import_file(db, "dk", changed)
    assert (rep["inserted"], rep["updated"], rep["unchanged"]) == (1, 1, 2)
    with db.connect() as c:
        ch = c.execute(
            text("SELECT key, action, changes FROM import_changes WHERE batch_id=:b ORDER BY key"),
            {"b": rep["batch_id"]},
        ).all()
        row = c.execute(
            text("SELECT floor_area_m2, batch_id FROM parcels WHERE parcel_no='DK-0001'")
        ).one()
    assert [(k, a) for k, a, _ in ch] == [("DK-0001", "update")]
    assert ch[0].changes == {"floor_area_m2": [12000.0, 15000.0]}
    assert tuple(row) == (15000.0, rep["batch_id"])


def test_dry_run_writes_nothing(db, tmp_path):
    before = snapshot(db)
    rep = import_file(db, "xzq", districts(tmp_path), ImportOptions(dry_run=True))
    assert rep["inserted"] == 2 and "batch_id" not in rep
    assert snapshot(db) == before
    with db.connect() as c:
        assert c.execute(text("SELECT count(*) FROM import_batches")).scalar() == 0


def test_csv_gbk_and_utf8_bom_and_excel_dates(db, tmp_path):
    load_base(db, tmp_path)
    import_file(db, "dk", parcels(tmp_path, 3))
    qy = tmp_path / "QY.csv"
    pd.DataFrame(
        {
            "TYSHXYDM": [uscc(1)],
            "QYMC": ["杭州甲科技有限公司"],
            "HYDM": ["3911"],
            "GMYS": ["1"],
            "DKBH": ["DK-0001"],
        }
    ).to_csv(qy, index=False, encoding="utf-8-sig")
    import_file(db, "qy", qy)
    cc = tmp_path / "CC.csv"
    pd.DataFrame(
        {"TYSHXYDM": [uscc(1)], "ND": ["2024"], "SJSJ": ["1,234.5"], "GYZJZ": ["9000"]}
    ).to_csv(cc, index=False, encoding="gbk")
    import_file(db, "cc", cc)
    xm = tmp_path / "XM.xlsx"
    pd.DataFrame(
        {
            "XMDM": ["XM1"],
            "XMMC": ["智能制造项目"],
            "DZJGH": ["3301022019B00001"],
            "JHTZ": [10000],
            "KGRQ": [pd.Timestamp("2020-05-01")],
            "TCRQ": [44197],
        }
    ).to_excel(xm, index=False)
    import_file(db, "xm", xm)
    with db.connect() as c:
        assert c.execute(text("SELECT name, above_size FROM enterprises")).one() == (
            "杭州甲科技有限公司",
            True,
        )
        assert c.execute(text("SELECT tax_paid FROM outputs")).scalar() == 1234.5
        kg, tc = c.execute(text("SELECT started_on, production_on FROM projects")).one()
    assert (str(kg), str(tc)) == ("2020-05-01", "2021-01-01")


def test_gcj02_enterprise_points_are_converted(db, tmp_path):
    to_wgs = Transformer.from_crs(4549, 4326, always_xy=True)
    lon, lat = to_wgs.transform(X0 + 50, Y0 + 50)
    glon, glat = wgs84_to_gcj02(lon, lat)
    qy = tmp_path / "QY.xlsx"
    pd.DataFrame(
        {
            "TYSHXYDM": [uscc(1), uscc(2)],
            "QYMC": ["甲", "乙"],
            "HYDM": ["3911", "2211"],
            "X": [float(glon), X0 + 10],
            "Y": [float(glat), Y0 + 10],
            "ZBXT": ["gcj02", "EPSG:4549"],
        }
    ).to_excel(qy, index=False)
    import_file(db, "qy", qy)
    with db.connect() as c:
        pts = dict(c.execute(text("SELECT uscc, ST_AsText(geom) FROM enterprises")).all())
    x, y = shapely.from_wkt(pts[uscc(1)]).coords[0]
    assert np.hypot(x - (X0 + 50), y - (Y0 + 50)) < 0.5  # metres, after GCJ-02 -> WGS84
    assert shapely.from_wkt(pts[uscc(2)]).coords[0] == (X0 + 10, Y0 + 10)


def test_bd09_enterprise_points_are_converted(db, tmp_path):
    to_wgs = Transformer.from_crs(4549, 4326, always_xy=True)
    lon, lat = to_wgs.transform(X0 + 80, Y0 + 20)
    blon, blat = gcj02_to_bd09(*wgs84_to_gcj02(lon, lat))
    qy = tmp_path / "QY.csv"
    pd.DataFrame(
        {
            "TYSHXYDM": [uscc(1)],
            "QYMC": ["甲"],
            "HYDM": ["3911"],
            "X": [float(blon)],
            "Y": [float(blat)],
            "ZBXT": ["bd09"],
        }
    ).to_csv(qy, index=False)
    import_file(db, "qy", qy)
    with db.connect() as c:
        wkt = c.execute(text("SELECT ST_AsText(geom) FROM enterprises")).scalar_one()
    x, y = shapely.from_wkt(wkt).coords[0]
    assert np.hypot(x - (X0 + 80), y - (Y0 + 20)) < 1.0  # metres, BD-09 -> GCJ-02 -> WGS84


def test_xls_workbook_is_read(db, tmp_path):
    import xlwt

    wb = xlwt.Workbook(encoding="utf-8")
    wb.add_sheet("说明").write(0, 0, "这一页不是数据")
    ws = wb.add_sheet("企业")
    rows = [
        ["企业名称", "TYSHXYDM", "HYDM", "X", "Y", "ZBXT"],
        ["甲公司", uscc(1), "3911", X0 + 10, Y0 + 20, "EPSG:4549"],
        ["乙公司", uscc(2), "2211", X0 + 30, Y0 + 40, "4549"],
    ]
    for r, row in enumerate(rows):
        for c, v in enumerate(row):
            ws.write(r, c, v)
    xls = tmp_path / "QY.xls"
    wb.save(str(xls))
    rep = import_file(db, "qy", xls, ImportOptions(sheet="企业"))
    assert rep["inserted"] == 2
    with db.connect() as c:
        got = c.execute(
            text("SELECT uscc, name, ST_X(geom), ST_Y(geom) FROM enterprises ORDER BY uscc")
        ).all()
    assert [tuple(r) for r in got] == sorted(
        [(uscc(1), "甲公司", X0 + 10, Y0 + 20), (uscc(2), "乙公司", X0 + 30, Y0 + 40)]
    )
    with pytest.raises(InputError, match="sheet"):
        import_file(db, "qy", xls, ImportOptions(sheet="没有这页"))


def test_coordinates_without_crs_are_rejected(db, tmp_path):
    qy = tmp_path / "QY.csv"
    pd.DataFrame(
        {
            "TYSHXYDM": [uscc(1)],
            "QYMC": ["甲"],
            "HYDM": ["3911"],
            "X": [120.1],
            "Y": [30.2],
            "ZBXT": [""],
        }
    ).to_csv(qy, index=False)
    err = only_error(rejected(db, "qy", qy))
    assert err["field"] == "ZBXT" and err["where"] == "row 2"
    rep = import_file(db, "qy", qy, ImportOptions(crs="gcj02"))
    assert rep["inserted"] == 1


def test_not_industrial_codes_are_reported_not_dropped(db, tmp_path):
    load_base(db, tmp_path)
    rep = import_file(db, "dk", parcels(tmp_path, 3, DLBM=["1001", "0702", "M0"]))
    assert rep["inserted"] == 3
    assert rep["not_industrial"] == {"count": 1, "codes": {"0702": 1}}


def test_enterprise_points_keep_their_source_crs(db, tmp_path):
    qy = tmp_path / "QY.csv"
    pd.DataFrame(
        {
            "TYSHXYDM": [uscc(1), uscc(2), uscc(3)],
            "QYMC": ["甲", "乙", "丙"],
            "HYDM": ["3911"] * 3,
            "X": [120.1, X0, None],
            "Y": [30.2, Y0, None],
            "ZBXT": ["", "EPSG:4549", ""],
        }
    ).to_csv(qy, index=False)
    import_file(db, "qy", qy, ImportOptions(crs="gcj02"))
    with db.connect() as c:
        got = dict(c.execute(text("SELECT uscc, source_crs FROM enterprises")).all())
    assert got == {uscc(1): "gcj02", uscc(2): "EPSG:4549", uscc(3): None}


def test_enterprises_as_point_layers_gpkg_and_geojson_with_gcj02(db, tmp_path):
    """QY may come as a point layer: a GeoPackage in EPSG:4549 stored as it is; a GeoJSON of
    AMap lon/lat marked ``--crs gcj02`` converted to WGS84 before projecting."""
    import geopandas as gpd

    to_wgs = Transformer.from_crs(4549, 4326, always_xy=True)
    lon, lat = to_wgs.transform(X0 + 70, Y0 + 30)
    glon, glat = wgs84_to_gcj02(lon, lat)
    rows = {"TYSHXYDM": [uscc(1)], "QYMC": ["甲企业"], "HYDM": ["3911"]}
    gpkg = tmp_path / "QY.gpkg"
    gpd.GeoDataFrame(rows, geometry=[shapely.Point(X0 + 10, Y0 + 20)], crs=4549).to_file(gpkg)
    geojson = tmp_path / "QY.geojson"
    rows2 = {**rows, "TYSHXYDM": [uscc(2)], "QYMC": ["乙企业"]}
    gpd.GeoDataFrame(rows2, geometry=[shapely.Point(float(glon), float(glat))], crs=4326).to_file(
        geojson
    )
    import_file(db, "qy", gpkg)
    import_file(db, "qy", geojson, ImportOptions(crs="gcj02"))
    with db.connect() as c:
        got = {
            u: (n, shapely.from_wkt(w).coords[0])
            for u, n, w in c.execute(text("SELECT uscc, name, ST_AsText(geom) FROM enterprises"))
        }
    assert got[uscc(1)] == ("甲企业", (X0 + 10, Y0 + 20))
    x, y = got[uscc(2)][1]
    assert got[uscc(2)][0] == "乙企业"
    assert np.hypot(x - (X0 + 70), y - (Y0 + 30)) < 0.5  # metres, after GCJ-02 -> WGS84


def test_readers_are_never_blocked_while_a_city_loads_and_is_analysed(db):
    """Every table stays readable while the sample city's files load into an empty database
    (first loads of every layer, each with its derivation-graph refresh) and `analyse-all`'s
    steps run after: a reader that waits more than 200 ms for a lock fails (VACUUM may hold one
    for a moment to cut empty pages off a table's end). A first load once dropped the parcels'
    spatial index to build it at the end, which locks the table against every reader until the
    import commits."""
    import threading

    from psycopg.errors import LockNotAvailable
    from sqlalchemy.exc import OperationalError

    from app.cli import analysis_steps
    from tests.conftest import SAMPLE_DIR, load_directory

    def load_and_analyse() -> None:
        load_directory(db, SAMPLE_DIR)
        for _, step in analysis_steps(date(2026, 6, 30)):
            step(db)

    with db.connect() as c:
        tables = (
            c.execute(
                text(
                    "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                    "AND tablename <> 'spatial_ref_sys' ORDER BY 1"
                )
            )
            .scalars()
            .all()
        )
    failed: list[BaseException] = []
    loader = threading.Thread(target=lambda: _catching(failed, load_and_analyse))
    blocked: set[str] = set()
    polls = 0
    with db.connect().execution_options(isolation_level="AUTOCOMMIT") as reader:
        reader.execute(text("SET lock_timeout = '200ms'"))
        loader.start()
        try:
            while loader.is_alive():
                for t in tables:
                    try:
                        reader.execute(text(f"SELECT 1 FROM {t} LIMIT 1"))
                    except OperationalError as e:
                        if not isinstance(e.orig, LockNotAvailable):
                            raise
                        blocked.add(t)
                polls += 1
        finally:
            loader.join()
        reader.execute(text("RESET lock_timeout"))
    assert not failed, failed
    with db.connect() as c:
        assert c.execute(text("SELECT count(*) FROM parcels")).scalar_one() > 5000
    assert polls >= 10, f"only {polls} rounds of reads while the city loaded"
    with db.connect() as c:
        assert c.execute(text("SELECT count(*) FROM idle_results")).scalar_one() > 0
    assert not blocked, f"readers waited for locks on {sorted(blocked)}"


def _catching(failed: list[BaseException], work) -> None:  # noqa: ANN001
    try:
        work()
    except BaseException as e:  # noqa: BLE001 - handed to the test's thread
        failed.append(e)


def test_optional_columns_left_out_are_named_and_read_as_empty(db, tmp_path):
    """A file without an optional column (ZCQ) loads, and the report says the column was read
    as empty, so a user re-importing an export that dropped it knows what it clears."""
    rep = import_file(db, "xzq", districts(tmp_path))
    assert not any("optional columns" in w for w in rep["warnings"])
    (tmp_path / "x").mkdir()
    p = write_shp(
        tmp_path / "x" / "XZQ.shp",
        [{"XZQDM": "330102", "XZQMC": "上城区"}, {"XZQDM": "330182", "XZQMC": "建德市"}],
        [shapely.box(X0 - 5000, Y0 - 5000, X0 + 5000, Y0 + 5000),
         shapely.box(X0 + 5000, Y0 - 5000, X0 + 15000, Y0 + 5000)],
    )  # fmt: skip
    rep = import_file(db, "xzq", p)
    assert [w for w in rep["warnings"] if "optional columns" in w] == [
        "optional columns not in the file, read as empty (a row stored before loses its values "
        "there): ZCQ"
    ]
    assert rep["updated"] == 2  # ZCQ 1 and 0 both cleared
