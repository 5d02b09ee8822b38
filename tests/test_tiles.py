"""Vector tiles read by real clients (GDAL's MVT driver, mapbox-vector-tile), zoom-aware content,
ETag/304, errors, and precise cache invalidation on change."""

from __future__ import annotations

import re
import subprocess
import time
from datetime import date

import mapbox_vector_tile
import pytest
from sqlalchemy import text

from gis.core import graph
from gis.core.config import get_settings
from gis.core.graph import Changes
from gis.core.tile_models import QUANTISED_ZOOMS
from gis.serving import tiles as gt
from gis.serving.collections import forget_schema
from tests.factories import uscc
from tests.ogc_helpers import N_PARCELS, load_city

LON, LAT = 120.0150, 30.2812  # inside the parcel grid of ogc_helpers


@pytest.fixture(autouse=True)
def tiles_graph(monkeypatch):
    """graph.refresh runs the tiles producer only here (the other producers have their tests),
    and the targets' progress, which a recorded detection run refreshes."""
    from gis.management import targets

    monkeypatch.setattr(graph, "_registry", graph.order([*gt.PRODUCERS, *targets.PRODUCERS]))


def _refresh(db, changes: Changes | None):
    with db.begin() as c:
        return graph.refresh(c, changes)


@pytest.fixture
def city(http, db):
    load_city(db)
    forget_schema()
    _refresh(db, None)
    gt.CACHE.clear()
    gt.CACHE.poll(db, force=True)
    return http


def _tile(http, layer: str, z: int, lon: float = LON, lat: float = LAT, **kw):
    x, y = gt.tile_for(lon, lat, z)
    return http.get(f"/tiles/{layer}/{z}/{x}/{y}.mvt", **kw)


def _decode(r) -> dict:
    return mapbox_vector_tile.decode(r.content) if r.content else {}


def _ogr(url: str) -> str:
    r = subprocess.run(
        ["/usr/bin/ogrinfo", "-ro", "-al", url],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin"},
    )
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_gdal_mvt_driver_reads_parcels_and_aggregates(city, server):
    out = _ogr(f"MVT:{server}/tiles/parcels/14")
    parcels = set(re.findall(r"parcel_no \(String\) = (DK-\d+)", out))
    assert parcels == {f"DK-{i:04d}" for i in range(N_PARCELS)}
    assert "actual_use (String) = 挪作他用" in out
    out = _ogr(f"MVT:{server}/tiles/parcels/10")
    assert "Layer name: districts" in out and "Layer name: platforms" in out
    assert "parcel_count (Real) = " in out and "name (String) = 钱塘新区工业园" in out
    assert "parcel_no (String)" not in out
    x, y = gt.tile_for(LON, LAT, 16)
    out = _ogr(f"MVT:{server}/tiles/enterprises/16/{x}/{y}.pbf")
    assert "Geometry: Point" in out and "杭州测试" in out


def _zone_inputs(db) -> None:
    """What the analysis would derive for the city's platform PT01 (every parcel in it, 300 亩
    of enterprise land paying 600 万元), then the graph's refresh of those keys."""
    with db.begin() as c:
        nos = c.execute(text("SELECT parcel_no FROM parcels ORDER BY 1")).scalars().all()
        c.execute(
            text(
                "INSERT INTO links (kind, from_key, to_key, method, is_primary, rule, run_id, "
                "as_of) SELECT 'parcel_platform', n, 'PT01', 'overlap', true, 'r', 1, "
                "'2026-01-01' FROM unnest(CAST(:n AS text[])) n"
            ),
            {"n": nos},
        )
        c.execute(
            text(
                "INSERT INTO per_mu (level, code, year, area_m2, area_mu, n_enterprises, "
                "tax_paid, tax_per_mu, rule, run_id, as_of) VALUES ('platform', 'PT01', 2025, "
                "200000, 300, 2, 600, 2.0, 'r', 1, '2026-01-01')"
            )
        )
        graph.refresh(c, Changes(links=set(nos), per_mu={"platform:PT01:2025"}))
    gt.CACHE.poll(db, force=True)


def test_zoom_aware_content(city, db):
    _zone_inputs(db)
    for z in (8, 10, 12):
        d = _decode(_tile(city, "parcels", z))
        assert set(d) == {"districts", "platforms"}, z
        pt = d["platforms"]["features"][0]["properties"]
        assert pt["parcel_count"] == N_PARCELS and pt["area_mu"] == 300.0
        assert "tax_per_mu" not in pt and pt["tax_class"] == "A"
    for z in (13, 14, 16):
        d = _decode(_tile(city, "parcels", z))
        assert set(d) == {"parcels"}
        props = d["parcels"]["features"][0]["properties"]
        assert {"parcel_no", "actual_use", "area_mu"} <= set(props)


