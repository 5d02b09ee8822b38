"""§1 linkage on real PostGIS: every link method, unlinked records with their reasons, boundary
splits, shared parcels, and the import refresh hook ("real-time linkage")."""

from __future__ import annotations

import pytest
import shapely
from sqlalchemy import text

from gis.ingest import import_file
from tests.eval_city import (
    FROM_WGS,
    X0,
    Y0,
    districts,
    enterprises,
    gcj02_of,
    load,
    outputs,
    parcels,
    rect,
    supplies,
    uscc,
)
from tests.factories import write_shp

K, C, G, N, F, X, S5, H1, H2 = (uscc(i) for i in range(31, 40))


def _links(db, kind: str) -> dict:
    with db.connect() as c:
        rows = c.execute(
            text(
                "SELECT from_key, to_key, method, distance_m, share, is_primary, reason "
                "FROM links WHERE kind = :k ORDER BY from_key, to_key"
            ),
            {"k": kind},
        ).all()
    return rows


@pytest.fixture
def city(db, tmp_path):
    glon, glat = gcj02_of(450, 50)  # the centre of L3
    dk = [
        ("L1", rect(0, 0, 100, 100), {"DZJGH": "S1"}),
        ("L2", rect(200, 0, 100, 100), {}),
        ("L3", rect(400, 0, 100, 100), {}),
        ("L4", rect(600, 0, 100, 100), {}),
        ("L5", rect(4940, 0, 100, 100), {}),  # 60 m west and 40 m east of x = 5000
        ("L6", rect(800, 0, 100, 100), {}),  # shared by H1 and H2, no YDMJ
    ]
    gd = [
        ("S1", rect(0, 0, 100, 100), {}),
        ("S2", rect(190, -10, 120, 120), {}),  # covers L2 whole
        ("S3", rect(470, 0, 100, 100), {}),  # 30 % of L3
    ]
    ents = [
        {"TYSHXYDM": K, "QYMC": "键", "HYDM": "3484", "GMYS": 1, "DKBH": "L1"},
        {"TYSHXYDM": C, "QYMC": "点", "HYDM": "3484", "GMYS": 1, "X": X0 + 250, "Y": Y0 + 50,
         "ZBXT": "EPSG:4549"},
        {"TYSHXYDM": G, "QYMC": "高德", "HYDM": "3484", "GMYS": 1, "X": glon, "Y": glat,
         "ZBXT": "gcj02"},
        {"TYSHXYDM": N, "QYMC": "近", "HYDM": "3484", "GMYS": 1, "X": X0 + 650, "Y": Y0 - 30,
         "ZBXT": "EPSG:4549"},
        {"TYSHXYDM": F, "QYMC": "远", "HYDM": "3484", "GMYS": 1, "X": X0 + 650, "Y": Y0 - 80,
         "ZBXT": "EPSG:4549"},
        {"TYSHXYDM": X, "QYMC": "无", "HYDM": "3484", "GMYS": 1},
        {"TYSHXYDM": S5, "QYMC": "跨界", "HYDM": "3484", "GMYS": 1, "DKBH": "L5"},
        {"TYSHXYDM": H1, "QYMC": "合一", "HYDM": "3484", "GMYS": 0, "DKBH": "L6"},
        {"TYSHXYDM": H2, "QYMC": "合二", "HYDM": "3484", "GMYS": 0, "DKBH": "L6"},
    ]  # fmt: skip
    cc = [
        {"TYSHXYDM": u, "ND": 2024, "SJSJ": 100.0, "GYZJZ": 500.0, "GYZCZ": 2000.0,
         "YYSR": 2000.0}
        for u in (K, C, G, N, F, X, S5, H1, H2)
    ]  # fmt: skip
    xm = write_shp(
        tmp_path / "XM.shp",
        [
            {"XMDM": "J1", "XMMC": "键项目", "JHTZ": 1000.0, "DZJGH": "S1"},
            {"XMDM": "J2", "XMMC": "地块项目", "JHTZ": 1000.0, "DKBH": "L2"},
            {"XMDM": "J3", "XMMC": "叠加项目", "JHTZ": 1000.0},
            {"XMDM": "J4", "XMMC": "远项目", "JHTZ": 1000.0},
        ],
        [
            rect(0, 0, 10, 10),
            rect(200, 0, 10, 10),
            rect(200, 0, 100, 100).union(rect(300, 0, 25, 100)),  # 80 % on L2 and in S2
            rect(3000, 3000, 50, 50),
        ],
    )
    load(
        db,
        tmp_path,
        xzq=districts(tmp_path),
        gd=supplies(tmp_path, gd),
        dk=parcels(tmp_path, dk),
        qy=enterprises(tmp_path, ents),
        cc=outputs(tmp_path, cc),
        xm=xm,
    )
    return db


def test_enterprise_to_parcel_every_method(city):
    got = {r.from_key: r for r in _links(city, "enterprise_parcel")}
    assert (got[K].to_key, got[K].method) == ("L1", "key")
    assert (got[C].to_key, got[C].method, got[C].distance_m) == ("L2", "contains", 0)
    assert (got[G].to_key, got[G].method) == ("L3", "contains")
    assert (got[N].to_key, got[N].method) == ("L4", "nearest")
    assert got[N].distance_m == pytest.approx(30.0)
    # unlinked, never dropped, with the reason
    assert got[F].to_key is None and got[F].method is None
    assert "no parcel is within 50 m (nearest 80 m away)" in got[F].reason
    assert got[X].to_key is None
    assert got[X].reason == "no DKBH parcel and no coordinates (X, Y) to match"


