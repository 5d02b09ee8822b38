"""One §1 linkage: each enterprise sits on the same parcels wherever the system shows it.

The linkage is ``links`` (gis/economy/linkage.py, producer ``linkage``). On the analysed sample
city, every consumer must agree with its ``enterprise_parcel`` rows: the evaluation's
``enterprise_land``, the three lands (low efficiency: the enterprises a parcel's reasons name or
count), the platform kinds' 亩均税收 basis (per_mu's platform rows, from the enterprises' land
through their linked parcels) and the parcel dossier. Planted cases pin the rule where §1 is
silent (a point in two overlapping parcels, equal nearest distances, a point 60 m away), and the
producer refreshed by keys equals a full recompute (a moved point, a moved parcel, ...).
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from datetime import date

import pytest
from sqlalchemy import create_engine, text

from gis.core.graph import Changes, Context
from gis.core.rules import get_rules
from gis.economy import linkage
from gis.map.parcel_dossier import dossier
from gis.platforms.platform_kinds import platform_tax
from tests.conftest import SAMPLE_DIR, database_copy
from tests.eval_city import X0, Y0, districts, enterprises, load, outputs, parcels, rect, uscc
from tests.plan_helpers import analyse

AS_OF = date.fromisoformat(
    json.loads((SAMPLE_DIR / "planted.json").read_text("utf-8"))["reference_date"]
)
PRODUCER = next(p for p in linkage.PRODUCERS if p.name == "linkage")


def ent_parcels(conn) -> dict[str, set[str]]:
    """USCC -> the parcels ``links`` puts it on (absent: unlinked)."""
    out: dict[str, set[str]] = defaultdict(set)
    for u, p in conn.execute(
        text(
            "SELECT from_key, to_key FROM links WHERE kind = 'enterprise_parcel' "
            "AND to_key IS NOT NULL"
        )
    ):
        out[u].add(p)
    return dict(out)


def parcel_ents(links: dict[str, set[str]]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = defaultdict(set)
    for u, ps in links.items():
        for p in ps:
            out[p].add(u)
    return dict(out)


@pytest.fixture(scope="module")
def city(analysed_sample):
    """An analysed copy of the sample city (every derived table from scratch as of AS_OF:
    conftest's ``analysed_sample``)."""
    with database_copy(analysed_sample, "onelink") as url:
        eng = create_engine(url)
        try:
            yield eng
        finally:
            eng.dispose()


@pytest.fixture(scope="module")
def truth(city) -> dict[str, set[str]]:
    with city.connect() as c:
        links = ent_parcels(c)
    assert len(links) > 50  # the sample city links most of its enterprises
    return links


def test_enterprise_land_uses_the_links(city, truth):
    with city.connect() as c:
        rows = c.execute(text("SELECT year, uscc, basis, parcel_nos FROM enterprise_land")).all()
    assert rows
    wrong = [
        (r.year, r.uscc, sorted(r.parcel_nos), sorted(truth.get(r.uscc, ())))
        for r in rows
        if set(r.parcel_nos) != truth.get(r.uscc, set())
        or (r.basis == "parcels") != (r.uscc in truth)
    ]
    assert wrong == []


def test_three_lands_use_the_links(city, truth):
    """Low efficiency: a class_d reason names the class-D enterprises linked to the parcel; a
    tax_per_mu reason counts the enterprises linked to it with output that year."""
    on = parcel_ents(truth)
    checked = 0
    with city.connect() as c:
        run = c.execute(text("SELECT id FROM detection_runs WHERE live")).scalar_one()
        rows = c.execute(
            text("SELECT parcel_no, reasons FROM low_efficiency_results WHERE run_id = :r"),
            {"r": run},
        ).all()
        for parcel_no, reasons in rows:
            for r in reasons:
                if r["code"] == "class_d":
                    year, named = re.fullmatch(r"evaluation (\d+): (.*)", r["basis"]).groups()
                    d = set(
                        c.execute(
                            text(
                                "SELECT uscc FROM evaluations WHERE year = :y "
                                "AND \"class\" = 'D' AND uscc = ANY(:u)"
                            ),
                            {"y": int(year), "u": sorted(on.get(parcel_no, ()))},
                        ).scalars()
                    )
                    assert set(named.split(", ")) == d, parcel_no
                    checked += 1
                elif r["code"] == "tax_per_mu":
                    year, n = re.fullmatch(
                        r"SJSJ (\d+), (\d+) enterprise\(s\)", r["basis"]
                    ).groups()
                    with_output = set(
                        c.execute(
                            text("SELECT uscc FROM outputs WHERE year = :y AND uscc = ANY(:u)"),
                            {"y": int(year), "u": sorted(on.get(parcel_no, ()))},
                        ).scalars()
                    )
                    assert int(n) == len(with_output), parcel_no
                    checked += 1
    assert checked > 0


def test_platform_kinds_tax_basis_uses_the_links(city, truth):
    """The platform kinds' 亩均税收 (``platform_tax``): each enterprise's SJSJ goes to a platform
    in proportion to its land on the parcels ``links`` puts it on that lie in the platform
    (``parcel_platform`` shares), or wholly to the platform holding its point on declared land."""
    with city.connect() as c:
        years = c.execute(
            text("SELECT DISTINCT year FROM per_mu WHERE level = 'platform' ORDER BY 1")
        ).scalars()
        pz: dict[str, list[tuple[str, float]]] = defaultdict(list)
        for p, code, share in c.execute(
            text(
                "SELECT from_key, to_key, share FROM links WHERE kind = 'parcel_platform' "
                "AND to_key IS NOT NULL"
            )
        ):
            pz[p].append((code, share))
        point = dict(
            c.execute(
                text(
                    "SELECT from_key, to_key FROM links WHERE kind = 'enterprise_platform' "
                    "AND is_primary AND method = 'contains'"
                )
            ).all()
        )
        area = dict(c.execute(text("SELECT parcel_no, area_m2 FROM parcels")).all())
        checked = 0
        for year in list(years):
            shown, _ = platform_tax(c, year)
            expect: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])  # land, tax
            for r in c.execute(
                text(
                    "SELECT el.uscc, el.basis, el.area_m2, el.parcel_nos, el.parcel_shares, "
                    "o.tax_paid FROM enterprise_land el JOIN outputs o USING (uscc, year) "
                    "WHERE el.year = :y AND el.basis <> 'none'"
                ),
                {"y": year},
            ):
                tax = r.tax_paid or 0.0
                if r.basis == "declared":
                    if r.uscc in point:
                        expect[point[r.uscc]][0] += r.area_m2
                        expect[point[r.uscc]][1] += tax
                    continue
                share = dict(zip(r.parcel_nos, r.parcel_shares, strict=True))
                for p in truth[r.uscc]:  # the parcels of links, not enterprise_land's own list
                    for code, s in pz.get(p, ()):
                        land = area[p] * share[p] * s
                        expect[code][0] += land
                        expect[code][1] += tax * land / r.area_m2
            expect = {k: v for k, v in expect.items() if v[0] > 0}
            assert set(shown) == set(expect), year
            for code, (land, tax) in expect.items():
                assert shown[code]["area_mu"] == pytest.approx(land * 0.0015, rel=1e-6)
                assert shown[code]["tax_paid"] == pytest.approx(tax, rel=1e-6, abs=1e-6)
                checked += 1
    assert checked > 0