def test_feature_cap(city, monkeypatch):
    monkeypatch.setattr(get_settings().tiles, "feature_cap", 5)
    monkeypatch.setattr(get_settings().tiles, "cache_entries", 0)
    d = _decode(_tile(city, "parcels", 14))
    assert len(d["parcels"]["features"]) == 5


def test_tilejson_and_style(city):
    tj = city.get("/tiles/parcels.json").json()
    assert tj["tilejson"] == "3.0.0" and tj["tiles"][0].endswith("/tiles/parcels/{z}/{x}/{y}.mvt")
    ids = {v["id"]: v for v in tj["vector_layers"]}
    assert set(ids) == {"districts", "platforms", "parcels"}
    assert ids["parcels"]["fields"]["actual_use"] == "String"
    assert ids["parcels"]["minzoom"] == get_settings().tiles.parcel_min_zoom
    b = tj["bounds"]
    assert 119 < b[0] < b[2] < 121 and 29 < b[1] < b[3] < 31
    style = city.get("/tiles/style.json").json()
    assert style["version"] == 8
    for layer in style["layers"][1:]:
        assert layer["source"] in style["sources"] and layer["source-layer"]
    ids = {lyr["id"] for lyr in style["layers"]}
    assert {"parcels-use", "parcels-eval-class", "parcels-land-status", "platforms-fill"} <= ids


def test_bounds_follow_a_committed_change_at_once(city, db):
    """The extent behind TileJSON (and the OGC collection) is cached, but a committed change to
    the layer (logged by its trigger) shows in the next answer, not a minute later."""
    before = city.get("/tiles/parcels.json").json()["bounds"]
    with db.begin() as c:
        c.execute(
            text(
                "UPDATE parcels SET geom = ST_Translate(geom, 5000, 0) WHERE parcel_no = 'DK-0000'"
            )
        )
    after = city.get("/tiles/parcels.json").json()["bounds"]
    assert after[2] > before[2] + 0.04  # 5 km east: about 0.05° of longitude at 30°N
    coll = city.get("/ogc/collections/parcels")
    assert coll.status_code == 200, coll.text
    assert coll.json()["extent"]["spatial"]["bbox"][0] == after


def test_etag_304_and_cache_headers(city):
    r = _tile(city, "parcels", 14)
    assert r.headers["content-type"] == "application/vnd.mapbox-vector-tile"
    assert r.headers["cache-control"].startswith("public")
    assert r.headers["x-tile-cache"] == "miss"
    again = _tile(city, "parcels", 14)
    assert again.headers["x-tile-cache"] == "hit" and again.content == r.content
    not_mod = _tile(city, "parcels", 14, headers={"If-None-Match": r.headers["etag"]})
    assert not_mod.status_code == 304 and not_mod.content == b""
    pbf = city.get(f"/tiles/parcels/14/{'/'.join(map(str, gt.tile_for(LON, LAT, 14)))}.pbf")
    assert pbf.content == r.content


def test_analyst_tiles_add_tax_figures_privately(city, db):
    from gis.core import tokens

    _zone_inputs(db)
    with db.begin() as c:
        tok = tokens.create(c, "analyst", "analyst")
    r = _tile(city, "parcels", 10, headers={"Authorization": f"Bearer {tok}"})
    assert r.headers["cache-control"].startswith("private")
    pt = _decode(r)["platforms"]["features"][0]["properties"]
    assert pt["tax_per_mu"] == pytest.approx(600.0 / 300.0)
    d = _decode(_tile(city, "enterprises", 14, headers={"Authorization": f"Bearer {tok}"}))
    assert "tax_paid" in d["enterprises"]["features"][0]["properties"]
    d = _decode(_tile(city, "enterprises", 14))
    assert "tax_paid" not in d["enterprises"]["features"][0]["properties"]


@pytest.mark.parametrize(
    "url, status, says",
    [
        ("/tiles/parcels/25/0/0.mvt", 400, "zoom 25 is out of range"),
        ("/tiles/parcels/3/8/0.mvt", 400, "x and y must be in 0-7"),
        ("/tiles/parcels/3/0/-1.mvt", 400, "x and y must be in 0-7"),
        ("/tiles/parcels/a/0/0.mvt", 400, "zoom 'a' is not an integer"),
        ("/tiles/nope/3/0/0.mvt", 404, "no tile layer 'nope'"),
        ("/tiles/nope.json", 404, "no tile layer 'nope'"),
        ("/tiles/parcels/3/0/0.png", 404, ".mvt or .pbf"),
    ],
)
def test_errors(city, url, status, says):
    r = city.get(url)
    assert r.status_code == status
    assert says in r.json()["message"]


