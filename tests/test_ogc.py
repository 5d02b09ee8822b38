"""OGC API Features under /ogc, read by real clients: GDAL's OAPIF driver (ogrinfo) and plain HTTP
."""

from __future__ import annotations

import json
import re
import subprocess
from datetime import date

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from tests.land_helpers import X0, Y0
from tests.ogc_helpers import N_PARCELS, city_client

OGRINFO = "/usr/bin/ogrinfo"


@pytest.fixture
def city(http, db):
    return city_client(http, db)


def ogrinfo(*args: str) -> str:
    r = subprocess.run(
        [OGRINFO, "-ro", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={"GDAL_HTTP_TIMEOUT": "60", "CPL_DEBUG": "OFF", "PATH": "/usr/bin"},
    )
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_landing_page_links_qgis_needs(city):
    r = city.get("/ogc")
    assert r.status_code == 200
    rels = {lk["rel"]: lk for lk in r.json()["links"]}
    assert rels["service-desc"]["type"] == "application/vnd.oai.openapi+json;version=3.0"
    assert rels["data"]["href"].endswith("/ogc/collections")
    api = city.get(rels["service-desc"]["href"])
    assert api.headers["content-type"].startswith("application/vnd.oai.openapi+json")
    doc = api.json()
    assert doc["openapi"].startswith("3.0")
    limit = doc["components"]["parameters"]["limit"]["schema"]
    assert limit["default"] == 1000 and limit["maximum"] >= 1000
    assert "null" not in json.dumps(doc["paths"]).replace('"nullable"', "")
    conf = city.get("/ogc/conformance").json()["conformsTo"]
    assert "http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs" in conf
    assert city.get("/ogc?f=html").headers["content-type"].startswith("text/html")


def test_ogrinfo_lists_every_collection_and_reads_a_small_one(city, server):
    out = ogrinfo("-q", f"OAPIF:{server}/ogc")
    for cid in (
        "districts",
        "platforms",
        "corridors",
        "approvals",
        "supplies",
        "parcels",
        "enterprises",
        "unsupplied",
        "idle",
        "low_efficiency",
    ):
        assert re.search(rf"^\d+: {cid}\b", out, re.M), out
    out = ogrinfo("-al", f"OAPIF:{server}/ogc", "districts")
    assert "Feature Count: 2" in out
    assert "Geometry: Multi Polygon" in out
    # GDAL < 3.7 reads CRS84 (Part 2 support came in 3.7, which then uses storageCrs)
    assert "WGS 84" in out or "CGCS2000 / 3-degree Gauss-Kruger CM 120E" in out
    assert "上城区" in out and "建德市" in out
    assert out.count("OGRFeature(districts)") == 2
    # every parcel, paged by GDAL through rel=next, with Chinese text intact
    out = ogrinfo("-al", "-oo", "PAGE_SIZE=7", f"OAPIF:{server}/ogc", "parcels")
    assert out.count("OGRFeature(parcels)") == N_PARCELS
    assert f"Feature Count: {N_PARCELS}" in out
    assert "挪作他用" in out
    # points
    out = ogrinfo("-so", f"OAPIF:{server}/ogc", "enterprises")
    assert "Geometry: Point" in out and "Feature Count: 3" in out


def test_items_paging_counts_and_links(city):
    r = city.get("/ogc/collections/parcels/items", params={"limit": 7})
    assert r.headers["content-type"] == "application/geo+json"
    body = r.json()
    assert body["numberMatched"] == N_PARCELS and body["numberReturned"] == 7
    ids = [f["id"] for f in body["features"]]
    while nxt := next((lk for lk in body["links"] if lk["rel"] == "next"), None):
        body = city.get(nxt["href"]).json()
        ids += [f["id"] for f in body["features"]]
    assert ids == [f"DK-{i:04d}" for i in range(N_PARCELS)]
    assert body["numberReturned"] == N_PARCELS % 7


def test_crs_4549_round_trips_to_the_millimetre(city, db):
    r = city.get("/ogc/collections/parcels/items/DK-0007", params={"crs": "EPSG:4549"})
    assert r.headers["content-crs"] == "<http://www.opengis.net/def/crs/EPSG/0/4549>"
    ring = r.json()["geometry"]["coordinates"][0][0]
    with db.connect() as c:
        stored = c.execute(
            text("SELECT ST_AsGeoJSON(geom, 15) FROM parcels WHERE parcel_no = 'DK-0007'")
        ).scalar_one()
    want = json.loads(stored)["coordinates"][0][0]
    # EPSG:4549's axis order is northing, easting
    for (n, e), (x, y) in zip(ring, want, strict=True):
        assert abs(e - x) < 0.001 and abs(n - y) < 0.001
    # and through CRS84 and back, by PostGIS, within a millimetre too
    r = city.get("/ogc/collections/parcels/items/DK-0007")
    lon, lat = r.json()["geometry"]["coordinates"][0][0][0]
    with db.connect() as c:
        x, y = c.execute(
            text(
                "SELECT ST_X(g), ST_Y(g) FROM ST_Transform(ST_SetSRID(ST_Point(:x, :y), 4326),"
                " 4549) g"
            ),
            {"x": lon, "y": lat},
        ).one()
    assert abs(x - want[0][0]) < 0.001 and abs(y - want[0][1]) < 0.001


def test_crs_4528_is_4549_with_the_zone_prefix(city, db):
    r = city.get("/ogc/collections/parcels/items/DK-0007", params={"crs": "EPSG:4528"})
    assert r.headers["content-crs"] == "<http://www.opengis.net/def/crs/EPSG/0/4528>"
    ring = r.json()["geometry"]["coordinates"][0][0]
    with db.connect() as c:
        stored = c.execute(
            text("SELECT ST_AsGeoJSON(geom, 15) FROM parcels WHERE parcel_no = 'DK-0007'")
        ).scalar_one()
    want = json.loads(stored)["coordinates"][0][0]
    # northing, then the easting with 40 before it (zone 40's false easting 40,500,000 m)
    for (n, e), (x, y) in zip(ring, want, strict=True):
        assert str(int(e)).startswith("40") and len(str(int(e))) == 8
        assert abs(e - (x + 40_000_000)) < 0.001 and abs(n - y) < 0.001
    # the bbox of parcels 0 and 1 in zone 40's numbers selects them, as it does in EPSG:4549
    n0, e0 = Y0 + 1000, X0 + 40_000_000 + 1000
    r = city.get(
        "/ogc/collections/parcels/items",
        params={"bbox": f"{n0 + 10},{e0 + 10},{n0 + 20},{e0 + 210}", "bbox-crs": "EPSG:4528"},
    )
    assert [f["id"] for f in r.json()["features"]] == ["DK-0000", "DK-0001"]
    assert (
        "http://www.opengis.net/def/crs/EPSG/0/4528"
        in city.get("/ogc/collections/parcels").json()["crs"]
    )


def test_crs_and_bbox_crs_axis_order(city):
    # EPSG:4490 is latitude first, CRS84 longitude first
    a = city.get("/ogc/collections/parcels/items/DK-0000", params={"crs": "EPSG:4490"}).json()
    b = city.get("/ogc/collections/parcels/items/DK-0000").json()
    lat, lon = a["geometry"]["coordinates"][0][0][0]
    lon2, lat2 = b["geometry"]["coordinates"][0][0][0]
    assert 29 < lat < 31 and 119 < lon < 121
    assert abs(lon - lon2) < 1e-5 and abs(lat - lat2) < 1e-5
    # parcels 0..4 sit at y = Y0+1000..1100, x = X0+1000+200i ..+100: select the first two
    n0, e0 = Y0 + 1000, X0 + 1000
    bbox = f"{n0 + 10},{e0 + 10},{n0 + 20},{e0 + 210}"
    r = city.get(
        "/ogc/collections/parcels/items",
        params={"bbox": bbox, "bbox-crs": "http://www.opengis.net/def/crs/EPSG/0/4549"},
    )
    assert [f["id"] for f in r.json()["features"]] == ["DK-0000", "DK-0001"]
    # a point bbox (CRS84) at enterprise 0, the centre of parcel 0
    lon3, lat3 = city.get("/ogc/collections/enterprises/items/" + _uscc(0)).json()["geometry"][
        "coordinates"
    ]
    r = city.get("/ogc/collections/parcels/items", params={"bbox": f"{lon3},{lat3},{lon3},{lat3}"})
    assert [f["id"] for f in r.json()["features"]] == ["DK-0000"]
    r3857 = city.get("/ogc/collections/parcels/items", params={"crs": "EPSG:3857", "limit": 1})
    x, y = r3857.json()["features"][0]["geometry"]["coordinates"][0][0][0]
    assert 1.3e7 < x < 1.4e7 and 3.4e6 < y < 3.6e6


def test_filters_sortby_properties_datetime(city):
    r = city.get(
        "/ogc/collections/parcels/items",
        params={
            "filter": "actual_use = '挪作他用' AND floor_area_m2 BETWEEN 1000 AND 9000",
            "sortby": "-floor_area_m2",
            "properties": "actual_use,floor_area_m2",
        },
    )
    feats = r.json()["features"]
    assert [f["id"] for f in feats] == ["DK-0004", "DK-0000"]
    assert set(feats[0]["properties"]) == {"actual_use", "floor_area_m2"}
    r = city.get(
        "/ogc/collections/parcels/items",
        params={"filter": "parcel_no IN ('DK-0001','DK-0003') OR holder_name LIKE '%测试19%'"},
    )
    assert sorted(f["id"] for f in r.json()["features"]) == ["DK-0001", "DK-0003", "DK-0019"]
    # S_INTERSECTS with a WKT point inside parcel 6 (CRS84)
    lon, lat = city.get("/ogc/collections/enterprises/items/" + _uscc(2)).json()["geometry"][
        "coordinates"
    ]
    r = city.get(
        "/ogc/collections/parcels/items",
        params={"filter": f"S_INTERSECTS(geometry, POINT({lon} {lat}))"},
    )
    assert [f["id"] for f in r.json()["features"]] == ["DK-0002"]
    # simple property=value filter (queryables as query parameters)
    r = city.get("/ogc/collections/parcels/items", params={"actual_use": "挪作他用"})
    assert r.json()["numberMatched"] == 5
    # datetime on the temporal field
    r = city.get("/ogc/collections/approvals/items", params={"datetime": "2020-01-01/.."})
    assert [f["id"] for f in r.json()["features"]] == ["浙土字〔2022〕7号"]
    r = city.get("/ogc/collections/supplies/items", params={"datetime": "2020-06-01"})
    assert [f["id"] for f in r.json()["features"]] == ["3301022019B00001"]
    q = city.get("/ogc/collections/parcels/queryables").json()
    assert q["properties"]["actual_use"]["type"] == "string"
    assert q["properties"]["geometry"]["$ref"].endswith("MultiPolygon.json")


def _ids(city, params: dict) -> list[str]:
    r = city.get("/ogc/collections/parcels/items", params={**params, "limit": 1000})
    assert r.status_code == 200, r.text
    return sorted(f["id"] for f in r.json()["features"])


def test_cql2_json_filters_answer_as_the_text_does(city):
    """The same filter in CQL2 text and in CQL2-JSON (filter-lang=cql2-json) selects the same
    parcels; both are parsed by the cql2 package and compiled by one compiler."""
    text_filter = "actual_use = '挪作他用' AND floor_area_m2 BETWEEN 1000 AND 9000"
    json_filter = {
        "op": "and",
        "args": [
            {"op": "=", "args": [{"property": "actual_use"}, "挪作他用"]},
            {"op": "between", "args": [{"property": "floor_area_m2"}, 1000, 9000]},
        ],
    }
    by_text = _ids(city, {"filter": text_filter})
    assert by_text == ["DK-0000", "DK-0004"]
    assert _ids(city, {"filter": json.dumps(json_filter), "filter-lang": "cql2-json"}) == by_text
    conf = city.get("/ogc/conformance").json()["conformsTo"]
    assert "http://www.opengis.net/spec/cql2/1.0/conf/cql2-json" in conf
    # the OpenAPI of /ogc promises the 400 it gives for an invalid parameter, not a 422
    items = city.get("/ogc/api").json()["paths"]["/ogc/collections/{collection_id}/items"]
    assert "400" in items["get"]["responses"] and "422" not in items["get"]["responses"]


def test_s_intersects_with_a_geometrycollection(city):
    """basic-spatial-functions-plus: S_INTERSECTS with a GEOMETRYCOLLECTION selects the union
    of what its parts select, in text and in JSON."""
    located = [
        f["geometry"]["coordinates"]
        for f in city.get("/ogc/collections/enterprises/items", params={"limit": 1000}).json()[
            "features"
        ]
        if f["geometry"]
    ]
    first = _ids(city, {"filter": "S_INTERSECTS(geometry, POINT({} {}))".format(*located[0])})
    for x, y in located[1:]:  # an enterprise on another parcel
        second = _ids(city, {"filter": f"S_INTERSECTS(geometry, POINT({x} {y}))"})
        if second and second != first:
            break
    assert first and second and first != second
    points = [located[0], (x, y)]
    union = sorted(set(first) | set(second))
    (x0, y0), (x1, y1) = points
    # a line far from the city adds nothing
    gc = f"GEOMETRYCOLLECTION(POINT({x0} {y0}), POINT({x1} {y1}), LINESTRING(0 0, 1 1))"
    assert _ids(city, {"filter": f"S_INTERSECTS(geometry, {gc})"}) == union
    geojson = {
        "type": "GeometryCollection",
        "geometries": [
            {"type": "Point", "coordinates": [x0, y0]},
            {"type": "Point", "coordinates": [x1, y1]},
        ],
    }
    f = {"op": "s_intersects", "args": [{"property": "geometry"}, geojson]}
    assert _ids(city, {"filter": json.dumps(f), "filter-lang": "cql2-json"}) == union


def _uscc(i: int) -> str:
    from tests.factories import uscc

    return uscc(i)


def test_public_sees_no_tax_analyst_does(city, db):
    from gis.core import tokens

    r = city.get("/ogc/collections/enterprises/items").json()
    assert all("tax_paid" not in f["properties"] for f in r["features"])
    assert (
        "tax_paid" not in city.get("/ogc/collections/enterprises/queryables").json()["properties"]
    )
    bad = city.get("/ogc/collections/enterprises/items", params={"filter": "tax_paid > 1"})
    assert bad.status_code == 400 and "analyst" in bad.json()["message"]
    with db.begin() as c:
        tok = tokens.create(c, "analyst", "analyst")
    h = {"Authorization": f"Bearer {tok}"}
    r = city.get(
        "/ogc/collections/enterprises/items", params={"filter": "tax_paid > 150"}, headers=h
    ).json()
    assert sorted(f["properties"]["tax_paid"] for f in r["features"]) == [200.0, 300.0]


def test_derived_collections_from_the_latest_detection(city, db):
    from gis.lands.detection import run_detection

    run_detection(db, date(2026, 1, 1), user="test")
    r = city.get("/ogc/collections/idle/items").json()
    assert r["numberMatched"] >= 1
    assert {f["properties"]["status"] for f in r["features"]} <= {
        "overdue",
        "idle",
        "idle_reclaimable",
        "partial_idle",
    }
    un = city.get("/ogc/collections/unsupplied/items").json()
    assert "浙土字〔2022〕7号" in [f["id"] for f in un["features"]]
    low = city.get("/ogc/collections/low_efficiency/items").json()
    assert all("reasons" not in f["properties"] for f in low["features"])
    status = city.get("/ogc/collections/parcels/items/DK-0000").json()["properties"]
    assert status["land_status"] in ("idle", "low_efficiency")


@pytest.mark.parametrize(
    "url, status, says",
    [
        ("/ogc/collections/nope", 404, "no collection 'nope'"),
        ("/ogc/collections/nope/items", 404, "no collection 'nope'"),
        ("/ogc/collections/parcels/items/DK-9999", 404, "no feature 'DK-9999'"),
        ("/ogc/collections/parcels/items?crs=EPSG:2000", 400, "crs 'EPSG:2000' is not supported"),
        ("/ogc/collections/parcels/items?bbox-crs=EPSG:1&bbox=1,2,3,4", 400, "bbox-crs"),
        ("/ogc/collections/parcels/items?bbox=1,2,3", 400, "bbox"),
        ("/ogc/collections/parcels/items?bbox=0,100,1,101", 400, "outside the range"),
        ("/ogc/collections/parcels/items?filter=area_m2%20%3E", 400, "filter:"),
        ("/ogc/collections/parcels/items?filter=nope%3D1", 400, "unknown property 'nope'"),
        ("/ogc/collections/parcels/items?sortby=nope", 400, "sortby"),
        ("/ogc/collections/parcels/items?properties=nope", 400, "properties"),
        ("/ogc/collections/parcels/items?datetime=yesterday", 400, "datetime"),
        ("/ogc/collections/parcels/items?limit=0", 400, "limit"),
        ("/ogc/collections/parcels/items?colour=red", 400, "unknown query parameter 'colour'"),
        ("/ogc/collections/parcels/items?filter-lang=cql2-json&filter=x", 400, "not JSON"),
        ("/ogc/collections/parcels/items?filter-lang=ecql&filter=x", 400, "cql2-json"),
        (
            '/ogc/collections/parcels/items?filter-lang=cql2-json&filter={"op":"=","args":'
            '[{"property":"nope"},1]}',
            400,
            "unknown property 'nope'",
        ),
        ("/ogc/collections/parcels/items?limit=abc", 400, "limit:"),
        ("/ogc/collections/parcels/items?offset=-", 400, "offset:"),
        ("/ogc/collections/parcels/items?offset=abc&bbox=1,2", 400, "offset:"),
    ],
)
def test_errors_are_json_naming_the_problem(city, url, status, says):
    r = city.get(url)
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert says in r.json()["message"]


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    st.text(alphabet=st.sampled_from(list("ab_=<>()'% ,-.0123456789ANDORNOTLIKE\"工")), max_size=40)
)
def test_fuzz_filters_over_http_never_500(city, f):
    r = city.get("/ogc/collections/parcels/items", params={"filter": f or "x"})
    assert r.status_code in (200, 400), (f, r.text)