def test_parcel_dossier_uses_the_links(city, truth):
    on = parcel_ents(truth)
    with city.connect() as c:
        others = c.execute(
            text(
                "SELECT parcel_no FROM parcels WHERE parcel_no <> ALL(:p) ORDER BY parcel_no "
                "LIMIT 40"
            ),
            {"p": sorted(on)},
        ).scalars()
        # every 4th linked parcel (a dossier is ~15 queries; the evaluation's land above
        # checks every link) and 40 parcels without enterprises
        parcel_nos = sorted(on)[::4] + list(others)
    for no in parcel_nos:
        got = {e["uscc"] for e in dossier(city, no, analyst=True)["enterprises"]}
        assert got == on.get(no, set()), no


# ---- planted cases where §1 is silent -------------------------------------------------------

A, B, C, D = (uscc(i) for i in range(71, 75))


@pytest.fixture
def planted(db, tmp_path):
    dk = [
        ("A2", rect(0, 0, 100, 100), {}),
        ("A1", rect(20, 20, 30, 30), {}),  # inside A2
        ("B9", rect(200, 0, 50, 50), {}),  # B9 and B3: the same polygon
        ("B3", rect(200, 0, 50, 50), {}),
        ("C7", rect(400, 0, 50, 50), {}),  # C7's east edge x = 450, C4's west edge x = 510
        ("C4", rect(510, 0, 50, 50), {}),
        ("D1", rect(760, 0, 50, 50), {}),
    ]
    ents = [
        {"TYSHXYDM": A, "QYMC": "叠", "HYDM": "3484", "GMYS": 1, "X": X0 + 30, "Y": Y0 + 30,
         "ZBXT": "EPSG:4549"},
        {"TYSHXYDM": B, "QYMC": "同", "HYDM": "3484", "GMYS": 1, "X": X0 + 225, "Y": Y0 + 25,
         "ZBXT": "EPSG:4549"},
        {"TYSHXYDM": C, "QYMC": "等", "HYDM": "3484", "GMYS": 1, "X": X0 + 480, "Y": Y0 + 25,
         "ZBXT": "EPSG:4549"},
        {"TYSHXYDM": D, "QYMC": "远", "HYDM": "3484", "GMYS": 1, "X": X0 + 700, "Y": Y0 + 25,
         "ZBXT": "EPSG:4549"},
    ]  # fmt: skip
    cc = [
        {"TYSHXYDM": u, "ND": 2024, "SJSJ": 100.0, "GYZJZ": 500.0, "GYZCZ": 2000.0,
         "YYSR": 2000.0}
        for u in (A, B, C, D)
    ]  # fmt: skip
    load(
        db,
        tmp_path,
        xzq=districts(tmp_path),
        dk=parcels(tmp_path, dk),
        qy=enterprises(tmp_path, ents),
        cc=outputs(tmp_path, cc),
    )
    analyse(db, AS_OF)
    return db


