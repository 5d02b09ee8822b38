"""The A/B/C/D evaluation (DOMAIN_RULES §2) on hand-made cases, worked out by hand below.

Every parcel of the 规上 firms is 100 m × 100 m = 10,000 m² = 15 亩. Expected benchmarks, points,
scores, ranks and classes are written out as arithmetic from the rule, not taken from the code.
"""

from __future__ import annotations

import pytest
from sqlalchemy import text

from gis.core.rules import EvaluationRules, Rules
from gis.economy.evaluation import run_all
from tests.eval_city import (
    districts,
    enterprises,
    gcj02_of,
    load,
    outputs,
    parcels,
    rect,
    supplies,
    table,
    uscc,
)

E1, E2, E3, E4, E5 = (uscc(i) for i in range(1, 6))
B1, B2, B3, B4, B5, B6 = (uscc(i) for i in range(11, 17))
U1, N1, W1 = uscc(21), uscc(22), uscc(23)

# 规上 figures: SJSJ, GYZJZ, ZHNH, PFDL, CYRS, YFFY, YYSR (万元, tce, t, persons)
ABOVE = {
    E1: (300, 1500, 500, 15, 50, 60, 2000),  # 20, 100, 3, 100, 30, 3 %
    E2: (150, 750, 750, 15, 50, 20, 2000),  # 10, 50, 1, 50, 15, 1 %
    E3: (150, 750, 750, 15, 50, 20, 2000),  # the same as E2: a tie
    E4: (150, 750, None, 15, 50, 20, 2000),  # E2 without an energy figure
    E5: (15, 150, 150, 15, 50, 0, 1000),  # 1, 10, 1, 10, 3, 0 %
}


def _above_row(u: str, year: int, f: tuple) -> dict:
    t, va, e, p, n, rd, rev = f
    return {"TYSHXYDM": u, "ND": year, "SJSJ": t, "GYZJZ": va, "ZHNH": e, "PFDL": p,
            "CYRS": n, "YFFY": rd, "YYSR": rev, "GYZCZ": va * 4}  # fmt: skip


def _city(db, tmp_path, hydm: dict | None = None, extra_ent=(), extra_cc=(), **more) -> None:
    hydm = hydm or {}
    dk = [(f"P{i}", rect(200 * (i - 1), 0, 100, 100), {}) for i in range(1, 6)]
    dk += [
        ("PS", rect(1000, 0, 100, 100), {}),  # shared by B2 and B3
        ("PB4", rect(1200, 0, 50, 20), {}),  # 1,000 m² = 1.5 亩
        ("PG", rect(1400, 0, 100, 100), {}),  # B6's point, given in GCJ-02
    ]
    dk += more.get("extra_dk", [])
    glon, glat = gcj02_of(1450, 50)
    ents = [
        {"TYSHXYDM": u, "QYMC": f"规上{i}", "HYDM": hydm.get(u, "3484"), "GMYS": 1,
         "DKBH": f"P{i}"}
        for i, u in enumerate(ABOVE, start=1)
    ]  # fmt: skip
    ents += [
        {"TYSHXYDM": B1, "QYMC": "租地", "HYDM": "3484", "GMYS": 0, "X": 500_000 + 3000,
         "Y": 3_350_000 + 3000, "ZBXT": "EPSG:4549"},
        {"TYSHXYDM": B2, "QYMC": "共用甲", "HYDM": "3484", "GMYS": 0, "DKBH": "PS"},
        {"TYSHXYDM": B3, "QYMC": "共用乙", "HYDM": "3484", "GMYS": 0, "DKBH": "PS"},
        {"TYSHXYDM": B4, "QYMC": "小地块", "HYDM": "3484", "GMYS": 0, "DKBH": "PB4"},
        {"TYSHXYDM": B5, "QYMC": "无地", "HYDM": "3484", "GMYS": 0},
        {"TYSHXYDM": B6, "QYMC": "高德点", "HYDM": "3484", "GMYS": 0, "X": glon, "Y": glat,
         "ZBXT": "gcj02"},
        *extra_ent,
    ]  # fmt: skip
    cc = [_above_row(u, 2024, f) for u, f in ABOVE.items()]
    cc += [
        {"TYSHXYDM": B1, "ND": 2024, "SJSJ": 60, "YYSR": 600, "YDMJ": 4000},
        {"TYSHXYDM": B2, "ND": 2024, "SJSJ": 90, "YYSR": 1800, "YDMJ": 6000},
        {"TYSHXYDM": B3, "ND": 2024, "SJSJ": 120, "YYSR": 600, "YDMJ": 4000},
        {"TYSHXYDM": B4, "ND": 2024, "SJSJ": 10, "YYSR": 100},
        {"TYSHXYDM": B5, "ND": 2024, "SJSJ": 10, "YYSR": 100},
        {"TYSHXYDM": B6, "ND": 2024, "SJSJ": 15, "YYSR": 300},
        *extra_cc,
    ]
    layers = {
        "xzq": districts(tmp_path),
        "dk": parcels(tmp_path, dk),
        "qy": enterprises(tmp_path, ents),
        "cc": outputs(tmp_path, cc),
    }
    if more.get("gd"):
        layers["gd"] = supplies(tmp_path, more["gd"])
    if more.get("bd"):
        layers["bd"] = table(tmp_path, "BD.csv", more["bd"])
    load(db, tmp_path, **layers)


