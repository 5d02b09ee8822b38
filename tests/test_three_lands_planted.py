"""The sample city's planted cases (sample_shapefiles/planted.json) come out of the live run the
derivation graph keeps, and of a snapshot of it (``landlink detect``), as of its reference date
exactly as planted: every idle status, every kind of approval, every low-efficiency reason.

And the live run kept by keys: after one-row changes (a supply's dates, a parcel's geometry, an
approval, a per-mu figure, the calendar) its rows equal a full recompute on the same data; a
snapshot is unchanged by later writes."""

from __future__ import annotations

import json
from datetime import date

import pytest
from sqlalchemy import text

from gis.core import graph
from gis.core.config import PROJECT_ROOT
from gis.core.rules import get_rules
from gis.lands.detection import run_detection

SAMPLE = PROJECT_ROOT / "sample_shapefiles"
pytestmark = pytest.mark.skipif(
    not (SAMPLE / "planted.json").exists(),
    reason="no sample city: landlink sample generate --out sample_shapefiles",
)


@pytest.fixture(scope="module")
def planted_run(analysed_sample):
    """The sample city analysed as of the reference date (a copy of conftest's
    ``analysed_sample``: sample_shapefiles/ imported as `landlink import-dir` does, every derived
    table from scratch) and one detection run as of that date: (planted.json, run record,
    {kind: rows})."""
    from sqlalchemy import create_engine

    from tests.conftest import database_copy, sample_as_of

    planted = json.loads((SAMPLE / "planted.json").read_text("utf-8"))
    ref = date.fromisoformat(planted["reference_date"])
    assert ref == sample_as_of()
    with database_copy(analysed_sample, "planted") as url:
        engine = create_engine(url)
        try:
            run = run_detection(engine, ref, user="test")
            assert run["notes"][-1].startswith("copied from the live run")
            results = _results(engine, run["id"])
        finally:
            engine.dispose()
    return planted, run, results


def _results(engine, run_id: int) -> dict[str, list]:  # noqa: ANN001
    with engine.connect() as conn:
        results = {
            "idle": conn.execute(
                text(
                    "SELECT supply_no, status, records_disagree FROM idle_results WHERE run_id = :r"
                ),
                {"r": run_id},
            ).all(),
            "unsupplied": conn.execute(
                text("SELECT approval_no, status FROM unsupplied_results WHERE run_id = :r"),
                {"r": run_id},
            ).all(),
            "low_efficiency": conn.execute(
                text(
                    "SELECT parcel_no, reason_codes FROM low_efficiency_results WHERE run_id = :r"
                ),
                {"r": run_id},
            ).all(),
        }
    return results


@pytest.mark.parametrize(
    "status", ["not_due", "overdue", "idle", "idle_reclaimable", "partial_idle"]
)
def test_planted_idle_statuses(planted_run, status):
    planted, _, res = planted_run
    got = sorted(r.supply_no for r in res["idle"] if r.status == status)
    assert got == planted["idle"][status]


def test_planted_records_disagree_and_short_stops(planted_run):
    planted, _, res = planted_run
    assert (
        sorted(r.supply_no for r in res["idle"] if r.records_disagree)
        == planted["idle"]["records_disagree"]
    )
    status = {r.supply_no: r.status for r in res["idle"]}
    assert {status[s] for s in planted["idle"]["stopped_under_1y"]} == {"started"}


@pytest.mark.parametrize(
    "planted_kind, status",
    [("fully_unsupplied", "unsupplied"), ("partly", "partial"), ("fully_supplied", "supplied")],
)
def test_planted_unsupplied(planted_run, planted_kind, status):
    planted, _, res = planted_run
    got = sorted(r.approval_no for r in res["unsupplied"] if r.status == status)
    assert got == planted["unsupplied"][planted_kind]


@pytest.mark.parametrize("reason", ["plot_ratio", "diverted", "idle_use", "tax_per_mu"])
def test_planted_low_efficiency(planted_run, reason):
    planted, run, res = planted_run
    got = sorted(r.parcel_no for r in res["low_efficiency"] if reason in r.reason_codes)
    assert got == planted["low_efficiency"][reason]
    assert run["counts"]["low_efficiency"]["tax_year"] == planted["evaluation_year"]


# ---- the live run kept by changed keys ---------------------------------------------------------

