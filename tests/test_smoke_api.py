from sqlalchemy import text


def test_health_reports_versions(http):
    r = http.get("/health")
    assert r.status_code == 200
    body = r.json()
    assert body["database"].startswith("PostgreSQL 15")
    assert body["postgis"].startswith("3.")


def test_unknown_path_is_json_404(http):
    r = http.get("/no/such/thing")
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("application/json")
    assert "message" in r.json()


def test_layers_lists_every_contract_layer(http, db):
    r = http.get("/api/layers")
    codes = [x["code"] for x in r.json()["layers"]]
    assert codes == ["XZQ", "PT", "ZL", "PZ", "GD", "DK", "QY", "CC", "XM", "BD", "TJ"]
    assert all(x["count"] == 0 for x in r.json()["layers"])
    with db.connect() as c:
        assert c.execute(text("SELECT count(*) FROM districts")).scalar() == 0
