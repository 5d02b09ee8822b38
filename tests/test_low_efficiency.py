"""低效利用 reasons on real PostGIS. Parcels are 100 m × 100 m = 10,000 m² = 15 亩 unless noted."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import text

from gis.core.rules import LowEfficiencyRules, get_rules
from tests.factories import uscc
from tests.land_helpers import detect, insert, parcel, rect, rows, supply

AS_OF = date(2025, 6, 30)


def reasons(db, run_id: int) -> dict[str, dict[str, dict]]:
    out = {}
    for r in rows(
        db,
        "SELECT parcel_no, reasons, reason_codes FROM low_efficiency_results WHERE run_id = :r",
        r=run_id,
    ):
        assert [x["code"] for x in r["reasons"]] == r["reason_codes"]
        out[r["parcel_no"]] = {x["code"]: x for x in r["reasons"]}
    return out


def enterprise(n: int, parcels: list[str] | None = None, point=None) -> dict:
    return {
        "uscc": uscc(n),
        "name": f"测试企业{n}",
        "industry_code": "2611",
        "parcel_nos": parcels,
        "geom": point,
    }


def output(n: int, year: int, tax: float, land: float | None = None) -> dict:
    return {"uscc": uscc(n), "year": year, "tax_paid": tax, "declared_land_m2": land}


def test_plot_ratio_against_rjlxx_or_default(db):
    insert(
        db,
        "supplies",
        [
            supply("GD-1", rect(0, 0, 100, 100), plot_ratio_min=1.2),
            supply("GD-2", rect(0, 1000, 100, 100), plot_ratio_min=1.2),
        ],
    )
    insert(
        db,
        "parcels",
        [
            # 9,000 / 10,000 = 0.9 < RJLXX 1.2
            parcel("DK-A", rect(0, 0, 100, 100), supply_no="GD-1", floor_area_m2=9_000.0),
            # 13,000 / 10,000 = 1.3 >= 1.2
            parcel("DK-B", rect(0, 1000, 100, 100), supply_no="GD-2", floor_area_m2=13_000.0),
            # no supply: 9,000 / 10,000 = 0.9 < default 1.0
            parcel("DK-C", rect(0, 2000, 100, 100), floor_area_m2=9_000.0),
            # no supply: exactly 1.0 is not below 1.0
            parcel("DK-D", rect(0, 3000, 100, 100), floor_area_m2=10_000.0),
            # no floor area: no figure, no reason
            parcel("DK-E", rect(0, 4000, 100, 100)),
        ],
    )
    got = reasons(db, detect(db, AS_OF)["id"])
    assert set(got) == {"DK-A", "DK-C"}
    assert got["DK-A"]["plot_ratio"]["figure"] == 0.9
    assert got["DK-A"]["plot_ratio"]["threshold"] == 1.2
    assert "RJLXX" in got["DK-A"]["plot_ratio"]["basis"]
    assert (got["DK-C"]["plot_ratio"]["figure"], got["DK-C"]["plot_ratio"]["threshold"]) == (
        0.9,
        1.0,
    )


def test_still_being_built_has_no_plot_ratio_reason(db):
    insert(
        db,
        "supplies",
        [
            supply("GD-1", rect(0, 0, 100, 100), agreed_completion=date(2025, 7, 1)),
            supply("GD-2", rect(0, 1000, 100, 100), agreed_completion=date(2025, 6, 30)),
        ],
    )
    insert(
        db,
        "parcels",
        [
            parcel("DK-1", rect(0, 0, 100, 100), supply_no="GD-1", floor_area_m2=1_000.0),
            parcel("DK-2", rect(0, 1000, 100, 100), supply_no="GD-2", floor_area_m2=1_000.0),
        ],
    )
    got = reasons(db, detect(db, AS_OF)["id"])
    assert set(got) == {"DK-2"}  # DK-1's completion date is after as_of


def test_actual_use_reasons(db):
    insert(
        db,
        "parcels",
        [
            parcel("DK-DIV", rect(0, 0, 100, 100), actual_use="挪作他用", floor_area_m2=500.0),
            parcel("DK-IDLE", rect(0, 1000, 100, 100), actual_use="闲置"),
            parcel("DK-OK", rect(0, 2000, 100, 100), actual_use="工业", floor_area_m2=15_000.0),
        ],
    )
    got = reasons(db, detect(db, AS_OF)["id"])
    # a diverted parcel is still used: its plot ratio (0.05) is judged too; an idle one is not
    assert list(got["DK-DIV"]) == ["plot_ratio", "diverted"]
    assert got["DK-DIV"]["diverted"]["figure"] == "挪作他用"
    assert list(got["DK-IDLE"]) == ["idle_use"]
    assert "DK-OK" not in got


def test_tax_per_mu(db):
    insert(
        db,
        "parcels",
        [
            parcel("DK-LOW", rect(0, 0, 100, 100), floor_area_m2=20_000.0),
            parcel("DK-OK", rect(0, 1000, 100, 100), floor_area_m2=20_000.0),
            parcel("DK-S1", rect(0, 2000, 100, 100), floor_area_m2=20_000.0),
            parcel("DK-S2", rect(0, 3000, 100, 100), floor_area_m2=20_000.0),
            parcel("DK-2E", rect(0, 4000, 100, 100), floor_area_m2=20_000.0),
        ],
    )
    insert(
        db,
        "enterprises",
        [
            enterprise(1, ["DK-LOW"]),
            enterprise(2, ["DK-OK"]),
            enterprise(3, ["DK-S1", "DK-S2"]),
            # no DKBH: its point lies in DK-2E (contains)
            enterprise(4, None, rect(10, 4010, 1, 1).centroid),
            enterprise(5, ["DK-2E"]),
        ],
    )
    insert(
        db,
        "outputs",
        [
            output(1, 2024, 60.0),  # 60 万元 / 15 亩 = 4.0 < 5
            output(1, 2025, 900.0),  # 2025: after year(as_of) - 1, not used
            output(2, 2024, 90.0),  # 6.0: fine
            output(3, 2024, 120.0),  # 120 over 30 亩: each parcel 60 -> 4.0
            output(4, 2024, 30.0, land=2_500.0),  # 2E: 30 + 36 = 66 -> 4.4
            output(5, 2024, 36.0, land=7_500.0),
        ],
    )
    run = detect(db, AS_OF)
    got = reasons(db, run["id"])
    assert run["counts"]["low_efficiency"]["tax_year"] == 2024
    assert set(got) == {"DK-LOW", "DK-S1", "DK-S2", "DK-2E"}
    assert got["DK-LOW"]["tax_per_mu"]["figure"] == 4.0
    assert got["DK-LOW"]["tax_per_mu"]["threshold"] == 5.0
    assert got["DK-S1"]["tax_per_mu"]["figure"] == got["DK-S2"]["tax_per_mu"]["figure"] == 4.0
    assert got["DK-2E"]["tax_per_mu"]["figure"] == 4.4


def test_enterprise_on_two_parcels_shares_by_declared_land(db):
    # E1 shares DK-A with E2 (declared 5,000 m² each: half of DK-A each) and alone holds DK-B.
    # E1's land: 5,000 (half of A) + 10,000 (B) = 15,000 m²; its tax 150 -> 50 on A, 100 on B.
    # E2's land: 5,000 m² (half of A); tax 10 -> 10 on A. A: 60 / 15 亩 = 4.0; B: 100 / 15 = 6.67.
    insert(
        db,
        "parcels",
        [
            parcel("DK-A", rect(0, 0, 100, 100), floor_area_m2=20_000.0),
            parcel("DK-B", rect(0, 1000, 100, 100), floor_area_m2=20_000.0),
        ],
    )
    insert(db, "enterprises", [enterprise(1, ["DK-A", "DK-B"]), enterprise(2, ["DK-A"])])
    insert(db, "outputs", [output(1, 2024, 150.0, 5_000.0), output(2, 2024, 10.0, 5_000.0)])
    got = reasons(db, detect(db, AS_OF)["id"])
    assert set(got) == {"DK-A"}
    assert got["DK-A"]["tax_per_mu"]["figure"] == 4.0


def test_every_reason_listed_and_platform_threshold(db):
    insert(
        db,
        "platforms",
        [
            {
                "code": "PT-HI",
                "name": "高要求园区",
                "level": "省级",
                "geom": rect(-500, -500, 2000, 2000),
            }
        ],
    )
    insert(
        db,
        "parcels",
        [parcel("DK-1", rect(0, 0, 100, 100), floor_area_m2=5_000.0)],
    )
    insert(db, "enterprises", [enterprise(1, ["DK-1"])])
    insert(db, "outputs", [output(1, 2024, 105.0)])  # 7.0 万元/亩: fine at 5, low at 8
    got = reasons(db, detect(db, AS_OF)["id"])
    assert list(got["DK-1"]) == ["plot_ratio"]
    rules = get_rules().model_copy(
        update={"low_efficiency": LowEfficiencyRules(tax_per_mu_by_platform={"PT-HI": 8.0})}
    )
    from gis.lands.detection import run_detection

    run = run_detection(db, AS_OF, rules=rules)
    got = reasons(db, run["id"])
    assert list(got["DK-1"]) == ["plot_ratio", "tax_per_mu"]
    assert got["DK-1"]["tax_per_mu"]["threshold"] == 8.0
    assert got["DK-1"]["tax_per_mu"]["figure"] == 7.0
    assert run["config_hash"] != detect(db, AS_OF)["config_hash"]


def test_class_d_note_without_evaluation(db):
    run = detect(db, AS_OF)
    assert any(n.startswith("class_d not checked") for n in run["notes"])


@pytest.mark.parametrize("year, expected", [(2024, 2023), (2023, 2022)])
def test_tax_year_is_before_as_of(db, year, expected):
    insert(db, "enterprises", [enterprise(1)])
    insert(db, "outputs", [output(1, y, 1.0) for y in (2021, 2022, 2023, 2024)])
    run = detect(db, date(year, 12, 31))
    assert run["counts"]["low_efficiency"]["tax_year"] == expected


def _has_table(db, table: str) -> bool:
    return bool(rows(db, "SELECT to_regclass(:t) IS NOT NULL AS ok", t=table)[0]["ok"])


def test_class_d_and_per_mu_from_the_evaluation_tables(db):
    """When evaluation and per-mu tables hold the tax year, they are used."""
    if not (_has_table(db, "evaluations") and _has_table(db, "per_mu")):
        pytest.skip("evaluation tables are not installed")
    insert(
        db,
        "parcels",
        [
            parcel("DK-1", rect(0, 0, 100, 100), floor_area_m2=20_000.0),
            parcel("DK-2", rect(0, 1000, 100, 100), floor_area_m2=20_000.0),
        ],
    )
    insert(db, "enterprises", [enterprise(1, ["DK-1"]), enterprise(2, ["DK-2"])])
    insert(db, "outputs", [output(1, 2024, 150.0), output(2, 2024, 150.0)])  # 10 万元/亩 each
    with db.begin() as conn:
        for n, klass in ((1, "D"), (2, "B")):
            conn.execute(
                text(
                    "INSERT INTO evaluation_rows (year, uscc, rule, run_id, as_of) "
                    "VALUES (2024, :u, 't', 1, '2025-06-30')"
                ),
                {"u": uscc(n)},
            )
            conn.execute(
                text(
                    'INSERT INTO evaluation_ranking (year, uscc, "group", evaluated, graded, '
                    "\"class\") VALUES (2024, :u, 'above', true, true, :c)"
                ),
                {"u": uscc(n), "c": klass},
            )
        # parcel figure for DK-2 says 3 万元/亩 (their computation wins when present)
        conn.execute(
            text(
                "INSERT INTO per_mu (level, code, year, n_enterprises, tax_per_mu, rule, run_id, "
                "as_of) VALUES ('parcel', 'DK-2', 2024, 1, 3.0, 't', 1, '2025-06-30')"
            )
        )
    run = detect(db, AS_OF)
    got = reasons(db, run["id"])
    assert list(got["DK-1"]) == ["class_d"]
    assert uscc(1) in got["DK-1"]["class_d"]["basis"]
    assert list(got["DK-2"]) == ["tax_per_mu"] and got["DK-2"]["tax_per_mu"]["figure"] == 3.0
    assert any(n.startswith("class_d from evaluations 2024") for n in run["notes"])
    assert any(n.startswith("tax_per_mu from per_mu") for n in run["notes"])
