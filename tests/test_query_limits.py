"""Bounded work for every query: CQL2 filters capped in length, terms and depth (400 naming the
limit, refused while parsing), bbox and paging parameters checked (400, never 500), and a
statement timeout on every request's SQL (503 with Retry-After) that neither HTTP writes
(imports, retirements, detections, plans: the job limit) nor the CLI are held to."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from contextlib import ExitStack, contextmanager

import httpx
import pytest
from sqlalchemy import create_engine, text

from gis.core.config import get_settings
from tests.conftest import database_copy, serve_process, uvicorn_thread
from tests.ogc_helpers import N_PARCELS, city_client

ITEMS = "/ogc/collections/parcels/items"


@pytest.fixture
def city(http, db):
    return city_client(http, db)


def _problem(r: httpx.Response, status: int, says: str) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["status"] == status and body["error"] and says in body["message"], body
    return body


# ---- CQL2 filters ---------------------------------------------------------------------------


def test_a_filter_of_1241_terms_is_refused_fast_naming_the_limit(city):
    f = " AND ".join(["area_m2>1"] * 1_241)
    t0 = time.perf_counter()
    r = city.get(ITEMS, params={"filter": f})
    took = time.perf_counter() - t0
    _problem(r, 400, "more than 200 terms")
    assert "tiles.filter_max_terms" in r.json()["message"]
    assert took < 2, took


def test_a_filter_just_under_the_limits_is_served(city):
    f = " AND ".join(["area_m2>1"] * 200)
    r = city.get(ITEMS, params={"filter": f})
    assert r.status_code == 200, r.text
    assert r.json()["numberMatched"] == N_PARCELS
    deep = "NOT " * 11 + "(" * 9 + "area_m2<1" + ")" * 9  # 20 levels: 11 NOTs, 9 parentheses
    r = city.get(ITEMS, params={"filter": deep})
    assert r.status_code == 200, r.text
    assert r.json()["numberMatched"] == N_PARCELS


@pytest.mark.parametrize(
    "f, says",
    [
        ("NOT " * 10_000 + "area_m2>1", "filter longer than 20000 characters"),
        ("NOT " * 1_000 + "area_m2>1", "nested deeper than 20 levels"),
        ("(" * 1_000 + "area_m2>1" + ")" * 1_000, "nested deeper than 20 levels"),
        ("S_INTERSECTS(geometry,POINT" + "(" * 5_000 + "1 2" + ")" * 5_000 + ")", "coordinates"),
        ("area_m2 > 1e999", "out of range"),
        # the cql2 package reads no exponent in a WKT coordinate: a parse error naming where
        ("S_INTERSECTS(geometry, POINT(1e300 1e300))", "cannot parse the filter at position 36"),
        ("S_INTERSECTS(geometry, POINT(1000000 1))", "outside the range"),
        ("S_INTERSECTS(geometry, POINT(0 100))", "outside the range"),
    ],
)
def test_deep_or_odd_filters_are_a_400(city, f, says):
    _problem(city.get(ITEMS, params={"filter": f}), 400, says)


def test_a_filter_spanning_the_world_is_clipped_not_a_500(city):
    """Geometries far from the storage projection's meridian are clipped before they are
    projected (PROJ folds or refuses them): the whole world finds every parcel."""
    world = "S_INTERSECTS(geometry, POLYGON((-180 -90, 180 -90, 180 90, -180 90, -180 -90)))"
    r = city.get(ITEMS, params={"filter": world})
    assert r.status_code == 200, r.text
    assert r.json()["numberMatched"] == N_PARCELS
    far = "S_INTERSECTS(geometry, POINT(-60 -30))"
    r = city.get(ITEMS, params={"filter": far})
    assert r.status_code == 200 and r.json()["numberMatched"] == 0, r.text


# ---- bbox and the other items parameters -----------------------------------------------------

BAD_BBOXES = [
    ("nan,30,121,31", "outside the range"),
    ("120,30,inf,31", "outside the range"),
    ("-inf,30,121,31", "outside the range"),
    ("1e999,30,121,31", "outside the range"),
    ("120,30,121", "four numbers"),
    ("120,30,121,31,5", "four numbers"),
    ("121,30,120,31", "lower corner comes first"),
    ("120,31,121,30", "lower corner comes first"),
    ("120,-91,121,31", "outside the range"),
    ("x,30,121,31", "four numbers"),
    ("", "four numbers"),
]


@pytest.mark.parametrize("bbox, says", BAD_BBOXES)
def test_a_bad_bbox_is_a_400_on_the_ogc_items(city, bbox, says):
    _problem(city.get(ITEMS, params={"bbox": bbox or ","}), 400, says)


@pytest.mark.parametrize("bbox, says", BAD_BBOXES)
def test_a_bad_bbox_is_a_400_on_the_land_lists(city, bbox, says):
    r = city.get("/api/land/unsupplied", params={"bbox": bbox or ","})
    _problem(r, 400, says)


@pytest.mark.parametrize(
    "params, says",
    [
        ({"bbox": "-1e300,-1e300,1e300,1e300", "bbox-crs": "EPSG:3857"}, "outside the range"),
        ({"bbox": "120,30,121,31", "bbox-crs": "EPSG:4326"}, "outside the range"),  # lat 120
        ({"bbox": "nan,0,1,1", "bbox-crs": "EPSG:4549"}, "outside the range"),
        ({"bbox-crs": "EPSG:99999999999999999999", "bbox": "1,2,3,4"}, "bbox-crs"),
        ({"limit": "0"}, "limit=0"),
        ({"limit": "-5"}, "limit=-5"),
        ({"limit": str(2**70)}, "limit="),
        ({"offset": "-1"}, "offset=-1"),
        ({"offset": str(2**70)}, "offset="),
        ({"datetime": "2020-13-01"}, "datetime"),
        ({"datetime": "2021-01-01/2020-01-01"}, "the start is after the end"),
        ({"datetime": "99999-01-01"}, "datetime"),
        ({"crs": "EPSG:0"}, "crs 'EPSG:0' is not supported"),
    ],
)
def test_bad_items_parameters_are_a_400(city, params, says):
    _problem(city.get(ITEMS, params=params), 400, says)


@pytest.mark.parametrize(
    "params, matched",
    [
        ({"bbox": "-180,-90,180,90"}, N_PARCELS),
        ({"bbox": "-90,-180,90,180", "bbox-crs": "EPSG:4326"}, N_PARCELS),
        (
            {"bbox": "-20037508.34,-20048966.1,20037508.34,20048966.1", "bbox-crs": "EPSG:3857"},
            N_PARCELS,
        ),
        ({"bbox": "-1e300,-1e300,1e300,1e300", "bbox-crs": "EPSG:4549"}, N_PARCELS),
        ({"bbox": "-70,-40,-60,-30"}, 0),  # far from the storage projection: nothing, no error
        ({"bbox": "0,0,1,1,0,1"}, 0),  # six numbers: with heights
    ],
)
def test_wide_and_far_bboxes_are_served(city, params, matched):
    r = city.get(ITEMS, params=params)
    assert r.status_code == 200, r.text
    assert r.json()["numberMatched"] == matched


def test_ogc_limit_and_offset_are_bounded_in_the_openapi(city):
    spec = city.get("/openapi.json").json()
    params = {
        p["name"]: p["schema"]
        for p in spec["paths"]["/ogc/collections/{collection_id}/items"]["get"]["parameters"]
    }
    limit = next(s for s in params["limit"]["anyOf"] if s.get("type") == "integer")
    assert limit["minimum"] == 1 and limit["maximum"] == 2**63 - 1
    assert params["offset"]["minimum"] == 0 and params["offset"]["maximum"] <= 2**63 - 1


# ---- statement timeout -----------------------------------------------------------------------


@contextmanager
def _env(**values: str):
    """Environment variables set (and the settings read again) for the block."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    get_settings.cache_clear()
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        get_settings.cache_clear()


