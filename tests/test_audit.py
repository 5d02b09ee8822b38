"""Restricted stays restricted, and every restricted read by a token is recorded: the
backward-capacity list and BD notes for analysts only; the audit log listed for admins over HTTP
and by `landlink audit` (live server, real CLI)."""

from __future__ import annotations

from datetime import date, timedelta

import httpx
import pytest
from sqlalchemy import text

from gis.core import tokens
from tests.eval_city import districts, enterprises, load, outputs, parcels, rect, table, uscc
from tests.test_cli import run

E1, E2 = uscc(1), uscc(2)


@pytest.fixture
def city(db, tmp_path):
    """Two 规上 firms on their own parcels, with tax, energy and emission figures for 2024;
    E2 (chemicals) has a failed standard (BD) with a note. Tokens of each role."""
    cc = [
        {"TYSHXYDM": u, "ND": 2024, "SJSJ": t, "GYZJZ": 500, "ZHNH": 100, "PFDL": 5, "CYRS": 20,
         "YFFY": 10, "YYSR": 1000, "GYZCZ": 2000}
        for u, t in ((E1, 300), (E2, 15))
    ]  # fmt: skip
    load(
        db,
        tmp_path,
        xzq=districts(tmp_path),
        dk=parcels(
            tmp_path, [("P1", rect(0, 0, 100, 100), {}), ("P2", rect(200, 0, 100, 100), {})]
        ),
        qy=enterprises(
            tmp_path,
            [
                {"TYSHXYDM": E1, "QYMC": "甲", "HYDM": "3484", "GMYS": 1, "DKBH": "P1"},
                {"TYSHXYDM": E2, "QYMC": "乙", "HYDM": "2614", "GMYS": 1, "DKBH": "P2"},
            ],
        ),
        cc=outputs(tmp_path, cc),
        bd=table(
            tmp_path,
            "BD.csv",
            [{"TYSHXYDM": E2, "ND": 2024, "BDLX": "环境保护", "SM": "超标排放 secret note"}],
        ),  # fmt: skip
    )
    with db.begin() as c:
        toks = {
            r: tokens.create(c, r, f"{r}-1", layers=["cc"] if r == "editor" else None)
            for r in tokens.ROLES
        }
    return {r: {"Authorization": f"Bearer {t}"} for r, t in toks.items()}


def _audit(db) -> list:
    with db.connect() as c:
        return c.execute(text("SELECT * FROM audit_log ORDER BY id")).all()


def test_analyst_tax_read_is_recorded_public_and_viewer_reads_are_not(server, city, db):
    with httpx.Client(base_url=server, timeout=60) as h:
        pub = h.get(f"/api/enterprises/{E1}").json()
        viewer = h.get(f"/api/enterprises/{E1}", headers=city["viewer"]).json()
        for d in (pub, viewer):
            assert d["restricted_hidden"] and all("tax_paid" not in f for f in d["figures"])
        assert _audit(db) == []  # public and a viewer token: no restricted data, no row

        r = h.get(f"/api/enterprises/{E1}", headers=city["analyst"])
        assert r.status_code == 200 and r.json()["figures"][0]["tax_paid"] == 300
        rows = _audit(db)
        assert len(rows) == 1, rows  # one row for the request, written before the answer
        a = rows[0]
        assert (a.token_name, a.role, a.method, a.path, a.status) == (
            "analyst-1",
            "analyst",
            "GET",
            f"/api/enterprises/{E1}",
            200,
        )
        assert a.route == "/api/enterprises/{uscc}" and a.what == ["tax/energy/emission figures"]
        with db.connect() as c:
            tid = c.execute(text("SELECT id FROM api_tokens WHERE name = 'analyst-1'")).scalar()
        assert a.token_id == tid and abs(a.at.date() - date.today()) <= timedelta(days=1)

        # a list of many enterprises is one row too; an error answer (404) records nothing
        h.get("/api/enterprises?format=csv", headers=city["analyst"]).raise_for_status()
        assert h.get("/api/enterprises/X", headers=city["analyst"]).status_code in (404, 422)
        rows = _audit(db)
        assert len(rows) == 2 and rows[1].path == "/api/enterprises"
        assert rows[1].query == "format=csv"

        # tiles with an analyst token carry 亩均税收: recorded; public tiles are not
        assert h.get("/tiles/parcels/0/0/0.mvt").status_code == 200
        assert len(_audit(db)) == 2
        assert h.get("/tiles/parcels/0/0/0.mvt", headers=city["analyst"]).status_code == 200
        assert _audit(db)[-1].route is None and _audit(db)[-1].path == "/tiles/parcels/0/0/0.mvt"


def test_ogc_reads_are_recorded_only_where_a_collection_holds_restricted_figures(server, city, db):
    """An analyst paging OGC collections: one row for each collection that has restricted
    properties (served to the analyst), none for the others (nothing restricted was served)."""
    from gis.serving.collections import registry

    with db.connect() as c:
        colls = registry(c)
    restricted = {k for k, v in colls.items() if v.has_restricted}
    assert restricted and restricted != set(colls)  # both kinds exist, so the test can fail
    with httpx.Client(base_url=server, timeout=60) as h:
        for cid in sorted(colls):
            r = h.get(f"/ogc/collections/{cid}/items", params={"limit": 1}, headers=city["analyst"])
            assert r.status_code == 200, r.text
    paths = [a.path for a in _audit(db)]
    assert sorted(paths) == sorted(f"/ogc/collections/{c}/items" for c in restricted)