def test_planted_rules_and_every_consumer_agrees(planted):
    with planted.connect() as c:
        rows = {
            r.from_key: r
            for r in c.execute(
                text("SELECT * FROM links WHERE kind = 'enterprise_parcel' AND from_key = ANY(:u)"),
                {"u": [A, B, C, D]},
            )
        }
        land = dict(
            c.execute(text("SELECT uscc, parcel_nos FROM enterprise_land WHERE year = 2024")).all()
        )
    # a point in two overlapping parcels: the smallest; of two equal ones, the lower parcel_no
    assert (rows[A].to_key, rows[A].method) == ("A1", "contains")
    assert (rows[B].to_key, rows[B].method) == ("B3", "contains")
    # 30 m from C7 and from C4: the nearest, ties by parcel_no
    assert (rows[C].to_key, rows[C].method, rows[C].distance_m) == ("C4", "nearest", 30.0)
    # 60 m from the nearest parcel: unlinked, with the reason
    assert rows[D].to_key is None and rows[D].method is None
    assert "no parcel is within 50 m (nearest 60 m away)" in rows[D].reason
    # the evaluation's land and the dossiers show the same parcels
    assert land[A] == ["A1"] and land[B] == ["B3"] and land[C] == ["C4"] and land[D] == []
    for no, want in {"A1": {A}, "A2": set(), "B3": {B}, "B9": set(), "C4": {C}, "C7": set(),
                     "D1": set()}.items():  # fmt: skip
        assert {e["uscc"] for e in dossier(planted, no, analyst=True)["enterprises"]} == want


# ---- refreshed by keys = recomputed from scratch ---------------------------------------------

COLS = "kind, from_key, to_key, method, distance_m, share, is_primary, reason, rule"


