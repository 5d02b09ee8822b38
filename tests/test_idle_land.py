"""供而未用 / 闲置 statuses on real PostGIS, each boundary one day before and after.

Agreed start (HTKGSJ) 2021-03-15: overdue from 2021-03-16, idle from 2022-03-15 (one calendar
year), reclaimable from 2023-03-15 (two). Supply polygons are 100 m × 100 m = 10,000 m² = 15 亩.
"""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import text

from tests.land_helpers import detect, insert, parcel, rect, rows, supply

START = date(2021, 3, 15)


def status(db, as_of: date, supply_no: str = "GD-1") -> dict:
    run = detect(db, as_of)
    (r,) = rows(
        db,
        "SELECT * FROM idle_results WHERE run_id = :r AND supply_no = :s",
        r=run["id"],
        s=supply_no,
    )
    return r


@pytest.mark.parametrize(
    "as_of, expected, days",
    [
        (date(2021, 3, 15), "not_due", None),
        (date(2021, 3, 16), "overdue", 1),
        (date(2022, 3, 14), "overdue", 364),
        (date(2022, 3, 15), "idle", 365),
        (date(2023, 3, 14), "idle", 729),
        (date(2023, 3, 15), "idle_reclaimable", 730),
        (date(2030, 1, 1), "idle_reclaimable", 3214),
    ],
)
def test_not_started_boundaries(db, as_of, expected, days):
    insert(db, "supplies", [supply("GD-1", rect(0, 0, 100, 100), agreed_start=START)])
    r = status(db, as_of)
    assert (r["status"], r["days_overdue"]) == (expected, days)
    assert r["area_m2"] == pytest.approx(10_000) and r["area_mu"] == pytest.approx(15)
    assert r["records_disagree"] is None


def test_consequences_in_words(db):
    insert(db, "supplies", [supply("GD-1", rect(0, 0, 100, 100), agreed_start=START)])
    assert "预警" in status(db, date(2021, 6, 1))["consequence"]
    idle = status(db, date(2022, 6, 1))
    assert "土地闲置费" in idle["consequence"] and "20%" in idle["consequence"]
    assert idle["figures"]["idle_from"] == "2022-03-15"
    assert idle["figures"]["reclaimable_from"] == "2023-03-15"
    assert "无偿收回" in status(db, date(2023, 6, 1))["consequence"]


def test_leap_day_start(db):
    # 2020-02-29 + 1 year = 2021-02-28 (PostgreSQL calendar arithmetic)
    insert(db, "supplies", [supply("GD-1", rect(0, 0, 100, 100), agreed_start=date(2020, 2, 29))])
    assert status(db, date(2021, 2, 27))["status"] == "overdue"
    assert status(db, date(2021, 2, 28))["status"] == "idle"


def test_started_is_not_idle_and_future_records_are_unknown(db):
    insert(
        db,
        "supplies",
        [supply("GD-1", rect(0, 0, 100, 100), agreed_start=START, actual_start=date(2021, 5, 1))],
    )
    assert status(db, date(2021, 4, 30))["status"] == "overdue"  # not started yet on that day
    r = status(db, date(2021, 5, 1))
    assert (r["status"], r["days_overdue"], r["actual_start"]) == (
        "started",
        None,
        date(2021, 5, 1),
    )
    assert status(db, date(2024, 1, 1))["status"] == "started"


@pytest.mark.parametrize(
    "developed, invested, partial",
    [
        (3_000.0, None, True),  # 30 % developed < 1/3
        (3_400.0, None, False),  # 34 % developed, no investment figure
        (4_000.0, 1_000.0, True),  # 40 % developed but 20 % invested < 25 %
        (4_000.0, 1_250.0, False),  # 25 % invested is not under 25 %
        (None, None, False),  # no figures: cannot be found partially idle
    ],
)
def test_partial_idle_figures(db, developed, invested, partial):
    insert(
        db,
        "supplies",
        [
            supply(
                "GD-1",
                rect(0, 0, 100, 100),
                agreed_start=START,
                actual_start=date(2021, 5, 1),
                stopped_on=date(2021, 10, 1),
                developed_area_m2=developed,
                investment_made=invested,
                agreed_investment=5_000.0,
            )
        ],
    )
    r = status(db, date(2022, 10, 1))
    assert r["status"] == ("partial_idle" if partial else "started")
    if partial:
        assert r["days_overdue"] == 365  # days since TGRQ
        assert "第二条" in r["consequence"]
        if developed is not None:
            assert r["figures"]["developed_share"] == pytest.approx(developed / 10_000, abs=1e-4)
        assert r["figures"]["investment_share_min"] == 0.25