@pytest.fixture(scope="module")
def sample_copy(sample_engine):
    """A copy of the sample city this module may write to (detections): its URL and an
    analyst token."""
    from gis.core import tokens

    with database_copy(sample_engine, "limits") as url:
        eng = create_engine(url)
        with eng.begin() as c:
            token = tokens.create(c, "analyst", "query_limits")
        eng.dispose()
        yield url, token


def _tile_over_the_city(url: str, z: int = 14) -> tuple[int, int, int]:
    eng = create_engine(url)
    with eng.connect() as c:
        lon, lat = c.execute(
            text(
                "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_Transform(ST_SetSRID(ST_Centroid("
                "ST_Extent(geom)::geometry), 4549), 4326) AS p FROM parcels) q"
            )
        ).one()
    eng.dispose()
    n = 2**z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return z, x, y


def test_a_request_past_the_statement_timeout_is_a_503_and_jobs_are_not_cut(sample_copy, tmp_path):
    """`landlink serve` with a 1 ms statement timeout: a page of 10,000 parcels cannot be
    built in time (503, Retry-After, the timeout named), nor a tile; a detection started over
    HTTP runs under the job limit and completes; the server goes on answering."""
    url, token = sample_copy
    with _env(LANDLINK_STATEMENT_TIMEOUT_MS="1"):
        with serve_process(url, tmp_path / "server.log") as base:
            with httpx.Client(base_url=base, timeout=300) as http:
                r = http.get(ITEMS, params={"limit": 10_000, "filter": "area_m2 > 0"})
                body = _problem(r, 503, "statement timeout")
                assert r.headers["retry-after"]
                assert "traceback" not in r.text.lower() and body["title"]
                z, x, y = _tile_over_the_city(url)  # rendered on the tiles' own connections
                _problem(http.get(f"/tiles/parcels/{z}/{x}/{y}.mvt"), 503, "statement timeout")
                r = http.post(
                    "/api/detections",
                    params={"as_of": "2025-06-30"},
                    headers={"Authorization": f"Bearer {token}"},
                )
                assert r.status_code == 201, r.text
                r = http.get("/docs")
                assert r.status_code == 200, r.text


