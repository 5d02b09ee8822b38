"""Admission review (项目准入, DOMAIN_RULES §5) on real PostGIS: each check failing alone.

Thresholds here come from a Rules object of the test (not rules.toml): 投资总额 >= 1000 万元,
亩均投资强度 >= 100, 亩均产值 >= 200, 亩均税收 >= 20 万元/亩. A 100 m × 100 m location is 15 亩.
"""

from __future__ import annotations

import pytest
from pyproj import Transformer
from shapely.geometry import mapping
from sqlalchemy import text

from gis.core.rules import Rules
from gis.platforms.admission import AdmissionInputError, AdmissionRequest, check
from tests.conftest import snapshot
from tests.plan_helpers import (
    AS_OF,
    OTHER,
    districts,
    insert,
    platform,
    rect,
    token,
)

RULES = Rules.model_validate(
    {
        "admission": {
            "default": {
                "investment_total_min": 1000.0,
                "investment_per_mu_min": 100.0,
                "output_per_mu_min": 200.0,
                "tax_per_mu_min": 20.0,
            },
            "districts": {
                "330102": {
                    "investment_total_min": 5000.0,
                    "investment_per_mu_min": 500.0,
                    "output_per_mu_min": 800.0,
                    "tax_per_mu_min": 60.0,
                }
            },
        }
    }
)
INSIDE = rect(10100, 100, 100, 100)  # 15 亩 inside platform P
SMALL = rect(10300, 100, 50, 20)  # 1.5 亩 inside P
_TO_WGS = Transformer.from_crs("EPSG:4549", "EPSG:4326", always_xy=True)


@pytest.fixture
def world(db):
    districts(db)
    insert(
        db,
        "platforms",
        [
            platform(
                "P",
                rect(10000, 0, 2000, 2000),
                "国家级",
                "经济技术开发区",
                tscy=["装备"],
                fmqd=["22", "2614"],
            ),
            platform("Q", rect(40000, 0, 500, 500)),  # remote, small, no TSCY: phase_out
        ],
    )
    insert(
        db,
        "supplies",
        [
            {
                "supply_no": "GD-1",
                "method": "出让",
                "land_use_code": "1001",
                "supplied_on": AS_OF,
                "agreed_start": AS_OF,
                "geom": rect(11000, 1000, 200, 200),
            }
        ],
    )
    insert(
        db,
        "parcels",
        [{"parcel_no": "DK-P", "land_use_code": "1001", "geom": rect(11500, 100, 100, 100)}],
    )
    return db


def req(geom=INSIDE, crs="EPSG:4549", **kw) -> AdmissionRequest:
    base = {
        "industry_code": "3914",
        "investment_total": 3000.0,  # 200 万元/亩 on 15 亩
        "expected_output": 6000.0,  # 400 万元/亩
        "expected_tax": 600.0,  # 40 万元/亩
        "location": mapping(geom) if geom is not None else None,
        "crs": crs,
        "as_of": AS_OF,
    }
    base.update(kw)
    return AdmissionRequest(**base)


def run(engine, r: AdmissionRequest) -> tuple[dict, dict]:
    with engine.connect() as conn:
        res = check(conn, r, RULES)
    return res, {c["check"]: c for c in res["checks"]}


def failing(checks: dict) -> list[str]:
    return [k for k, c in checks.items() if c["status"] == "fail"]


def test_all_checks_pass(world):
    res, c = run(world, req())
    assert res["admitted"] is True and failing(c) == []
    assert list(c) == [
        "platform_found",
        "negative_list",
        "platform_kind",
        "investment_total",
        "investment_per_mu",
        "output_per_mu",
        "tax_per_mu",
    ]
    assert res["location"]["area_mu"] == 15.0
    assert c["platform_found"]["figure"] == "P" and c["platform_found"]["share"] == 1.0
    assert c["investment_per_mu"]["figure"] == 200.0 and c["investment_per_mu"]["threshold"] == 100
    assert c["tax_per_mu"]["figure"] == 40.0 and c["tax_per_mu"]["unit"] == "万元/亩"
    assert res["location"]["outside_platforms"] is False
    assert res["location"]["overlaps_supplied"] == [] and res["notes"] == []
    assert res["as_of"] == "2026-06-30"


def test_platform_not_found_fails_alone(world):
    res, c = run(world, req(rect(20000, 0, 100, 100)))
    assert failing(c) == ["platform_found"] and res["admitted"] is False
    assert c["negative_list"]["status"] == "not_checked"
    assert c["platform_kind"]["status"] == "not_checked"
    assert res["location"]["outside_platforms"] is True
    assert "outside every platform" in res["notes"][0]


def test_negative_list_fails_alone(world):
    res, c = run(world, req(industry_code="2221"))  # paper: FMQD 22
    assert failing(c) == ["negative_list"]
    assert c["negative_list"]["matched"] == ["22"]
    _, c = run(world, req(industry_code="2619"))  # 26 but not 2614: allowed
    assert failing(c) == []
    _, c = run(world, req(industry_code="2614"))
    assert failing(c) == ["negative_list"]