def snapshot(conn) -> list[tuple]:
    return sorted(
        conn.execute(text(f"SELECT {COLS} FROM links")).all(),
        key=lambda r: tuple("" if v is None else str(v) for v in r),
    )


def _pick(conn, sql: str) -> str:
    return conn.execute(text(sql)).scalar_one()


def _move_point(conn) -> tuple[Changes, dict]:
    """An enterprise's point moved from the parcel it lies in onto another parcel."""
    u, old = conn.execute(
        text(
            "SELECT from_key, to_key FROM links WHERE kind = 'enterprise_parcel' "
            "AND method = 'contains' ORDER BY from_key LIMIT 1"
        )
    ).one()
    new = _pick(
        conn,
        "SELECT p.parcel_no FROM parcels p WHERE NOT EXISTS (SELECT 1 FROM parcels q "
        "WHERE q.parcel_no <> p.parcel_no AND q.geom && p.geom AND ST_Intersects(q.geom, p.geom)) "
        f"AND p.parcel_no <> '{old}' ORDER BY p.parcel_no DESC LIMIT 1",
    )
    conn.execute(
        text(
            "UPDATE enterprises SET geom = (SELECT ST_PointOnSurface(geom) FROM parcels "
            "WHERE parcel_no = :p) WHERE uscc = :u"
        ),
        {"p": new, "u": u},
    )
    return Changes(enterprises={u}), {"enterprise_parcel": {u}, "parcel_links": {old, new}}


def _move_parcel(conn) -> tuple[Changes, dict]:
    """A parcel holding enterprises' points moved 500 m east."""
    p = _pick(
        conn,
        "SELECT to_key FROM links WHERE kind = 'enterprise_parcel' AND method = 'contains' "
        "GROUP BY to_key ORDER BY count(*) DESC, to_key LIMIT 1",
    )
    ents = set(
        conn.execute(
            text(
                "SELECT from_key FROM links WHERE kind = 'enterprise_parcel' AND to_key = :p "
                "AND method = 'contains'"
            ),
            {"p": p},
        ).scalars()
    )
    conn.execute(
        text("UPDATE parcels SET geom = ST_Translate(geom, 500, 0) WHERE parcel_no = :p"),
        {"p": p},
    )
    return Changes(parcels={p}), {"enterprise_parcel": ents, "parcel_links": {p}}


def _retire_parcel(conn) -> tuple[Changes, dict]:
    """A parcel with a supply record and enterprises no longer in the parcels."""
    p = _pick(
        conn,
        "SELECT e.to_key FROM links e JOIN links s ON s.kind = 'supply_parcel' "
        "AND s.to_key = e.to_key AND s.from_key IS NOT NULL "
        "WHERE e.kind = 'enterprise_parcel' ORDER BY e.to_key LIMIT 1",
    )
    conn.execute(text("DELETE FROM parcels WHERE parcel_no = :p"), {"p": p})
    return Changes(parcels={p}), {"parcel_links": {p}}


def _move_supply(conn) -> tuple[Changes, dict]:
    """A supply record linked by overlap moved 300 m north."""
    s = _pick(
        conn,
        "SELECT from_key FROM links WHERE kind = 'supply_parcel' AND method = 'overlap' "
        "ORDER BY from_key LIMIT 1",
    )
    conn.execute(
        text("UPDATE supplies SET geom = ST_Translate(geom, 0, 300) WHERE supply_no = :s"),
        {"s": s},
    )
    return Changes(supplies={s}), {"links": {s}}


def _retire_enterprise(conn) -> tuple[Changes, dict]:
    u = _pick(
        conn,
        "SELECT from_key FROM links WHERE kind = 'enterprise_parcel' AND to_key IS NOT NULL "
        "ORDER BY from_key DESC LIMIT 1",
    )
    conn.execute(text("DELETE FROM outputs WHERE uscc = :u"), {"u": u})
    conn.execute(text("DELETE FROM enterprises WHERE uscc = :u"), {"u": u})
    return Changes(enterprises={u}), {"enterprise_parcel": {u}}