LINK_KINDS = (
    "('enterprise_parcel', 'supply_parcel', 'parcel_district', 'parcel_platform', "
    "'parcel_corridor')"
)


def _links(conn) -> set[tuple]:  # noqa: ANN001
    return set(
        conn.execute(
            text(
                "SELECT kind, from_key, to_key, method, share FROM links "
                f"WHERE kind IN {LINK_KINDS}"
            )
        ).all()
    )


def _rows(conn, run_id: int) -> dict[str, list]:  # noqa: ANN001
    """Every row of a run, without run ids, as_of and item ids; floats rounded, geometry as
    normalised text snapped to 1 cm."""
    from geoalchemy2 import Geometry
    from sqlalchemy import Double

    from gis.core import detection_models as dm

    out = {}
    for t in (*dm.RESULT_TABLES.values(), dm.detection_zone_shares, dm.detection_summaries):
        cols = []
        for c in t.columns:
            if c.name in ("run_id", "as_of", "approval_id", "supply_id", "parcel_id"):
                continue
            if isinstance(c.type, Double):
                cols.append(f"round({c.name}::numeric, 6)")
            elif isinstance(c.type, Geometry):
                cols.append(f"ST_AsText(ST_SnapToGrid(ST_Normalize({c.name}), 0.01))")
            else:
                cols.append(f"{c.name}::text")
        out[t.name] = sorted(
            tuple(r)
            for r in conn.execute(
                text(f"SELECT {', '.join(cols)} FROM {t.name} WHERE run_id = :r"), {"r": run_id}
            )
        )
    return out


def _live_id(conn) -> int:  # noqa: ANN001
    return conn.execute(text("SELECT id FROM detection_runs WHERE live")).scalar_one()


def _from_scratch(conn, as_of: date) -> int:  # noqa: ANN001
    """A run of the three lands computed from scratch on the same data."""
    from gis.lands import detection

    rules = get_rules()
    rid = detection._new_run(conn, as_of, rules, "test", live=False)
    detection.compute(conn, rid, as_of, rules, dict.fromkeys(detection.KINDS))
    return rid


@pytest.fixture(scope="module")
def city(analysed_sample):
    """A copy of the sample city analysed from scratch as of the reference date (conftest's
    ``analysed_sample``)."""
    from sqlalchemy import create_engine

    from tests.conftest import database_copy, sample_as_of

    planted = json.loads((SAMPLE / "planted.json").read_text("utf-8"))
    ref = date.fromisoformat(planted["reference_date"])
    assert ref == sample_as_of()
    with database_copy(analysed_sample, "lands_inc") as url:
        eng = create_engine(url)
        yield eng, ref
        eng.dispose()


def _pick(conn, sql: str) -> str:  # noqa: ANN001
    v = conn.execute(text(sql), {"r": _live_id(conn)}).scalar()
    assert v is not None, f"the sample city has no case for: {sql}"
    return v


