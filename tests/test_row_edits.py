"""A department's system writes rows over HTTP: a live `landlink serve` on an analysed copy of the
sample city, a real HTTP client, editor tokens. Every write answers after the derived results
are current; a stale or missing If-Match changes nothing."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.conftest import _admin_url, bearer, served_copy


@pytest.fixture(scope="module")
def city(analysed_sample, tmp_path_factory):
    """(base URL, engine, {role name: token}) on a copy of the analysed sample city."""
    with served_copy(
        analysed_sample,
        "row_edits",
        tmp_path_factory.mktemp("row_edits"),
        {
            "cc": ("editor", "市统计局", ["cc"]),
            "qy_dk": ("editor", "市规划和自然资源局", ["qy", "dk"]),
            "analyst": ("analyst", "分析员", None),
        },
    ) as served:
        yield served


def _version(eng, layer: str, key: str) -> int:
    with eng.connect() as c:
        return c.execute(
            text("SELECT max(version) FROM row_history WHERE layer = :l AND key = :k"),
            {"l": layer, "k": key},
        ).scalar_one()


def _graded_enterprise_year(eng) -> tuple[str, int, float]:
    """A graded enterprise-year with a tax figure, on a platform: (uscc, year, SJSJ)."""
    with eng.connect() as c:
        return tuple(
            c.execute(
                text(
                    "SELECT v.uscc, v.year, o.tax_paid FROM evaluations v "
                    "JOIN outputs o ON o.uscc = v.uscc AND o.year = v.year "
                    "WHERE v.graded AND v.platform_code IS NOT NULL AND o.tax_paid > 0 "
                    "ORDER BY v.uscc, v.year LIMIT 1"
                )
            ).one()
        )


def _derived(eng, uscc: str, year: int) -> dict:
    """What depends on one enterprise-year's tax: its per-mu figure, its evaluation's tax per
    mu, its platform's 亩均税收 indicator."""
    with eng.connect() as c:
        per_mu = c.execute(
            text(
                "SELECT tax_per_mu FROM per_mu WHERE level = 'enterprise' AND code = :u "
                "AND year = :y"
            ),
            {"u": uscc, "y": year},
        ).scalar_one()
        ev, platform = c.execute(
            text("SELECT tax_per_mu, platform_code FROM evaluations WHERE uscc = :u AND year = :y"),
            {"u": uscc, "y": year},
        ).one()
        zone = c.execute(
            text(
                "SELECT value FROM area_indicators WHERE level = 'platform' AND code = :p "
                "AND year = :y AND indicator = 'tax_per_mu'"
            ),
            {"p": platform, "y": year},
        ).scalar_one()
    return {"per_mu": per_mu, "evaluation": ev, "platform": zone}