def _move_platform(conn) -> tuple[Changes, dict]:
    code = _pick(conn, "SELECT code FROM platforms ORDER BY code LIMIT 1")
    conn.execute(
        text("UPDATE platforms SET geom = ST_Translate(geom, 700, -400) WHERE code = :c"),
        {"c": code},
    )
    return Changes(platforms={code}), {"links": {code}, "zone_links": {f"platform:{code}"}}


def _unlinked(conn) -> tuple[str, str, float]:
    """An enterprise no parcel is linked to (its point more than 50 m from every parcel), its
    nearest parcel and the distance."""
    return conn.execute(
        text(
            "SELECT l.from_key, n.parcel_no, n.d FROM links l "
            "JOIN enterprises e ON e.uscc = l.from_key "
            "CROSS JOIN LATERAL (SELECT pa.parcel_no, ST_Distance(pa.geom, e.geom) AS d "
            "FROM parcels pa ORDER BY pa.geom <-> e.geom, pa.parcel_no LIMIT 1) n "
            "WHERE l.kind = 'enterprise_parcel' AND l.to_key IS NULL AND e.geom IS NOT NULL "
            "ORDER BY l.from_key LIMIT 1"
        )
    ).one()


def _toward(conn, parcel: str, uscc: str, gap: float) -> None:
    """Move a parcel straight toward an enterprise's point until it lies ``gap`` m from it."""
    conn.execute(
        text(
            "UPDATE parcels pa SET geom = ST_Translate(pa.geom, "
            "(ST_X(ST_EndPoint(s.l)) - ST_X(ST_StartPoint(s.l))) * (1 - :gap / ST_Length(s.l)), "
            "(ST_Y(ST_EndPoint(s.l)) - ST_Y(ST_StartPoint(s.l))) * (1 - :gap / ST_Length(s.l))) "
            "FROM (SELECT ST_ShortestLine(q.geom, e.geom) AS l FROM parcels q, enterprises e "
            "WHERE q.parcel_no = :p AND e.uscc = :u) s WHERE pa.parcel_no = :p"
        ),
        {"p": parcel, "u": uscc, "gap": gap},
    )


def _unlinked_nearest_moves_away(conn) -> tuple[Changes, dict]:
    """The nearest parcel of an unlinked enterprise moved 20 km away: its reason names the next
    nearest parcel's distance."""
    u, p, _ = _unlinked(conn)
    conn.execute(
        text("UPDATE parcels SET geom = ST_Translate(geom, 20000, 20000) WHERE parcel_no = :p"),
        {"p": p},
    )
    return Changes(parcels={p}), {"enterprise_parcel": {u}}


def _unlinked_nearest_retired(conn) -> tuple[Changes, dict]:
    u, p, _ = _unlinked(conn)
    conn.execute(text("DELETE FROM parcels WHERE parcel_no = :p"), {"p": p})
    return Changes(parcels={p}), {"enterprise_parcel": {u}}


def _unlinked_nearest_moves_closer(conn) -> tuple[Changes, dict]:
    """The nearest parcel of an unlinked enterprise moved to 51 m of its point: still unlinked,
    another distance in the reason."""
    u, p, d = _unlinked(conn)
    assert d > 52
    _toward(conn, p, u, 51.0)
    return Changes(parcels={p}), {"enterprise_parcel": {u}}


def _another_parcel_comes_closer(conn) -> tuple[Changes, dict]:
    """A parcel far from an unlinked enterprise moved to 51 m of its point, nearer than its
    nearest parcel (which did not change)."""
    u, p, d = _unlinked(conn)
    assert d > 52
    far = _pick(
        conn,
        f"SELECT pa.parcel_no FROM parcels pa, enterprises e WHERE e.uscc = '{u}' "
        "AND NOT EXISTS (SELECT FROM links l WHERE l.kind = 'enterprise_parcel' "
        "AND l.to_key = pa.parcel_no) "
        "ORDER BY ST_Distance(pa.geom, e.geom) DESC, pa.parcel_no LIMIT 1",
    )
    _toward(conn, far, u, 51.0)
    return Changes(parcels={far}), {"enterprise_parcel": {u}}