# (what is changed, the row to pick, the change, the changed tables)
CASES = {
    "supply_dates": (
        "SELECT supply_no FROM idle_results WHERE run_id = :r AND status = 'not_due' "
        "ORDER BY supply_no LIMIT 1",
        "UPDATE supplies SET agreed_start = agreed_start - 400 WHERE supply_no = :k",
        "supplies",
    ),
    "supply_geometry": (
        "SELECT u FROM unsupplied_results r, unnest(r.supply_nos) u "
        "WHERE run_id = :r AND status = 'partial' ORDER BY u LIMIT 1",
        "UPDATE supplies SET geom = ST_Translate(geom, 40, 25) WHERE supply_no = :k",
        "supplies",
    ),
    "parcel_geometry": (
        "SELECT parcel_no FROM low_efficiency_results WHERE run_id = :r "
        "AND supply_no IS NOT NULL ORDER BY parcel_no LIMIT 1",
        "UPDATE parcels SET geom = ST_Multi(ST_Buffer(geom, -4)) WHERE parcel_no = :k",
        "parcels",
    ),
    "approval": (
        "SELECT approval_no FROM unsupplied_results WHERE run_id = :r AND status = 'partial' "
        "ORDER BY approval_no LIMIT 1",
        "UPDATE approvals SET geom = ST_Translate(geom, 60, 0) WHERE doc_no = :k",
        "approvals",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_live_by_keys_equals_from_scratch(city, case):
    eng, ref = city
    pick, change, table = CASES[case]
    with eng.connect() as conn, conn.begin() as tx:
        key = _pick(conn, pick)
        live = _live_id(conn)
        before = _rows(conn, live)
        conn.execute(text(change), {"k": key})
        changes = graph.Changes().add(table, [key])
        ctx = graph.refresh(conn, changes, ref, trigger="test")
        assert "three_lands" in ctx.timings
        got = _rows(conn, live)
        assert got != before, "the change changed nothing: pick another case"
        assert got == _rows(conn, _from_scratch(conn, ref))
        tx.rollback()


def test_live_tax_figure_by_keys(city):
    """A changed SJSJ reaches the 低效 status through per_mu's parcel figure."""
    eng, ref = city
    with eng.connect() as conn, conn.begin() as tx:
        live = _live_id(conn)
        uscc, year = conn.execute(
            text(
                "SELECT l.from_key, r.reasons -> 0 ->> 'basis' FROM low_efficiency_results r "
                "JOIN links l ON l.kind = 'enterprise_parcel' AND l.to_key = r.parcel_no "
                "WHERE r.run_id = :r AND 'tax_per_mu' = ANY(r.reason_codes) "
                "ORDER BY r.parcel_no, l.from_key LIMIT 1"
            ),
            {"r": live},
        ).one()
        del year
        year = (conn.execute(text("SELECT counts FROM detection_runs WHERE id = :r"), {"r": live})
                .scalar_one()["low_efficiency"]["tax_year"])  # fmt: skip
        conn.execute(
            text("UPDATE outputs SET tax_paid = 1000000 WHERE uscc = :u AND year = :y"),
            {"u": uscc, "y": year},
        )
        before = _rows(conn, live)
        graph.refresh(conn, graph.Changes(outputs={f"{uscc}:{year}"}), ref, trigger="test")
        got = _rows(conn, live)
        assert got != before
        assert got == _rows(conn, _from_scratch(conn, ref))
        tx.rollback()


def test_live_calendar_rejudges(city):
    eng, ref = city
    later = ref.replace(year=ref.year + 1)
    with eng.connect() as conn, conn.begin() as tx:
        live = _live_id(conn)
        before = _rows(conn, live)
        graph.refresh(conn, graph.Changes(calendar={graph.ALL}), later, trigger="test")
        got = _rows(conn, live)
        assert got != before
        assert (
            conn.execute(
                text("SELECT as_of FROM detection_runs WHERE id = :r"), {"r": live}
            ).scalar_one()
            == later
        )
        assert got == _rows(conn, _from_scratch(conn, later))
        tx.rollback()


def test_snapshot_unchanged_by_later_writes(city):
    eng, ref = city
    snap = run_detection(eng, ref, user="test")
    assert not snap["live"]
    with eng.connect() as conn:
        frozen = _rows(conn, snap["id"])
        assert frozen == _rows(conn, _live_id(conn))
    with eng.connect() as conn, conn.begin() as tx:
        key = _pick(conn, CASES["supply_dates"][0])
        conn.execute(text(CASES["supply_dates"][1]), {"k": key})
        graph.refresh(conn, graph.Changes(supplies={key}), ref, trigger="test")
        assert _rows(conn, _live_id(conn)) != frozen
        assert _rows(conn, snap["id"]) == frozen
        tx.rollback()


def test_live_calendar_on_the_day_judged_changes_nothing(city):
    """``landlink refresh`` on the day the live run is already judged as of, with the same
    rules: the three lands have nothing to judge again (at scale 200 this was 70 s)."""
    eng, ref = city
    with eng.connect() as conn, conn.begin() as tx:
        live = _live_id(conn)
        as_of = conn.execute(
            text("SELECT as_of FROM detection_runs WHERE id = :r"), {"r": live}
        ).scalar_one()
        before = _rows(conn, live)
        ctx = graph.refresh(conn, graph.Changes(calendar={graph.ALL}), as_of, trigger="test")
        assert "three_lands" not in ctx.changed or not any(ctx.changed["three_lands"].values())
        assert _rows(conn, live) == before
        later = as_of.replace(year=as_of.year + 1)
        ctx = graph.refresh(conn, graph.Changes(calendar={graph.ALL}), later, trigger="test")
        assert ctx.changed["three_lands"]["idle_results"] == "all"  # another day: all again
        tx.rollback()
