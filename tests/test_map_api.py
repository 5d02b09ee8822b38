"""The map page's own endpoints over HTTP, against the sample city: search, the parcel dossier
(public and analyst), whole layers as GeoJSON, parcel 亩均税收 bands, the page and its files."""

from __future__ import annotations

import shutil
import tempfile
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import text

from gis.core import graph, tokens
from tests.map_helpers import ROOT, load_sample_city


@pytest.fixture(scope="module")
def city(engine) -> dict:
    out = Path(tempfile.mkdtemp(prefix="landlink-map-city-"))  # not pruned by other pytest runs
    try:
        planted = load_sample_city(engine, out, analyses=False)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    with engine.begin() as conn:
        # the current status judged as of the sample's reference date (the import judged it
        # as of today), as `make demo` does
        graph.refresh(conn, None, date.fromisoformat(planted["reference_date"]), trigger="test")
        planted["_token"] = tokens.create(conn, "analyst", "map-api")
    return planted


@pytest.fixture
def client(server, city):
    import httpx

    with httpx.Client(base_url=server, timeout=60) as c:
        yield c


def _analyst(city) -> dict:
    return {"Authorization": f"Bearer {city['_token']}"}


def _parcel_on(engine, supply_nos: list[str]) -> tuple[str, str]:
    with engine.connect() as conn:
        return tuple(
            conn.execute(
                text(
                    "SELECT parcel_no, supply_no FROM parcels WHERE supply_no = ANY(:s) "
                    "ORDER BY parcel_no LIMIT 1"
                ),
                {"s": supply_nos},
            ).one()
        )


def test_search_by_name_uscc_dkbh_and_dzjgh(client, city, engine) -> None:
    uscc = city["evaluation"]["A"][0]
    with engine.connect() as conn:
        name = conn.execute(
            text("SELECT name FROM enterprises WHERE uscc = :u"), {"u": uscc}
        ).scalar_one()
    by_name = client.get("/api/search", params={"q": name}).json()["results"]
    assert by_name[0]["kind"] == "enterprise" and by_name[0]["id"] == uscc
    by_uscc = client.get("/api/search", params={"q": uscc}).json()["results"]
    assert by_uscc[0]["id"] == uscc
    dk, gd = _parcel_on(engine, city["idle"]["idle"])
    hit = client.get("/api/search", params={"q": dk}).json()["results"][0]
    assert (hit["kind"], hit["id"]) == ("parcel", dk)
    x1, y1, x2, y2 = hit["bbox"]
    assert 118 < x1 <= hit["center"][0] <= x2 < 122 and 29 < y1 <= hit["center"][1] <= y2 < 31
    hit = client.get("/api/search", params={"q": gd}).json()["results"][0]
    assert (hit["kind"], hit["id"]) == ("supply", gd)
    # LIKE wildcards are text, not patterns
    assert client.get("/api/search", params={"q": "%%"}).json()["results"] == []


def test_dossier_of_a_planted_idle_parcel(client, city, engine) -> None:
    dk, gd = _parcel_on(engine, city["idle"]["idle"])
    d = client.get(f"/api/parcels/{dk}").json()
    assert d["parcel"]["parcel_no"] == dk
    assert d["parcel"]["area_mu"] == pytest.approx(d["parcel"]["area_m2"] * 0.0015, rel=1e-3)
    assert d["supply"]["supply_no"] == gd and d["supply_link"] == "key"
    assert d["idle"]["status"] == "idle"
    assert d["chain"]["position"] == "unused"
    assert [s["state"] for s in d["chain"]["stages"]][:2] == ["passed", "here"]
    assert any(f["kind"] == "idle" and f["status"] == "idle" for f in d["findings"])
    assert d["run"]["as_of"] == city["reference_date"]


def test_dossier_withholds_tax_from_the_public(client, city) -> None:
    dk = city["low_efficiency"]["tax_per_mu"][0]
    public = client.get(f"/api/parcels/{dk}").json()
    assert public["tax_visible"] is False
    assert all(e["tax_by_year"] is None for e in public["enterprises"])
    tax = [f for f in public["findings"] if f["status"] == "tax_per_mu"]
    assert tax and all(f["figure"] is None and f["restricted"] for f in tax)
    assert public["chain"]["position"] == "below_standard"
    analyst = client.get(f"/api/parcels/{dk}", headers=_analyst(city)).json()
    assert analyst["tax_visible"] is True
    years = [e["tax_by_year"] for e in analyst["enterprises"] if e["tax_by_year"]]
    assert years and all(t["tax_per_mu"] is not None for t in years[0])
    assert [f for f in analyst["findings"] if f["status"] == "tax_per_mu"][0]["figure"] < 5