def test_an_editor_patches_one_tax_figure_and_every_derived_result_follows(city):
    base, eng, toks = city
    uscc, year, tax = _graded_enterprise_year(eng)
    key = f"{uscc}:{year}"
    before = _derived(eng, uscc, year)
    v = _version(eng, "CC", key)
    url = f"{base}/api/layers/cc/rows/{key}"
    patch = {"properties": {"SJSJ": tax + 500}}
    with httpx.Client(timeout=120) as h:
        # no If-Match: 428; a wrong one: 412 naming who changed it; nothing written
        r = h.patch(url, json=patch, headers=bearer(toks["cc"]))
        assert r.status_code == 428 and "If-Match" in r.json()["message"], r.text
        r = h.patch(url, json=patch, headers=bearer(toks["cc"], **{"If-Match": f'"{v + 7}"'}))
        assert r.status_code == 412, r.text
        assert r.json()["current_version"] == v and r.json()["changed_by"]
        assert _derived(eng, uscc, year) == before and _version(eng, "CC", key) == v
        # an editor of other layers, and the public: refused
        r = h.patch(url, json=patch, headers=bearer(toks["qy_dk"], **{"If-Match": f'"{v}"'}))
        assert r.status_code == 403 and "DK, QY only" in r.json()["message"], r.text
        assert h.patch(url, json=patch, headers={"If-Match": f'"{v}"'}).status_code == 401

        r = h.patch(
            url,
            json=patch,
            headers=bearer(
                toks["cc"], **{"If-Match": f'"{v}"', "Content-Type": "application/merge-patch+json"}
            ),
        )
        assert r.status_code == 200, r.text
        rep = r.json()
        assert rep["updated"] == 1 and rep["version"] == v + 1
        assert r.headers["etag"] == f'"{v + 1}"'
        assert "evaluation" in rep["refreshed"]["producers"]
        after = _derived(eng, uscc, year)
        assert all(after[k] != before[k] for k in after), (before, after)
        # the same change again: nothing to write, same version
        r = h.patch(url, json=patch, headers=bearer(toks["cc"], **{"If-Match": f'"{v + 1}"'}))
        assert r.status_code == 200 and r.json()["status"] == "unchanged", r.text
        # the old version's ETag is stale now
        r = h.patch(url, json=patch, headers=bearer(toks["cc"], **{"If-Match": f'"{v}"'}))
        assert r.status_code == 412 and "市统计局" in r.json()["changed_by"]
    with eng.connect() as c:
        hist = c.execute(
            text(
                "SELECT version, op, who, via, changes FROM row_history WHERE layer = 'CC' "
                "AND key = :k ORDER BY version"
            ),
            {"k": key},
        ).all()
    assert [x.op for x in hist][-1] == "update" and hist[-1].who == "token:市统计局"
    assert hist[-1].via.startswith("request:") and "tax_paid" in hist[-1].changes


def test_bad_values_are_422_with_the_field_and_change_nothing(city):
    base, eng, toks = city
    uscc, year, _ = _graded_enterprise_year(eng)
    key = f"{uscc}:{year}"
    v = _version(eng, "CC", key)
    before = _derived(eng, uscc, year)
    url = f"{base}/api/layers/cc/rows/{key}"
    with httpx.Client(timeout=120) as h:
        for body, words in [
            ({"properties": {"SJSJ": "lots"}}, ("SJSJ", "not a number")),
            ({"properties": {"NOSUCH": 1}}, ("NOSUCH", "SJSJ")),
            ({"properties": {"ND": year + 1}}, ("part of the key",)),
            ({"colour": "red"}, ("not colour",)),
        ]:
            r = h.patch(url, json=body, headers=bearer(toks["cc"], **{"If-Match": f'"{v}"'}))
            assert r.status_code == 422, (body, r.text)
            for w in words:
                assert w in r.json()["message"], (body, r.json()["message"])
        r = h.patch(
            f"{base}/api/layers/cc/rows/NOT-A-KEY",
            json={"properties": {"SJSJ": 1}},
            headers=bearer(toks["cc"], **{"If-Match": '"1"'}),
        )
        assert r.status_code == 422 and "ND" in r.json()["message"], r.text
        r = h.patch(
            f"{base}/api/layers/cc/rows/{uscc}:1999",
            json={"properties": {"SJSJ": 1}},
            headers=bearer(toks["cc"], **{"If-Match": '"1"'}),
        )
        assert r.status_code == 404, r.text
    assert _version(eng, "CC", key) == v and _derived(eng, uscc, year) == before


