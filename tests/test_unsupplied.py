"""批而未供 on real PostGIS with hand-made geometry; every expected area worked out by hand.

1 亩 = 666.67 m² (m² × 0.0015). Rectangles are x, y offsets in metres from (X0, Y0), EPSG:4549.
"""

from __future__ import annotations

from datetime import date

import pytest
import shapely

from tests.land_helpers import approval, detect, insert, rect, rows, supply

AS_OF = date(2025, 6, 30)


def result(db, run_id: int, doc_no: str) -> dict:
    (r,) = rows(
        db,
        "SELECT *, ST_AsText(geom) AS wkt, ST_Area(geom) AS geom_m2 FROM unsupplied_results "
        "WHERE run_id = :r AND approval_no = :d",
        r=run_id,
        d=doc_no,
    )
    return r


def test_supply_inside_approval_leaves_the_rest(db):
    # 200 m × 100 m approval = 20,000 m²; a 120 m × 100 m supply inside it = 12,000 m²
    # leaves 80 m × 100 m = 8,000 m² = 12 亩, 40 % of the approval.
    insert(db, "approvals", [approval("浙土字A[2020]1号", rect(0, 0, 200, 100))])
    insert(db, "supplies", [supply("GD-1", rect(0, 0, 120, 100))])
    run = detect(db, AS_OF)
    r = result(db, run["id"], "浙土字A[2020]1号")
    assert r["approved_m2"] == pytest.approx(20_000)
    assert r["supplied_m2"] == pytest.approx(12_000)
    assert r["unsupplied_m2"] == pytest.approx(8_000)
    assert r["unsupplied_mu"] == pytest.approx(12.0)
    assert r["unsupplied_share"] == pytest.approx(0.4)
    assert r["sliver_m2"] == pytest.approx(0)
    assert r["status"] == "partial"
    assert r["supply_nos"] == ["GD-1"]
    assert r["geom_m2"] == pytest.approx(8_000)
    assert shapely.from_wkt(r["wkt"]).equals(shapely.MultiPolygon([rect(120, 0, 80, 100)]))


def test_overlapping_supplies_are_not_counted_twice(db):
    # Supplies x 0-80 and x 50-130 overlap by 30 m; their union covers x 0-130 = 13,000 m².
    # Remainder x 130-200: 70 × 100 = 7,000 m² = 10.5 亩.
    insert(db, "approvals", [approval("PZ-OV", rect(0, 0, 200, 100))])
    insert(
        db, "supplies", [supply("GD-A", rect(0, 0, 80, 100)), supply("GD-B", rect(50, 0, 80, 100))]
    )
    r = result(db, detect(db, AS_OF)["id"], "PZ-OV")
    assert r["supplied_m2"] == pytest.approx(13_000)
    assert r["unsupplied_m2"] == pytest.approx(7_000)
    assert r["unsupplied_mu"] == pytest.approx(10.5)
    assert r["supply_nos"] == ["GD-A", "GD-B"]


def test_supply_crossing_two_approvals_counts_in_each(db):
    # Approvals x 0-100 and x 100-200 (10,000 m² each); one supply x 60-160 crosses both.
    # First keeps x 0-60 = 6,000 m² (9 亩), second keeps x 160-200 = 4,000 m² (6 亩).
    insert(
        db,
        "approvals",
        [approval("PZ-W", rect(0, 0, 100, 100)), approval("PZ-E", rect(100, 0, 100, 100))],
    )
    insert(db, "supplies", [supply("GD-X", rect(60, 0, 100, 100))])
    run = detect(db, AS_OF)
    w, e = result(db, run["id"], "PZ-W"), result(db, run["id"], "PZ-E")
    assert (w["supplied_m2"], w["unsupplied_m2"], w["unsupplied_mu"]) == pytest.approx(
        (4_000, 6_000, 9.0)
    )
    assert (e["supplied_m2"], e["unsupplied_m2"], e["unsupplied_mu"]) == pytest.approx(
        (6_000, 4_000, 6.0)
    )
    assert w["supply_nos"] == e["supply_nos"] == ["GD-X"]


