"""Imports over HTTP and the access rules, through a real server and a real HTTP client."""

from __future__ import annotations

from sqlalchemy import text

from gis.core import tokens
from tests.conftest import snapshot
from tests.factories import districts, supplies


def token(db, role: str) -> str:
    with db.begin() as c:
        return tokens.create(c, role, f"test-{role}")


def shp_parts(path):
    return [("files", (p.name, p.read_bytes())) for p in sorted(path.parent.glob(path.stem + ".*"))]


def test_import_needs_an_admin_token(http, db, tmp_path):
    p = districts(tmp_path)
    r = http.post("/api/imports", data={"layer": "xzq"}, files=shp_parts(p))
    assert r.status_code == 401 and "admin" in r.json()["message"]
    for role in ("viewer", "analyst"):
        r = http.post(
            "/api/imports",
            data={"layer": "xzq"},
            files=shp_parts(p),
            headers={"Authorization": f"Bearer {token(db, role)}"},
        )
        assert r.status_code == 403 and role in r.json()["message"]
    r = http.post(
        "/api/imports",
        data={"layer": "xzq"},
        files=shp_parts(p),
        headers={"Authorization": "Bearer ll_not_a_real_token"},
    )
    assert r.status_code == 401
    with db.connect() as c:
        assert c.execute(text("SELECT count(*) FROM districts")).scalar() == 0


def test_admin_imports_a_shapefile_and_reads_the_report(http, db, tmp_path):
    h = {"Authorization": f"Bearer {token(db, 'admin')}"}
    r = http.post(
        "/api/imports", data={"layer": "xzq"}, files=shp_parts(districts(tmp_path)), headers=h
    )
    assert r.status_code == 201, r.text
    rep = r.json()
    assert (rep["inserted"], rep["status"]) == (2, "loaded")
    assert http.get(f"/api/imports/{rep['batch_id']}").status_code == 401
    got = http.get(f"/api/imports/{rep['batch_id']}", headers=h).json()
    assert got["status"] == "loaded" and got["inserted"] == 2
    assert got["created_by"] == "token:test-admin"
    layers = {x["code"]: x for x in http.get("/api/layers").json()["layers"]}
    assert layers["XZQ"]["count"] == 2
    assert layers["XZQ"]["last_import"]["id"] == rep["batch_id"]


def test_strict_upload_with_a_bad_row_is_422_and_changes_nothing(http, db, tmp_path):
    h = {"Authorization": f"Bearer {token(db, 'admin')}"}
    http.post(
        "/api/imports", data={"layer": "xzq"}, files=shp_parts(districts(tmp_path)), headers=h
    )
    before = snapshot(db)
    bad = supplies(tmp_path, 3, GDRQ=["2019-01-01", "yesterday", "2019-01-01"])
    r = http.post("/api/imports", data={"layer": "gd"}, files=shp_parts(bad), headers=h)
    assert r.status_code == 422
    body = r.json()
    err = body["report"]["errors"][0]
    assert (err["where"], err["field"]) == ("feature 1", "GDRQ")
    assert "nothing was imported" in body["message"]
    assert snapshot(db) == before
    # the refused attempt is logged and readable
    got = http.get(f"/api/imports/{body['report']['batch_id']}", headers=h).json()
    assert got["status"] == "rejected"
    r = http.post(
        "/api/imports", data={"layer": "gd", "mode": "lenient"}, files=shp_parts(bad), headers=h
    )
    assert r.status_code == 201 and r.json()["rejected"] == 1 and r.json()["inserted"] == 2