def _wait_poll():
    time.sleep(get_settings().tiles.cache_poll_seconds + 0.1)


FAR = (120.17, 30.28)  # 15 km east: 建德 platform PT02, another tile at every zoom >= 11


def test_invalidation_drops_only_touched_tiles_old_and_new_geometry(city, db):
    z = 16
    a = _tile(city, "parcels", z)  # parcel grid, west part
    x_far = _tile(city, "parcels", z, *FAR)
    assert _tile(city, "parcels", z).headers["x-tile-cache"] == "hit"
    assert _tile(city, "parcels", z, *FAR).headers["x-tile-cache"] == "hit"
    # an attribute change of one parcel in tile a
    x, y = gt.tile_for(LON, LAT, z)
    with db.begin() as c:
        no = c.execute(
            text(
                "SELECT parcel_no FROM parcels WHERE geom && ST_Transform("
                "ST_TileEnvelope(:z, :x, :y), 4549) ORDER BY parcel_no LIMIT 1"
            ),
            {"z": z, "x": x, "y": y},
        ).scalar_one()
        c.execute(text("UPDATE parcels SET actual_use = '闲置' WHERE parcel_no = :n"), {"n": no})
    _wait_poll()
    a2 = _tile(city, "parcels", z)
    assert a2.headers["x-tile-cache"] == "miss" and a2.headers["etag"] != a.headers["etag"]
    uses = {
        f["properties"]["parcel_no"]: f["properties"]["actual_use"]
        for f in _decode(a2)["parcels"]["features"]
    }
    assert uses[no] == "闲置"
    far = _tile(city, "parcels", z, *FAR)
    assert far.headers["x-tile-cache"] == "hit" and far.content == x_far.content
    # moving that parcel far away: its old tile and its new tile are both dropped
    assert _tile(city, "parcels", z).headers["x-tile-cache"] == "hit"
    with db.begin() as c:
        c.execute(
            text(
                "UPDATE parcels SET geom = ST_Multi(ST_Transform(ST_Buffer(ST_SetSRID("
                "ST_Point(:lon, :lat), 4326), 0.0002, 2), 4549)) WHERE parcel_no = :n"
            ),
            {"lon": FAR[0], "lat": FAR[1], "n": no},
        )
    _wait_poll()
    old = _tile(city, "parcels", z)
    new = _tile(city, "parcels", z, *FAR)
    assert old.headers["x-tile-cache"] == "miss" and new.headers["x-tile-cache"] == "miss"
    assert no not in {f["properties"]["parcel_no"] for f in _decode(old)["parcels"]["features"]}
    assert [f["properties"]["parcel_no"] for f in _decode(new)["parcels"]["features"]] == [no]


def test_zone_aggregates_are_the_zone_figures_of_per_mu(city, db, monkeypatch):
    """Low-zoom aggregates after an analysis and a refresh: a zone's area and 亩均税收 are its
    per_mu row of the latest year (per_mu.zone_figures), its parcel count its primary parcel
    links, its class the tile setting's rank cut-offs."""
    from gis.economy.evaluation import run_all_line
    from gis.economy.per_mu import zone_figures

    monkeypatch.setattr(graph, "_registry", None)  # the whole graph: links, per_mu, ...
    run_all_line(db)
    _refresh(db, None)
    _wait_poll()
    z10 = _decode(_tile(city, "parcels", 10))
    got = {f["properties"]["code"]: f["properties"] for f in z10["districts"]["features"]}
    with db.connect() as c:
        figs = zone_figures(c, "district")
        counts = dict(
            c.execute(
                text(
                    "SELECT to_key, count(*) FROM links WHERE kind = 'parcel_district' "
                    "AND is_primary AND from_key IS NOT NULL GROUP BY to_key"
                )
            ).all()
        )
        stats = {
            r.code: r
            for r in c.execute(text("SELECT * FROM tile_zone_stats WHERE level = 'district'"))
        }
    assert counts and got
    for code, props in got.items():
        assert props["parcel_count"] == counts.get(code, 0)
        area = (figs.get(code) or {}).get("area_mu") or 0.0
        assert props["area_mu"] == pytest.approx(round(area, 1))
        assert stats[code].tax_per_mu == (figs.get(code) or {}).get("tax_per_mu")
    assert gt.zone_classes({"a": 9.0, "b": 5.0, "c": 5.0, "d": 1.0, "e": None}) == {
        "a": "A",
        "b": "B",
        "c": "B",
        "d": "D",
        "e": None,
    }


