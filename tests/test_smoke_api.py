import httpx
from sqlalchemy import text

from tests.conftest import _free_port, serve_process


def test_health_reports_versions(http):
    r = http.get("/health")
    assert r.status_code == 200
    body = r.json()
    assert body["database"].startswith("PostgreSQL 15")
    assert body["postgis"].startswith("3.")


def test_unknown_path_is_json_404(http):
    r = http.get("/no/such/thing")
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["message"] == body["detail"] and body["status"] == 404
    assert body["title"] == "Not Found" and body["type"] == "about:blank"


def test_layers_lists_every_contract_layer(http, db):
    r = http.get("/api/layers")
    codes = [x["code"] for x in r.json()["layers"]]
    assert codes == ["XZQ", "PT", "ZL", "PZ", "GD", "DK", "QY", "CC", "XM", "BD", "TJ", "MB", "RW"]
    assert all(x["count"] == 0 for x in r.json()["layers"])
    with db.connect() as c:
        assert c.execute(text("SELECT count(*) FROM districts")).scalar() == 0


def test_database_out_of_reach_is_a_json_503_everywhere():
    """A real server whose database is down: every data endpoint says so (503, JSON, what to
    do), none answers a bare 500."""
    dead = f"postgresql://nobody@127.0.0.1:{_free_port()}/none"
    with serve_process(dead) as base:
        for path in (
            "/health",
            "/api/layers",
            "/api/land/idle",
            "/api/evaluations?year=2025",
            "/ogc/collections",
            "/tiles/parcels/14/13700/6700.mvt",
            "/tiles/parcels.json",
        ):
            r = httpx.get(base + path, timeout=30)
            assert r.status_code == 503, (path, r.status_code, r.text)
            body = r.json()
            assert body["error"] == "unavailable"
            assert "landlink db up" in body["message"] and "DATABASE_URL" in body["message"]