def test_upload_errors_are_json(http, db, tmp_path):
    h = {"Authorization": f"Bearer {token(db, 'admin')}"}
    r = http.post(
        "/api/imports", data={"layer": "nope"}, files=[("files", ("a.csv", b"x"))], headers=h
    )
    assert r.status_code == 400 and "unknown layer" in r.json()["message"]
    r = http.post(
        "/api/imports", data={"layer": "xzq"}, files=[("files", ("a.txt", b"x"))], headers=h
    )
    assert r.status_code == 400 and "no importable file" in r.json()["message"]
    r = http.post(
        "/api/imports",
        data={"layer": "cc"},
        files=[("files", ("CC.csv", b"TYSHXYDM,ND\n"))],
        headers=h,
    )
    assert r.status_code == 400 and "SJSJ" in r.json()["message"]
    r = http.post("/api/imports", data={"layer": "xzq"}, headers=h)
    assert r.status_code == 422 and r.json()["error"] == "invalid"
    assert http.get("/api/imports/999999", headers=h).status_code == 404


def test_tokens_are_stored_hashed(db):
    t = token(db, "analyst")
    with db.connect() as c:
        stored = c.execute(text("SELECT token_hash FROM api_tokens")).scalars().all()
    assert t not in stored and len(stored[0]) == 64


def test_replace_over_http_and_the_retire_endpoint(http, db, tmp_path):
    """replace=true retires the supplies the file lacks; POST /api/layers/{code}/retire is for
    admins, 404 for an unknown layer or key (nothing changes), and retires a named row."""
    h = {"Authorization": f"Bearer {token(db, 'admin')}"}
    r = http.post(
        "/api/imports", data={"layer": "xzq"}, files=shp_parts(districts(tmp_path)), headers=h
    )
    assert r.status_code == 201, r.text
    r = http.post(
        "/api/imports", data={"layer": "gd"}, files=shp_parts(supplies(tmp_path, 3)), headers=h
    )
    assert r.status_code == 201 and r.json()["inserted"] == 3
    (tmp_path / "b").mkdir()
    fewer = supplies(tmp_path / "b", 2)
    r = http.post(
        "/api/imports",
        data={"layer": "gd", "replace": "true"},
        files=shp_parts(fewer),
        headers=h,
    )
    assert r.status_code == 201, r.text
    rep = r.json()
    assert rep["retired"] == 1 and rep["retired_keys"] == ["3301022019B00002"]
    with db.connect() as c:
        assert c.execute(text("SELECT count(*) FROM supplies")).scalar() == 2
        assert c.execute(
            text("SELECT op, who FROM row_history WHERE layer = 'GD' AND op = 'retire'")
        ).all() == [("retire", "token:test-admin")]

    body = {"keys": ["3301022019B00001"]}
    r = http.post("/api/layers/gd/retire", json=body)
    assert r.status_code == 401
    r = http.post(
        "/api/layers/gd/retire",
        json=body,
        headers={"Authorization": f"Bearer {token(db, 'analyst')}"},
    )
    assert r.status_code == 403
    before = snapshot(db)
    r = http.post("/api/layers/zz/retire", json=body, headers=h)
    assert r.status_code == 404 and "unknown layer" in r.json()["message"]
    r = http.post("/api/layers/gd/retire", json={"keys": ["NOPE", "3301022019B00001"]}, headers=h)
    assert r.status_code == 404 and r.json()["missing"] == ["NOPE"]
    r = http.post("/api/layers/gd/retire", json={"keys": ["3301022019B00002"]}, headers=h)
    assert r.status_code == 404 and "(retired " in r.json()["message"]
    assert snapshot(db) == before
    r = http.post("/api/layers/gd/retire", json=body, headers=h)
    assert r.status_code == 200, r.text
    assert r.json()["retired_keys"] == ["3301022019B00001"]
    with db.connect() as c:
        assert c.execute(text("SELECT supply_no FROM supplies")).scalars().all() == [
            "3301022019B00000"
        ]