def _rows(db, year: int = 2024) -> dict:
    with db.connect() as c:
        rows = c.execute(
            text('SELECT * FROM evaluations WHERE year = :y ORDER BY "group", uscc'), {"y": year}
        ).all()
    return {r.uscc: _Row(r._mapping) for r in rows}


class _Row(dict):
    __getattr__ = dict.__getitem__


def test_above_group_scores_ties_and_missing_energy(db, tmp_path):
    _city(db, tmp_path)
    ev = _rows(db)
    # benchmarks: means over the five evaluated 规上 firms (energy: the four that have it)
    b_tax = (20 + 10 + 10 + 10 + 1) / 5  # 10.2 万元/亩
    b_va = (100 + 50 + 50 + 50 + 10) / 5  # 52 万元/亩
    b_en = (3 + 1 + 1 + 1) / 4  # 1.5 万元/tce
    b_em = (100 + 50 + 50 + 50 + 10) / 5  # 52 万元/t
    b_lp = (30 + 15 + 15 + 15 + 3) / 5  # 15.6 万元/人
    b_rd = (3 + 1 + 1 + 1 + 0) / 5  # 1.2 %
    bench = ev[E1].benchmarks
    assert bench["tax_per_mu"] == pytest.approx(b_tax)
    assert bench["va_per_mu"] == pytest.approx(b_va)
    assert bench["va_per_energy"] == pytest.approx(b_en)
    assert bench["va_per_emission"] == pytest.approx(b_em)
    assert bench["labour_productivity"] == pytest.approx(b_lp)
    assert bench["rd_intensity"] == pytest.approx(b_rd)

    def score(t, va, en, em, lp, rd):
        return (30 * t / b_tax + 20 * va / b_va + 20 * en / b_en + 10 * em / b_em
                + 10 * lp / b_lp + 10 * rd / b_rd)  # fmt: skip

    s1 = score(20, 100, 3, 100, 30, 3)  # 200.75
    s2 = score(10, 50, 1, 50, 15, 1)  # 89.54 (E2 and E3)
    mean_energy_points = (20 * 3 / b_en + 3 * (20 * 1 / b_en)) / 4  # 20.0
    s4 = s2 - 20 * 1 / b_en + mean_energy_points  # 96.21
    s5 = score(1, 10, 1, 10, 3, 0)  # 23.97
    assert ev[E1].score == pytest.approx(s1)
    assert ev[E2].score == pytest.approx(s2) and ev[E3].score == pytest.approx(s2)
    assert ev[E4].score == pytest.approx(s4)
    assert ev[E5].score == pytest.approx(s5)
    # E4: missing energy scores the group's mean points for it, and says so
    assert ev[E4].points["va_per_energy"] == pytest.approx(20.0, abs=1e-4)
    assert ev[E4].indicators["va_per_energy"] is None
    assert ev[E4].missing == [{"indicator": "va_per_energy", "scored": "group mean points"}]
    assert ev[E1].points["tax_per_mu"] == pytest.approx(30 * 20 / b_tax, abs=1e-4)
    assert ev[E1].indicators["tax_per_mu"] == pytest.approx(300 / 15)
    # ranks: E1 1, E4 2, E2 = E3 3 (tie), E5 5; n = 5:
    # A rank <= 1.25, B rank <= 3.5, D if (5 - rank + 1) <= 0.25 (none), else C.
    # Without tie-sharing E3 would sit at position 4 (> 3.5) and be C.
    assert {u: (ev[u].rank, ev[u]["class"]) for u in ABOVE} == {
        E1: (1, "A"),
        E4: (2, "B"),
        E2: (3, "B"),
        E3: (3, "B"),
        E5: (5, "C"),
    }
    assert all(ev[u].group_size == 5 and ev[u].group == "above" for u in ABOVE)