def test_post_rows_validates_as_a_file_does(city):
    base, eng, toks = city
    uscc, year, tax = _graded_enterprise_year(eng)
    url = f"{base}/api/layers/cc/rows"
    new = {"TYSHXYDM": uscc, "ND": 2016, "GYZCZ": 1200.5, "SJSJ": 30}
    with httpx.Client(timeout=120) as h:
        bad = [new, {**new, "ND": 2015, "SJSJ": "x"}]
        r = h.post(url, json=bad, headers=bearer(toks["cc"]))
        assert r.status_code == 422, r.text
        err = r.json()["report"]["errors"][0]
        assert (err["where"], err["field"]) == ("row 1", "SJSJ")
        with eng.connect() as c:
            assert not c.execute(
                text("SELECT count(*) FROM outputs WHERE uscc = :u AND year < 2017"),
                {"u": uscc},
            ).scalar_one()
        r = h.post(url, json=bad, params={"mode": "lenient"}, headers=bearer(toks["cc"]))
        assert r.status_code == 201 and r.json()["inserted"] == 1, r.text
        assert _version(eng, "CC", f"{uscc}:2016") == 1
        r = h.post(url, json=[new], params={"dry_run": "true"}, headers=bearer(toks["cc"]))
        assert r.status_code == 200 and r.json()["unchanged"] == 1
        # NaN and -Infinity are not JSON (Python's json reads them; a NaN would have been
        # stored as empty): 400. A figure that is no number or beyond any unit: refused like a
        # file's, naming row and field, before anything is stored or derived
        for constant in (b"NaN", b"-Infinity"):
            r = h.post(
                url,
                content=b'[{"TYSHXYDM": "%s", "ND": 2016, "SJSJ": 1, "GYZCZ": %s}]'
                % (uscc.encode(), constant),
                headers=bearer(toks["cc"], **{"Content-Type": "application/json"}),
            )
            assert r.status_code == 400 and constant.decode() in r.json()["message"], r.text
        for body, reason in [
            (b'[{"TYSHXYDM": "%s", "ND": 2016, "SJSJ": "inf"}]', "not a number"),
            (b'[{"TYSHXYDM": "%s", "ND": 2016, "SJSJ": 1e308}]', "out of range"),
            (b'[{"TYSHXYDM": "%s", "ND": 1e20, "SJSJ": 1}]', "out of range"),
        ]:
            r = h.post(
                url,
                content=body % uscc.encode(),
                headers=bearer(toks["cc"], **{"Content-Type": "application/json"}),
            )
            assert r.status_code == 422, r.text
            err = r.json()["report"]["errors"][0]
            assert err["where"] == "row 0" and err["field"] in ("SJSJ", "ND"), r.text
            assert reason in err["reason"], r.text
        r = h.post(url, content=b"{not json", headers=bearer(toks["cc"]))
        assert r.status_code == 400 and "not JSON" in r.json()["message"]
        r = h.post(url, json={"rows": 1}, headers=bearer(toks["cc"]))
        assert r.status_code == 422 and "FeatureCollection" in r.json()["message"]


def test_a_parcel_moved_by_patch_with_content_crs_and_an_enterprise_retired(city):
    base, eng, toks = city
    with eng.connect() as c:
        dkbh, x0 = c.execute(
            text("SELECT parcel_no, ST_XMin(geom) FROM parcels ORDER BY parcel_no LIMIT 1")
        ).one()
        gone = c.execute(
            text("SELECT uscc FROM evaluations WHERE graded ORDER BY uscc DESC LIMIT 1")
        ).scalar_one()
        geo = c.execute(
            text(
                "SELECT ST_AsGeoJSON(ST_Translate(geom, 10, 0)) FROM parcels WHERE parcel_no = :d"
            ),
            {"d": dkbh},
        ).scalar_one()
    import json

    v = _version(eng, "DK", dkbh)
    with httpx.Client(timeout=120) as h:
        r = h.patch(
            f"{base}/api/layers/dk/rows/{dkbh}",
            json={"geometry": json.loads(geo)},
            headers=bearer(
                toks["qy_dk"],
                **{
                    "If-Match": f'"{v}"',
                    "Content-Crs": "<http://www.opengis.net/def/crs/EPSG/0/4549>",
                },
            ),
        )
        assert r.status_code == 200 and r.json()["updated"] == 1, r.text
        with eng.connect() as c:
            x1 = c.execute(
                text("SELECT ST_XMin(geom) FROM parcels WHERE parcel_no = :d"), {"d": dkbh}
            ).scalar_one()
            sjyt = c.execute(
                text("SELECT actual_use FROM parcels WHERE parcel_no = :d"), {"d": dkbh}
            ).scalar_one()
        assert abs(x1 - x0 - 10) < 1e-6 and sjyt  # moved; the other fields kept

        vq = _version(eng, "QY", gone)
        r = h.delete(f"{base}/api/layers/qy/rows/{gone}", headers=bearer(toks["qy_dk"]))
        assert r.status_code == 428
        r = h.delete(
            f"{base}/api/layers/qy/rows/{gone}",
            headers=bearer(toks["qy_dk"], **{"If-Match": f'"{vq}"'}),
        )
        assert r.status_code == 200 and r.json()["retired"] == 1, r.text
        with eng.connect() as c:
            assert not c.execute(
                text("SELECT count(*) FROM evaluations WHERE uscc = :u"), {"u": gone}
            ).scalar_one()
        r = h.get(f"{base}/ogc/collections/enterprises/items/{gone}")
        assert r.status_code == 404, r.text
        r = h.delete(
            f"{base}/api/layers/qy/rows/{gone}",
            headers=bearer(toks["qy_dk"], **{"If-Match": f'"{vq + 1}"'}),
        )
        assert r.status_code == 404 and "retired by token:市规划和自然资源局" in r.json()["message"]