def test_an_editor_writes_its_own_layers_only(http, db, tmp_path):
    """A department's editor token imports and retires rows of its layers, is refused (403,
    naming what it may write) on the others, and a revoked one is refused (401) at once."""
    with db.begin() as c:
        xzq = tokens.create(c, "editor", "市规划局", layers=["xzq", "gd"])
        cc = tokens.create(c, "editor", "市统计局", layers=["cc"])
    r = http.post(
        "/api/imports",
        data={"layer": "xzq"},
        files=shp_parts(districts(tmp_path)),
        headers={"Authorization": f"Bearer {cc}"},
    )
    assert r.status_code == 403, r.text
    assert "may write CC only" in r.json()["message"] and "--layers xzq" in r.json()["message"]
    r = http.post(
        "/api/imports",
        data={"layer": "xzq"},
        files=shp_parts(districts(tmp_path)),
        headers={"Authorization": f"Bearer {xzq}"},
    )
    assert r.status_code == 201, r.text
    assert r.json()["inserted"] == 2
    r = http.post(
        "/api/imports",
        data={"layer": "gd"},
        files=shp_parts(supplies(tmp_path, 2)),
        headers={"Authorization": f"Bearer {xzq}"},
    )
    assert r.status_code == 201, r.text
    body = {"keys": ["3301022019B00001"]}
    r = http.post("/api/layers/gd/retire", json=body, headers={"Authorization": f"Bearer {cc}"})
    assert r.status_code == 403
    with db.connect() as c:
        assert c.execute(text("SELECT count(*) FROM supplies")).scalar() == 2
        who = c.execute(text("SELECT DISTINCT who FROM row_history")).scalars().all()
    assert who == ["token:市规划局"]
    with db.begin() as c:
        tokens.revoke(c, "市规划局")
    r = http.post("/api/layers/gd/retire", json=body, headers={"Authorization": f"Bearer {xzq}"})
    assert r.status_code == 401 and "revoked" in r.json()["message"]
    with db.connect() as c:
        assert c.execute(text("SELECT count(*) FROM supplies")).scalar() == 2


def test_a_zipped_file_geodatabase_is_imported_by_its_layer(http, db, tmp_path):
    """A .gdb folder sent as a zip (how a browser or a script sends a folder): the layer named
    by ``sheet`` is imported; without it, the layers are listed; two geodatabases in one upload
    are refused."""
    import io
    import zipfile

    import geopandas as gpd
    import pyogrio
    import shapely

    gdb = tmp_path / "规划.gdb"
    x0, y0 = 40_500_000 - 40_000_000, 3_350_000
    for name, code, label in (("ZL", "CDZZ", "城东智造大走廊"), ("ZL2", "CXKC", "城西科创大走廊")):
        frame = gpd.GeoDataFrame(
            {"ZLDM": [code], "ZLMC": [label]},
            geometry=[shapely.box(x0, y0, x0 + 500, y0 + 500)],
            crs=4549,
        )
        pyogrio.write_dataframe(frame, gdb, layer=name, driver="OpenFileGDB")

    def zipped(*folders) -> bytes:
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            for folder in folders:
                for f in sorted(folder.iterdir()):
                    z.write(f, f"{folder.name}/{f.name}")
        return buf.getvalue()

    h = {"Authorization": f"Bearer {token(db, 'admin')}"}
    r = http.post(
        "/api/imports",
        data={"layer": "zl", "sheet": "ZL2"},
        files=[("files", ("规划.zip", zipped(gdb)))],
        headers=h,
    )
    assert r.status_code == 201, r.text
    with db.connect() as c:
        assert c.execute(text("SELECT code, name FROM corridors")).all() == [
            ("CXKC", "城西科创大走廊")
        ]
    r = http.post(
        "/api/imports",
        data={"layer": "zl"},
        files=[("files", ("规划.zip", zipped(gdb)))],
        headers=h,
    )
    assert r.status_code in (400, 422) and "ZL2" in r.json()["message"], r.text
    other = tmp_path / "三调.gdb"
    other.mkdir()
    for f in gdb.iterdir():
        (other / f.name).write_bytes(f.read_bytes())
    r = http.post(
        "/api/imports",
        data={"layer": "zl", "sheet": "ZL"},
        files=[("files", ("两库.zip", zipped(gdb, other)))],
        headers=h,
    )
    assert r.status_code == 422 and "two files named" in r.json()["message"], r.text
