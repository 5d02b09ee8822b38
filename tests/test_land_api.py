"""The three-kinds-of-land HTTP API against a real server and PostGIS: filters, paging, tokens,
detection runs and their diff."""

from __future__ import annotations

import json
from datetime import date

import pytest
from pyproj import Transformer

from gis.core import tokens
from tests.land_helpers import X0, Y0, approval, city, detect, insert, rect

AS_OF = date(2025, 6, 30)
TO_LONLAT = Transformer.from_crs(4549, 4326, always_xy=True)


@pytest.fixture
def land(http, db):
    city(db)
    run = detect(db, AS_OF)
    return http, db, run


def analyst(db) -> dict:
    with db.begin() as conn:
        return {"Authorization": f"Bearer {tokens.create(conn, 'analyst')}"}


def test_no_run_yet(http):
    r = http.get("/api/land/unsupplied")
    assert r.status_code == 404 and "landlink detect" in r.json()["message"]


def test_unsupplied_list(land):
    http, _, run = land
    r = http.get("/api/land/unsupplied")
    assert r.status_code == 200
    body = r.json()
    assert body["run"]["id"] == run["id"] and body["run"]["as_of"] == "2025-06-30"
    items = {i["approval_id"]: i for i in body["items"]}
    assert set(items) == {"PZ-W1", "PZ-W2", "PZ-E2"}  # PZ-E1 is fully supplied
    w1 = items["PZ-W1"]
    assert (w1["approved_m2"], w1["supplied_m2"], w1["unsupplied_m2"], w1["unsupplied_mu"]) == (
        20000,
        12000,
        8000,
        12,
    )
    assert w1["age_band"] == ">=5" and w1["years_since_approval"] == 5.49
    assert w1["district"] == "330102" and w1["platform"] == "PT1" and w1["corridor"] is None
    assert items["PZ-E2"]["unsupplied_mu"] == 22.5 and items["PZ-E2"]["corridor"] == "CDZZ"
    assert items["PZ-W2"]["age_band"] == "<1"
    # default order: largest unsupplied area first
    assert [i["approval_id"] for i in body["items"]] == ["PZ-W2", "PZ-E2", "PZ-W1"]


@pytest.mark.parametrize(
    "params, expected",
    [
        ({"district": "330182"}, {"PZ-E2"}),
        ({"platform": "PT1"}, {"PZ-W1", "PZ-W2"}),
        ({"corridor": "CDZZ"}, {"PZ-E2"}),
        ({"min_mu": 20}, {"PZ-W2", "PZ-E2"}),
        ({"status": "all"}, {"PZ-W1", "PZ-W2", "PZ-E1", "PZ-E2"}),
        ({"status": "supplied"}, {"PZ-E1"}),
        ({"age_band": "<1"}, {"PZ-W2"}),
        (
            {"bbox": f"{X0 - 10},{Y0 - 10},{X0 + 1500},{Y0 + 200}", "bbox-crs": "EPSG:4549"},
            {"PZ-W1", "PZ-W2"},
        ),
    ],
)
def test_unsupplied_filters(land, params, expected):
    http, _, _ = land
    r = http.get("/api/land/unsupplied", params=params)
    assert r.status_code == 200, r.text
    assert {i["approval_id"] for i in r.json()["items"]} == expected


def test_bbox_and_intersects_in_lon_lat(land):
    http, _, _ = land
    # around PZ-E2's remainder only (x 7050-7200), in lon/lat
    (lo1, la1), (lo2, la2) = (
        TO_LONLAT.transform(X0 + 7060, Y0 + 10),
        TO_LONLAT.transform(X0 + 7100, Y0 + 50),
    )
    r = http.get("/api/land/unsupplied", params={"bbox": f"{lo1},{la1},{lo2},{la2}"})
    assert {i["approval_id"] for i in r.json()["items"]} == {"PZ-E2"}
    # EPSG:4326 takes lat,lon (OGC axis order)
    r = http.get(
        "/api/land/unsupplied",
        params={"bbox": f"{la1},{lo1},{la2},{lo2}", "bbox-crs": "EPSG:4326"},
    )
    assert {i["approval_id"] for i in r.json()["items"]} == {"PZ-E2"}
    poly = {
        "type": "Polygon",
        "coordinates": [[[lo1, la1], [lo2, la1], [lo2, la2], [lo1, la2], [lo1, la1]]],
    }
    r = http.get("/api/land/unsupplied", params={"intersects": json.dumps(poly)})
    assert {i["approval_id"] for i in r.json()["items"]} == {"PZ-E2"}
    # the supplied part of PZ-E2 (x 7000-7050) holds no remainder
    (a, b), (c, d) = (
        TO_LONLAT.transform(X0 + 7010, Y0 + 10),
        TO_LONLAT.transform(X0 + 7040, Y0 + 90),
    )
    r = http.get("/api/land/unsupplied", params={"bbox": f"{a},{b},{c},{d}"})
    assert r.json()["items"] == []


