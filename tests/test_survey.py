"""The survey's 家底 (gis/management/survey.py, GET /api/survey…, landlink survey) on a hand-built
city where each parcel's SJYT, place on the chain, enterprise and holder are known, and on the
sample city.

The hand-built city (every parcel 100 × 100 m = 10,000 m² = 15 亩 = 1 公顷; as of 2025-06-30):

======  ===========  =============  ============  =====================  =================
parcel  x (m)        SJYT           chain         enterprise (how)       holder (QLRDM)
======  ===========  =============  ============  =====================  =================
DK-1    0            工业           达标          E1 (DKBH)              E1
DK-2    200          挪作他用       投而未达标    E2 (point inside)      uscc(9), no firm
DK-3    400          闲置           供而未用      none                   none
DK-4    1450         (none) 未填    达标          E3 (DKBH)              none
DK-5    4950, M0     创新型产业     建而未投      E4 (nearest, 20 m)     E4
DK-6    7000, 0702   (not industrial: excluded)
DK-7    8000         工业           批而未供      none                   none
DK-8    20000        工业           达标          none                   none
======  ===========  =============  ============  =====================  =================

Districts split at x = 5,000 (DK-5 half in each; the tie goes to the smaller code, 330102);
DK-8 lies in no district. The platform PT1 covers x -100 … 1,500 (DK-4 half in it). DK-3's
supply record is overdue (agreed start 2025-01-01, not started); DK-5's is completed with a
project still 在建; DK-7 lies on approval PZ-7 (200 × 100 = 30 亩, nothing supplied). E5's point
lies in no parcel (rented land: YDMJ 3,000 m² = 4.5 亩 in 2024), E6 has neither DKBH nor point,
E7 names a parcel that does not exist.
"""

from __future__ import annotations

import io
from datetime import date

import pytest
import shapely
from openpyxl import load_workbook
from sqlalchemy import text

from gis.management import survey as sv
from tests.factories import uscc
from tests.land_helpers import X0, Y0, approval, detect, insert, parcel, rect, supply

AS_OF = date(2025, 6, 30)
MU = 15.0  # one parcel
HA = 1.0


def point(x: float, y: float) -> shapely.Geometry:
    return shapely.Point(X0 + x, Y0 + y)