def test_below_group_rented_shared_gcj02_and_no_land(db, tmp_path):
    _city(db, tmp_path)
    ev = _rows(db)
    # land: B1 rented 4,000 m² (YDMJ) = 6 亩; PS shared 6000 : 4000 -> B2 9 亩, B3 6 亩;
    # B6 15 亩 (its GCJ-02 point lies in PG only after conversion)
    assert (ev[B1].land_basis, ev[B1].area_mu) == ("declared", pytest.approx(4000 * 0.0015))
    assert (ev[B2].land_basis, ev[B2].area_mu) == ("parcels", pytest.approx(6000 * 0.0015))
    assert ev[B3].area_mu == pytest.approx(4000 * 0.0015)
    assert ev[B6].area_mu == pytest.approx(15)
    with db.connect() as c:
        how = c.execute(
            text("SELECT method FROM links WHERE kind = 'enterprise_parcel' AND from_key = :u"),
            {"u": B6},
        ).scalar_one()
    assert how == "contains"
    # 亩均税收 / 亩均营业收入: B1 10 / 100, B2 10 / 200, B3 20 / 100, B6 1 / 20
    b_tax = (10 + 10 + 20 + 1) / 4  # 10.25
    b_rev = (100 + 200 + 100 + 20) / 4  # 105
    expect = {
        B3: 50 * 20 / b_tax + 50 * 100 / b_rev,  # 145.18
        B2: 50 * 10 / b_tax + 50 * 200 / b_rev,  # 144.02
        B1: 50 * 10 / b_tax + 50 * 100 / b_rev,  # 96.40
        B6: 50 * 1 / b_tax + 50 * 20 / b_rev,  # 14.40
    }
    for u, s in expect.items():
        assert ev[u].score == pytest.approx(s), u
        assert ev[u].benchmarks == {
            "tax_per_mu": pytest.approx(b_tax),
            "revenue_per_mu": pytest.approx(b_rev),
        }
    # n = 4: A rank <= 1, B rank <= 2.8, D if (4 - rank + 1) <= 0.2 (none), else C
    assert {u: (ev[u].rank, ev[u]["class"]) for u in expect} == {
        B3: (1, "A"),
        B2: (2, "B"),
        B1: (3, "C"),
        B6: (4, "C"),
    }
    # not evaluated, with the reason
    assert not ev[B4].evaluated and ev[B4]["class"] is None and ev[B4].score is None
    assert ev[B4].not_evaluated_reason == "规下 on 1.50 亩, under the 3 亩 threshold"
    assert not ev[B5].evaluated and ev[B5].rank is None
    assert ev[B5].land_basis == "none"
    assert "no land" in ev[B5].not_evaluated_reason
    assert "no coordinates" in ev[B5].not_evaluated_reason


