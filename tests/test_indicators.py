"""§7 indicators (两底线 两降低 四提升) worked out by hand, and the economy HTTP API against a real
server: filters, formats, the dossier, and what public callers may not see."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from gis.core import tokens
from tests.eval_city import (
    districts,
    enterprises,
    load,
    outputs,
    parcels,
    rect,
    table,
    uscc,
)
from tests.factories import write_shp

A, B, C = uscc(41), uscc(42), uscc(43)


def _row(u, year, out, tax, va, energy, emis):
    return {"TYSHXYDM": u, "ND": year, "GYZCZ": out, "YYSR": out, "SJSJ": tax, "GYZJZ": va,
            "ZHNH": energy, "PFDL": emis, "CYRS": 10, "YFFY": 10}  # fmt: skip


@pytest.fixture
def city(db, tmp_path):
    # A in platform PT1 (330102, featured 生物医药), B in 330102 outside it, C in 330182 inside
    # the corridor; every parcel 100 m × 100 m = 15 亩; Q is not industrial land (0702).
    pt = write_shp(
        tmp_path / "PT.shp",
        [{"PTDM": "PT1", "PTMC": "测试园区", "PTJB": "省级", "TSCY": "生物医药、医疗器械"}],
        [rect(-100, -100, 300, 300)],
    )
    zl = write_shp(
        tmp_path / "ZL.shp",
        [{"ZLDM": "CXKC", "ZLMC": "城西科创大走廊"}],
        [rect(5500, -500, 2000, 2000)],
    )
    dk = parcels(
        tmp_path,
        [
            ("PA", rect(0, 0, 100, 100), {}),
            ("PB", rect(1000, 0, 100, 100), {}),
            ("PC", rect(6000, 0, 100, 100), {"XZQDM": "330182"}),
            ("PQ", rect(6200, 0, 100, 100), {"XZQDM": "330182", "DLBM": "0702"}),
        ],
    )
    qy = enterprises(
        tmp_path,
        [
            {"TYSHXYDM": A, "QYMC": "甲药业", "HYDM": "2720", "GMYS": 1, "DKBH": "PA"},
            {"TYSHXYDM": B, "QYMC": "乙机械", "HYDM": "3484", "GMYS": 1, "DKBH": "PB"},
            {"TYSHXYDM": C, "QYMC": "丙电子", "HYDM": "3984", "GMYS": 1, "DKBH": "PC"},
        ],
    )
    cc = outputs(
        tmp_path,
        [
            _row(A, 2023, 1500, 150, 300, 100, 10),
            _row(A, 2024, 3000, 300, 600, 150, 12),
            _row(B, 2023, 1500, 75, 300, 300, 20),
            _row(B, 2024, 1500, 75, 300, 300, 20),
            _row(C, 2023, 600, 30, 100, 200, 5),
            _row(C, 2024, 600, 30, 100, 200, 5),
        ],
    )
    tj = table(
        tmp_path,
        "TJ.csv",
        [
            {"XZQDM": "330102", "ND": 2023, "GDP": 100000, "GYZJZ": 25000},
            {"XZQDM": "330102", "ND": 2024, "GDP": 100000, "GYZJZ": 30000},
            {"XZQDM": "330182", "ND": 2024, "GDP": 50000, "GYZJZ": 20000},
        ],
    )
    bd = table(tmp_path, "BD.csv", [{"TYSHXYDM": B, "ND": 2024, "BDLX": "节能降耗"}])
    load(db, tmp_path, xzq=districts(tmp_path), pt=pt, zl=zl, dk=dk, qy=qy, cc=cc, tj=tj, bd=bd)
    return db


def _ind(db, level, code, year, name):
    with db.connect() as c:
        return c.execute(
            text(
                "SELECT value, previous, change, rank FROM area_indicators WHERE level = :l "
                "AND code = :c AND year = :y AND indicator = :i"
            ),
            {"l": level, "c": code, "y": year, "i": name},
        ).one()


def test_district_indicators_by_hand(city):
    # 330102 in 2024: A and B, 30 亩; GYZCZ 3000 + 1500; SJSJ 300 + 75; ZHNH 150 + 300 over
    # GYZJZ 600 + 300; PFDL 12 + 20; A is in the platform, featured (27 生物医药), high-tech (27)
    v = lambda name: _ind(city, "district", "330102", 2024, name)  # noqa: E731
    assert v("output_per_mu").value == pytest.approx(4500 / 30)
    assert v("output_per_mu").previous == pytest.approx(3000 / 30)
    assert v("output_per_mu").change == pytest.approx(4500 / 30 - 3000 / 30)
    assert v("tax_per_mu").value == pytest.approx(375 / 30)
    assert v("energy_per_va").value == pytest.approx(450 / 900)
    assert v("emissions_t").value == pytest.approx(32)
    assert v("platform_output_share").value == pytest.approx(3000 / 4500 * 100)
    assert v("featured_output_share").value == pytest.approx(3000 / 4500 * 100)
    assert v("high_tech_output_share").value == pytest.approx(3000 / 4500 * 100)
    assert v("va_gdp_share").value == pytest.approx(30.0)
    assert v("va_gdp_share").change == pytest.approx(5.0)
    assert v("industrial_land_mu").value == pytest.approx(30)
    # 330182: C only, 15 亩 (PQ, 0702, is not industrial land); no 2023 statistics
    w = lambda name: _ind(city, "district", "330182", 2024, name)  # noqa: E731
    assert w("output_per_mu").value == pytest.approx(600 / 15)
    assert w("energy_per_va").value == pytest.approx(200 / 100)
    assert w("high_tech_output_share").value == pytest.approx(100.0)  # 3984: 39
    assert w("platform_output_share").value == pytest.approx(0.0)
    assert w("industrial_land_mu").value == pytest.approx(15)
    assert w("va_gdp_share").value == pytest.approx(40.0)
    assert w("va_gdp_share").previous is None and w("va_gdp_share").change is None
    # ranks (1 = best; energy and emissions: lower is better)
    assert (v("output_per_mu").rank, w("output_per_mu").rank) == (1, 2)
    assert (v("energy_per_va").rank, w("energy_per_va").rank) == (1, 2)
    assert (v("emissions_t").rank, w("emissions_t").rank) == (2, 1)
    assert (v("va_gdp_share").rank, w("va_gdp_share").rank) == (2, 1)


def test_platform_and_corridor_indicators(city):
    # PT1: A only; the platform's share of the city's GYZCZ: 3000 / (4500 + 600)
    assert _ind(city, "platform", "PT1", 2024, "output_per_mu").value == pytest.approx(200)
    share = _ind(city, "platform", "PT1", 2024, "platform_output_share").value
    assert share == pytest.approx(3000 / 5100 * 100)
    assert _ind(city, "corridor", "CXKC", 2024, "output_per_mu").value == pytest.approx(40)
    assert _ind(city, "platform", "PT1", 2024, "va_gdp_share").value is None


@pytest.fixture
def analyst(city) -> dict:
    with city.begin() as conn:
        return {"Authorization": f"Bearer {tokens.create(conn, 'analyst')}"}


def test_public_callers_never_see_tax_energy_or_emissions(http, city, analyst):
    pub = http.get("/api/indicators", params={"level": "district", "year": 2024}).json()
    assert "tax_per_mu" not in pub["indicators"] and "emissions_t" not in pub["indicators"]
    assert all("energy_per_va" not in z["indicators"] for z in pub["items"])
    full = http.get(
        "/api/indicators", params={"level": "district", "year": 2024}, headers=analyst
    ).json()
    got = {z["code"]: z["indicators"] for z in full["items"]}
    assert got["330102"]["tax_per_mu"]["value"] == pytest.approx(12.5)

    ev = http.get("/api/evaluations", params={"year": 2024, "group": "above"}).json()
    assert {i["uscc"] for i in ev["items"]} == {A, B, C}
    for item in ev["items"]:
        assert set(item) >= {"uscc", "name", "year", "group", "score", "class", "rank",
                             "indicators", "not_graded_reason"}  # fmt: skip
        assert "tax_per_mu" not in item["indicators"]
        assert "va_per_energy" not in item["points"]
    ev_a = http.get("/api/evaluations", params={"year": 2024}, headers=analyst).json()
    assert all("tax_per_mu" in i["indicators"] for i in ev_a["items"])

    d = http.get(f"/api/enterprises/{B}").json()
    assert d["parcels"][0]["parcel_no"] == "PB" and d["parcels"][0]["method"] == "key"
    assert [f["year"] for f in d["figures"]] == [2023, 2024]
    assert all("tax_paid" not in f and "energy_tce" not in f for f in d["figures"])
    assert d["failed_standards"] == [
        {
            "year": 2024,
            "kind": "节能降耗",
            "batch_id": d["failed_standards"][0]["batch_id"],
        }
    ]  # its note (SM) is for analysts
    assert d["evaluations"][-1]["flags"] == ["节能降耗"]
    da = http.get(f"/api/enterprises/{B}", headers=analyst).json()
    assert da["figures"][-1]["tax_paid"] == pytest.approx(75)
    assert http.get("/api/enterprises/91330100MA2A99999X").status_code == 404


def test_enterprise_filters_and_formats(http, city, analyst):
    r = http.get("/api/enterprises", params={"district": "330102"}).json()
    assert {i["uscc"] for i in r["items"]} == {A, B}
    r = http.get("/api/enterprises", params={"platform": "PT1"}).json()
    assert [i["uscc"] for i in r["items"]] == [A]
    r = http.get("/api/enterprises", params={"q": "电子"}).json()
    assert [i["uscc"] for i in r["items"]] == [C]
    r = http.get("/api/enterprises", params={"industry": "27"}).json()
    assert [i["uscc"] for i in r["items"]] == [A]
    r = http.get("/api/enterprises", params={"q": B.lower()}).json()
    assert [i["uscc"] for i in r["items"]] == [B]
    csv = http.get("/api/evaluations", params={"year": 2024, "format": "csv"})
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    head = csv.text.lstrip("\ufeff").splitlines()
    assert head[0].startswith("统一社会信用代码,企业名称,年度,规上/规下")  # people's headers
    assert head[1].startswith("uscc,name,year,group")  # the codes scripts read
    assert "v_tax_per_mu" not in head[1]
    xlsx = http.get("/api/indicators", params={"level": "platform", "format": "xlsx"})
    assert xlsx.status_code == 200 and xlsx.content[:2] == b"PK"
    assert http.get("/api/backward-capacity", params={"year": 2024}).status_code == 401
    bc = http.get("/api/backward-capacity", params={"year": 2024}, headers=analyst)
    assert bc.status_code == 200 and bc.json()["items"] == []  # no key-industry D/C firms
    bad = http.get("/api/evaluations", params={"group": "middle"})
    assert bad.status_code == 422 and "group" in bad.json()["message"]