def test_bad_filters_are_explained(land):
    http, _, _ = land
    for params, words in [
        ({"status": "lost"}, "unknown status lost"),
        ({"bbox": "1,2,3"}, "four numbers"),
        ({"bbox": "1,2,3,4", "bbox-crs": "EPSG:9999"}, "bbox-crs"),
        ({"intersects": '{"type": "Point", "coordinates": [120, 30]}'}, "Polygon"),
        ({"sort": "nonsense"}, "cannot sort by"),
        ({"format": "kml"}, "format"),
        ({"run": 999}, "no detection run 999"),
    ]:
        r = http.get("/api/land/unsupplied", params=params)
        assert r.status_code in (400, 404, 422), params
        assert words in r.json()["message"], (params, r.json())


def test_paging_and_sorting(land):
    http, _, _ = land
    r = http.get("/api/land/unsupplied", params={"limit": 2, "sort": "approval_id"})
    body = r.json()
    assert [i["approval_id"] for i in body["items"]] == ["PZ-E2", "PZ-W1"]
    assert body["numberMatched"] == 3 and body["numberReturned"] == 2
    nxt = http.get(body["next"]).json()
    assert [i["approval_id"] for i in nxt["items"]] == ["PZ-W2"]
    assert nxt["next"] is None
    r = http.get("/api/land/unsupplied", params={"sort": "-unsupplied_mu,approval_id"})
    assert [i["approval_id"] for i in r.json()["items"]] == ["PZ-W2", "PZ-E2", "PZ-W1"]


def test_idle_list(land):
    http, _, _ = land
    body = http.get("/api/land/idle").json()
    items = {i["supply_id"]: i for i in body["items"]}
    assert set(items) == {"GD-W1", "GD-E2"}  # GD-E1 started: not listed by default
    w1 = items["GD-W1"]
    assert w1["status"] == "idle_reclaimable" and w1["days_overdue"] == 911
    assert w1["area_mu"] == 18 and "无偿收回" in w1["consequence"]
    assert w1["records_disagree"] is None
    assert items["GD-E2"]["status"] == "overdue"
    r = http.get("/api/land/idle", params={"status": "started"}).json()
    assert [i["supply_id"] for i in r["items"]] == ["GD-E1"]
    r = http.get("/api/land/idle", params={"status": "idle,idle_reclaimable"}).json()
    assert [i["supply_id"] for i in r["items"]] == ["GD-W1"]


def test_low_efficiency_tax_needs_analyst(land):
    http, db, _ = land
    public = {i["parcel_id"]: i for i in http.get("/api/land/low-efficiency").json()["items"]}
    assert set(public) == {"DK-W", "DK-E"}
    reasons = {r["code"]: r for r in public["DK-W"]["reasons"]}
    assert set(reasons) == {"plot_ratio", "tax_per_mu"}
    assert reasons["plot_ratio"]["figure"] == 0.5 and reasons["plot_ratio"]["threshold"] == 1.0
    assert reasons["tax_per_mu"]["figure"] is None and reasons["tax_per_mu"]["restricted"]
    assert reasons["tax_per_mu"]["threshold"] == 5.0
    assert "60" not in json.dumps(public["DK-W"]["reasons"][1])
    full = http.get("/api/land/low-efficiency", headers=analyst(db)).json()["items"]
    tax = next(r for i in full for r in i["reasons"] if r["code"] == "tax_per_mu")
    assert tax["figure"] == 4.0
    r = http.get("/api/land/low-efficiency", params={"reason": "diverted"}).json()
    assert [i["parcel_id"] for i in r["items"]] == ["DK-E"]
    assert r["items"][0]["reason_codes"] == ["diverted"]


def test_geojson_is_crs84(land):
    http, _, _ = land
    r = http.get("/api/land/unsupplied", params={"format": "geojson", "status": "partial"})
    assert r.headers["content-type"].startswith("application/geo+json")
    fc = r.json()
    assert fc["type"] == "FeatureCollection"
    f = next(f for f in fc["features"] if f["properties"]["approval_id"] == "PZ-W1")
    xs = [p[0] for p in f["geometry"]["coordinates"][0][0]]
    ys = [p[1] for p in f["geometry"]["coordinates"][0][0]]
    lon, lat = TO_LONLAT.transform(X0 + 160, Y0 + 50)
    assert min(xs) < lon < max(xs) and min(ys) < lat < max(ys)
    assert 119 < lon < 121 and 29 < lat < 31