def test_not_graded_and_backward_capacity(db, tmp_path):
    """Utilities, firms founded under 2 years ago and firms still building on newly supplied
    land keep a score but get no rank or class; the benchmark still counts them."""
    same_as_e2 = ABOVE[E2]
    extra_ent = [
        {"TYSHXYDM": U1, "QYMC": "热电", "HYDM": "4412", "GMYS": 1, "DKBH": "PU"},
        {"TYSHXYDM": N1, "QYMC": "新办", "HYDM": "3484", "GMYS": 1, "DKBH": "PN"},
        {"TYSHXYDM": W1, "QYMC": "在建", "HYDM": "3484", "GMYS": 1, "DKBH": "PW"},
    ]
    extra_cc = [_above_row(u, 2024, same_as_e2) for u in (U1, N1, W1)]
    # every firm but N1 also reports 2023, so N1 (first output 2024) is under 2 years old
    extra_cc += [_above_row(u, 2023, f) for u, f in ABOVE.items()]
    extra_cc += [_above_row(u, 2023, same_as_e2) for u in (U1, W1)]
    _city(
        db,
        tmp_path,
        hydm={E5: "2614", E2: "1713", E3: "1713"},
        extra_ent=extra_ent,
        extra_cc=extra_cc,
        extra_dk=[
            ("PU", rect(1600, 0, 100, 100), {}),
            ("PN", rect(1800, 0, 100, 100), {}),
            ("PW", rect(2000, 0, 100, 100), {"DZJGH": "SW"}),
        ],
        gd=[("SW", rect(2000, 0, 100, 100), {"GDRQ": "2023-06-01", "SJJGSJ": None})],
        bd=[
            {"TYSHXYDM": E2, "ND": 2024, "BDLX": "环境保护", "SM": "超标排放"},
            {"TYSHXYDM": E3, "ND": 2023, "BDLX": "安全生产"},
        ],
    )
    ev = _rows(db)
    assert ev[U1].evaluated and not ev[U1].graded and ev[U1].rank is None
    assert ev[U1].not_graded_reason == "utility (GB/T 4754 division 44)"
    assert ev[N1].not_graded_reason == "founded under 2 years ago (first output year 2024)"
    assert ev[W1].not_graded_reason.startswith("still building on newly supplied land: SW")
    assert all(ev[u].score is not None and ev[u]["class"] is None for u in (U1, N1, W1))
    # 亩均税收 benchmark over all eight evaluated 规上 firms (graded or not)
    assert ev[E1].benchmarks["tax_per_mu"] == pytest.approx((20 + 10 * 6 + 1) / 8)
    assert ev[E1].group_size == 5
    assert [ev[u].rank for u in (E1, E4, E2, E3, E5)] == [1, 2, 3, 3, 5]

    # cut-offs are configuration: with 25 / 50 / 75 %, n = 5: A rank <= 1.25, B <= 2.5,
    # D if (5 - rank + 1) <= 1.25, i.e. rank 5
    rules = Rules(evaluation=EvaluationRules(class_cutoffs=[0.25, 0.5, 0.75]))
    run_all(db, rules=rules)
    ev = _rows(db)
    assert [ev[u]["class"] for u in (E1, E4, E2, E3, E5)] == ["A", "B", "C", "C", "D"]
    from gis.core.rules import BackwardCapacityRules
    from gis.economy.backward_capacity import candidates

    with db.connect() as c:
        got = candidates(c, 2024, BackwardCapacityRules())
    # E5: chemicals (2614), class D. E2: dyeing (1713), class C with a failed standard in 2024.
    # E3: dyeing, class C, but its failed standard is of 2023: not a candidate in 2024.
    assert [(g["uscc"], g["class"], g["industry"]) for g in got] == [
        (E2, "C", "印染 dyeing"),
        (E5, "D", "化工 chemicals"),
    ]
    assert all(g["area_mu"] == pytest.approx(15) for g in got)
    assert got[0]["failed_standards"] == ["环境保护"]


def test_an_unfilled_gmys_is_a_below_size_enterprise(db, tmp_path):
    """GMYS is optional (1 = 规上): left empty, the enterprise is 规下, evaluated on at least 3 亩
    and not evaluated below that, with the reason, as with GMYS = 0."""
    s1, s2 = uscc(31), uscc(32)
    _city(
        db,
        tmp_path,
        extra_dk=[
            ("PX1", rect(1600, 0, 50, 20), {}),  # 1,000 m² = 1.5 亩
            ("PX2", rect(1800, 0, 100, 100), {}),  # 15 亩
        ],
        extra_ent=[
            {"TYSHXYDM": s1, "QYMC": "未填规模小", "HYDM": "3484", "DKBH": "PX1"},
            {"TYSHXYDM": s2, "QYMC": "未填规模", "HYDM": "3484", "DKBH": "PX2"},
        ],
        extra_cc=[
            {"TYSHXYDM": s1, "ND": 2024, "SJSJ": 10, "YYSR": 100},
            {"TYSHXYDM": s2, "ND": 2024, "SJSJ": 30, "YYSR": 300},
        ],
    )
    ev = _rows(db)
    assert ev[s1].group == ev[s2].group == "below"
    assert not ev[s1].evaluated and ev[s1].score is None
    assert ev[s1].not_evaluated_reason == "规下 on 1.50 亩, under the 3 亩 threshold"
    assert ev[s2].evaluated and ev[s2].score is not None and ev[s2]["class"] in "ABCD"