def build(db) -> None:
    insert(
        db,
        "districts",
        [
            {"code": "330102", "name": "上城区", "geom": rect(-5000, -5000, 10000, 10000)},
            {"code": "330182", "name": "建德市", "geom": rect(5000, -5000, 10000, 10000)},
        ],
    )
    insert(
        db,
        "platforms",
        [{"code": "PT1", "name": "测试平台", "level": "省级", "geom": rect(-100, -100, 1600, 400)}],
    )
    insert(db, "approvals", [approval("PZ-7", rect(8000, 0, 200, 100))])
    started = {"agreed_start": date(2023, 1, 1), "actual_start": date(2023, 2, 1)}
    insert(
        db,
        "supplies",
        [
            supply("GD-1", rect(0, 0, 100, 100), **started),
            supply("GD-2", rect(200, 0, 100, 100), **started),
            supply("GD-3", rect(400, 0, 100, 100), agreed_start=date(2025, 1, 1)),
            supply("GD-5", rect(4950, 0, 100, 100), actual_completion=date(2024, 1, 1), **started),
        ],
    )
    built = {"floor_area_m2": 20_000.0, "footprint_m2": 5_000.0}  # plot ratio 2, footprint 50 %
    insert(
        db,
        "parcels",
        [
            parcel("DK-1", rect(0, 0, 100, 100), actual_use="工业", supply_no="GD-1",
                   holder_name="甲公司", holder_uscc=uscc(1), **built),
            parcel("DK-2", rect(200, 0, 100, 100), actual_use="挪作他用", supply_no="GD-2",
                   holder_name="九号投资公司", holder_uscc=uscc(9), **built),
            parcel("DK-3", rect(400, 0, 100, 100), actual_use="闲置", supply_no="GD-3", **built),
            parcel("DK-4", rect(1450, 0, 100, 100), holder_name="丙公司", **built),
            parcel("DK-5", rect(4950, 0, 100, 100), land_use_code="M0", actual_use="创新型产业",
                   supply_no="GD-5", holder_name="丁公司", holder_uscc=uscc(4), **built),
            parcel("DK-6", rect(7000, 0, 100, 100), land_use_code="0702", actual_use="工业"),
            parcel("DK-7", rect(8000, 0, 100, 100), actual_use="工业", **built),
            parcel("DK-8", rect(20000, 0, 100, 100), actual_use="工业", **built),
        ],
    )  # fmt: skip
    insert(
        db,
        "enterprises",
        [
            {"uscc": uscc(1), "name": "甲公司", "industry_code": "2611", "parcel_nos": ["DK-1"]},
            {
                "uscc": uscc(2),
                "name": "乙公司",
                "industry_code": "2611",
                "parcel_nos": [],
                "geom": point(250, 50),
            },
            {"uscc": uscc(3), "name": "丙公司", "industry_code": "2611", "parcel_nos": ["DK-4"]},
            {
                "uscc": uscc(4),
                "name": "丁公司",
                "industry_code": "2611",
                "parcel_nos": [],
                "geom": point(5070, 120),
            },
            {
                "uscc": uscc(5),
                "name": "戊公司",
                "industry_code": "2611",
                "parcel_nos": [],
                "geom": point(3000, 3000),
            },
            {"uscc": uscc(6), "name": "己公司", "industry_code": "2611", "parcel_nos": []},
            {"uscc": uscc(7), "name": "庚公司", "industry_code": "2611", "parcel_nos": ["DK-99"]},
        ],
    )
    insert(
        db,
        "outputs",
        [{"uscc": uscc(5), "year": 2024, "tax_paid": 10.0, "declared_land_m2": 3_000.0}],
    )
    insert(
        db,
        "projects",
        [{"project_code": "XM-5", "name": "丁公司扩建", "parcel_no": "DK-5",
          "planned_investment": 1000.0, "status": "在建"}],
    )  # fmt: skip
    detect(db, AS_OF)


@pytest.fixture
def city(db):
    build(db)
    return db


def _rows(body: dict) -> dict:
    return {r["code"] if r["row"] == "zone" else r["row"]: r for r in body["rows"]}


def _mu(row: dict, part: str) -> dict[str, float]:
    return {k: v["mu"] for k, v in row[part].items()}


def _zero(keys) -> dict[str, float]:
    return dict.fromkeys(keys, 0.0)


USES = ("工业", "创新型产业", "挪作他用", "闲置", "未填")
CHAIN = ("unsupplied", "unused", "underused", "not_operating", "below_standard", "cleared")


def test_each_parcel_placed_on_the_chain_as_worked_by_hand(city) -> None:
    from gis.lands import chain

    with city.connect() as conn:
        got = {no: chain.position(f) for no, f in chain.facts(conn).items()}
    assert got == {
        "DK-1": "cleared",
        "DK-2": "below_standard",
        "DK-3": "unused",
        "DK-4": "cleared",
        "DK-5": "not_operating",
        "DK-6": "cleared",
        "DK-7": "unsupplied",
        "DK-8": "cleared",
    }