def test_unknown_parcel_is_404_with_a_hint(client, city) -> None:
    r = client.get("/api/parcels/DK-NOPE")
    assert r.status_code == 404 and "/api/search" in r.json()["message"]


def test_layer_geojson_with_chosen_properties(client, city) -> None:
    r = client.get("/api/map/layers/parcels.geojson", params={"props": "parcel_no,actual_use"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/geo+json")
    fc = r.json()
    assert len(fc["features"]) > 5000
    assert set(fc["features"][0]["properties"]) == {"parcel_no", "actual_use"}
    pts = client.get("/api/map/layers/districts.geojson?points=true").json()["features"]
    assert len(pts) == 13 and {f["geometry"]["type"] for f in pts} == {"Point"}
    assert client.get("/api/map/layers/parcels.geojson?props=nope").status_code == 400
    assert client.get("/api/map/layers/nope.geojson").status_code == 404


def test_parcel_tax_bands_need_an_analyst_token(client, city) -> None:
    assert client.get("/api/map/parcel-tax").status_code == 401
    t = client.get("/api/map/parcel-tax", headers=_analyst(city)).json()
    assert t["year"] and t["unit"] == "万元/亩"
    low = [dk for dk in city["low_efficiency"]["tax_per_mu"] if dk in t["parcels"]]
    assert low and all(t["parcels"][dk][1] == "<5" for dk in low)


def test_whoami(client, city) -> None:
    assert client.get("/api/whoami").json() == {
        "role": "viewer",
        "name": "public",
        "analyst": False,
    }
    assert client.get("/api/whoami", headers=_analyst(city)).json()["analyst"] is True
    assert client.get("/api/whoami", headers={"Authorization": "Bearer nope"}).status_code == 401


def test_page_static_files_and_config(client) -> None:
    if not (ROOT / "app" / "static" / "vendor" / "maplibre-gl.js").exists():
        pytest.skip("run 'make web' to vendor MapLibre GL JS")
    page = client.get("/")
    assert page.status_code == 200 and "工业用地" in page.text
    assert "http" not in page.text.split("<body>")[1].split("</body>")[0]  # no outside URL
    assert client.get("/static/app.js").headers["content-type"].startswith("text/javascript")
    assert client.get("/static/vendor/maplibre-gl.js").status_code == 200
    assert client.get("/static/../../pyproject.toml").status_code == 404
    assert client.get("/static/%2e%2e/%2e%2e/pyproject.toml").status_code == 404
    conf = client.get("/app-config.json").json()
    assert conf["basemap"] is None and isinstance(conf["tiles"], bool)
    assert client.get("/glyphs/Noto%20Sans%20Regular/0-255.pbf").status_code == 200


def test_a_base_map_can_be_configured(client, monkeypatch) -> None:
    url = "http://tiles.bureau.local/vec/{z}/{x}/{y}.png?tk=KEY"
    monkeypatch.setenv("LANDLINK_BASEMAP_URL", url)
    monkeypatch.setenv("LANDLINK_BASEMAP_ATTRIBUTION", "天地图")
    conf = client.get("/app-config.json").json()
    assert conf["basemap"] == {"tiles": [url], "attribution": "天地图", "maxzoom": 18}


def test_tianditu_presets_from_the_key(client, monkeypatch) -> None:
    monkeypatch.setenv("LANDLINK_TIANDITU_TK", "KEY")
    t = client.get("/app-config.json").json()["tianditu"]
    assert set(t["presets"]) == {"vec", "img"} and t["default"] == "vec"
    assert "审图号" in t["attribution"]
    vec = t["presets"]["vec"]
    assert [u.split("/")[2] for u in vec["base"]] == [f"t{n}.tianditu.gov.cn" for n in range(8)]
    assert "/vec_w/wmts?" in vec["base"][0] and "LAYER=cva" in vec["labels"][3]
    assert "TILEMATRIX={z}&TILEROW={y}&TILECOL={x}&tk=KEY" in t["presets"]["img"]["base"][7]
    # a 政务版 host replaces t{n}.tianditu.gov.cn
    monkeypatch.setenv("LANDLINK_TIANDITU_HOST", "http://tdt.zw.example:8080")
    img = client.get("/app-config.json").json()["tianditu"]["presets"]["img"]
    assert img["labels"] == [
        "http://tdt.zw.example:8080/cia_w/wmts?SERVICE=WMTS&REQUEST=GetTile&VERSION=1.0.0"
        "&LAYER=cia&STYLE=default&TILEMATRIXSET=w&FORMAT=tiles&TILEMATRIX={z}&TILEROW={y}"
        "&TILECOL={x}&tk=KEY"
    ]
    monkeypatch.delenv("LANDLINK_TIANDITU_TK")
    assert client.get("/app-config.json").json()["tianditu"] is None