@pytest.mark.parametrize(
    "supplied_width, kept_m2, sliver_m2",
    [
        (95.1, 0, 490),  # a 4.9 m strip (490 m²) is thinner than 5 m: dropped
        (94.9, 510, 0),  # a 5.1 m strip (510 m²) is kept
        (95.0, 0, 500),  # exactly 5 m: no disc of more than 5 m fits: dropped
    ],
)
def test_thin_strips(db, supplied_width, kept_m2, sliver_m2):
    insert(db, "approvals", [approval("PZ-T", rect(0, 0, 100, 100))])
    insert(db, "supplies", [supply("GD-T", rect(0, 0, supplied_width, 100))])
    r = result(db, detect(db, AS_OF)["id"], "PZ-T")
    assert r["unsupplied_m2"] == pytest.approx(kept_m2)
    assert r["sliver_m2"] == pytest.approx(sliver_m2)
    assert r["status"] == ("supplied" if kept_m2 == 0 else "partial")
    assert (r["wkt"] is None) == (kept_m2 == 0)


def test_small_parts_under_100_m2_are_dropped_each_on_its_own(db):
    # An L-shaped supply over a 100 × 100 approval leaves a 9 × 9 = 81 m² corner (dropped);
    # a second approval keeps a 10 × 10 = 100 m² corner (not under 100: kept, 0.15 亩).
    insert(
        db,
        "approvals",
        [approval("PZ-81", rect(0, 0, 100, 100)), approval("PZ-100", rect(0, 500, 100, 100))],
    )
    insert(
        db,
        "supplies",
        [
            supply("GD-81a", rect(0, 0, 91, 100)),
            supply("GD-81b", rect(91, 0, 9, 91)),
            supply("GD-100a", rect(0, 500, 90, 100)),
            supply("GD-100b", rect(90, 500, 10, 90)),
        ],
    )
    run = detect(db, AS_OF)
    a, b = result(db, run["id"], "PZ-81"), result(db, run["id"], "PZ-100")
    assert (a["unsupplied_m2"], a["sliver_m2"], a["status"]) == (
        pytest.approx(0),
        pytest.approx(81),
        "supplied",
    )
    assert (b["unsupplied_m2"], b["unsupplied_mu"], b["status"]) == (
        pytest.approx(100),
        pytest.approx(0.15),
        "partial",
    )


def test_slivers_dropped_beside_a_kept_part(db):
    # 200 × 100 approval; supply x 3-150 leaves a 3 m strip at the west (300 m², sliver) and
    # x 150-200 at the east (5,000 m², kept = 7.5 亩).
    insert(db, "approvals", [approval("PZ-S", rect(0, 0, 200, 100))])
    insert(db, "supplies", [supply("GD-S", rect(3, 0, 147, 100))])
    r = result(db, detect(db, AS_OF)["id"], "PZ-S")
    assert r["supplied_m2"] == pytest.approx(14_700)
    assert r["sliver_m2"] == pytest.approx(300)
    assert r["unsupplied_m2"] == pytest.approx(5_000)
    assert r["unsupplied_mu"] == pytest.approx(7.5)
    assert r["approved_m2"] == pytest.approx(r["supplied_m2"] + r["sliver_m2"] + r["unsupplied_m2"])
    assert shapely.from_wkt(r["wkt"]).equals(shapely.MultiPolygon([rect(150, 0, 50, 100)]))


def test_multipolygons(db):
    # An approval of two 100 × 100 squares 1 km apart (20,000 m²); a multipolygon supply covers
    # the west half of each (2 × 5,000 m²). Remainder: two 50 × 100 parts = 10,000 m² = 15 亩.
    appr = shapely.MultiPolygon([rect(0, 0, 100, 100), rect(1000, 0, 100, 100)])
    sup = shapely.MultiPolygon([rect(0, 0, 50, 100), rect(1000, 0, 50, 100)])
    insert(db, "approvals", [approval("PZ-M", appr)])
    insert(db, "supplies", [supply("GD-M", sup)])
    r = result(db, detect(db, AS_OF)["id"], "PZ-M")
    assert r["approved_m2"] == pytest.approx(20_000)
    assert r["unsupplied_m2"] == pytest.approx(10_000)
    assert r["unsupplied_mu"] == pytest.approx(15)
    g = shapely.from_wkt(r["wkt"])
    assert g.geom_type == "MultiPolygon" and len(g.geoms) == 2
    assert g.equals(shapely.MultiPolygon([rect(50, 0, 50, 100), rect(1050, 0, 50, 100)]))