def test_partial_idle_needs_a_full_year_stopped(db):
    insert(
        db,
        "supplies",
        [
            supply(
                "GD-1",
                rect(0, 0, 100, 100),
                agreed_start=START,
                actual_start=date(2021, 5, 1),
                stopped_on=date(2021, 10, 1),
                developed_area_m2=1_000.0,
            )
        ],
    )
    assert status(db, date(2022, 9, 30))["status"] == "started"
    assert status(db, date(2022, 10, 1))["status"] == "partial_idle"
    # a stop recorded after as_of is not known yet; a completed project is not partial
    assert status(db, date(2021, 9, 30))["status"] == "started"


def test_completed_is_not_partial(db):
    insert(
        db,
        "supplies",
        [
            supply(
                "GD-1",
                rect(0, 0, 100, 100),
                actual_start=date(2021, 5, 1),
                actual_completion=date(2021, 9, 1),
                stopped_on=date(2021, 10, 1),
                developed_area_m2=1_000.0,
            )
        ],
    )
    assert status(db, date(2023, 1, 1))["status"] == "started"


@pytest.mark.parametrize(
    "footprint, started, disagree",
    [
        (400.0, True, True),  # 400 / 10,000 = 4 % < 5 % while the records say started
        (500.0, True, False),  # exactly 5 %: not under
        (600.0, True, False),
        (400.0, False, None),  # not started: nothing to disagree with
        (None, True, None),  # no footprint figure
    ],
)
def test_records_disagree_from_footprint(db, footprint, started, disagree):
    insert(
        db,
        "supplies",
        [
            supply(
                "GD-1",
                rect(0, 0, 100, 100),
                agreed_start=START,
                actual_start=date(2021, 5, 1) if started else None,
            )
        ],
    )
    insert(
        db,
        "parcels",
        [parcel("DK-1", rect(0, 0, 100, 100), footprint_m2=footprint, supply_no="GD-1")],
    )
    r = status(db, date(2022, 6, 1))
    assert r["records_disagree"] is disagree
    assert r["parcel_nos"] == ["DK-1"]
    if footprint is not None:
        assert r["footprint_share"] == pytest.approx(footprint / 10_000)


def test_parcel_linked_by_overlap_when_no_dzjgh(db):
    # DK-2 has no DZJGH; 80 % of it lies on GD-1 (>= 50 %): linked by overlap.
    insert(
        db,
        "supplies",
        [supply("GD-1", rect(0, 0, 100, 100), agreed_start=START, actual_start=START)],
    )
    insert(db, "parcels", [parcel("DK-2", rect(20, 0, 100, 100), footprint_m2=100.0)])
    r = status(db, date(2022, 6, 1))
    assert r["parcel_nos"] == ["DK-2"] and r["records_disagree"] is True


def test_supply_after_as_of_is_not_judged(db):
    insert(db, "supplies", [supply("GD-1", rect(0, 0, 100, 100), supplied_on=date(2022, 1, 1))])
    run = detect(db, date(2021, 12, 31))
    assert rows(db, "SELECT 1 FROM idle_results WHERE run_id = :r", r=run["id"]) == []


def test_three_lands_judged_again_and_again_on_one_connection(db):
    """psycopg prepares a statement whose text it has run five times on a connection. The three
    kinds stage their rows in tables of different columns, so a statement text that read the
    staging table for every kind was refused ("cached plan must not change result type") once
    prepared: in the suite, on a pooled connection that had judged the three lands before."""
    from gis.core import graph
    from gis.core.rules import get_rules
    from gis.lands import detection

    as_of = date(2022, 6, 1)
    insert(db, "supplies", [supply("GD-1", rect(0, 0, 100, 100), START)])
    insert(db, "parcels", [parcel("DK-1", rect(0, 0, 100, 100), supply_no="GD-1")])
    with db.connect() as conn:
        graph.refresh(conn, None, as_of, trigger="test")  # the links and the live run
        run = conn.execute(text("SELECT id FROM detection_runs WHERE live")).scalar_one()
        # three kinds each time, on one connection, past the fifth run of a shared text (a
        # whole graph refresh runs so many other statements that psycopg forgets the count)
        for _ in range(3):
            detection.compute(conn, run, as_of, get_rules(), dict.fromkeys(detection.KINDS))
        (status,) = conn.execute(text("SELECT status FROM idle_results")).scalars()
        conn.rollback()
    assert status == "idle"  # HTKGSJ 2021-03-15: idle from 2022-03-15