def test_fifty_concurrent_patches_of_different_enterprises_equal_a_full_recompute(city):
    """Fifty PATCHes at once, each of a different enterprise's SJSJ: all succeed (the layer's
    lock queues them), and every derived table then equals a full recompute."""
    from concurrent.futures import ThreadPoolExecutor
    from datetime import date

    from gis.core import graph, recompute_check

    base, eng, toks = city
    today = date.today()
    with eng.begin() as c:  # judged as of today, as the writes below are
        graph.refresh(c, None, today, trigger="test")
        rows = c.execute(
            text(
                "SELECT o.uscc || ':' || o.year, o.tax_paid FROM outputs o "
                "JOIN evaluation_ranking r USING (uscc, year) WHERE r.graded "
                "AND o.tax_paid IS NOT NULL ORDER BY o.uscc DESC, o.year LIMIT 1000"
            )
        ).all()
    picks, seen = [], set()
    for key, tax in rows:  # one year of fifty different enterprises
        if key.split(":")[0] not in seen:
            seen.add(key.split(":")[0])
            picks.append((key, tax))
    picks = picks[:50]
    assert len(picks) == 50

    def patch(pick: tuple[str, float]) -> int:
        key, tax = pick
        v = _version(eng, "CC", key)
        with httpx.Client(timeout=300) as h:
            return h.patch(
                f"{base}/api/layers/cc/rows/{key}",
                json={"properties": {"SJSJ": round(tax * 1.5 + 1, 2)}},
                headers=bearer(toks["cc"], **{"If-Match": f'"{v}"'}),
            ).status_code

    with ThreadPoolExecutor(50) as pool:
        statuses = list(pool.map(patch, picks))
    assert statuses == [200] * 50
    with eng.connect() as conn:
        tx = conn.begin()
        try:
            found = recompute_check.differences(conn, today)
        finally:
            tx.rollback()
    assert not found, "\n".join(line for d in found for line in d.lines())


