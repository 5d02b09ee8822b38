"""Platform kinds (四类平台, DOMAIN_RULES §4) on real PostGIS: each rule at its boundary.

Hosts: 国家级, and 省级 经济开发区 / 经济技术开发区 (not 省级 高新区). Members: ST_DWithin 2000 m,
inclusive, nearest host. Main urban district: ZCQ = 1. Retain: >= 1 km², TSCY, 亩均税收 >= median.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import text

from gis.platforms.platform_kinds import classify, record, set_override
from tests.plan_helpers import (
    AS_OF,
    MAIN,
    OTHER,
    analyse,
    districts,
    insert,
    parcel_with_tax,
    platform,
    rect,
    rows,
    token,
)


def kinds(engine) -> dict[str, dict]:
    with engine.connect() as conn:
        return {it["platform_id"]: it for it in classify(conn, AS_OF)["items"]}


def test_host_levels_and_types(db):
    districts(db)
    insert(
        db,
        "platforms",
        [
            platform("NAT", rect(10000, 0, 1000, 1000), "国家级", "工业园区"),
            platform("PEDZ", rect(20000, 0, 1000, 1000), "省级", "经济开发区"),
            platform("PETDZ", rect(30000, 0, 1000, 1000), "省级", "经济技术开发区"),
            platform("PHT", rect(40000, 0, 1000, 1000), "省级", "高新技术产业开发区"),
            platform("CITY", rect(50000, 0, 1000, 1000), "市级", "经济开发区"),
        ],
    )
    k = kinds(db)
    assert {c for c, it in k.items() if it["kind"] == "consolidate_host"} == {
        "NAT",
        "PEDZ",
        "PETDZ",
    }
    # provincial 高新区 do not host (our decision, configurable); nor does a 市级 经济开发区
    assert k["PHT"]["kind"] == "phase_out" and k["CITY"]["kind"] == "phase_out"
    assert k["PHT"]["reasons"][0] == {
        **k["PHT"]["reasons"][0],
        "test": "host",
        "result": False,
    }
    assert k["NAT"]["host_id"] is None


def test_member_at_exactly_2_km_and_not_beyond(db):
    districts(db)
    insert(
        db,
        "platforms",
        [
            platform("HOST", rect(10000, 0, 1000, 1000), "国家级", "经济技术开发区"),
            # 2000 m exactly east of the host: touching or within 2 km, inclusive
            platform("AT2000", rect(13000, 0, 500, 500)),
            # 2000.5 m west of the host: not a member
            platform("BEYOND", rect(7499.5, 0, 500, 500)),
            # a second host further away: the member goes to the nearest host
            platform("FAR", rect(16000, 0, 1000, 1000), "国家级", "经济技术开发区"),
        ],
    )
    k = kinds(db)
    assert k["AT2000"]["kind"] == "consolidate_member"
    assert k["AT2000"]["host_id"] == "HOST"  # 2000 m vs 2500 m to FAR
    assert k["AT2000"]["host_distance_m"] == 2000.0
    near = next(r for r in k["AT2000"]["reasons"] if r["test"] == "near_host")
    assert near["figure"] == 2000.0 and near["threshold"] == 2000.0 and near["result"] is True
    assert k["BEYOND"]["kind"] != "consolidate_member"
    assert k["BEYOND"]["host_distance_m"] == 2000.5 and k["BEYOND"]["host_id"] is None


def test_main_urban_district_after_membership(db):
    districts(db)
    insert(
        db,
        "platforms",
        [
            platform("MAINP", rect(-30000, 0, 1500, 1500), district=MAIN, tscy=["智能制造"]),
            platform("OTHERP", rect(30000, 0, 1500, 1500), district=OTHER, tscy=["智能制造"]),
            # no XZQDM: the district holding the largest share (main urban, 上城区)
            platform("NOXZQ", rect(-20000, 0, 1500, 1500), district=None),
            # a host in the main urban district stays a host; a member there stays a member
            platform("MHOST", rect(-50000, 0, 1000, 1000), "国家级", district=MAIN),
            platform("MMEMB", rect(-48500, 0, 500, 500), district=MAIN),
        ],
    )
    k = kinds(db)
    assert k["MAINP"]["kind"] == "to_innovation"
    assert k["OTHERP"]["kind"] != "to_innovation"
    assert k["NOXZQ"]["kind"] == "to_innovation"
    assert (
        next(r for r in k["NOXZQ"]["reasons"] if r["test"] == "main_urban")["district_by"]
        == "largest area share"
    )
    assert k["MHOST"]["kind"] == "consolidate_host"
    assert k["MMEMB"]["kind"] == "consolidate_member"


def test_retain_needs_1_km2_featured_industries_and_the_median(db):
    districts(db)
    # figures 10, 19.99.., 20, 20, 30 万元/亩: the median is 20
    specs = [
        ("R1", 1000.0, 1000.0, ["装备"], 20.0),  # exactly 1 km², at the median: retain
        ("R3", 1000.0, 1200.0, None, 20.0),  # no featured industries
        ("R2", 999.9, 1000.0, ["装备"], 30.0),  # just under 1 km²
        ("R4", 1000.0, 1000.0, ["装备"], 19.99),  # just under the median
        ("L", 1000.0, 1200.0, ["装备"], 10.0),  # under the median
    ]
    for i, (code, w, h, tscy, t) in enumerate(specs):
        x = 10000 + i * 5000
        insert(db, "platforms", [platform(code, rect(x, 0, w, h), tscy=tscy)])
        parcel_with_tax(db, f"DK-{code}", rect(x + 10, 10, 100, 100), tax=15 * t)
    analyse(db)
    with db.connect() as conn:
        res = classify(conn, AS_OF)
    assert res["tax_year"] == 2025 and res["tax_source"] == "per_mu"
    assert abs(res["median_tax_per_mu"] - 20.0) < 1e-9
    k = {it["platform_id"]: it for it in res["items"]}
    assert k["R1"]["kind"] == "retain_upgrade"
    for code in ("R2", "R3", "R4", "L"):
        assert k[code]["kind"] == "phase_out", code
    area = next(r for r in k["R2"]["reasons"] if r["test"] == "area")
    assert area["result"] is False and area["threshold"] == 1_000_000.0
    tax = next(r for r in k["R4"]["reasons"] if r["test"] == "tax_per_mu")
    assert tax["result"] is False and abs(tax["figure"] - 19.99) < 1e-3
    assert next(r for r in k["R3"]["reasons"] if r["test"] == "featured")["result"] is False


def test_override_is_kept_with_who_when_and_why(db):
    districts(db)
    insert(db, "platforms", [platform("P1", rect(10000, 0, 500, 500))])
    with db.begin() as conn:
        set_override(conn, "P1", "retain_upgrade", "市政府批复保留", "analyst:alice")
    k = kinds(db)["P1"]
    assert k["kind"] == "retain_upgrade" and k["rule_kind"] == "phase_out"
    assert k["override"]["by"] == "analyst:alice" and k["override"]["reason"] == "市政府批复保留"
    assert k["override"]["at"]
    with db.begin() as conn:
        set_override(conn, "P1", None, "批复撤销", "analyst:bob")
        run = record(conn, "test", "tester", AS_OF)
    assert kinds(db)["P1"]["kind"] == "phase_out"
    assert rows(db, "SELECT count(*) AS n FROM platform_kind_overrides")[0]["n"] == 2
    stored = rows(db, "SELECT * FROM platform_kinds WHERE run_id = :r", r=run["run_id"])
    assert [(s["platform_code"], s["kind"]) for s in stored] == [("P1", "phase_out")]


def test_platforms_api(http, db):
    districts(db)
    insert(
        db,
        "platforms",
        [
            platform("HOST", rect(10000, 0, 1000, 1000), "国家级", "经济技术开发区"),
            platform("P1", rect(30000, 0, 500, 500)),
        ],
    )
    parcel_with_tax(db, "DK-1", rect(10010, 10, 100, 100), tax=150)
    analyse(db)
    r = http.get("/api/platforms", params={"as_of": "2026-06-30"})
    assert r.status_code == 200
    body = r.json()
    assert {it["platform_id"]: it["kind"] for it in body["items"]} == {
        "HOST": "consolidate_host",
        "P1": "phase_out",
    }
    # public callers see no tax figures
    assert (
        all(it["tax_per_mu"] is None for it in body["items"]) and body["median_tax_per_mu"] is None
    )
    analyst = token(db, "analyst")
    r = http.get(
        "/api/platforms",
        params={"kind": "consolidate_host", "as_of": "2026-06-30"},
        headers=analyst,
    )
    assert [it["platform_id"] for it in r.json()["items"]] == ["HOST"]
    assert abs(r.json()["items"][0]["tax_per_mu"] - 10.0) < 1e-9
    assert http.get("/api/platforms", params={"kind": "nope"}).status_code == 400
    # overriding writes: never open, and a viewer token is not enough
    body = {"kind": "retain_upgrade", "reason": "规划保留"}
    assert http.post("/api/platforms/P1/kind", json=body).status_code == 401
    assert (
        http.post("/api/platforms/P1/kind", json=body, headers=token(db, "viewer")).status_code
        == 403
    )
    r = http.post("/api/platforms/P1/kind", json=body, headers=analyst)
    assert r.status_code == 200 and r.json()["platform"]["kind"] == "retain_upgrade"
    assert r.json()["override"]["by"] == "analyst:test-analyst"
    assert http.post("/api/platforms/NOPE/kind", json=body, headers=analyst).status_code == 404
    one = http.get("/api/platforms/P1").json()
    assert one["kind"] == "retain_upgrade" and len(one["override_history"]) == 1
    # the recorded run is what the OGC platforms collection and the map show
    with db.connect() as conn:
        latest = conn.execute(
            text(
                "SELECT kind FROM platform_kinds WHERE platform_code = 'P1' "
                "ORDER BY run_id DESC LIMIT 1"
            )
        ).scalar_one()
    assert latest == "retain_upgrade"
    ogc = http.get("/ogc/collections/platforms/items/P1").json()
    assert ogc["properties"]["kind"] == "retain_upgrade"


def test_planted_platforms_of_the_sample_city(sample_engine):
    import json

    from tests.conftest import SAMPLE_DIR

    planted = json.loads((SAMPLE_DIR / "planted.json").read_text("utf-8"))["platforms"]
    with sample_engine.connect() as conn:
        k = {it["platform_id"]: it["kind"] for it in classify(conn, AS_OF)["items"]}
    assert {c for c, v in k.items() if v == "consolidate_host"} == set(planted["host"])
    assert {c for c, v in k.items() if v == "consolidate_member"} == set(planted["trusteeship"])
    assert {c for c, v in k.items() if v == "to_innovation"} == set(planted["innovation"])
    assert set(planted["exit"]) <= {c for c, v in k.items() if v == "phase_out"}
    assert {k[c] for c in planted["retain_or_exit"]} <= {"retain_upgrade", "phase_out"}


def test_the_figure_is_per_mu_zone_row_of_the_platform(db):
    """亩均税收 of a platform is its per_mu zone row: the enterprises' land there (a vacant parcel
    of the platform does not count), by the one §1 linkage (a point 20 m off its parcel is linked
    by the nearest step)."""
    from gis.economy.per_mu import zone_figures
    from tests.factories import uscc

    districts(db)
    insert(db, "platforms", [platform("A", rect(10000, 0, 1000, 1000), tscy=["装备"])])
    parcel_with_tax(db, "DK-A1", rect(10010, 10, 100, 100), tax=15 * 4.0)
    parcel_with_tax(db, "DK-A2", rect(10200, 10, 100, 100), tax=None)  # vacant
    parcel_with_tax(db, "DK-A3", rect(10400, 10, 100, 100), tax=None)
    # an enterprise with no DKBH whose point lies 20 m south of DK-A3 (§1: nearest within 50 m)
    code = uscc(79999)
    from shapely import Point

    from tests.plan_helpers import X0, Y0

    insert(
        db,
        "enterprises",
        [
            {
                "uscc": code,
                "name": "点企业",
                "industry_code": "3484",
                "geom": Point(X0 + 10450, Y0 - 10),
            }
        ],
    )
    insert(db, "outputs", [{"uscc": code, "year": 2025, "tax_paid": 15 * 2.0}])
    analyse(db)
    with db.connect() as conn:
        fig = zone_figures(conn, "platform", 2025)["A"]
        res = classify(conn, AS_OF)
    item = res["items"][0]
    assert res["tax_source"] == "per_mu" and res["tax_year"] == 2025
    assert item["tax_per_mu"] == fig["tax_per_mu"]
    # (60 + 30) 万元 on 2 × 15 亩 of enterprise land: 3.0, not 90 / 45 over all three parcels
    assert abs(fig["tax_per_mu"] - 3.0) < 1e-9 and abs(fig["area_mu"] - 30.0) < 1e-9


CURRENT_SQL = (
    "SELECT k.*, k.xmin::text AS version FROM platform_kinds k "
    "JOIN platform_kind_runs r ON r.id = k.run_id WHERE r.trigger = 'current'"
)


def _current(engine) -> dict[str, dict]:
    return {r["platform_code"]: r for r in rows(engine, CURRENT_SQL)}


def _current_in(conn) -> dict[str, dict]:
    return {r.platform_code: dict(r._mapping) for r in conn.execute(text(CURRENT_SQL))}


def _strip(current: dict[str, dict]) -> dict[str, tuple]:
    return {
        c: tuple(v for k, v in r.items() if k not in ("run_id", "version"))
        for c, r in current.items()
    }


def _full_recompute_equals(engine) -> None:
    """The current kinds equal what a full recompute gives (in a savepoint, rolled back)."""
    from gis.core import graph

    before = _strip(_current(engine))
    with engine.connect() as conn:
        tx = conn.begin()
        graph.refresh(conn, None, AS_OF, trigger="test")
        after = _strip(_current_in(conn))
        tx.rollback()
    assert before == after


def _set_tax(engine, code: str, tax_per_mu: float):
    """The 2025 SJSJ of the enterprise on DK-<code> (15 亩), refreshed by its key."""
    from gis.core import graph
    from gis.core.graph import Changes

    u = rows(engine, "SELECT uscc FROM enterprises WHERE parcel_nos = ARRAY[:p]", p=f"DK-{code}")
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE outputs SET tax_paid = :t WHERE uscc = :u AND year = 2025"),
            {"t": 15 * tax_per_mu, "u": u[0]["uscc"]},
        )
        return graph.refresh(conn, Changes(outputs={f"{u[0]['uscc']}:2025"}), AS_OF)


def test_producer_keeps_the_current_kinds_by_changed_keys(db, http):
    from gis.core import graph
    from gis.core.graph import Changes

    districts(db)
    specs = [("K1", 10.0), ("K2", 20.0), ("K3", 30.0), ("K4", 40.0)]
    for i, (code, t) in enumerate(specs):
        x = 10000 + i * 5000
        insert(db, "platforms", [platform(code, rect(x, 0, 1000, 1000), tscy=["装备"])])
        parcel_with_tax(db, f"DK-{code}", rect(x + 10, 10, 100, 100), tax=15 * t)
    analyse(db)
    cur = _current(db)
    assert {c: r["kind"] for c, r in cur.items()} == {
        "K1": "phase_out",
        "K2": "phase_out",
        "K3": "retain_upgrade",
        "K4": "retain_upgrade",
    }
    runs = rows(db, "SELECT * FROM platform_kind_runs WHERE trigger = 'current'")
    assert len(runs) == 1 and runs[0]["median_tax_per_mu"] == 25.0
    assert runs[0]["tax_source"] == "per_mu" and runs[0]["tax_year"] == 2025
    # the map (OGC platforms collection) shows the current kinds, even after an older snapshot
    with db.begin() as conn:
        record(conn, "test", "tester", AS_OF)

    # an override: that platform's row only; the others are not rewritten
    with db.begin() as conn:
        set_override(conn, "K1", "to_innovation", "规划调整", "analyst:alice")
    now = _current(db)
    assert now["K1"]["kind"] == "to_innovation" and now["K1"]["rule_kind"] == "phase_out"
    assert all(now[c]["version"] == cur[c]["version"] for c in ("K2", "K3", "K4"))
    ogc = http.get("/ogc/collections/platforms/items/K1").json()
    assert ogc["properties"]["kind"] == "to_innovation"  # not the snapshot's phase_out
    _full_recompute_equals(db)

    # K2's tax rises: the median moves (25 -> 35), every platform is reclassified
    ctx = _set_tax(db, "K2", 50.0)
    assert "platform_kinds" in ctx.timings
    cur = _current(db)
    assert {c: r["kind"] for c, r in cur.items()} == {
        "K1": "to_innovation",
        "K2": "retain_upgrade",
        "K3": "phase_out",
        "K4": "retain_upgrade",
    }
    assert rows(db, "SELECT median_tax_per_mu AS m FROM platform_kind_runs "
                "WHERE trigger = 'current'")[0]["m"] == 35.0  # fmt: skip
    _full_recompute_equals(db)

    # a platform's own figure changes but the median stays: only that row is rewritten
    _set_tax(db, "K1", 5.0)
    now = _current(db)
    assert abs(now["K1"]["tax_per_mu"] - 5.0) < 1e-9
    assert all(now[c]["version"] == cur[c]["version"] for c in ("K2", "K3", "K4"))
    _full_recompute_equals(db)

    # a platform moves next to a new national host: a platform change reclassifies all
    with db.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO platforms (code, name, level, type, district_code, geom, batch_id, "
                "row_hash) VALUES ('NH', '国家级', '国家级', '经济技术开发区', :d, "
                "ST_Multi(ST_GeomFromText(:w, 4549)), 1, 'x')"
            ),
            {"d": OTHER, "w": rect(16500, 0, 500, 500).wkt},
        )
        graph.refresh(conn, Changes(platforms={"NH"}), AS_OF)
    now = _current(db)
    assert now["NH"]["kind"] == "consolidate_host"
    assert now["K2"]["kind"] == "consolidate_member" and now["K2"]["host_code"] == "NH"
    _full_recompute_equals(db)

    # retired: its row leaves the current kinds
    with db.begin() as conn:
        conn.execute(text("DELETE FROM platforms WHERE code = 'NH'"))
        graph.refresh(conn, Changes(platforms={"NH"}), AS_OF)
    assert "NH" not in _current(db) and _current(db)["K2"]["kind"] == "retain_upgrade"
    _full_recompute_equals(db)


def test_current_kinds_by_keys_equal_a_full_recompute_on_the_sample_city(analysed_sample):
    """On an analysed copy of the sample city: one enterprise's tax in each platform of the median
    (the median moves), an override, a platform moved 3 km: each refreshed by its keys, the
    current kinds equal a full recompute."""
    import json

    from sqlalchemy import create_engine

    from gis.core import graph
    from gis.core.graph import Changes
    from tests.conftest import SAMPLE_DIR, database_copy

    as_of = date.fromisoformat(
        json.loads((SAMPLE_DIR / "planted.json").read_text("utf-8"))["reference_date"]
    )
    # analysed from scratch as of the sample's reference date (conftest's analysed_sample)
    with database_copy(analysed_sample, "kinds") as url:
        eng = create_engine(url)
        try:
            run = rows(eng, "SELECT * FROM platform_kind_runs WHERE trigger = 'current'")[0]
            assert run["median_tax_per_mu"] is not None
            # the enterprise with the most land in the platform just above the median
            top = rows(
                eng,
                """
                SELECT k.platform_code, l.from_key AS uscc FROM platform_kinds k
                JOIN links l ON l.kind = 'enterprise_platform' AND l.to_key = k.platform_code
                JOIN outputs o ON o.uscc = l.from_key AND o.year = :y
                WHERE k.run_id = :r AND k.tax_per_mu >= :m
                ORDER BY k.tax_per_mu, o.tax_paid DESC LIMIT 1
                """,
                y=run["tax_year"],
                r=run["id"],
                m=run["median_tax_per_mu"],
            )[0]
            changes = [
                (
                    "UPDATE outputs SET tax_paid = 0 WHERE uscc = :u AND year = :y",
                    {"u": top["uscc"], "y": run["tax_year"]},
                    Changes(outputs={f"{top['uscc']}:{run['tax_year']}"}),
                ),
                (
                    "INSERT INTO platform_kind_overrides (platform_code, kind, reason, "
                    "created_by) VALUES (:p, 'phase_out', '测试', 'test')",
                    {"p": top["platform_code"]},
                    Changes(platform_kind_overrides={top["platform_code"]}),
                ),
                (
                    "UPDATE platforms SET geom = ST_Translate(geom, 3000, 0) WHERE code = :p",
                    {"p": top["platform_code"]},
                    Changes(platforms={top["platform_code"]}),
                ),
            ]
            before = _strip(_current(eng))
            for sql, params, ch in changes:
                with eng.begin() as conn:
                    conn.execute(text(sql), params)
                    graph.refresh(conn, ch, as_of, trigger="test")
                with eng.connect() as conn:
                    tx = conn.begin()
                    incremental = _strip(_current_in(conn))
                    graph.refresh(conn, None, as_of, trigger="test-full")
                    full = _strip(_current_in(conn))
                    tx.rollback()
                assert incremental == full, sql
            assert _strip(_current(eng)) != before
        finally:
            eng.dispose()
