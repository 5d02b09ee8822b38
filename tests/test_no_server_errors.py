"""No request gets a 500 for what the caller sent, and errors keep the connection open.

- every detail endpoint, asked for every key of the analysed sample city, public and analyst;
- NUL bytes, invalid UTF-8 and out-of-range numbers are refused with a 4xx problem naming them;
- every number parameter in the OpenAPI is bounded (fits the database, finite);
- errors are RFC 9457 problems (application/problem+json) and keep the connection open: after
  a 500 and after a 503 the next request goes over the same connection.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from sqlalchemy import text

from app.errors import PROBLEM_JSON
from app.params import BIGINT_MAX
from gis.core.layers import IMPORT_ORDER, LAYERS
from gis.ingest.history import key_sql
from gis.management import survey
from gis.serving import reports
from tests.conftest import _free_port, serve_process, uvicorn_thread

STATIC = Path(__file__).resolve().parent.parent / "app" / "static"


def _get_routes() -> list[str]:
    """Paths of every GET route with a path parameter, routers included (the app's own list)."""
    from app.main import create_app

    out: list[str] = []

    def walk(routes) -> None:  # type: ignore[no-untyped-def]
        for r in routes:
            if hasattr(r, "original_router"):
                walk(r.original_router.routes)
            elif "GET" in (getattr(r, "methods", None) or ()) and "{" in r.path:
                out.append(r.path)

    walk(create_app().routes)
    return sorted(set(out))


def _keys(http: httpx.Client, engine) -> dict[str, list[dict[str, str]]]:
    """Every key of every kind in the served city: route path -> list of path-parameter sets."""
    with engine.connect() as c:

        def col(sql: str) -> list[str]:
            return [str(r[0]) for r in c.execute(text(sql))]

        batches = col("SELECT id FROM import_batches ORDER BY id")
        runs = col("SELECT id FROM detection_runs ORDER BY id")
        usccs = col("SELECT DISTINCT uscc FROM enterprises ORDER BY 1")
        dkbhs = col("SELECT parcel_no FROM parcels ORDER BY 1")
        platforms = col("SELECT code FROM platforms ORDER BY 1")
        plans = col("SELECT id FROM plans ORDER BY id")
        tasks = col("SELECT code FROM tasks ORDER BY 1")
        # every target (a few hundred in the sample city), and one id that is none
        targets = [*col("SELECT id FROM targets ORDER BY 1"), "999999999"]
        # the years with indicators (a year not yet published answers 404, not 500)
        years = col("SELECT DISTINCT year FROM area_indicators ORDER BY 1")
        # rows of every layer: the first key of each twentieth, and every retired one
        rows = [
            {"code": code.lower(), "key": k}
            for code in IMPORT_ORDER
            for k in col(
                f"SELECT DISTINCT ON (b) k FROM (SELECT {key_sql(LAYERS[code], 't')} AS k, "
                f"ntile(20) OVER (ORDER BY {', '.join(LAYERS[code].key_columns)}) AS b "
                f"FROM {LAYERS[code].table} t) s ORDER BY b, k"
            )
            + col(f"SELECT DISTINCT key FROM row_history WHERE layer = '{code}' AND op = 'retire'")
        ]
    collections = [x["id"] for x in http.get("/ogc/collections").json()["collections"]]
    features = []
    for cid in collections:
        r = http.get(f"/ogc/collections/{cid}/items", params={"limit": 10000})
        assert r.status_code == 200, (cid, r.text[:300])
        ids = [str(f["id"]) for f in r.json()["features"]]
        # the page above rendered every feature; by id, a spread of at most 100 per collection
        step = -(-len(ids) // 100)
        features += [{"collection_id": cid, "feature_id": i} for i in ids[::step] + ids[-1:]]
    tilesets = [
        s["url"].rsplit("/", 1)[1].removesuffix(".json")
        for s in http.get("/tiles/style.json").json()["sources"].values()
        if s.get("url", "").endswith(".json")
    ]
    tiles = []
    for layer in tilesets:
        tj = http.get(f"/tiles/{layer}.json").json()
        lon, lat = tj["center"][:2]
        for z in range(tj.get("minzoom", 0), min(tj.get("maxzoom", 16), 16) + 1, 2):
            n = 2**z
            x = int((lon + 180) / 360 * n)
            y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
            tiles += [
                {"layer": layer, "z": str(z), "x": str(x), "y": str(y), "ext": ext}
                for ext in ("mvt", "pbf")
            ]
    static = [str(p.relative_to(STATIC)) for p in STATIC.rglob("*") if p.is_file()]
    return {
        "/api/imports/{batch_id}": [{"batch_id": b} for b in batches],
        "/api/layers/{code}/template.xlsx": [{"code": c.lower()} for c in IMPORT_ORDER],
        "/ogc/collections/{collection_id}": [{"collection_id": c} for c in collections],
        "/ogc/collections/{collection_id}/queryables": [{"collection_id": c} for c in collections],
        "/ogc/collections/{collection_id}/sortables": [{"collection_id": c} for c in collections],
        "/ogc/collections/{collection_id}/items": [{"collection_id": c} for c in collections],
        "/ogc/collections/{collection_id}/items/{feature_id}": features,
        "/tiles/{layer}.json": [{"layer": t} for t in tilesets],
        "/tiles/{layer}/{z}/{x}/{y}.{ext}": tiles,
        "/api/detections/{run_id}": [{"run_id": r} for r in runs],
        "/api/detections/{run_id}/diff/{other}": [
            {"run_id": a, "other": b} for a in runs for b in runs
        ],
        "/api/enterprises/{uscc}": [{"uscc": u} for u in usccs],
        "/api/layers/{code}/rows": [{"code": c.lower()} for c in IMPORT_ORDER],
        "/api/layers/{code}/rows/{key}": rows,
        "/api/layers/{code}/rows/{key}/history": rows,
        "/api/parcels/{dkbh}": [{"dkbh": d} for d in dkbhs],
        "/api/map/layers/{layer_id}.geojson": [{"layer_id": c} for c in collections],
        "/api/platforms/{code}": [{"code": p} for p in platforms],
        "/api/plans/{plan_id}": [{"plan_id": p} for p in plans],
        "/api/plans/{plan_id}/compare/{other}": [
            {"plan_id": p, "other": o} for p in plans for o in [*plans, "today"]
        ],
        "/api/plans/{plan_id}/report": [{"plan_id": p} for p in plans],
        "/api/tasks/{code}": [{"code": t} for t in tasks],
        "/api/targets/{target_id}": [{"target_id": t} for t in targets],
        "/api/targets/{target_id}/items": [{"target_id": t} for t in targets],
        "/api/survey/lists/{name}": [{"name": n} for n in survey.LIST_NAMES],
        "/api/reports/{name}": [{"name": n} for n in reports.REPORTS],
        "/api/assessment/{platform_code}": [{"platform_code": p} for p in platforms],
        "/api/publications/{year}": [{"year": y} for y in years],
        "/glyphs/{fontstack}/{glyph_range}.pbf": [
            {"fontstack": "Noto Sans Regular", "glyph_range": "0-255"}
        ],
        "/static/{path:path}": [{"path": p} for p in static],
    }


@pytest.mark.parametrize("role", ["public", "analyst"])
def test_every_detail_endpoint_for_every_key_of_the_sample_city(sample_server, role):
    base, engine, token, log = sample_server
    headers = {"Authorization": f"Bearer {token}"} if role == "analyst" else {}
    routes = _get_routes()
    with httpx.Client(base_url=base, headers=headers, timeout=120) as http:
        keys = _keys(http, engine)
        assert set(routes) == set(keys), "a detail route without keys here: add its keys"
        missing = [r for r in routes if not keys[r]]
        assert not missing, f"the sample city has no key for {missing}"
        paths = [
            route.replace("{path:path}", "{path}").format(
                **{k: quote(v, safe="/" if k == "path" else "") for k, v in params.items()}
            )
            for route in routes
            for params in keys[route]
        ]
        t0 = time.monotonic()
        with ThreadPoolExecutor(4) as pool:  # one client, its keep-alive connections
            answers = list(pool.map(lambda p: (p, http.get(p)), paths))
        count = len(answers)
        statuses = Counter(r.status_code for _, r in answers)
        failures = [(p, r.status_code, r.text[:300]) for p, r in answers if r.status_code >= 500]
    print(f"{role}: {count} requests in {time.monotonic() - t0:.1f} s, statuses {statuses}")
    assert not failures, f"{len(failures)} server errors, e.g. {failures[:5]}\n" + "\n".join(
        [x for x in log.read_text().splitlines() if "INFO:" not in x][-60:]
    )
    assert count > 500  # the sweep did sweep
    assert statuses.get(200, 0) > 0.9 * count, statuses


def _problem(r: httpx.Response, status: int, says: str) -> dict:
    assert r.status_code == status, (r.request.url, r.status_code, r.text)
    assert r.headers["content-type"].startswith(PROBLEM_JSON)
    body = r.json()
    assert body["status"] == status and body["type"] == "about:blank" and body["title"]
    assert body["detail"] == body["message"]
    assert body["error"]
    assert says in body["message"], body
    return body


@pytest.mark.parametrize(
    ("url", "status", "says"),
    [
        ("/api/search?q=%09Y%00", 400, "query parameter 'q'"),
        ("/api/land/unsupplied?offset=20895402&district=Q%00", 400, "'district' holds a NUL"),
        ("/api/land/unsupplied?offset=2946011459860370290638848", 422, "offset"),
        ("/api/land/unsupplied?offset=-1", 422, "offset"),
        ("/api/land/unsupplied?min_mu=1e308", 422, "min_mu"),
        ("/api/land/idle?min_mu=nan", 422, "min_mu"),
        ("/api/land/idle?run=99999999999999999999", 422, "run"),
        ("/api/land/low-efficiency?district=%FF%FE", 400, "'district' is not valid UTF-8"),
        ("/api/enterprises?q=%ED%A0%80", 400, "'q' is not valid UTF-8"),  # a surrogate
        ("/api/enterprises?year=99999999999999999999999", 422, "year"),
        ("/api/enterprises?offset=99999999999999999999999", 422, "offset"),
        ("/api/enterprises/%00", 400, "path segment"),
        ("/api/enterprises/%C3%28", 400, "not valid UTF-8"),
        ("/api/parcels/%00", 400, "NUL"),
        ("/api/parcels/no-such-parcel", 404, "no parcel"),
        ("/api/detections/99999999999999999999", 422, "run_id"),
        ("/api/plans/99999999999999999999", 422, "plan_id"),
        ("/api/plans/1/compare/%C2%B2", 400, "compare with a plan id"),  # '²'.isdigit()
        ("/api/plans/1/compare/99999999999999999999", 400, "compare with a plan id"),
        ("/api/platforms?as_of=0001-01-01", 422, "as_of"),
        ("/api/evaluations?year=1e3", 422, "year"),
        ("/api/search?q=x&%00=1", 400, "query parameter name"),
    ],
)
def test_what_the_caller_sent_is_refused_as_a_problem(http, url, status, says):
    _problem(http.get(url), status, says)


def test_a_nul_byte_in_a_json_body_is_a_400_not_a_500(http, engine):
    from gis.core import tokens

    with engine.begin() as c:
        token = tokens.create(c, "analyst", "nul")
    auth = {"Authorization": f"Bearer {token}"}
    r = http.post(
        "/api/platforms/P%00/kind", json={"kind": None, "reason": "a\u0000b"}, headers=auth
    )
    assert r.status_code == 400, r.text
    r = http.post("/api/platforms/P1/kind", json={"kind": None, "reason": "a\u0000b"}, headers=auth)
    assert r.status_code in (400, 404), r.text
    _problem(r, r.status_code, "")


def test_plan_amounts_and_weights_out_of_range_are_refused(http, engine):
    from gis.core import tokens

    with engine.begin() as c:
        token = tokens.create(c, "analyst", "plans")
    auth = {"Authorization": f"Bearer {token}"}
    base = {"target_year": 2030, "floor_mu": 0, "new_land_mu": 10}
    for body, says in [
        ({**base, "new_land_mu": 1e308}, "new_land_mu"),
        ({**base, "floor_mu": 1e300}, "floor_mu"),
        ({**base, "weights": {"tax": "x"}}, "weights must be numbers"),
        ({**base, "weights": {"tax": 1e308}}, "weights too large"),
        ({**base, "weights": {"kinds": [1, 2]}}, "weights.kinds must be an object"),
    ]:
        r = http.post("/api/plans", json=body, headers=auth)
        assert r.status_code == 422, (body, r.text)
        assert says in r.json()["message"], (body, r.json())


def test_every_number_parameter_is_bounded():
    """Every integer or float parameter in the OpenAPI has a minimum and a maximum that fit a
    PostgreSQL bigint (integers) or are finite (floats), so no number reaches the database out
    of range. Bodies' numbers are bounded the same way (app.params)."""
    from app.main import create_app

    spec = create_app().openapi()
    unbounded = []
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            for p in op.get("parameters", []):
                schema = p["schema"]
                for s in schema.get("anyOf", [schema]):
                    if s.get("type") not in ("integer", "number"):
                        continue
                    lo = s.get("minimum", s.get("exclusiveMinimum"))
                    hi = s.get("maximum", s.get("exclusiveMaximum"))
                    ok = lo is not None and hi is not None
                    if ok and s["type"] == "integer":
                        ok = -BIGINT_MAX - 1 <= lo and hi <= BIGINT_MAX
                    if not ok:
                        unbounded.append(f"{method.upper()} {path} {p['name']}")
    assert not set(unbounded) - ELSEWHERE, sorted(set(unbounded) - ELSEWHERE)


# checked in their handlers instead (OGC paging: a 400 naming the bound; an import batch id: a
# 404), not yet in the OpenAPI; better as app.params types
ELSEWHERE = {
    "GET /api/imports/{batch_id} batch_id",
    "GET /ogc/collections/{collection_id}/items limit",
    "GET /ogc/collections/{collection_id}/items offset",
}


# ---------------------------------------------------------------------------------------------
# errors keep the connection open
# ---------------------------------------------------------------------------------------------


def _local_port(r: httpx.Response) -> int:
    return r.extensions["network_stream"].get_extra_info("client_addr")[1]


@pytest.fixture(scope="module")
def failing_server(engine):
    """A live server of the real app plus one route that fails (this test's app only)."""
    from app.main import create_app

    app = create_app()

    @app.get("/test-only/boom")
    def boom() -> dict:
        raise RuntimeError("/tmp/secret/path exploded")

    with uvicorn_thread(app, log_level="critical") as url:
        yield url


def test_a_500_keeps_the_connection_open_and_shows_no_trace(failing_server):
    with httpx.Client(base_url=failing_server, timeout=30) as c:
        port = _local_port(c.get("/health"))
        r = c.get("/test-only/boom")
        body = _problem(r, 500, "internal error")
        assert body["error"] == "internal_error"
        assert "RuntimeError" not in r.text and "/tmp" not in r.text and "Traceback" not in r.text
        assert r.headers.get("connection", "").lower() != "close"
        assert _local_port(r) == port  # (raises OSError once the server has closed it)
        after = c.get("/health")
        assert after.status_code == 200 and _local_port(after) == port


def test_a_503_keeps_the_connection_open():
    """A real server on a dead database: 503 problems with Retry-After, one connection."""
    dead = f"postgresql://nobody@127.0.0.1:{_free_port()}/none"
    with serve_process(dead) as base, httpx.Client(base_url=base, timeout=30) as c:
        ports = set()
        for path in ("/api/layers", "/health", "/api/land/idle", "/docs"):
            r = c.get(path)
            ports.add(_local_port(r))
            if path != "/docs":
                _problem(r, 503, "DATABASE_URL")
                assert r.headers["retry-after"] == "5"
        assert len(ports) == 1, ports


ODD_QUERIES = [
    f"/api/land/{kind}?{q}"
    for kind in ("unsupplied", "idle", "low-efficiency")
    for q in (
        "bbox=1e400,0,1,1",
        "bbox=nan,nan,nan,nan",
        "bbox=1,2,3",
        "bbox=120,30,121,31&bbox-crs=EPSG:99999999999999999999",
        "intersects=%7B%7D",
        "intersects=%7B%22type%22%3A%22Polygon%22%2C%22coordinates%22%3A%5B%5D%7D",
        "intersects=not-json",
        "sort=-%22x",
        "sort=,,,",
        "status=nope",
        "age_band=nope",
        "district=%E2%80%AE&platform=%F0%9F%98%80",
        "limit=10000&offset=4611686018427387904",
        "format=xlsx&district=%3D1%2B1",
    )
] + [
    "/api/enterprises?q=%25_%5C&industry=%25",
    "/api/search?q=%25_%5C",
    "/api/land/summary?run=9223372036854775807",
    "/api/detections/9223372036854775807/diff/-9223372036854775808",
    "/api/map/layers/parcels.geojson?props=%22%3B--",
]


def test_odd_queries_on_the_sample_city_get_no_server_error(sample_server):
    base, _, token, log = sample_server
    answers = {}
    with httpx.Client(base_url=base, timeout=120) as http:
        for url in ODD_QUERIES:
            for headers in ({}, {"Authorization": f"Bearer {token}"}):
                r = http.get(url, headers=headers)
                answers[url] = r.status_code
                if r.status_code >= 400:
                    _problem(r, r.status_code, "")
    assert not {u: s for u, s in answers.items() if s >= 500}, answers
    assert any(s == 400 for s in answers.values()) and any(s == 200 for s in answers.values())


def test_admission_with_coordinates_out_of_range_is_a_422(http, engine):
    from gis.core import tokens

    with engine.begin() as c:
        token = tokens.create(c, "analyst", "admission")
    body = {"industry_code": "13", "investment_total": 1, "expected_output": 1, "expected_tax": 1}
    for ring in ([[1e308, 0], [1, 0], [1, 1], [1e308, 0]], [[0, 91], [1, 0], [1, 1], [0, 91]]):
        r = http.post(
            "/api/admission/check",
            json={**body, "location": {"type": "Polygon", "coordinates": [ring]}},
            headers={"Authorization": f"Bearer {token}"},
        )
        _problem(r, 422, "out of range")
    for ring in (
        [[179, 89], [180, 89], [180, 90], [179, 89]],
        [[-180, -90], [180, -90], [0, 0], [-180, -90]],
    ):
        r = http.post(
            "/api/admission/check",
            json={**body, "location": {"type": "Polygon", "coordinates": [ring]}},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert r.status_code < 500, r.text