def test_gcj02_point_matches_only_after_conversion(city):
    """Read as if WGS84, the AMap point would lie ~500 m off L3: the link needs the conversion."""
    glon, glat = gcj02_of(450, 50)
    x, y = FROM_WGS.transform(glon, glat)
    l3 = rect(400, 0, 100, 100)
    assert shapely.distance(shapely.Point(x, y), l3) > 300  # metres, without conversion
    got = {r.from_key: r for r in _links(city, "enterprise_parcel")}
    assert (got[G].to_key, got[G].method) == ("L3", "contains")


def test_supply_to_parcel_key_overlap_and_unlinked(city):
    rows = _links(city, "supply_parcel")
    linked = {(r.from_key, r.to_key): r for r in rows if r.from_key and r.to_key}
    assert linked[("S1", "L1")].method == "key"
    assert linked[("S2", "L2")].method == "overlap"
    assert linked[("S2", "L2")].share == pytest.approx(1.0)
    # L3: S3 covers 30 % of it, under 50 %: the parcel is listed unlinked with the figure
    l3 = next(r for r in rows if r.to_key == "L3")
    assert l3.from_key is None
    assert "largest overlap S3: 30.0 %" in l3.reason
    # S3 itself links to no parcel: listed too
    s3 = next(r for r in rows if r.from_key == "S3")
    assert s3.to_key is None and "no parcel" in s3.reason


def test_project_links(city):
    ps = {r.from_key: r for r in _links(city, "project_supply")}
    pp = {r.from_key: r for r in _links(city, "project_parcel")}
    assert (ps["J1"].to_key, ps["J1"].method) == ("S1", "key")
    assert (pp["J2"].to_key, pp["J2"].method) == ("L2", "key")
    # J3: 125 m × 100 m = 12,500 m²; 10,000 m² on L2 (80 %); S2 spans x 190-310, so
    # 110 m × 100 m = 11,000 m² of J3 lie in it (88 %)
    assert (pp["J3"].to_key, pp["J3"].method) == ("L2", "overlap")
    assert pp["J3"].share == pytest.approx(10_000 / 12_500)
    assert (ps["J3"].to_key, ps["J3"].method) == ("S2", "overlap")
    assert ps["J3"].share == pytest.approx(11_000 / 12_500)
    assert ps["J4"].to_key is None and "overlaps no supplie" in ps["J4"].reason
    assert pp["J4"].to_key is None


def test_parcel_split_by_a_district_boundary(city):
    rows = [r for r in _links(city, "parcel_district") if r.from_key == "L5"]
    assert [(r.to_key, round(r.share, 6), r.is_primary) for r in rows] == [
        ("330102", 0.6, True),
        ("330182", 0.4, False),
    ]
    # the enterprise's figures follow the area shares: 10,000 m² = 15 亩, SJSJ 100 万元
    with city.connect() as c:
        pm = {
            r.code: r
            for r in c.execute(
                text(
                    "SELECT code, area_mu, tax_paid FROM per_mu WHERE level = 'district' "
                    "AND year = 2024"
                )
            )
        }
        ez = c.execute(
            text(
                "SELECT to_key FROM links WHERE kind = 'enterprise_district' AND from_key = :u "
                "AND is_primary"
            ),
            {"u": S5},
        ).scalar_one()
    assert ez == "330102"
    # 330182 holds only L5's east 40 %: 6 亩 and 40 万元
    assert pm["330182"].area_mu == pytest.approx(0.4 * 15)
    assert pm["330182"].tax_paid == pytest.approx(40.0)


def test_shared_parcel_without_declared_area_is_split_equally(city):
    with city.connect() as c:
        land = dict(
            c.execute(
                text("SELECT uscc, area_m2 FROM enterprise_land WHERE uscc IN (:a, :b)"),
                {"a": H1, "b": H2},
            ).all()
        )
    assert land == {H1: pytest.approx(5000.0), H2: pytest.approx(5000.0)}


def test_imports_refresh_and_unchanged_reimport_does_nothing(city, tmp_path):
    def runs():
        with city.connect() as c:
            return c.execute(text("SELECT count(*) FROM analysis_runs")).scalar_one()

    def tax_per_mu():
        with city.connect() as c:
            return c.execute(
                text("SELECT tax_per_mu FROM per_mu WHERE level = 'enterprise' AND code = :u"),
                {"u": K},
            ).scalar_one()

    n = runs()
    assert tax_per_mu() == pytest.approx(100 / 15)
    cc = tmp_path / "CC.csv"
    rep = import_file(city, "cc", cc)  # the same file again
    assert rep["inserted"] == rep["updated"] == 0 and "refreshed" not in rep
    assert runs() == n
    # a changed figure: recomputed before the import returns
    import pandas as pd

    df = pd.read_csv(cc, encoding="utf-8-sig", dtype=str)
    df.loc[df.TYSHXYDM == K, "SJSJ"] = "300"
    cc2 = tmp_path / "CC2.csv"
    df.to_csv(cc2, index=False, encoding="utf-8-sig")
    rep = import_file(city, "cc", cc2)
    assert rep["updated"] == 1
    assert {"per_mu", "evaluation"} <= set(rep["refreshed"]["producers"])
    assert runs() == n + 1
    assert tax_per_mu() == pytest.approx(300 / 15)