def test_the_change_feed_lists_the_row_and_what_it_changed_once(city):
    base, eng, toks = city
    uscc, year, tax = _graded_enterprise_year(eng)
    key = f"{uscc}:{year}"
    with httpx.Client(base_url=base, timeout=120) as h:
        assert h.get("/api/changes").status_code == 401
        r = h.get("/api/changes", params={"since": "x"}, headers=bearer(toks["analyst"]))
        assert r.status_code == 400 and "'next'" in r.json()["message"]
        start = h.get("/api/changes", params={"since": "now"}, headers=bearer(toks["analyst"]))
        assert start.status_code == 200 and start.json()["changes"] == []
        c0 = start.json()["next"]
        v = _version(eng, "CC", key)
        r = h.patch(
            f"/api/layers/cc/rows/{key}",
            json={"properties": {"SJSJ": tax * 3 + 11}},
            headers=bearer(toks["cc"], **{"If-Match": f'"{v}"'}),
        )
        assert r.status_code == 200, r.text
        page = h.get("/api/changes", params={"since": c0}, headers=bearer(toks["analyst"])).json()
        rows = [e for e in page["changes"] if e["source"] == "row"]
        assert [(e["layer"], e["key"], e["op"], e["version"]) for e in rows] == [
            ("CC", key, "update", v + 1)
        ]
        assert rows[0]["who"] == "token:市统计局" and rows[0]["via"].startswith("request:")
        assert rows[0]["changes"]["SJSJ"]["new"] == pytest.approx(tax * 3 + 11)
        derived = [e for e in page["changes"] if e["source"] == "derived"]
        zones = {e["key"] for e in derived if e["layer"] == "per_mu"}
        assert any(z.startswith("platform:") and z.endswith(f":{year}") for z in zones), derived
        z = next(e for e in derived if e["layer"] == "per_mu")
        assert z["new"]["tax_per_mu"] != z["old"]["tax_per_mu"] and z["cause"]
        # the rows come first, and the cursor moves past everything
        assert page["changes"][0]["source"] == "row" and not page["more"]
        again = h.get(
            "/api/changes", params={"since": page["next"]}, headers=bearer(toks["analyst"])
        )
        assert again.json() == {"changes": [], "next": page["next"], "more": False}
        # restricted values: an editor of QY and DK sees that SJSJ changed, not its values
        other = h.get(
            "/api/changes", params={"since": c0, "layer": "cc"}, headers=bearer(toks["qy_dk"])
        ).json()
        withheld = {"old": None, "new": None, "withheld": True}
        assert other["changes"][0]["changes"]["SJSJ"] == withheld
        zone = h.get(
            "/api/changes", params={"since": c0, "layer": "per_mu"}, headers=bearer(toks["qy_dk"])
        ).json()["changes"]
        assert zone and all("tax_per_mu" not in e["new"] for e in zone)
        mine = h.get(
            "/api/changes", params={"since": c0, "layer": "cc"}, headers=bearer(toks["cc"])
        ).json()
        assert "new" in mine["changes"][0]["changes"]["SJSJ"]
        # paging: one entry a page, the same entries in the same order
        seen, cur = [], c0
        for _ in range(len(page["changes"]) + 1):
            p = h.get(
                "/api/changes", params={"since": cur, "limit": 1}, headers=bearer(toks["analyst"])
            ).json()
            seen += p["changes"]
            cur = p["next"]
            if not p["more"]:
                break
        assert seen == page["changes"]


def test_a_transaction_still_running_holds_back_younger_ones(city):
    """Exactly once, whatever the commit order: a younger transaction's entries are not handed
    out while an older one is still running, so the older one's cannot land behind a cursor."""
    from gis.ingest.feed import read_feed

    _, eng, _ = city
    with eng.connect() as c:
        start = read_feed(c, "now", 100, None, set())["next"]
    insert = text(
        "INSERT INTO row_history (layer, key, version, op, who, via) "
        "VALUES ('TJ', :k, 1, 'insert', 'test', 'test')"
    )
    older = eng.connect()
    tx_old = older.begin()
    older.execute(insert, {"k": "older"})  # the older transaction id
    with eng.begin() as younger:
        younger.execute(insert, {"k": "younger"})
    with eng.connect() as c:
        page = read_feed(c, start, 100, "tj", set())
    assert page["changes"] == [] and page["next"] == start
    tx_old.commit()
    older.close()
    with eng.connect() as c:
        page = read_feed(c, start, 100, "tj", set())
    assert [e["key"] for e in page["changes"]] == ["older", "younger"]
    # a transaction running in another database of the cluster holds nothing back
    other_db = create_engine(_admin_url.set(database="postgres"))  # not autocommit
    elsewhere = other_db.connect()
    tx_else = elsewhere.begin()
    elsewhere.execute(text("SELECT pg_current_xact_id()"))  # it has a transaction id
    try:
        with eng.begin() as c:
            c.execute(insert, {"k": "meanwhile"})
        with eng.connect() as c:
            page = read_feed(c, page["next"], 100, "tj", set())
        assert [e["key"] for e in page["changes"]] == ["meanwhile"]
    finally:
        tx_else.rollback()
        elsewhere.close()
        other_db.dispose()