def test_detection_run_invalidates_derived_tiles(city, db):
    from gis.lands.detection import run_detection

    forget_schema()
    before = _decode(_tile(city, "idle", 14))
    far = _tile(city, "idle", 14, *FAR)
    assert before == {}
    run = run_detection(db, date(2026, 1, 1), user="test")["id"]
    _refresh(db, Changes(detection_runs={str(run)}))
    _wait_poll()
    after = _tile(city, "idle", 14)
    assert after.headers["x-tile-cache"] == "miss"
    assert len(_decode(after)["idle"]["features"]) >= 1
    assert _tile(city, "idle", 14, *FAR).headers["x-tile-cache"] == "hit"
    assert far.status_code == 200


def test_byte_budget_and_layer_min_zoom(city, monkeypatch):
    monkeypatch.setattr(get_settings().tiles, "cache_entries", 0)
    full = _tile(city, "parcels", 14)
    monkeypatch.setattr(get_settings().tiles, "max_tile_bytes", len(full.content) // 3)
    small = _tile(city, "parcels", 14)
    assert 0 < len(small.content) <= len(full.content) // 3
    n_full = len(_decode(full)["parcels"]["features"])
    assert len(_decode(small)["parcels"]["features"]) < n_full
    # enterprises are drawn from zoom 12 (settings.tiles.layer_min_zoom), as TileJSON says
    assert _tile(city, "enterprises", 11).content == b""
    assert _decode(_tile(city, "enterprises", 12))["enterprises"]["features"]
    tj = city.get("/tiles/enterprises.json").json()
    assert tj["vector_layers"][0]["minzoom"] == 12


def test_affine_reprojection_matches_st_transform(city, db, monkeypatch):
    """From affine_min_zoom the tile's 4549 -> 3857 map is an affine fit: the same features
    within one tile pixel of ST_Transform's. (Layers over their 4549 tables; parcel tiles read
    the 3857 copy instead, here they are rendered over the parcels table to check the fit.)"""
    from dataclasses import replace

    monkeypatch.setattr(get_settings().tiles, "cache_entries", 0)
    with db.connect() as c:
        ts = replace(gt.tilesets(c)["parcels"], tile_parcels=False)
    assert not ts.tile_parcels

    def coords(z):
        x, y = gt.tile_for(LON, LAT, z)
        d = _decode_bytes(gt.render(db, ts, z, x, y, False)[0])["parcels"]["features"]
        return {
            f["properties"]["parcel_no"]: f["geometry"]["coordinates"]
            for f in sorted(d, key=lambda f: f["properties"]["parcel_no"])
        }

    for z in (13, 16):
        affine = coords(z)
        monkeypatch.setattr(get_settings().tiles, "affine_min_zoom", 99)
        exact = coords(z)
        monkeypatch.setattr(get_settings().tiles, "affine_min_zoom", 13)
        assert affine.keys() == exact.keys() and affine
        for k in affine:
            a = str(affine[k]).replace("[", " ").replace("]", " ").replace(",", " ").split()
            b = str(exact[k]).replace("[", " ").replace("]", " ").replace(",", " ").split()
            assert len(a) == len(b)
            assert max(abs(float(u) - float(v)) for u, v in zip(a, b, strict=True)) <= 1


def test_parcel_land_status_in_tiles_follows_the_latest_run(city, db):
    from gis.lands.detection import run_detection

    forget_schema()
    run = run_detection(db, date(2026, 1, 1), user="test")["id"]
    _refresh(db, Changes(detection_runs={str(run)}))
    _wait_poll()
    d = _decode(_tile(city, "parcels", 14))
    tiles = {
        f["properties"]["parcel_no"]: f["properties"].get("land_status")
        for f in d["parcels"]["features"]
    }
    items = city.get("/ogc/collections/parcels/items", params={"limit": 100}).json()
    live = {f["id"]: f["properties"]["land_status"] for f in items["features"]}
    assert any(tiles.values())
    assert all(tiles[k] == live[k] for k in tiles)


def _tile_parcels_out_of_step(c) -> int:
    """Rows of tile_parcels that differ from what parcels (and the class / status tables) say
    they should hold, plus parcels with no row and rows with no parcel."""
    qs = " OR ".join(
        f"ST_AsEWKB(tile_quantise(ST_Transform(p.geom, 3857), {z})) "
        f"IS DISTINCT FROM ST_AsEWKB(t.q{z})"
        for z in QUANTISED_ZOOMS
    )
    return c.execute(
        text(
            f"""
            SELECT count(*) FROM parcels p FULL JOIN tile_parcels t ON t.id = p.id
            LEFT JOIN tile_parcel_classes pc ON pc.parcel_no = p.parcel_no
            LEFT JOIN tile_parcel_status ps ON ps.parcel_no = p.parcel_no
            WHERE p.id IS NULL OR t.id IS NULL
               OR (p.parcel_no, p.actual_use, p.land_use_code, p.area_m2, p.floor_area_m2,
                   pc.eval_class, ps.land_status)
                  IS DISTINCT FROM (t.parcel_no, t.actual_use, t.land_use_code, t.area_m2,
                                    t.floor_area_m2, t.eval_class, t.land_status)
               OR ST_AsEWKB(ST_Transform(p.geom, 3857)) IS DISTINCT FROM ST_AsEWKB(t.geom)
               OR {qs}
            """
        )
    ).scalar_one()


def test_tile_parcels_follow_every_write_to_parcels(city, db):
    """The Web Mercator copy is kept in step by the triggers on parcels: insert, update of
    attributes and of geometry, delete, truncate; and by the class / status rebuilds."""
    with db.connect() as c:
        assert c.execute(text("SELECT count(*) FROM tile_parcels")).scalar_one() == N_PARCELS
        assert _tile_parcels_out_of_step(c) == 0
    with db.begin() as c:
        c.execute(text("UPDATE parcels SET actual_use = '闲置' WHERE parcel_no = 'DK-0001'"))
        c.execute(text("UPDATE parcels SET floor_area_m2 = 1 WHERE parcel_no = 'DK-0002'"))
        c.execute(
            text(
                "UPDATE parcels SET geom = ST_Multi(ST_Translate(geom, 30, -20)), "
                "parcel_no = 'DK-0003b' WHERE parcel_no = 'DK-0003'"
            )
        )
        c.execute(text("DELETE FROM parcels WHERE parcel_no = 'DK-0004'"))
        c.execute(
            text(
                "INSERT INTO parcels (parcel_no, land_use_code, actual_use, geom, batch_id, "
                "row_hash) SELECT 'DK-X', land_use_code, actual_use, "
                "ST_Multi(ST_Translate(geom, 0, 5000)), batch_id, 'x' FROM parcels "
                "WHERE parcel_no = 'DK-0005'"
            )
        )
        assert _tile_parcels_out_of_step(c) == 0  # inside the writing transaction
    with db.connect() as c:
        assert _tile_parcels_out_of_step(c) == 0
        use = c.execute(
            text("SELECT actual_use FROM tile_parcels WHERE parcel_no = 'DK-0001'")
        ).scalar_one()
        assert use == "闲置"
    # the class and 三块地 status rebuilds reach the copy
    with db.begin() as c:
        c.execute(
            text(
                "INSERT INTO tile_parcel_status VALUES ('DK-0006', 'idle'); "
                "INSERT INTO tile_parcel_classes VALUES ('DK-0007', 'B')"
            )
        )
        assert _tile_parcels_out_of_step(c) == 2
    with db.begin() as c:
        c.execute(text("TRUNCATE tile_parcel_status, tile_parcel_classes"))
        c.execute(
            text(
                "INSERT INTO analysis_runs (kind, as_of, config_hash, config, trigger, "
                "finished_at) VALUES ('link', '2026-01-01', 'h', '{}', 'cli', now())"
            )
        )
        run = c.execute(text("SELECT max(id) FROM analysis_runs")).scalar_one()
        c.execute(
            text(
                "INSERT INTO links (kind, from_key, to_key, rule, run_id, as_of) "
                "VALUES ('enterprise_parcel', :u, 'DK-0007', 'r', :r, '2026-01-01')"
            ),
            {"u": uscc(1), "r": run},
        )
        c.execute(
            text(
                "INSERT INTO evaluation_rows (year, uscc, rule, run_id, as_of) "
                "VALUES (2025, :u, 'r', :r, '2026-01-01')"
            ),
            {"u": uscc(1), "r": run},
        )
        c.execute(
            text(
                'INSERT INTO evaluation_ranking (year, uscc, "group", evaluated, graded, class) '
                "VALUES (2025, :u, 'above', true, true, 'B')"
            ),
            {"u": uscc(1)},
        )
        out = graph.refresh(c, Changes(links={uscc(1)}, evaluation_ranking={f"{uscc(1)}:2025"}))
        assert out is not None
        assert c.execute(text("SELECT count(*) FROM tile_parcel_classes")).scalar_one() == 1
        c.execute(text("INSERT INTO tile_parcel_status VALUES ('DK-0006', 'idle')"))
        assert _tile_parcels_out_of_step(c) == 1  # status not refreshed yet
    with db.begin() as c:
        # nothing flags DK-0006: its status goes, in the copy too (a run that flags
        # parcels: test_parcel_land_status_in_tiles_follows_the_latest_run)
        graph.refresh(c, Changes(parcels={"DK-0006"}))
        assert _tile_parcels_out_of_step(c) == 0
        assert (
            c.execute(
                text("SELECT eval_class FROM tile_parcels WHERE parcel_no = 'DK-0007'")
            ).scalar_one()
            == "B"
        )
    with db.begin() as c:
        c.execute(text("TRUNCATE parcels CASCADE"))
        assert c.execute(text("SELECT count(*) FROM tile_parcels")).scalar_one() == 0


@pytest.mark.parametrize("z", [13, 14, 15, 16])
def test_parcel_tiles_from_the_copy_equal_st_transform_and_st_asmvtgeom(city, db, monkeypatch, z):
    """Tiles read tile_parcels (3857 copy; at zooms 13 and 14 a parcel inside the tile takes its
    pre-quantised geometry): byte for byte the tile ST_AsMVTGeom(ST_Transform(geom, 3857))
    over parcels gives (the reference path, no affine fit)."""
    from dataclasses import replace

    with db.connect() as c:
        ts = gt.tilesets(c)["parcels"]
    assert ts.tile_parcels
    reference = replace(ts, tile_parcels=False)
    monkeypatch.setattr(get_settings().tiles, "affine_min_zoom", 99)
    x, y = gt.tile_for(LON, LAT, z)
    fast = gt.render(db, ts, z, x, y, False)[0]
    assert len(_decode_bytes(fast)["parcels"]["features"]) >= 4
    assert fast == gt.render(db, reference, z, x, y, False)[0]
    if gt.quantised(z):  # the pre-quantised geometry is what this tile used
        with db.connect() as c:
            inside = c.execute(
                text(
                    f"SELECT count(*) FROM tile_parcels t WHERE t.q{z} @ "
                    "ST_MakeEnvelope(:qx0, :qy0, :qx1, :qy1)"
                ),
                gt.quantised_params(z, x, y),
            ).scalar_one()
        assert inside >= 4


def _decode_bytes(b: bytes) -> dict:
    return mapbox_vector_tile.decode(b) if b else {}


def test_import_that_moves_a_parcel_changes_its_tile(city, db, tmp_path):
    """A re-import (through the pipeline, with every refresh plugin) that moves a parcel: the
    tile at its old place loses it, the tile at its new place has it, drawn from the moved
    copy (as ST_Transform of the new geometry draws it)."""
    import geopandas as gpd
    import shapely
    from pyproj import Transformer

    from gis.ingest import ImportOptions, import_file
    from tests import factories

    to_lonlat = Transformer.from_crs(4549, 4326, always_xy=True)
    path = factories.parcels(tmp_path, n=1, DKBH="DK-MOVE", DZJGH="", XZQDM="330102")
    import_file(db, "dk", path, ImportOptions(), user="test")
    _wait_poll()
    old_place = to_lonlat.transform(factories.X0 + 50, factories.Y0 + 50)
    z = 14
    before = _tile(city, "parcels", z, *old_place)
    assert "DK-MOVE" in {
        f["properties"]["parcel_no"] for f in _decode(before)["parcels"]["features"]
    }
    far_before = _tile(city, "parcels", z, *FAR)
    assert "DK-MOVE" not in {
        f["properties"]["parcel_no"]
        for f in _decode(far_before).get("parcels", {"features": []})["features"]
    }
    gdf = gpd.read_file(path, engine="pyogrio")
    fx, fy = Transformer.from_crs(4326, 4549, always_xy=True).transform(*FAR)
    gdf.geometry = [shapely.box(fx - 60, fy - 40, fx + 60, fy + 40)]
    gdf.to_file(path, encoding="GBK", engine="pyogrio")
    report = import_file(db, "dk", path, ImportOptions(), user="test")
    assert report["updated"] == 1, report
    _wait_poll()
    after = _tile(city, "parcels", z, *old_place)
    assert after.headers["x-tile-cache"] == "miss" and after.content != before.content
    assert "DK-MOVE" not in {
        f["properties"]["parcel_no"]
        for f in _decode(after).get("parcels", {"features": []})["features"]
    }
    far = _tile(city, "parcels", z, *FAR)
    assert far.headers["x-tile-cache"] == "miss"
    moved = [
        f for f in _decode(far)["parcels"]["features"] if f["properties"]["parcel_no"] == "DK-MOVE"
    ]
    assert len(moved) == 1
    with db.connect() as c:
        assert _tile_parcels_out_of_step(c) == 0
        x, y = gt.tile_for(*FAR, z)
        want = c.execute(
            text(
                "SELECT ST_AsText(ST_AsMVTGeom(ST_Transform(geom, 3857), "
                "ST_TileEnvelope(:z, :x, :y), 4096, 64, true)) FROM parcels "
                "WHERE parcel_no = 'DK-MOVE'"
            ),
            {"z": z, "x": x, "y": y},
        ).scalar_one()
    got = shapely.from_wkt(want)
    ring = moved[0]["geometry"]["coordinates"][0]
    # mapbox_vector_tile decodes with y up (4096 - y): compare the bounding boxes
    xs = [p[0] for p in ring]
    ys = [4096 - p[1] for p in ring]
    assert (min(xs), min(ys), max(xs), max(ys)) == tuple(int(v) for v in got.bounds)


# bookkeeping, not data: a token's last use and the audit of restricted reads
_BOOKKEEPING = {"audit_log", "api_tokens"}


def _snapshot(db) -> dict[str, tuple]:
    """Every table's row count and newest row version (xmin): any write changes one of them."""
    with db.connect() as c:
        names = c.execute(
            text(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() "
                "ORDER BY tablename"
            )
        ).scalars()
        return {
            t: tuple(c.execute(text(f'SELECT count(*), max(xmin::text::bigint) FROM "{t}"')).one())
            for t in names
            if t not in _BOOKKEEPING
        }


def _burst(http, token: str | None = None) -> int:
    """Tiles of every layer at every zoom 8-16 around the city, TileJSON, the style, and a
    page of every OGC collection; returns how many answered 200."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    ok = 0
    layers = [c["id"] for c in http.get("/ogc/collections").json()["collections"]]
    for layer in layers:
        for z in range(8, 17):
            for where in ((LON, LAT), FAR):
                ok += _tile(http, layer, z, *where, headers=headers).status_code == 200
        ok += http.get(f"/tiles/{layer}.json", headers=headers).status_code == 200
        r = http.get(f"/ogc/collections/{layer}/items", params={"limit": 50}, headers=headers)
        ok += r.status_code == 200
    ok += http.get("/tiles/style.json").status_code == 200
    return ok


def test_a_get_never_writes_fresh_database_and_fresh_analysis(city, db):
    """No tile, TileJSON or OGC request writes: not on a database whose aggregates were never
    built (the tile answers from what exists), not after a new analysis and detection run that
    no refresh has followed yet (the old readers rebuilt the aggregates then)."""
    from gis.core import tokens
    from gis.economy.evaluation import run_all_line
    from gis.lands.detection import run_detection

    with db.begin() as c:
        c.execute(text("DELETE FROM tile_zone_stats"))
        token = tokens.create(c, "analyst", "test_tiles")
    gt.CACHE.clear()
    before = _snapshot(db)
    assert _burst(city) > 50
    _wait_poll()
    assert _burst(city, token) > 50
    assert _snapshot(db) == before
    z10 = _decode(_tile(city, "parcels", 10))
    assert {f["properties"]["parcel_count"] for f in z10["districts"]["features"]} == {0}
    # a fresh analysis and detection run, not yet refreshed: reading still writes nothing
    run_all_line(db)
    run_detection(db, date(2026, 1, 1), user="test")
    forget_schema()
    gt.CACHE.clear()
    before = _snapshot(db)
    _burst(city)
    _wait_poll()
    _burst(city, token)
    assert _snapshot(db) == before


def test_one_row_change_through_the_graph_changes_only_the_affected_tiles(city, db):
    """One enterprise linked to a parcel gets a class: after graph.refresh with that change,
    the parcel's tiles (z14, z16) carry the class and were dropped from the cache; a cached tile
    elsewhere stays cached, byte for byte."""
    z = 16
    x, y = gt.tile_for(LON, LAT, z)
    with db.connect() as c:
        no = c.execute(
            text(
                "SELECT parcel_no FROM parcels WHERE geom && ST_Transform("
                "ST_TileEnvelope(:z, :x, :y), 4549) ORDER BY parcel_no LIMIT 1"
            ),
            {"z": z, "x": x, "y": y},
        ).scalar_one()
    here = {zz: _tile(city, "parcels", zz) for zz in (14, 16)}
    far = _tile(city, "parcels", z, *FAR)
    assert _tile(city, "parcels", z, *FAR).headers["x-tile-cache"] == "hit"
    assert all(_tile(city, "parcels", zz).headers["x-tile-cache"] == "hit" for zz in here)
    with db.begin() as c:
        for kind, key, to in (("enterprise_parcel", uscc(7), no),):
            c.execute(
                text(
                    "INSERT INTO links (kind, from_key, to_key, rule, run_id, as_of) "
                    "VALUES (:k, :f, :t, 'r', 1, '2026-01-01')"
                ),
                {"k": kind, "f": key, "t": to},
            )
        c.execute(
            text(
                "INSERT INTO evaluation_rows (year, uscc, rule, run_id, as_of) "
                "VALUES (2025, :u, 'r', 1, '2026-01-01')"
            ),
            {"u": uscc(7)},
        )
        c.execute(
            text(
                'INSERT INTO evaluation_ranking (year, uscc, "group", evaluated, graded, class) '
                "VALUES (2025, :u, 'above', true, true, 'C')"
            ),
            {"u": uscc(7)},
        )
        out = graph.refresh(c, Changes(links={uscc(7), no}, evaluation_ranking={f"{uscc(7)}:2025"}))
    assert out.timings.keys() == {"tiles"}
    with db.connect() as c:
        assert (
            c.execute(
                text("SELECT eval_class FROM tile_parcels WHERE parcel_no = :n"), {"n": no}
            ).scalar_one()
            == "C"
        )
    _wait_poll()
    for zz, before in here.items():
        after = _tile(city, "parcels", zz)
        assert after.headers["x-tile-cache"] == "miss" and after.content != before.content
        classes = {
            f["properties"]["parcel_no"]: f["properties"].get("eval_class")
            for f in _decode(after)["parcels"]["features"]
        }
        assert classes[no] == "C"
    again = _tile(city, "parcels", z, *FAR)
    assert again.headers["x-tile-cache"] == "hit" and again.content == far.content
    # the same change again: no parcel class differs, no parcel tile is logged
    parcel_logs = "SELECT count(*) FROM tile_invalidations WHERE 'parcels' = ANY(layers)"
    with db.begin() as c:
        n = c.execute(text(parcel_logs)).scalar_one()
        graph.refresh(c, Changes(links={uscc(7), no}, evaluation_ranking={f"{uscc(7)}:2025"}))
        assert c.execute(text(parcel_logs)).scalar_one() == n


def test_three_lands_and_platform_kinds_invalidate_where_they_changed(city, db):
    """The live run's changed results log the area of their keys (a parcel's 低效 status: the
    parcel; an idle DZJGH: its supply), not the whole city; a supply that moved has its old
    and new place logged for the idle layer by its table's trigger, and the refresh logs where
    its result lies now; a full refresh logs the lands layers wherever their sources lie; a
    platform whose kind changed logs that platform for the platforms tileset."""
    with db.connect() as c, c.begin() as tx:
        no, sno = c.execute(
            text(
                "SELECT parcel_no, supply_no FROM parcels WHERE supply_no IS NOT NULL "
                "ORDER BY parcel_no LIMIT 1"
            )
        ).one()
        code = c.execute(text("SELECT code FROM platforms ORDER BY code LIMIT 1")).scalar_one()

        def last(what: str) -> tuple[list[str], str]:
            return tuple(
                c.execute(
                    text(
                        "SELECT layers, ST_AsText(extent) FROM tile_invalidations "
                        "WHERE source LIKE :s ORDER BY id DESC LIMIT 1"
                    ),
                    {"s": f"graph:%:{what}:%"},
                ).one()
            )

        def box(sql: str, **params) -> str:
            return c.execute(
                text(
                    "SELECT ST_AsText(ST_SetSRID(ST_Expand(ST_Extent(g), 1)::geometry, 4549)) "
                    f"FROM ({sql}) q(g)"
                ),
                params,
            ).scalar_one()

        whole = box(
            "SELECT geom FROM approvals UNION ALL SELECT geom FROM supplies "
            "UNION ALL SELECT geom FROM parcels"
        )
        graph.refresh(c, Changes(low_efficiency_results={no}, idle_results={sno}))
        layers, extent = last("lands")
        assert layers == ["unsupplied", "idle", "low_efficiency"]
        assert extent == box(
            "SELECT geom FROM parcels WHERE parcel_no = :n "
            "UNION ALL SELECT geom FROM supplies WHERE supply_no = :s",
            n=no,
            s=sno,
        )
        assert extent != whole
        c.execute(
            text("UPDATE supplies SET geom = ST_Translate(geom, 500, 0) WHERE supply_no = :s"),
            {"s": sno},
        )
        moved = c.execute(
            text(
                "SELECT layers, ST_AsText(extent) FROM tile_invalidations "
                "WHERE source LIKE 'supplies:update:%' ORDER BY id DESC LIMIT 1"
            )
        ).one()
        assert "idle" in moved[0]
        assert moved[1] == box(
            "SELECT ST_Translate(geom, -500, 0) FROM supplies WHERE supply_no = :s "
            "UNION ALL SELECT geom FROM supplies WHERE supply_no = :s",
            s=sno,
        )
        graph.refresh(c, Changes(supplies={sno}, idle_results={sno}))
        assert last("lands") == (
            layers,
            box("SELECT geom FROM supplies WHERE supply_no = :s", s=sno),
        )
        graph.refresh(c, None)
        assert last("lands") == (
            layers,
            box(
                "SELECT geom FROM approvals UNION ALL SELECT geom FROM supplies "
                "UNION ALL SELECT geom FROM parcels"
            ),
        )
        graph.refresh(c, Changes(platform_kinds={code}))
        assert last("platforms") == (
            ["platforms"],
            box("SELECT geom FROM platforms WHERE code = :c", c=code),
        )
        tx.rollback()
