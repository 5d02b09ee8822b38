"""Reading a layer's rows over HTTP: GET /api/layers/{code}/rows[/{key}[/history]] through a
real server. A row by its contract key with its version as ETag; restricted fields for the
right tokens only; a re-import bumps the version and shows in the history; as_of answers the
row as it stood; retired rows; geometry in CGCS2000 lon/lat; filters and paging; JSON errors."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
import shapely
from pyproj import Transformer
from sqlalchemy import text

from gis.core import tokens
from gis.ingest import import_file
from gis.ingest.retire import retire
from tests.eval_city import districts, enterprises, load, outputs, parcels, rect, supplies, uscc

E1, E2, E3 = uscc(1), uscc(2), uscc(3)
RESTRICTED = {"SJSJ", "ZHNH", "PFDL"}
TO_4490 = Transformer.from_crs(4549, 4490, always_xy=True)
PROBLEM = "application/problem+json"


def _cc(u: str, year: int, tax: float, va: float = 500.0) -> dict:
    return {"TYSHXYDM": u, "ND": year, "SJSJ": tax, "GYZJZ": va, "ZHNH": 100.0, "PFDL": 5.0,
            "YYSR": 1000.0, "CYRS": 20}  # fmt: skip


CC_ROWS = [_cc(E1, 2022, 250.0), _cc(E1, 2023, 300.0), _cc(E2, 2023, 15.0), _cc(E3, 2023, 40.0)]
P1 = rect(0, 0, 100, 100)
S1 = rect(0, 0, 120, 80)
Q1 = (250.0, 50.0)  # E1's point, metres from (X0, Y0)


@pytest.fixture
def city(db, tmp_path):
    """Three enterprises with outputs for 2022/2023, a supply record, a parcel; tokens of each
    role, an editor of CC and an editor of QY. Returns the headers by role and the reports."""
    reports = load(
        db,
        tmp_path,
        xzq=districts(tmp_path),
        gd=supplies(tmp_path, [("S1", S1, {})]),
        dk=parcels(tmp_path, [("P1", P1, {"DZJGH": "S1"})]),
        qy=enterprises(
            tmp_path,
            [
                {
                    "TYSHXYDM": E1,
                    "QYMC": "甲",
                    "HYDM": "3484",
                    "GMYS": 1,
                    "DKBH": "P1",
                    "X": 500_000.0 + Q1[0],
                    "Y": 3_350_000.0 + Q1[1],
                    "ZBXT": "EPSG:4549",
                },
                {"TYSHXYDM": E2, "QYMC": "乙", "HYDM": "2614", "GMYS": 1},
                {"TYSHXYDM": E3, "QYMC": "丙", "HYDM": "2614", "GMYS": 0},
            ],
        ),  # fmt: skip
        cc=outputs(tmp_path, CC_ROWS),
    )
    with db.begin() as c:
        toks = {r: tokens.create(c, r, f"{r}-1") for r in ("viewer", "analyst", "admin")}
        toks["editor_cc"] = tokens.create(c, "editor", "统计局", layers=["cc"])
        toks["editor_qy"] = tokens.create(c, "editor", "市场监管局", layers=["qy"])
    headers = {r: {"Authorization": f"Bearer {t}"} for r, t in toks.items()}
    headers["public"] = {}
    return headers, reports


def _ok(r, status: int = 200) -> dict:
    assert r.status_code == status, (r.request.url, r.status_code, r.text[:500])
    return r.json()


def _problem(r, status: int, *says: str) -> str:
    assert r.status_code == status, (r.request.url, r.status_code, r.text[:500])
    assert r.headers["content-type"].startswith(PROBLEM)
    msg = r.json()["message"]
    for s in says:
        assert s in msg, msg
    return msg


def _history(http, key: str, headers: dict) -> list[dict]:
    return _ok(http.get(f"/api/layers/cc/rows/{key}/history", headers=headers))["versions"]


def test_a_cc_row_by_its_composite_key_with_its_version_as_etag(http, city):
    headers, _ = city
    r = http.get(f"/api/layers/cc/rows/{E1}:2023", headers=headers["admin"])
    row = _ok(r)
    assert r.headers["etag"] == '"1"'
    assert row["key"] == f"{E1}:2023" and row["version"] == 1 and row["retired"] is False
    assert row["geometry"] is None  # CC is a table
    p = row["properties"]
    # every contract field, by contract code, in the contract's order; typed values
    assert list(p) == ["TYSHXYDM", "ND", "GYZCZ", "YYSR", "GYZJZ", "SJSJ", "ZHNH", "PFDL",
                       "YFFY", "CYRS", "YDMJ"]  # fmt: skip
    assert (p["TYSHXYDM"], p["ND"], p["SJSJ"], p["GYZJZ"], p["GYZCZ"]) == (E1, 2023, 300, 500, None)
    # the layer code in any case, the key's year with a leading zero: the same row
    assert _ok(http.get(f"/api/layers/CC/rows/{E1}:02023", headers=headers["admin"])) == row
    # If-None-Match with its ETag: 304, nothing sent; another version: the row
    again = http.get(
        f"/api/layers/cc/rows/{E1}:2023", headers={**headers["admin"], "If-None-Match": '"1"'}
    )
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == '"1"'
    other = http.get(
        f"/api/layers/cc/rows/{E1}:2023", headers={**headers["admin"], "If-None-Match": '"7"'}
    )
    assert other.status_code == 200 and other.json() == row


@pytest.mark.parametrize(
    ("role", "sees"),
    [
        ("public", False),
        ("viewer", False),
        ("editor_qy", False),
        ("editor_cc", True),
        ("analyst", True),
        ("admin", True),
    ],
)
def test_restricted_fields_only_for_analyst_admin_and_an_editor_of_the_layer(
    http, city, db, role, sees
):
    headers, _ = city
    h = headers[role]
    one = _ok(http.get(f"/api/layers/cc/rows/{E1}:2023", headers=h))["properties"]
    listed = _ok(http.get("/api/layers/cc/rows", headers=h))["rows"]
    assert len(listed) == 4
    for props in [one, *(r["properties"] for r in listed)]:
        assert "GYZJZ" in props
        if sees:
            assert RESTRICTED <= set(props)
        else:
            assert not RESTRICTED & set(props)  # left out entirely, not null
    if sees:
        assert one["SJSJ"] == 300 and one["ZHNH"] == 100 and one["PFDL"] == 5
    # filtering on a restricted field: for those who see it, else 403
    r = http.get("/api/layers/cc/rows", params={"SJSJ": "300"}, headers=h)
    if sees:
        assert [x["key"] for x in _ok(r)["rows"]] == [f"{E1}:2023"]
    else:
        _problem(r, 403, "SJSJ", "restricted", "editor token for CC")
    # a token that was served restricted fields is in the audit log; one that was not is not
    with db.connect() as c:
        logged = c.execute(
            text("SELECT count(*) FROM audit_log WHERE token_name = :n"),
            {"n": {"editor_cc": "统计局", "editor_qy": "市场监管局"}.get(role, f"{role}-1")},
        ).scalar_one()
    assert (logged > 0) is (sees and role != "public")


def test_a_change_by_reimport_bumps_the_version_and_shows_in_the_history(http, city, db, tmp_path):
    headers, reports = city
    first_batch = reports["cc"]["batch_id"]
    key = f"{E1}:2023"
    changed = [_cc(E1, 2023, 350.0, va=520.0)]
    rep = import_file(db, "cc", outputs(tmp_path, changed, name="CC2.csv"), user="token:统计局")
    assert rep["updated"] == 1
    r = http.get(f"/api/layers/cc/rows/{key}", headers=headers["analyst"])
    row = _ok(r)
    assert r.headers["etag"] == '"2"' and row["version"] == 2
    assert row["properties"]["SJSJ"] == 350 and row["properties"]["GYZJZ"] == 520
    # the old ETag no longer matches
    stale = http.get(
        f"/api/layers/cc/rows/{key}", headers={**headers["analyst"], "If-None-Match": '"1"'}
    )
    assert stale.status_code == 200

    v1, v2 = _history(http, key, headers["analyst"])
    assert (v1["version"], v1["op"], v1["who"], v1["via"]) == (
        1,
        "insert",
        "cli",
        f"batch:{first_batch}",
    )
    assert (v2["version"], v2["op"], v2["who"], v2["via"]) == (
        2,
        "update",
        "token:统计局",
        f"batch:{rep['batch_id']}",
    )
    assert "changes" not in v1
    assert v2["changes"] == {"GYZJZ": {"old": 500, "new": 520}, "SJSJ": {"old": 300, "new": 350}}
    assert list(v2["changes"]) == ["GYZJZ", "SJSJ"]  # the contract's order
    t1, t2 = datetime.fromisoformat(v1["at"]), datetime.fromisoformat(v2["at"])
    assert t1.tzinfo is not None and t1 < t2
    # without a right to SJSJ: the field is named, its values withheld
    public = _history(http, key, {})
    assert public[1]["changes"] == {
        "GYZJZ": {"old": 500, "new": 520},
        "SJSJ": {"old": None, "new": None, "withheld": True},
    }
    whole = _ok(http.get(f"/api/layers/cc/rows/{key}/history"))
    assert (whole["layer"], whole["key"], whole["version"], whole["retired"]) == (
        "CC",
        key,
        2,
        False,
    )

    # as_of: at the first version's time the old row; just before it nothing
    def as_of(t: datetime, h: dict) -> object:
        return http.get(f"/api/layers/cc/rows/{key}", params={"as_of": t.isoformat()}, headers=h)

    old = as_of(t1, headers["analyst"])
    assert _ok(old)["properties"]["SJSJ"] == 300 and old.json()["version"] == 1
    assert old.headers["etag"] == '"1"'
    assert _ok(as_of(t2 - timedelta(microseconds=1), headers["analyst"]))["version"] == 1
    assert _ok(as_of(t2, headers["analyst"]))["properties"]["SJSJ"] == 350
    assert "SJSJ" not in _ok(as_of(t1, {}))["properties"]
    _problem(as_of(t1 - timedelta(microseconds=1), {}), 404, "did not exist yet", "first version")
    # a date: the end of that day (server time); the day before: not yet
    today = t2.astimezone().date()
    day = http.get(f"/api/layers/cc/rows/{key}", params={"as_of": today.isoformat()})
    assert _ok(day)["version"] == 2
    before = (today - timedelta(days=1)).isoformat()
    _problem(http.get(f"/api/layers/cc/rows/{key}", params={"as_of": before}), 404, "not exist")
    # the list as of then: the layer's rows as they were, one SQL per page
    listed = _ok(
        http.get("/api/layers/cc/rows", params={"as_of": t1.isoformat()}, headers=headers["admin"])
    )
    tax = {r["key"]: (r["version"], r["properties"]["SJSJ"]) for r in listed["rows"]}
    assert tax[key] == (1, 300) and len(tax) == 4 and listed["numberMatched"] == 4
    assert _ok(http.get("/api/layers/cc/rows", params={"as_of": before}))["rows"] == []


def test_a_retired_row_answers_retired_and_is_listed_with_retired_true(http, city, db, tmp_path):
    headers, _ = city
    key = f"{E2}:2023"
    retire(db, "cc", [key], who="token:admin-1", via="request:0123456789abcdef")
    r = http.get(f"/api/layers/cc/rows/{key}", headers=headers["admin"])
    row = _ok(r)
    assert row["retired"] is True and row["version"] == 2 and r.headers["etag"] == '"2"'
    assert row["properties"]["SJSJ"] == 15 and row["properties"]["TYSHXYDM"] == E2
    ops = _history(http, key, headers["admin"])
    assert [(v["op"], v["who"], v["via"]) for v in ops] == [
        ("insert", "cli", ops[0]["via"]),
        ("retire", "token:admin-1", "request:0123456789abcdef"),
    ]
    current = _ok(http.get("/api/layers/cc/rows"))
    assert key not in [x["key"] for x in current["rows"]] and current["numberMatched"] == 3
    gone = _ok(http.get("/api/layers/cc/rows", params={"retired": "true"}))
    assert [(x["key"], x["retired"]) for x in gone["rows"]] == [(key, True)]
    assert gone["numberMatched"] == 1
    # as of its insert it existed; as of its retirement it did not
    t_ins, t_ret = (datetime.fromisoformat(v["at"]) for v in ops)
    was = _ok(http.get(f"/api/layers/cc/rows/{key}", params={"as_of": t_ins.isoformat()}))
    assert was["retired"] is False and was["version"] == 1
    _problem(
        http.get(f"/api/layers/cc/rows/{key}", params={"as_of": t_ret.isoformat()}),
        404,
        "had been retired",
    )
    # importing its key again restores it
    import_file(db, "cc", outputs(tmp_path, [_cc(E2, 2023, 16.0)], name="CC3.csv"))
    back = _ok(http.get(f"/api/layers/cc/rows/{key}", headers=headers["admin"]))
    assert (back["retired"], back["version"], back["properties"]["SJSJ"]) == (False, 3, 16)
    assert [v["op"] for v in _history(http, key, {})] == ["insert", "retire", "restore"]
    assert _ok(http.get("/api/layers/cc/rows", params={"retired": "true"}))["rows"] == []


def _lonlat_ring(g: shapely.Geometry) -> list[tuple[float, float]]:
    x, y = TO_4490.transform(*shapely.get_coordinates(g.exterior).T)
    return list(zip(x.tolist(), y.tolist(), strict=True))


def _close(got: list, want: list[tuple[float, float]]) -> None:
    """The same vertices within 1e-6 degrees (a ring may be stored in the other direction)."""
    assert len(got) == len(want), (got, want)
    for a, b in ((got, want), (want, got)):
        for x, y in a:
            assert min(max(abs(x - u), abs(y - v)) for u, v in b) < 1e-6, (got, want)


def test_geometry_is_cgcs2000_lon_lat_near_hangzhou_current_moved_and_retired(
    http, city, db, tmp_path
):
    gd = _ok(http.get("/api/layers/gd/rows/S1"))
    assert gd["geometry"]["type"] == "MultiPolygon" and "crs" not in gd["geometry"]
    ring = gd["geometry"]["coordinates"][0][0]
    lon, lat = ring[0]
    assert 119.9 < lon < 120.1 and 30.1 < lat < 30.4  # lon first, near Hangzhou
    _close(ring, _lonlat_ring(S1))
    # moved by a re-import: the history says the geometry changed, as_of gives the old one
    moved = rect(0, 0, 150, 80)
    (tmp_path / "moved").mkdir()
    import_file(db, "gd", supplies(tmp_path / "moved", [("S1", moved, {"SRR": "甲"})]))
    now = _ok(http.get("/api/layers/gd/rows/S1"))
    _close(now["geometry"]["coordinates"][0][0], _lonlat_ring(moved))
    v1, v2 = _ok(http.get("/api/layers/gd/rows/S1/history"))["versions"]
    assert v2["op"] == "update" and v2["geometry_changed"] is True
    assert v2["changes"] == {"SRR": {"old": None, "new": "甲"}}
    then = _ok(http.get("/api/layers/gd/rows/S1", params={"as_of": v1["at"]}))
    assert then["geometry"] == gd["geometry"] and then["version"] == 1
    point = _ok(http.get(f"/api/layers/qy/rows/{E1}"))["geometry"]
    assert point["type"] == "Point"
    _close([point["coordinates"]], [TO_4490.transform(500_000.0 + Q1[0], 3_350_000.0 + Q1[1])])
    # a retired parcel's geometry comes from its history (EWKB) and is the same
    live = _ok(http.get("/api/layers/dk/rows/P1"))
    _close(live["geometry"]["coordinates"][0][0], _lonlat_ring(P1))
    retire(db, "dk", ["P1"], who="test")
    dead = _ok(http.get("/api/layers/dk/rows/P1"))
    assert dead["retired"] is True and dead["geometry"] == live["geometry"]
    assert dead["properties"] == live["properties"]
    listed = _ok(http.get("/api/layers/dk/rows", params={"retired": "true"}))["rows"]
    assert listed == [dead]


def test_list_filters_limit_offset_and_next(http, city):
    headers, _ = city
    everything = _ok(http.get("/api/layers/cc/rows", headers=headers["analyst"]))
    keys = [r["key"] for r in everything["rows"]]
    assert keys == [f"{E1}:2022", f"{E1}:2023", f"{E2}:2023", f"{E3}:2023"]  # by key
    assert (everything["layer"], everything["numberMatched"], everything["numberReturned"]) == (
        "CC",
        4,
        4,
    )
    assert everything["next"] is None
    by_firm = _ok(http.get("/api/layers/cc/rows", params={"TYSHXYDM": E1}))
    assert [r["key"] for r in by_firm["rows"]] == keys[:2]
    both = _ok(http.get("/api/layers/cc/rows", params={"tyshxydm": E1, "nd": "2023"}))
    assert [r["key"] for r in both["rows"]] == [keys[1]]  # codes in any case, ANDed
    either = _ok(http.get("/api/layers/cc/rows", params=[("TYSHXYDM", E1), ("TYSHXYDM", E3)]))
    assert [r["key"] for r in either["rows"]] == [keys[0], keys[1], keys[3]]
    assert _ok(http.get("/api/layers/cc/rows", params={"GYZJZ": "500.0"}))["numberMatched"] == 4
    # a list field: the rows whose list holds the value
    qy = _ok(http.get("/api/layers/qy/rows", params={"DKBH": "P1"}))
    assert [r["key"] for r in qy["rows"]] == [E1] and qy["rows"][0]["properties"]["DKBH"] == ["P1"]
    assert _ok(http.get("/api/layers/qy/rows", params={"GMYS": "false"}))["rows"][0]["key"] == E3

    # paging: two pages of the 2023 rows, then nothing; next links carry the filter
    page = _ok(http.get("/api/layers/cc/rows", params={"ND": "2023", "limit": 2}))
    assert [r["key"] for r in page["rows"]] == keys[1:3]
    assert (page["numberMatched"], page["numberReturned"]) == (3, 2)
    assert page["next"].startswith(str(http.base_url).rstrip("/") + "/api/layers/cc/rows?")
    last = _ok(http.get(page["next"]))
    assert [r["key"] for r in last["rows"]] == keys[3:] and last["next"] is None
    assert last["numberMatched"] == 3
    skipped = _ok(http.get("/api/layers/cc/rows", params={"offset": 1, "limit": 1}))
    assert [r["key"] for r in skipped["rows"]] == [keys[1]] and skipped["numberMatched"] == 4
    beyond = _ok(http.get("/api/layers/cc/rows", params={"offset": 10}))
    assert beyond["rows"] == [] and beyond["numberMatched"] == 4 and beyond["next"] is None


@pytest.mark.parametrize(
    ("code", "params", "keys"),
    [
        ("cc", {"ND": "2022"}, [f"{E1}:2022"]),
        ("cc", {"TYSHXYDM": E2, "GYZJZ": "500"}, [f"{E2}:2023"]),
        ("cc", {"SJSJ": "40"}, [f"{E3}:2023"]),
        ("qy", {"DKBH": "P1"}, [E1]),
        ("qy", {"GMYS": "false"}, [E3]),
        ("gd", {"GDRQ": "2015-03-01", "TDYT": "1001"}, ["S1"]),
        ("dk", {"DZJGH": "S2"}, []),
    ],
)
def test_filters_mean_the_same_on_current_rows_and_rows_as_of_a_time(
    http, city, code, params, keys
):
    headers, _ = city
    h = headers["analyst"]
    now = _ok(http.get(f"/api/layers/{code}/rows", params=params, headers=h))
    then = _ok(
        http.get(f"/api/layers/{code}/rows", params={**params, "as_of": "2200-01-01"}, headers=h)
    )
    assert [r["key"] for r in now["rows"]] == keys
    assert then == now  # nothing changed since: the same rows, versions and values


@pytest.mark.parametrize(
    ("url", "status", "says"),
    [
        ("/api/layers/zz/rows", 404, ["unknown layer 'zz'", "xzq, pt, zl"]),
        ("/api/layers/zz/rows/1", 404, ["unknown layer", "cc"]),
        ("/api/layers/zz/rows/1/history", 404, ["unknown layer", "cc"]),
        (f"/api/layers/cc/rows/{E1}", 422, ["TYSHXYDM:ND"]),
        (f"/api/layers/cc/rows/{E1}:twenty", 422, ["ND must be a whole number"]),
        (f"/api/layers/cc/rows/{E1}:2023:1/history", 422, ["TYSHXYDM:ND"]),
        (f"/api/layers/cc/rows/{E1}:1999", 404, ["no CC row", "never imported", "/rows"]),
        (f"/api/layers/cc/rows/{E1}:1999/history", 404, ["no CC row"]),
        ("/api/layers/dk/rows/NOPE?as_of=2020-01-01", 404, ["no DK row 'NOPE'"]),
        (f"/api/layers/cc/rows/{E1}:2023?as_of=yesterday", 400, ["as_of", "YYYY-MM-DD"]),
        ("/api/layers/cc/rows?as_of=2024-13-01", 400, ["as_of", "YYYY-MM-DD"]),
        ("/api/layers/cc/rows?as_of=0999-01-01", 400, ["year out of range"]),
        ("/api/layers/cc/rows?USCC=1", 400, ["'USCC' is not a field of layer CC", "TYSHXYDM"]),
        ("/api/layers/cc/rows?ND=abc", 400, ["ND='abc'", "a whole number"]),
        (
            "/api/layers/cc/rows?ND=99999999999",
            400,
            ["a whole number from -2147483648 to 2147483647"],
        ),
        ("/api/layers/cc/rows?GYZJZ=nan", 400, ["a finite number"]),
        ("/api/layers/gd/rows?GDRQ=2019", 400, ["a date YYYY-MM-DD"]),
        ("/api/layers/qy/rows?GMYS=maybe", 400, ["true or false"]),
        ("/api/layers/cc/rows?retired=true&as_of=2024-01-01", 400, ["give one of them"]),
        ("/api/layers/cc/rows?limit=0", 422, ["limit"]),
        ("/api/layers/cc/rows?limit=10001", 422, ["limit"]),
    ],
)
def test_errors_are_json_with_actionable_messages(http, city, url, status, says):
    _problem(http.get(url), status, *says)