def test_summary(land):
    http, _, _ = land
    body = http.get("/api/land/summary", params={"level": "district"}).json()
    d = {i["code"]: i for i in body["items"]}
    assert (d["330102"]["unsupplied_count"], d["330102"]["unsupplied_mu"]) == (2, 42)
    assert (d["330182"]["unsupplied_count"], d["330182"]["unsupplied_mu"]) == (1, 22.5)
    assert (d["330102"]["idle_count"], d["330102"]["idle_mu"]) == (1, 18)
    assert (d["330182"]["idle_count"], d["330182"]["idle_mu"]) == (1, 7.5)
    assert d["330102"]["low_efficiency_count"] == 1 and d["330182"]["low_efficiency_count"] == 1
    c = http.get("/api/land/summary", params={"level": "corridor"}).json()["items"]
    assert c == [
        {
            "level": "corridor",
            "code": "CDZZ",
            "name": "城东智造大走廊",
            "unsupplied_count": 1,
            "unsupplied_mu": 22.5,
            "idle_count": 1,
            "idle_mu": 7.5,
            "low_efficiency_count": 1,
            "low_efficiency_mu": 15,
        }
    ]


def test_summary_splits_area_across_a_boundary(http, db):
    # an unsupplied approval straddling x = 5,000: 100 m west (15 亩), 200 m east (30 亩)
    city(db)
    insert(db, "approvals", [approval("PZ-X", rect(4900, 2000, 300, 100))])
    detect(db, AS_OF)
    d = {
        i["code"]: i
        for i in http.get("/api/land/summary", params={"level": "district"}).json()["items"]
    }
    assert d["330102"]["unsupplied_mu"] == 42 + 15 and d["330102"]["unsupplied_count"] == 2
    assert d["330182"]["unsupplied_mu"] == 22.5 + 30 and d["330182"]["unsupplied_count"] == 2


def test_runs_and_diff(land):
    http, db, first = land
    assert http.get("/api/detections").json()["runs"][0]["id"] == first["id"]
    r = http.post("/api/detections", params={"as_of": "2026-06-30"})
    assert r.status_code == 401
    r = http.post("/api/detections", params={"as_of": "2026-06-30"}, headers=analyst(db))
    assert r.status_code == 201, r.text
    second = r.json()
    assert second["as_of"] == "2026-06-30" and second["config_hash"] == first["config_hash"]
    assert second["inputs_hash"] == first["inputs_hash"]
    d = http.get(f"/api/detections/{first['id']}/diff/{second['id']}").json()
    # GD-E2 (agreed start 2025-01-01): overdue in 2025 -> idle in 2026
    assert d["idle"]["changed"] == [{"key": "GD-E2", "from": "overdue", "to": "idle"}]
    assert d["idle"]["became"] == [] and d["idle"]["stopped"] == []
    assert d["unsupplied"] == {"key": "approval_no", "became": [], "stopped": [], "changed": []}
    back = http.get(f"/api/detections/{second['id']}/diff/{first['id']}").json()
    assert back["idle"]["changed"] == [{"key": "GD-E2", "from": "idle", "to": "overdue"}]
    # a run before GD-E2 was due: it becomes flagged going forward
    early = detect(db, date(2024, 11, 30))
    d = http.get(f"/api/detections/{early['id']}/diff/{first['id']}").json()
    assert d["idle"]["became"] == [{"key": "GD-E2", "to": "overdue"}]
    assert {"key": "PZ-W2", "to": "unsupplied"} in d["unsupplied"]["became"]
    assert http.get(f"/api/detections/{first['id']}/diff/99999").status_code == 404
    # the list follows the latest run unless ?run= is given
    assert http.get("/api/land/idle").json()["run"]["id"] == early["id"]
    r = http.get("/api/land/idle", params={"run": second["id"]}).json()
    assert {i["supply_id"]: i["status"] for i in r["items"]}["GD-E2"] == "idle"


def test_cli_detect(db, capsys):
    from app.cli import main

    city(db)
    assert main(["detect", "--as-of", "2025-06-30"]) == 0
    out = capsys.readouterr().out
    assert "as of 2025-06-30" in out
    assert "批而未供 unsupplied 1  partial 2  supplied 1" in out
    assert "idle_reclaimable 1" in out and "overdue 1" in out
    with pytest.raises(SystemExit) as refused:  # argparse refuses the option: exit 2
        main(["detect", "--as-of", "30/06/2025"])
    assert refused.value.code == 2
    assert "--as-of: '30/06/2025': expected YYYY-MM-DD" in capsys.readouterr().err