def test_untouched_touching_and_later_records(db):
    # PZ-N has no supply at all; PZ-E only shares an edge with a supply (not counted);
    # PZ-L's supply is dated after as_of (not yet supplied); PZ-F is approved after as_of.
    insert(
        db,
        "approvals",
        [
            approval("PZ-N", rect(0, 0, 100, 100)),
            approval("PZ-E", rect(0, 1000, 100, 100)),
            approval("PZ-L", rect(0, 2000, 100, 100)),
            approval("PZ-F", rect(0, 3000, 100, 100), approved_on=date(2025, 7, 1)),
        ],
    )
    insert(
        db,
        "supplies",
        [
            supply("GD-EDGE", rect(100, 1000, 100, 100)),
            supply("GD-LATE", rect(0, 2000, 100, 100), supplied_on=date(2025, 7, 1)),
        ],
    )
    run = detect(db, AS_OF)
    for doc in ("PZ-N", "PZ-E", "PZ-L"):
        r = result(db, run["id"], doc)
        assert (r["status"], r["unsupplied_m2"], r["supply_nos"]) == (
            "unsupplied",
            pytest.approx(10_000),
            [],
        ), doc
    assert rows(db, "SELECT 1 FROM unsupplied_results WHERE approval_no = 'PZ-F'") == []
    # as of the supply date, PZ-L is supplied
    r = result(db, detect(db, date(2025, 7, 1))["id"], "PZ-L")
    assert (r["status"], r["unsupplied_m2"]) == ("supplied", 0)


@pytest.mark.parametrize(
    "as_of, band, years",
    [
        (date(2021, 3, 14), "<1", 0.99),  # 364 of 365 days: 0.997 truncated
        (date(2021, 3, 15), "1-2", 1.0),
        (date(2022, 3, 14), "1-2", 1.99),
        (date(2022, 3, 15), "2-3", 2.0),
        (date(2023, 3, 14), "2-3", 2.99),
        (date(2023, 3, 15), "3-5", 3.0),
        (date(2025, 3, 14), "3-5", 4.99),
        (date(2025, 3, 15), ">=5", 5.0),
    ],
)
def test_age_bands_one_day_either_side(db, as_of, band, years):
    # Approved 2020-03-15: bands change on the calendar anniversaries.
    insert(db, "approvals", [approval("PZ-AGE", rect(0, 0, 100, 100), date(2020, 3, 15))])
    r = result(db, detect(db, as_of)["id"], "PZ-AGE")
    assert r["age_band"] == band
    assert r["years_since_approval"] == pytest.approx(years)


def test_same_data_same_results(db):
    insert(
        db,
        "approvals",
        [approval("PZ-1", rect(0, 0, 200, 100)), approval("PZ-2", rect(0, 500, 100, 100))],
    )
    insert(db, "supplies", [supply("GD-1", rect(20, 0, 100, 100))])
    a, b = detect(db, AS_OF), detect(db, AS_OF)
    assert a["config_hash"] == b["config_hash"] and a["inputs_hash"] == b["inputs_hash"]
    sql = (
        "SELECT approval_no, status, unsupplied_m2, age_band, ST_AsEWKB(geom) AS g "
        "FROM unsupplied_results WHERE run_id = :r ORDER BY approval_no"
    )
    assert rows(db, sql, r=a["id"]) == rows(db, sql, r=b["id"])
    assert (
        a["counts"]["unsupplied"]
        == b["counts"]["unsupplied"]
        == {
            "unsupplied": 1,
            "partial": 1,
            "supplied": 0,
        }
    )