def test_the_timeout_is_a_503_and_the_limit_is_per_request(engine):
    """A server whose statement timeout is 50 ms (in this process, so it shares the
    connection pool with this test): a statement of 2 s is cut, answered 503 with
    Retry-After, and the connection stays open; code outside a request (as the CLI's) then
    runs unlimited on the same pooled connections."""
    from app.main import create_app
    from gis.core.db import get_engine

    with _env(LANDLINK_STATEMENT_TIMEOUT_MS="50", LANDLINK_JOB_STATEMENT_TIMEOUT_MS="1500"):
        app = create_app()

    @app.get("/test-only/sleep")
    def sleep(s: float) -> dict:
        with get_engine().connect() as c:
            c.execute(text("SELECT pg_sleep(:s)"), {"s": s})
        return {"slept": s}

    @app.post("/test-only/sleep")
    def write_sleep(s: float) -> dict:  # a write: the job limit
        with get_engine().begin() as c:
            c.execute(text("SELECT pg_sleep(:s)"), {"s": s})
        return {"slept": s}

    with uvicorn_thread(app, log_level="critical") as base:
        with httpx.Client(base_url=base, timeout=60) as http:
            for _ in range(3):
                r = http.get("/test-only/sleep", params={"s": 2})  # a 200 had it not been cut
                _problem(r, 503, "statement timeout")
                assert r.headers["retry-after"] == "5"
                assert http.get("/test-only/sleep", params={"s": 0.001}).status_code == 200
            # a write runs under the job limit: 0.3 s passes, 2 s is cut, said as a write
            assert http.post("/test-only/sleep", params={"s": 0.3}).status_code == 200
            r = http.post("/test-only/sleep", params={"s": 2})
            body = _problem(r, 503, "nothing was changed")
            assert "LANDLINK_JOB_STATEMENT_TIMEOUT_MS" in body["message"]
    with ExitStack() as stack:  # every pooled connection at once
        for _ in range(get_engine().pool.size()):
            c = stack.enter_context(engine.connect())
            assert c.execute(text("SHOW statement_timeout")).scalar() == "0"
            c.execute(text("SELECT pg_sleep(0.1)"))


def test_the_cli_is_not_limited(sample_copy):
    """`landlink detect` with LANDLINK_STATEMENT_TIMEOUT_MS=1 in its environment: the CLI's
    analyses are never held to the request limit."""
    url, _ = sample_copy
    r = subprocess.run(
        [sys.executable, "-m", "app.cli", "detect", "--as-of", "2025-06-30"],
        env={**os.environ, "DATABASE_URL": url, "LANDLINK_STATEMENT_TIMEOUT_MS": "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stdout + r.stderr


def test_tile_connections_carry_the_limit_of_the_work_that_opened_them(sample_copy):
    """Tiles render on connections of their own (not SQLAlchemy's pool): opened in a request,
    they carry its limit; opened outside one, none."""
    from gis.core.dblimits import statement_timeout
    from gis.serving import tiles as gt

    url, _ = sample_copy
    z, x, y = _tile_over_the_city(url, 10)
    limited, free = create_engine(url), create_engine(url)
    try:
        with limited.connect() as c:
            ts = gt.tilesets(c)["parcels"]
        with statement_timeout(45_000):
            gt.render(limited, ts, z, x, y, False)
        gt.render(free, ts, z, x, y, False)
        for eng, setting in ((limited, "45s"), (free, "0")):
            pool = gt._connections(eng)
            conn = pool.get()
            try:
                assert conn.execute("SHOW statement_timeout").fetchone()[0] == setting
            finally:
                pool.put(conn)
    finally:
        limited.dispose()
        free.dispose()
