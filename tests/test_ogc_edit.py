"""OGC API Features Part 4 on the source collections, with real clients: OWSLib's Features
(create, replace, delete) and the exact requests QGIS's OAPIF provider sends (OPTIONS, a
properties-only PATCH, a geometry-only PATCH with Content-Crs, POST, DELETE), against a live
`landlink serve` on an analysed copy of the sample city. After each write the derived results
read back changed."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from sqlalchemy import text

from gis.lands.detection import CURRENT_RUN
from gis.serving.tiles import tile_for
from tests.conftest import bearer, served_copy


@pytest.fixture(scope="module")
def city(analysed_sample, tmp_path_factory):
    with served_copy(
        analysed_sample,
        "ogc_edit",
        tmp_path_factory.mktemp("ogc_edit"),
        {
            "land": ("editor", "市规划和自然资源局", ["gd", "dk"]),
            "viewer": ("viewer", "看图", None),
        },
    ) as served:
        yield served


def test_conformance_and_allow_follow_the_token(city):
    base, _, toks = city
    with httpx.Client(base_url=base, timeout=60) as h:
        conf = h.get("/ogc/conformance").json()["conformsTo"]
        assert (
            "http://www.opengis.net/spec/ogcapi-features-4/1.0/conf/create-replace-delete" in conf
        )
        assert "http://www.opengis.net/spec/ogcapi-features-4/1.0/conf/update" in conf
        r = h.options("/ogc/collections/supplies/items")
        assert r.status_code == 204 and r.headers["allow"] == "GET, OPTIONS"
        r = h.options("/ogc/collections/supplies/items", headers=bearer(toks["viewer"]))
        assert r.headers["allow"] == "GET, OPTIONS"
        r = h.options("/ogc/collections/supplies/items", headers=bearer(toks["land"]))
        assert r.headers["allow"] == "GET, OPTIONS, POST"
        r = h.options("/ogc/collections/parcels/items/X", headers=bearer(toks["land"]))
        assert r.headers["allow"] == "GET, OPTIONS, PUT, PATCH, DELETE"
        # not this editor's layer; a derived collection
        r = h.options("/ogc/collections/enterprises/items", headers=bearer(toks["land"]))
        assert r.headers["allow"] == "GET, OPTIONS"
        r = h.options("/ogc/collections/idle/items", headers=bearer(toks["land"]))
        assert r.headers["allow"] == "GET, OPTIONS"
        r = h.patch("/ogc/collections/idle/items/X", json={}, headers=bearer(toks["land"]))
        assert r.status_code == 405 and "derived" in r.json()["message"]
        assert r.headers["allow"] == "GET, OPTIONS"


def _status(eng, supply_no: str) -> str | None:
    with eng.connect() as c:
        return c.execute(
            text(
                "SELECT r.status FROM idle_results r JOIN supplies s ON s.id = r.supply_id "
                f"WHERE s.supply_no = :n AND r.run_id = {CURRENT_RUN}"
            ),
            {"n": supply_no},
        ).scalar()


def test_qgis_edits_a_supply_and_a_parcel(city):
    base, eng, toks = city
    with eng.connect() as c:
        supply_no, start = c.execute(
            text(
                "SELECT s.supply_no, s.agreed_start FROM supplies s JOIN idle_results r "
                f"ON r.supply_id = s.id AND r.run_id = {CURRENT_RUN} "
                "WHERE s.actual_start IS NULL AND r.status = 'not_due' ORDER BY s.supply_no LIMIT 1"
            )
        ).one()
        parcel_no, xmin, lon, lat = c.execute(
            text(
                "SELECT parcel_no, ST_XMin(geom), ST_X(p), ST_Y(p) FROM (SELECT parcel_no, geom, "
                "ST_Transform(ST_PointOnSurface(geom), 4326) AS p FROM parcels "
                "ORDER BY parcel_no LIMIT 1) q"
            )
        ).one()
        moved = c.execute(
            text(
                "SELECT ST_AsGeoJSON(ST_Translate(geom, 25, 0), 9) FROM parcels "
                "WHERE parcel_no = :p"
            ),
            {"p": parcel_no},
        ).scalar_one()
    before = _status(eng, supply_no)
    with httpx.Client(base_url=base, timeout=120) as h:
        feat = h.get(f"/ogc/collections/supplies/items/{supply_no}")
        assert feat.status_code == 200 and feat.headers["etag"].startswith('"')
        # a properties-only PATCH as QGIS sends it: no If-Match, merge-patch, only what changed
        r = h.patch(
            f"/ogc/collections/supplies/items/{supply_no}",
            content=json.dumps({"properties": {"agreed_start": "2010-01-01"}}),
            headers=bearer(toks["land"], **{"Content-Type": "application/merge-patch+json"}),
        )
        assert r.status_code == 200, r.text
        after = _status(eng, supply_no)
        assert (before, after) == ("not_due", "idle_reclaimable")  # due in 2010: idle since
        # a stale If-Match, when sent, is honoured
        r = h.patch(
            f"/ogc/collections/supplies/items/{supply_no}",
            json={"properties": {"agreed_start": start.isoformat()}},
            headers=bearer(toks["land"], **{"If-Match": feat.headers["etag"]}),
        )
        assert r.status_code == 412 and "市规划和自然资源局" in r.json()["changed_by"]
        # a derived property may not be changed
        r = h.patch(
            f"/ogc/collections/parcels/items/{parcel_no}",
            json={"properties": {"land_status": "none"}},
            headers=bearer(toks["land"]),
        )
        assert r.status_code == 422 and "land_status is derived" in r.json()["message"]
        # a geometry-only PATCH with Content-Crs (the layer in EPSG:4549); its tile changes
        x, y = tile_for(lon, lat, 17)
        tile = f"/tiles/parcels/17/{x}/{y}.mvt"
        before_tile = h.get(tile)
        assert before_tile.status_code == 200 and before_tile.content
        r = h.patch(
            f"/ogc/collections/parcels/items/{parcel_no}",
            content=json.dumps({"geometry": json.loads(moved)}),
            headers=bearer(
                toks["land"],
                **{
                    "Content-Type": "application/merge-patch+json",
                    "Content-Crs": "<http://www.opengis.net/def/crs/EPSG/0/4549>",
                },
            ),
        )
        assert r.status_code == 200, r.text
        with eng.connect() as c:
            x1, logged = c.execute(
                text(
                    "SELECT ST_XMin(geom), (SELECT count(*) FROM tile_invalidations) FROM parcels "
                    "WHERE parcel_no = :p"
                ),
                {"p": parcel_no},
            ).one()
        assert abs(x1 - xmin - 25) < 1e-6 and logged  # moved; its tiles invalidated
        for _ in range(30):  # a worker reads the invalidation log every cache_poll_seconds
            after_tile = h.get(tile, headers={"If-None-Match": before_tile.headers["etag"]})
            if after_tile.status_code == 200:
                break
            time.sleep(0.1)
        assert after_tile.status_code == 200 and after_tile.content != before_tile.content
        # the public and a viewer cannot write
        assert (
            h.patch(
                f"/ogc/collections/parcels/items/{parcel_no}", json={"properties": {}}
            ).status_code
            == 401
        )
        r = h.patch(
            f"/ogc/collections/parcels/items/{parcel_no}",
            json={"properties": {}},
            headers=bearer(toks["viewer"]),
        )
        assert r.status_code == 403


def test_owslib_creates_replaces_and_deletes_a_supply(city):
    from owslib.ogcapi.features import Features

    base, eng, toks = city
    with eng.connect() as c:
        g = c.execute(
            text(
                "SELECT ST_AsGeoJSON(ST_Transform(ST_Translate(geom, 0, -5000), 4326), 9) "
                "FROM supplies ORDER BY supply_no LIMIT 1"
            )
        ).scalar_one()
    new = {
        "type": "Feature",
        "geometry": json.loads(g),
        "properties": {
            "supply_no": "3301062026B99999",
            "method": "出让",
            "land_use_code": "1001",
            "supplied_on": "2024-03-01",
            "grantee_name": "杭州编辑测试有限公司",
            "agreed_start": "2024-09-01",
        },
    }
    w = Features(f"{base}/ogc", headers=bearer(toks["land"]))
    try:
        w.collection_item_create("supplies", new)
    except RuntimeError as e:  # OWSLib raises with the body of a refused request
        raise AssertionError(str(e)) from None
    feat = httpx.get(f"{base}/ogc/collections/supplies/items/3301062026B99999").json()
    assert feat["properties"]["grantee_name"] == "杭州编辑测试有限公司"
    assert _status(eng, "3301062026B99999") is not None  # judged at once
    new["properties"]["grantee_name"] = "杭州编辑测试二有限公司"
    w.collection_item_update("supplies", "3301062026B99999", new)
    feat = httpx.get(f"{base}/ogc/collections/supplies/items/3301062026B99999").json()
    assert feat["properties"]["grantee_name"] == "杭州编辑测试二有限公司"
    # creating it again: 409
    r = httpx.post(f"{base}/ogc/collections/supplies/items", json=new, headers=bearer(toks["land"]))
    assert r.status_code == 409
    w.collection_item_delete("supplies", "3301062026B99999")
    assert httpx.get(f"{base}/ogc/collections/supplies/items/3301062026B99999").status_code == 404
    with eng.connect() as c:
        ops = (
            c.execute(
                text("SELECT op FROM row_history WHERE key = '3301062026B99999' ORDER BY version")
            )
            .scalars()
            .all()
        )
    assert ops == ["insert", "update", "retire"]