def test_backward_capacity_and_bd_notes_are_for_analysts(server, city, db):
    with httpx.Client(base_url=server, timeout=60) as h:
        for fmt in ("json", "csv", "xlsx"):
            r = h.get("/api/backward-capacity", params={"format": fmt})
            assert r.status_code == 401, r.text
            assert "role analyst" in r.json()["message"]
            r = h.get("/api/backward-capacity", params={"format": fmt}, headers=city["viewer"])
            assert r.status_code == 403 and "needs analyst" in r.json()["message"]
        assert _audit(db) == []

        r = h.get("/api/backward-capacity", params={"year": 2024}, headers=city["analyst"])
        assert r.status_code == 200, r.text
        n = r.json()["numberMatched"]
        a = _audit(db)[-1]
        assert a.what == ["backward-capacity list", "BD notes"] and a.rows == n
        assert a.query == "year=2024" and a.token_name == "analyst-1"
        r = h.get("/api/backward-capacity?format=xlsx", headers=city["admin"])
        assert r.status_code == 200 and _audit(db)[-1].role == "admin"

        # BD notes (SM) in the dossiers: analysts only; the kind and year stay public
        pub = h.get(f"/api/enterprises/{E2}").json()["failed_standards"]
        assert pub == [{"year": 2024, "kind": "环境保护", "batch_id": pub[0]["batch_id"]}]
        ana = h.get(f"/api/enterprises/{E2}", headers=city["analyst"]).json()["failed_standards"]
        assert ana[0]["note"] == "超标排放 secret note"
        pub = h.get("/api/parcels/P2").json()
        assert "secret note" not in str(pub)
        assert pub["enterprises"][0]["failed_standards"] == [{"year": 2024, "kind": "环境保护"}]
        ana = h.get("/api/parcels/P2", headers=city["analyst"]).json()
        assert ana["enterprises"][0]["failed_standards"][0]["note"] == "超标排放 secret note"
        assert _audit(db)[-1].path == "/api/parcels/P2"


def test_audit_is_listed_for_admins_only(server, city, db):
    with httpx.Client(base_url=server, timeout=60) as h:
        h.get(f"/api/enterprises/{E1}", headers=city["analyst"]).raise_for_status()
        h.get(f"/api/enterprises/{E2}", headers=city["admin"]).raise_for_status()

        assert h.get("/api/audit").status_code == 401
        r = h.get("/api/audit", headers=city["analyst"])
        assert r.status_code == 403 and "needs admin" in r.json()["message"]
        assert h.get("/api/audit", headers=city["viewer"]).status_code == 403

        r = h.get("/api/audit", headers=city["admin"])
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["numberMatched"] == 2  # this listing is recorded after it was read
        newest, oldest = body["items"]
        assert (oldest["token_name"], oldest["role"], oldest["path"]) == (
            "analyst-1",
            "analyst",
            f"/api/enterprises/{E1}",
        )
        assert oldest["what"] == ["tax/energy/emission figures"] and newest["role"] == "admin"

        one = h.get("/api/audit", params={"token_name": "analyst-1"}, headers=city["admin"])
        assert [i["path"] for i in one.json()["items"]] == [f"/api/enterprises/{E1}"]
        today = date.today()
        tomorrow = (today + timedelta(days=1)).isoformat()
        r = h.get("/api/audit", params={"since": tomorrow}, headers=city["admin"])
        assert r.json()["numberMatched"] == 0
        r = h.get("/api/audit", params={"until": tomorrow, "limit": 1, "offset": 1},
                  headers=city["admin"])  # fmt: skip
        assert r.json()["numberMatched"] == 5 and len(r.json()["items"]) == 1
        assert h.get("/api/audit?since=yesterday", headers=city["admin"]).status_code == 400
        assert h.get("/api/audit?limit=0", headers=city["admin"]).status_code == 422

    r = run("audit", "--token", "analyst-1")
    assert r.returncode == 0, r.stderr
    assert f"/api/enterprises/{E1} -> tax/energy/emission figures" in r.stdout
    assert "analyst-1" in r.stdout and "1 of 1 restricted read(s)" in r.stdout
    r = run("audit", "--since", (date.today() - timedelta(days=1)).isoformat(), "--limit", "2")
    assert r.returncode == 0 and "2 of 6 restricted read(s)" in r.stdout, r.stdout
    assert run("audit", "--since", "soon").returncode == 2


def test_no_restricted_read_can_skip_the_audit(db):
    """A Caller with a token and no TokenGate around it refuses to say yes."""
    from app.deps import PUBLIC, Caller

    assert PUBLIC.analyst is False
    with pytest.raises(RuntimeError, match="outside TokenGate"):
        _ = Caller("analyst", "x", 1).analyst
    assert Caller("viewer", "v", 2).analyst is False


def test_no_audit_row_no_restricted_data(server, city, db):
    """If the audit row cannot be written, the analyst gets a 503, not the figures; public
    answers go on."""
    with db.begin() as c:
        c.execute(text("ALTER TABLE audit_log RENAME TO audit_log_away"))
    try:
        with httpx.Client(base_url=server, timeout=60) as h:
            r = h.get(f"/api/enterprises/{E1}", headers=city["analyst"])
            assert r.status_code == 503 and "audit log" in r.json()["message"], r.text
            assert "tax_paid" not in r.text and r.headers["retry-after"]
            assert h.get(f"/api/enterprises/{E1}").status_code == 200
            assert h.get(f"/api/enterprises/{E1}", headers=city["viewer"]).status_code == 200
    finally:
        with db.begin() as c:
            c.execute(text("ALTER TABLE audit_log_away RENAME TO audit_log"))
