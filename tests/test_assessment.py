"""考核评价 worked by hand on a city of four platforms (tests/assessment_city.py): min-max scores
within the year's platforms, weights renormalised over the components present, ranks overall and
within each kind; the target component absent without the targets' progress and present through
its rows; the public never sees a restricted value; HTTP and the CLI."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from app.cli import main
from gis.core import tokens
from gis.management import assessment as am
from tests import assessment_city as ac

W = {"tax_per_mu": 30, "output_per_mu": 20, "energy_per_va": 15, "high_tech_output_share": 10,
     "featured_output_share": 10}  # rules.toml [assessment]  # fmt: skip


@pytest.fixture
def city(db, tmp_path):
    ac.build(db, tmp_path)
    return db


def _by_code(res: dict) -> dict[str, dict]:
    return {it["code"]: it for it in res["items"]}


def _minmax(figs: dict, name: str, code: str, lower: bool = False) -> float:
    vals = [f[name] for f in figs.values()]
    lo, hi = min(vals), max(vals)
    v = figs[code][name]
    return 100 * ((hi - v) if lower else (v - lo)) / (hi - lo)


def test_composite_scores_by_hand(city):
    figs = ac.platform_figures()
    # the figures the score reads are the §7 indicators' own
    assert figs["P2"]["output_per_mu"] == pytest.approx(3000 / 45)
    with city.connect() as conn:
        res = am.assess(conn, ac.YEAR)
    got = _by_code(res)
    # no MB targets in this city: the target component is absent, and says why
    assert [a["component"] for a in res["absent"]] == ["target_completion"]
    assert res["absent"][0]["reason"] == f"{ac.YEAR}年无平台目标完成率: 未计入"
    assert {c["component"] for c in res["components"]} == set(W)
    # P1 is best on every indicator: 100
    assert got["P1"]["score"] == pytest.approx(100)
    # P2: tax (3.33 - 2) / (20 - 2), output (66.67 - 40) / (200 - 40), energy lower is better
    # (2 - 0.75) / (2 - 0.25), high-tech 20 %: 20 / 100, featured 80 %: 80 / 100; over Σw = 85
    p2 = (
        30 * (150 / 45 - 2) / 18 * 100
        + 20 * (3000 / 45 - 40) / 160 * 100
        + 15 * (2 - 0.75) / 1.75 * 100
        + 10 * 20
        + 10 * 80
    ) / 85
    assert got["P2"]["score"] == pytest.approx(p2)
    # P3: lowest tax, output and worst energy (0 points each), high-tech 100 %, featured 0
    assert got["P3"]["score"] == pytest.approx(10 * 100 / 85)
    # P4: tax 10, output 100, energy 100/300, no high-tech, no featured industry
    p4 = (30 * (10 - 2) / 18 * 100 + 20 * 60 / 160 * 100 + 15 * (2 - 1 / 3) / 1.75 * 100) / 85
    assert got["P4"]["score"] == pytest.approx(p4)
    # each component explained: value, normalised score, weight, effective weight, points
    for code, it in got.items():
        for x in it["components"]:
            name = x["component"]
            assert x["value"] == pytest.approx(figs[code][name])
            norm = _minmax(figs, name, code, lower=name == "energy_per_va")
            assert x["normalised"] == pytest.approx(norm)
            assert x["weight"] == W[name] and x["effective_weight"] == pytest.approx(
                W[name] / 85 * 100
            )
            assert x["points"] == pytest.approx(norm * W[name] / 85)
        assert sum(x["points"] for x in it["components"]) == pytest.approx(it["score"])
    # ranks: overall by score; within kind (P2 and P3 are both 转为创新型)
    assert [it["code"] for it in res["items"]] == ["P1", "P4", "P2", "P3"]
    assert [got[c]["rank"] for c in ("P1", "P4", "P2", "P3")] == [1, 2, 3, 4]
    kinds = {c: it["kind"] for c, it in got.items()}
    assert kinds == {"P1": "consolidate_host", "P2": "to_innovation", "P3": "to_innovation",
                     "P4": "phase_out"}  # fmt: skip
    assert (got["P2"]["rank_in_kind"], got["P3"]["rank_in_kind"]) == (1, 2)
    assert got["P2"]["kind_size"] == 2 and got["P1"]["rank_in_kind"] == 1
    assert got["P2"]["n_enterprises"] == 3 and got["P3"]["n_enterprises"] == 1


def test_target_component_present_through_its_rows(city):
    with city.connect() as conn:
        base = _by_code(am.assess(conn, ac.YEAR, targets=None))
        # P1 at 80 %, P2 over its targets (capped at 100); P3 and P4 have none
        res = am.assess(conn, ac.YEAR, targets=[("P1", ac.YEAR, 80.0), ("P2", ac.YEAR, 120.0),
                                                ("P3", ac.YEAR - 1, 50.0)])  # fmt: skip
    got = _by_code(res)
    assert res["absent"] == []
    # P1, P2: Σw = 100 with the target weight 15
    assert got["P1"]["score"] == pytest.approx((85 * 100 + 15 * 80) / 100)
    assert got["P2"]["score"] == pytest.approx((base["P2"]["score"] * 85 + 15 * 100) / 100)
    # P3 (a target of another year only) and P4: scored on the indicators, the component missing
    assert got["P3"]["score"] == pytest.approx(base["P3"]["score"])
    assert got["P3"]["missing"] == ["target_completion"] and got["P1"]["missing"] == []
    tc = next(x for x in got["P2"]["components"] if x["component"] == "target_completion")
    assert (tc["value"], tc["normalised"], tc["weight"]) == (100.0, 100.0, 15)


def test_target_rows_read_from_target_progress(city):
    with city.connect() as conn:
        assert am.target_completion_rows(conn, ac.YEAR) == []  # no MB targets in this city
        # the targets' table's columns the component reads, as the producer writes them (a
        # temporary table of those columns, which the query reads before the real one)
        conn.execute(
            text(
                "CREATE TEMP TABLE target_progress (year int, level text, zone_code text, "
                "indicator text, completion float8)"
            )
        )
        conn.execute(
            text(
                "INSERT INTO target_progress VALUES (2024, '平台', 'P1', '亩均产值', 60), "
                "(2024, '平台', 'P1', '亩均税收', 150), (2024, '区县', '330102', '亩均产值', 10), "
                "(2024, '平台', 'P2', '亩均税收', NULL), (2023, '平台', 'P2', '亩均产值', 40)"
            )
        )
        # P1: mean of 60 and 150 capped at 100; a district's target and a NULL do not count
        assert am.target_completion_rows(conn, 2024) == [("P1", 2024, 80.0)]
        res = am.assess(conn, 2024)
        assert res["absent"] == []
        assert _by_code(res)["P1"]["score"] == pytest.approx((85 * 100 + 15 * 80) / 100)


@pytest.fixture
def analyst(city) -> dict:
    with city.begin() as conn:
        return {"Authorization": f"Bearer {tokens.create(conn, 'analyst')}"}


def test_http_public_sees_points_not_restricted_values(http, city, analyst):
    pub = http.get("/api/assessment", params={"year": ac.YEAR})
    assert pub.status_code == 200, pub.text
    full = http.get("/api/assessment", params={"year": ac.YEAR}, headers=analyst).json()
    p, f = _by_code(pub.json()), _by_code(full)
    for code in p:
        assert p[code]["score"] == pytest.approx(f[code]["score"])
        assert p[code]["rank"] == f[code]["rank"]
        for x in p[code]["components"]:
            if x["component"] in ("tax_per_mu", "energy_per_va"):
                assert x["value"] is None and x["withheld"] is True
                assert x["points"] is not None
            else:
                assert x["value"] is not None
    tax = next(x for x in f["P1"]["components"] if x["component"] == "tax_per_mu")
    assert tax["value"] == pytest.approx(20.0)
    assert "300" not in pub.text.replace("3000", "")  # E1's tax appears nowhere
    kind = http.get("/api/assessment", params={"year": ac.YEAR, "kind": "to_innovation"}).json()
    assert [it["code"] for it in kind["items"]] == ["P2", "P3"]
    assert http.get("/api/assessment", params={"kind": "big"}).status_code == 400
    one = http.get("/api/assessment/P3", params={"year": ac.YEAR}).json()
    assert one["code"] == "P3" and one["rank_in_kind"] == 2 and one["absent"]
    r = http.get("/api/assessment/NOPE")
    assert r.status_code == 404 and "PTDM" in r.json()["message"]


def test_cli_assess(city, capsys):
    assert main(["assess", "--year", str(ac.YEAR)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert "absent: 年度目标完成率" in out
    order = [ln.split()[3] for ln in lines if ln.strip()[:1].isdigit()]
    assert order == ["P1", "P4", "P2", "P3"]