def test_district_survey_by_use_and_chain(city, http) -> None:
    r = http.get("/api/survey", params={"level": "district"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["year"] == 2024 and body["run"] is not None
    rows = _rows(body)
    assert list(rows) == ["330102", "330182", "outside", "city"]
    d1, d2, out, city_row = rows["330102"], rows["330182"], rows["outside"], rows["city"]
    # 330102: DK-1..DK-4 whole, half of DK-5
    assert _mu(d1, "by_use") == pytest.approx(
        {**_zero(USES), "工业": MU, "挪作他用": MU, "闲置": MU, "未填": MU, "创新型产业": MU / 2}
    )
    assert _mu(d1, "by_chain") == pytest.approx(
        {**_zero(CHAIN), "cleared": 2 * MU, "below_standard": MU, "unused": MU,
         "not_operating": MU / 2}
    )  # fmt: skip
    assert d1["total"] == pytest.approx({"mu": 4.5 * MU, "ha": 4.5 * HA})
    assert d1["parcels"] == 5  # DK-5's tie goes to the smaller code
    # 330182: half of DK-5, DK-7 (DK-6 is not industrial land)
    assert _mu(d2, "by_use") == pytest.approx({**_zero(USES), "创新型产业": MU / 2, "工业": MU})
    assert _mu(d2, "by_chain") == pytest.approx(
        {**_zero(CHAIN), "not_operating": MU / 2, "unsupplied": MU}
    )
    assert d2["parcels"] == 1
    assert d2["by_use"]["工业"]["ha"] == pytest.approx(HA)
    # DK-8 lies in no district
    assert _mu(out, "by_use") == pytest.approx({**_zero(USES), "工业": MU})
    assert _mu(out, "by_chain") == pytest.approx({**_zero(CHAIN), "cleared": MU})
    # the city is the whole: 7 industrial parcels, and the zones plus outside add up to it
    assert city_row["total"] == pytest.approx({"mu": 7 * MU, "ha": 7 * HA})
    assert city_row["parcels"] == 7
    for part, keys in (("by_use", USES), ("by_chain", CHAIN)):
        for k in keys:
            assert sum(rows[z][part][k]["mu"] for z in ("330102", "330182", "outside")) == (
                pytest.approx(city_row[part][k]["mu"])
            )
    assert body["excluded"]["parcels"] == 1 and body["excluded"]["mu"] == pytest.approx(MU)
    # 批而未供 as the three lands count it: PZ-7's remainder, beside the chain (not in totals)
    assert d2["unsupplied_remainder"]["mu"] == pytest.approx(30.0)
    assert city_row["unsupplied_remainder"]["mu"] == pytest.approx(30.0)
    assert d1["unsupplied_remainder"]["mu"] == 0
    # list counts: by zone, and all
    assert body["lists"]["unlinked-enterprises"]["count"] == 3
    assert body["lists"]["parcels-without-enterprise"]["count"] == 3
    assert body["lists"]["holder-mismatch"]["count"] == 2
    assert d1["lists"] == {
        "unlinked-enterprises": 1,  # E5 by its point
        "parcels-without-enterprise": 1,  # DK-3
        "holder-mismatch": 2,  # DK-2, DK-4
    }
    assert d2["lists"]["parcels-without-enterprise"] == 1  # DK-7
    assert out["lists"] == {
        "unlinked-enterprises": 2,  # E6, E7 have no point
        "parcels-without-enterprise": 1,  # DK-8
        "holder-mismatch": 0,
    }
    href = body["lists"]["holder-mismatch"]["href"]
    assert href.startswith(str(http.base_url).rstrip("/")) and "level=district" in href


def test_platform_survey_splits_a_parcel_at_the_boundary(city, http) -> None:
    body = http.get("/api/survey", params={"level": "platform"}).json()
    rows = _rows(body)
    assert list(rows) == ["PT1", "outside", "city"]
    pt, out = rows["PT1"], rows["outside"]
    assert _mu(pt, "by_use") == pytest.approx(
        {**_zero(USES), "工业": MU, "挪作他用": MU, "闲置": MU, "未填": MU / 2}
    )
    assert _mu(pt, "by_chain") == pytest.approx(
        {**_zero(CHAIN), "cleared": 1.5 * MU, "below_standard": MU, "unused": MU}
    )
    assert _mu(out, "by_use") == pytest.approx(
        {**_zero(USES), "未填": MU / 2, "创新型产业": MU, "工业": 2 * MU}
    )
    assert _mu(out, "by_chain") == pytest.approx(
        {**_zero(CHAIN), "cleared": 1.5 * MU, "not_operating": MU, "unsupplied": MU}
    )
    assert (pt["parcels"], out["parcels"], rows["city"]["parcels"]) == (4, 3, 7)
    assert pt["total"]["mu"] + out["total"]["mu"] == pytest.approx(rows["city"]["total"]["mu"])


def test_the_three_lists_exactly(city, http) -> None:
    def items(name, **params):
        r = http.get(f"/api/survey/lists/{name}", params={"level": "district", **params})
        assert r.status_code == 200, r.text
        return r.json()

    un = items("unlinked-enterprises")
    assert [(i["uscc"], i["zone_code"]) for i in un["items"]] == [
        (uscc(5), "330102"),
        (uscc(6), None),
        (uscc(7), None),
    ]
    e5 = un["items"][0]
    assert e5["name"] == "戊公司" and e5["land_basis"] == "declared"
    assert e5["declared_mu"] == pytest.approx(4.5)
    assert "no parcel is within 50 m" in e5["reason"]
    assert "DK-99" in un["items"][2]["reason"]
    assert "tax_paid" not in str(un) and "tax_per_mu" not in str(un)

    wo = items("parcels-without-enterprise")
    assert [(i["parcel_no"], i["chain_position"], i["zone_code"]) for i in wo["items"]] == [
        ("DK-3", "unused", "330102"),
        ("DK-7", "unsupplied", "330182"),
        ("DK-8", "cleared", None),
    ]
    assert wo["items"][0]["chain_label"] == "供而未用" and wo["items"][0]["area_mu"] == 15.0

    hm = items("holder-mismatch")
    got = {i["parcel_no"]: i for i in hm["items"]}
    assert set(got) == {"DK-2", "DK-4"}
    assert got["DK-2"]["reason"] == "other_holder" and got["DK-2"]["holder_uscc"] == uscc(9)
    assert got["DK-2"]["holder_registered"] is False
    assert got["DK-2"]["user_usccs"] == [uscc(2)]
    assert got["DK-4"]["reason"] == "no_holder" and got["DK-4"]["user_usccs"] == [uscc(3)]

    # a zone's list, paging and the link to the next page
    assert [i["uscc"] for i in items("unlinked-enterprises", code="outside")["items"]] == [
        uscc(6),
        uscc(7),
    ]
    page = items("unlinked-enterprises", limit=2, offset=0)
    assert page["numberMatched"] == 3 and page["numberReturned"] == 2
    assert any(link["rel"] == "next" for link in page["links"])
    assert items("unlinked-enterprises", limit=2, offset=2)["items"][0]["uscc"] == uscc(7)


def test_bad_requests_answer_json_errors(city, http) -> None:
    r = http.get("/api/survey/lists/no-such-list")
    assert r.status_code == 404 and "holder-mismatch" in r.json()["message"]
    r = http.get("/api/survey", params={"level": "corridor"})
    assert r.status_code == 422 or r.status_code == 400
    r = http.get("/api/survey", params={"year": 2019})
    assert r.status_code == 404 and "2024" in r.json()["message"]
    r = http.get("/api/survey/lists/holder-mismatch", params={"code": "999999"})
    assert r.status_code == 400 and "999999" in r.json()["message"]


def _sheet_rows(ws) -> tuple[list[str], list[tuple], tuple]:
    rows = list(ws.iter_rows(values_only=True))
    assert str(rows[0][0]).startswith("工业用地家底调查")
    assert str(rows[1][0]).startswith("制表日期: ")
    header = [str(h) for h in rows[2]]
    body, total = rows[3:-1], rows[-1]
    assert str(total[0]).startswith("合计")
    return header, body, total


def test_xlsx_has_a_sheet_per_table_with_totals(city, http) -> None:
    r = http.get("/api/survey.xlsx", params={"level": "district"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/vnd.openxmlformats")
    wb = load_workbook(io.BytesIO(r.content))
    assert wb.sheetnames == [
        "按实际用途",
        "按用地链条",
        "未关联地块的企业",
        "无企业的地块",
        "权利人与使用企业不一致的地块",
    ]
    body = http.get("/api/survey", params={"level": "district"}).json()
    city_row = _rows(body)["city"]
    ws = wb["按实际用途"]
    assert ws.freeze_panes == "B4"
    header, rows, total = _sheet_rows(ws)
    assert header[:3] == ["行政区代码", "名称", "地块(宗)"]
    assert "工业(亩)" in header and "未填(公顷)" in header and "小计(亩)" in header
    assert [r[1] for r in rows] == ["上城区", "建德市", "不在任何行政区"]
    for i, h in enumerate(header[2:], start=2):  # 合计 is the sum of the rows
        assert total[i] == pytest.approx(sum(r[i] or 0 for r in rows)), h
    assert total[header.index("小计(亩)")] == pytest.approx(city_row["total"]["mu"])
    assert total[header.index("工业(亩)")] == pytest.approx(city_row["by_use"]["工业"]["mu"])
    header, rows, total = _sheet_rows(wb["按用地链条"])
    assert "批而未供(亩)" in header and "达标(公顷)" in header
    assert total[header.index("建而未投(亩)")] == pytest.approx(MU)
    assert total[header.index("批而未供·批文未供部分(亩)")] == pytest.approx(30.0)
    header, rows, total = _sheet_rows(wb["无企业的地块"])
    assert header[:3] == ["地块编号", "面积(亩)", "面积(公顷)"]
    assert [r[0] for r in rows] == ["DK-3", "DK-7", "DK-8"]
    assert total[1] == pytest.approx(3 * MU) and total[2] == pytest.approx(3 * HA)
    header, rows, _ = _sheet_rows(wb["未关联地块的企业"])
    assert [r[header.index("统一社会信用代码")] for r in rows] == [uscc(5), uscc(6), uscc(7)]
    # one list alone, as the page's download link fetches it
    r = http.get("/api/survey/lists/holder-mismatch", params={"format": "xlsx"})
    header, rows, _ = _sheet_rows(load_workbook(io.BytesIO(r.content)).worksheets[0])
    assert sorted(r[0] for r in rows) == ["DK-2", "DK-4"]


def test_reading_the_survey_writes_nothing(city, http) -> None:
    from tests.conftest import snapshot

    before = snapshot(city)
    for level in ("district", "platform"):
        assert http.get("/api/survey", params={"level": level}).status_code == 200
        assert http.get("/api/survey.xlsx", params={"level": level}).status_code == 200
    assert snapshot(city) == before


def test_cli_survey(city, tmp_path, capsys) -> None:
    from app.cli import main

    out = tmp_path / "survey.xlsx"
    assert main(["survey", "--level", "platform", "--out", str(out)]) == 0
    assert load_workbook(out).sheetnames[0] == "按实际用途"
    capsys.readouterr()
    assert main(["survey", "--level", "district"]) == 0
    text_out = capsys.readouterr().out
    assert "全市" in text_out and "不在任何行政区" in text_out and "批而未供" in text_out
    assert main(["survey", "--json"]) == 0
    assert '"holder-mismatch"' in capsys.readouterr().out


def test_sample_city_survey(analysed_sample) -> None:
    """The sample city: the district totals are §7's 工业用地面积; enterprises on rented land are
    unlinked and some surveyed parcels have no enterprise. Its generator writes every parcel's
    QLRDM as the code of an enterprise on it, so the holder list is empty, and SJYT is always
    filled (no 未填): both checked here against the data rather than assumed."""
    fr = sv.survey(analysed_sample, "district")
    body = sv.summary(fr)
    rows = _rows(body)
    assert body["lists"]["unlinked-enterprises"]["count"] > 0
    assert body["lists"]["parcels-without-enterprise"]["count"] > 0
    with analysed_sample.connect() as conn:
        land = dict(
            conn.execute(
                text(
                    "SELECT code, value FROM area_indicators WHERE level = 'district' "
                    "AND indicator = 'industrial_land_mu' "
                    "AND year = (SELECT max(year) FROM area_indicators)"
                )
            ).all()
        )
        mismatched = conn.execute(
            text(
                """SELECT count(*) FROM parcels p
                   WHERE EXISTS (SELECT 1 FROM links l WHERE l.kind = 'enterprise_parcel'
                                 AND l.to_key = p.parcel_no)
                     AND p.land_use_code = ANY(:codes)
                     AND (p.holder_uscc IS NULL OR NOT EXISTS (
                         SELECT 1 FROM links l WHERE l.kind = 'enterprise_parcel'
                         AND l.to_key = p.parcel_no AND l.from_key = p.holder_uscc))"""
            ),
            {"codes": list(sv.INDUSTRIAL_LAND_CODES)},
        ).scalar_one()
        unfilled = conn.execute(
            text(
                "SELECT coalesce(sum(area_m2), 0) FROM parcels WHERE actual_use IS NULL "
                "AND land_use_code = ANY(:codes)"
            ),
            {"codes": list(sv.INDUSTRIAL_LAND_CODES)},
        ).scalar_one()
    assert body["lists"]["holder-mismatch"]["count"] == mismatched == 0
    assert rows["city"]["by_use"]["未填"]["mu"] == pytest.approx(unfilled / sv.M2_PER_MU) == 0
    for code, mu in land.items():
        assert rows[code]["total"]["mu"] == pytest.approx(mu, abs=1e-3)
    zones = [r for k, r in rows.items() if k != "city"]
    assert sum(r["total"]["mu"] for r in zones) == pytest.approx(rows["city"]["total"]["mu"])
    assert sum(r["by_chain"]["below_standard"]["mu"] for r in zones) > 0


def test_an_empty_city_answers_with_zeros(http) -> None:
    for level in ("district", "platform"):
        body = http.get("/api/survey", params={"level": level}).json()
        assert [r["row"] for r in body["rows"]] == ["outside", "city"]
        assert body["rows"][1]["total"] == {"mu": 0.0, "ha": 0.0}
        assert body["year"] is None and body["run"] is None
        assert http.get("/api/survey.xlsx", params={"level": level}).status_code == 200
        for name in sv.LIST_NAMES:
            r = http.get(f"/api/survey/lists/{name}", params={"level": level})
            assert r.status_code == 200 and r.json()["numberMatched"] == 0


def _each_list_alone_equals_the_whole(engine) -> int:
    """Compares every list read alone (``read(..., only=name)``, as the list endpoint reads it)
    with the same list of the whole survey, per level and zone; returns the items compared."""
    n = 0
    with engine.connect() as conn:
        for level in sv.LEVELS:
            whole = sv.read(conn, level)
            codes = [None, "outside", *whole.zones["code"]]
            for name in sv.LIST_NAMES:
                alone = sv.read(conn, level, only=name)
                with pytest.raises(ValueError, match="alone"):
                    sv.summary(alone)
                for code in codes:
                    want = sv.list_items(whole, name, code)
                    assert sv.list_items(alone, name, code) == want, (level, name, code)
                    n += len(want["items"])
    return n


def test_a_list_read_alone_is_that_list_of_the_whole_survey(city, analysed_sample) -> None:
    # the city worked by hand (places from the facts: the graph has not run) and the sample
    # city (places kept by the graph); every list has items in one of them
    assert _each_list_alone_equals_the_whole(city) > 0
    assert _each_list_alone_equals_the_whole(analysed_sample) > 0
    with city.connect() as conn:
        assert len(sv.read(conn, "district", only="holder-mismatch").lists["holder-mismatch"]) == 2