@pytest.fixture(scope="module")
def scratch(sample_engine):
    with database_copy(sample_engine, "onelink_inc") as url:
        eng = create_engine(url)
        with eng.begin() as conn:
            PRODUCER.run(conn, _ctx(), None)
        try:
            yield eng
        finally:
            eng.dispose()


def _ctx() -> Context:
    return Context(as_of=AS_OF, rules=get_rules(), run_id=0)


@pytest.mark.parametrize(
    "change",
    [
        _move_point,
        _move_parcel,
        _retire_parcel,
        _move_supply,
        _retire_enterprise,
        _move_platform,
        _unlinked_nearest_moves_away,
        _unlinked_nearest_retired,
        _unlinked_nearest_moves_closer,
        _another_parcel_comes_closer,
    ],
)
def test_refresh_by_keys_equals_full(scratch, change):
    with scratch.connect() as conn, conn.begin() as tx:
        changes, expected = change(conn)
        out = PRODUCER.run(conn, _ctx(), changes)
        by_keys = snapshot(conn)
        full = PRODUCER.run(conn, _ctx(), None)
        assert full.everything("links")
        from_scratch = snapshot(conn)
        tx.rollback()
    assert by_keys == from_scratch
    for table, keys in expected.items():
        assert keys <= out[table], table


def test_nothing_changed_returns_no_keys(scratch):
    with scratch.connect() as conn, conn.begin() as tx:
        before = snapshot(conn)
        u = _pick(conn, "SELECT uscc FROM enterprises ORDER BY uscc LIMIT 1")
        p = _pick(conn, "SELECT parcel_no FROM parcels ORDER BY parcel_no LIMIT 1")
        out = PRODUCER.run(conn, _ctx(), Changes(enterprises={u}, parcels={p}))
        assert snapshot(conn) == before
        tx.rollback()
    assert not out["links"] and not out["enterprise_parcel"] and not out["parcel_links"]


def test_written_extent_covers_the_old_and_new_place_of_this_transactions_writes(scratch):
    """What narrows the unlinked enterprises' reasons: the boxes of this transaction's writes to
    the parcels, old rows and new, read from the statement triggers' log; None when nothing was
    written, and None when a write is logged without a place (a TRUNCATE)."""
    from gis.core.graph import written_extent

    with scratch.connect() as conn, conn.begin() as tx:
        assert written_extent(conn, "parcels") is None
        a, b = conn.execute(
            text("SELECT parcel_no FROM parcels ORDER BY parcel_no LIMIT 2")
        ).scalars()
        old = conn.execute(
            text("SELECT ST_AsEWKT(geom) FROM parcels WHERE parcel_no = :p"), {"p": a}
        ).scalar_one()
        conn.execute(
            text("UPDATE parcels SET geom = ST_Translate(geom, 5000, 0) WHERE parcel_no = :p"),
            {"p": a},
        )
        conn.execute(
            text("UPDATE parcels SET geom = ST_Translate(geom, 0, -3000) WHERE parcel_no = :p"),
            {"p": b},
        )
        box = written_extent(conn, "parcels")
        assert box is not None and written_extent(conn, "supplies") is None
        covered = conn.execute(
            text(
                "SELECT ST_Covers(CAST(:box AS geometry), CAST(:old AS geometry)), "
                "bool_and(ST_Covers(CAST(:box AS geometry), geom)), "
                "ST_Area(CAST(:box AS geometry)) < 1e7 FROM parcels WHERE parcel_no = ANY(:p)"
            ),
            {"box": box, "old": old, "p": [a, b]},
        ).one()
        # the old place and both new ones, in a box per statement (one box for both: >= 15 km²)
        assert covered == (True, True, True)
        conn.execute(
            text(
                "INSERT INTO tile_invalidations (source, layers, extent) VALUES "
                "('parcels:truncate:' || txid_current() || ':' || clock_timestamp(), "
                "'{parcels}', NULL)"
            )
        )
        assert written_extent(conn, "parcels") is None
        tx.rollback()