def test_platform_kind_fails_alone(world):
    res, c = run(world, req(rect(40100, 100, 100, 100)))  # in Q, phase_out
    assert failing(c) == ["platform_kind"]
    assert c["platform_kind"]["figure"] == "phase_out"


def test_investment_total_fails_alone(world):
    # 900 万元 on 1.5 亩 = 600 万元/亩 (passes), but under the 1000 万元 total
    res, c = run(
        world, req(SMALL, investment_total=900.0, expected_output=600.0, expected_tax=60.0)
    )
    assert failing(c) == ["investment_total"]
    assert c["investment_total"]["figure"] == 900.0 and c["investment_total"]["threshold"] == 1000


def test_investment_per_mu_fails_alone(world):
    _, c = run(world, req(investment_total=1200.0))  # 80 万元/亩 < 100; total >= 1000
    assert failing(c) == ["investment_per_mu"]


def test_output_per_mu_fails_alone(world):
    _, c = run(world, req(expected_output=2000.0))  # 133.3 < 200
    assert failing(c) == ["output_per_mu"]
    assert c["output_per_mu"]["figure"] == pytest.approx(133.3333, abs=1e-3)


def test_tax_per_mu_fails_alone(world):
    _, c = run(world, req(expected_tax=200.0))  # 13.3 < 20
    assert failing(c) == ["tax_per_mu"]


def test_supplied_land_and_parcel_number_and_wgs84(world):
    res, c = run(world, req(rect(11100, 1100, 300, 50)))  # half on GD-1
    assert res["location"]["overlaps_supplied"] == [{"supply_no": "GD-1", "overlap_m2": 5000.0}]
    assert any("overlaps supplied land" in n for n in res["notes"])
    res, c = run(world, req(None, parcel_no="DK-P"))
    assert res["location"]["parcel_no"] == "DK-P" and res["location"]["area_mu"] == 15.0
    assert c["platform_found"]["figure"] == "P"
    ring = [_TO_WGS.transform(x, y) for x, y in INSIDE.exterior.coords]
    res, _ = run(
        world, req(None, location={"type": "Polygon", "coordinates": [ring]}, crs="EPSG:4326")
    )
    assert res["location"]["area_mu"] == pytest.approx(15.0, rel=1e-3)


def test_thresholds_per_district(world):
    insert(
        world,
        "platforms",
        [platform("M", rect(-20000, 0, 1000, 1000), "国家级", district="330102")],
    )
    res, c = run(world, req(rect(-19900, 100, 100, 100)))
    assert res["location"]["thresholds_from"] == "district 330102"
    assert c["investment_total"]["threshold"] == 5000.0
    res, _ = run(world, req())
    assert res["location"]["thresholds_from"] == "default"
    assert res["location"]["district"]["code"] == OTHER


def test_bad_requests(world):
    with pytest.raises(AdmissionInputError, match="either a location"):
        run(world, req(None))
    with pytest.raises(AdmissionInputError, match="no parcel"):
        run(world, req(None, parcel_no="NOPE"))
    with pytest.raises(AdmissionInputError, match="industry_code"):
        run(world, req(industry_code="C39"))
    with pytest.raises(AdmissionInputError, match="Polygon"):
        run(world, req(None, location={"type": "Point", "coordinates": [1, 2]}))


def test_admission_api_needs_an_analyst_and_writes_nothing(http, world):
    body = {
        "location": {"type": "Feature", "geometry": mapping(INSIDE), "properties": {}},
        "crs": "EPSG:4549",
        "industry_code": "3914",
        "investment_total": 30000,
        "expected_output": 30000,
        "expected_tax": 3000,
        "as_of": "2026-06-30",
    }
    assert http.post("/api/admission/check", json=body).status_code == 401
    headers = token(world, "analyst")
    before = snapshot(world)
    r = http.post("/api/admission/check", json=body, headers=headers)
    assert r.status_code == 200, r.text
    out = r.json()
    # rules.toml default for 建德市 330182 (placeholder figures)
    assert {c["check"]: c["status"] for c in out["checks"]}["platform_found"] == "pass"
    assert out["location"]["thresholds_from"] == "district 330182"
    assert snapshot(world) == before
    with world.connect() as c:  # the analyst's check is recorded in the audit log, nothing else
        assert c.execute(text("SELECT count(*) FROM audit_log WHERE method = 'POST'")).scalar() == 1
    bad = {**body, "location": {"type": "Polygon", "coordinates": "nonsense"}}
    r = http.post("/api/admission/check", json=bad, headers=headers)
    assert r.status_code == 422 and "GeoJSON" in r.json()["message"]
    r = http.post("/api/admission/check", json={**body, "investment_total": -1}, headers=headers)
    assert r.status_code == 422
