"""The sample city's planted cases (sample_shapefiles/planted.json) come out of the live run the
derivation graph keeps, and of a snapshot of it (``landlink detect``), as of its reference date
exactly as planted: every idle status, every kind of approval, every low-efficiency reason.

And the live run kept by keys: after one-row changes (a supply's dates, a parcel's geometry, an
approval, a per-mu figure, the calendar) its rows equal a full recompute on the same data; a
snapshot is unchanged by later writes."""

from __future__ import annotations

import json
import tomllib
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import text

from app.cli import find_layer_files
from gis.core.config import PROJECT_ROOT
from gis.ingest import ImportOptions, import_file
from gis.core import graph
from gis.core.rules import get_rules
from gis.lands.detection import run_detection

SAMPLE = PROJECT_ROOT / "sample_shapefiles"
pytestmark = pytest.mark.skipif(
    not (SAMPLE / "planted.json").exists(),
    reason="no sample city: landlink sample generate --out sample_shapefiles",
)


def _options(manifest: dict, code: str) -> ImportOptions:
    o = manifest.get(code, {})
    return ImportOptions(
        encoding=o.get("encoding"),
        crs=o.get("crs"),
        sheet=o.get("sheet"),
        strict=not o.get("lenient", False),
    )


def _analyse(conn, as_of: date) -> None:  # noqa: ANN001
    """Every derived table from scratch as of ``as_of`` (links first while the linkage is not
    yet a producer of the graph)."""
    if "links" not in graph.describe()["derived"]:
        from gis.economy import linkage

        linkage.link_all(conn, 0, as_of, get_rules().linkage)
    graph.refresh(conn, None, as_of, trigger="test")


@pytest.fixture(scope="module")
def planted_run(engine):
    """The sample city imported into the test database and one detection run as of the
    reference date: (planted.json, run record, {kind: rows})."""
    with engine.begin() as conn:
        tables = [
            r[0]
            for r in conn.execute(
                text(
                    "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename "
                    "NOT IN ('spatial_ref_sys', 'alembic_version')"
                )
            )
        ]
        conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
    mf = SAMPLE / "manifest.toml"
    manifest = (
        {k.upper(): v for k, v in tomllib.loads(mf.read_text("utf-8")).items()}
        if mf.exists()
        else {}
    )
    for code, path in find_layer_files(Path(SAMPLE)):
        import_file(engine, code, path, _options(manifest, code), user="test")
    planted = json.loads((SAMPLE / "planted.json").read_text("utf-8"))
    ref = date.fromisoformat(planted["reference_date"])
    with engine.begin() as conn:  # the live run as of the reference date
        _analyse(conn, ref)
    run = run_detection(engine, ref, user="test")
    assert run["notes"][-1].startswith("copied from the live run")
    with engine.connect() as conn:
        results = {
            "idle": conn.execute(
                text(
                    "SELECT supply_no, status, records_disagree FROM idle_results WHERE run_id = :r"
                ),
                {"r": run["id"]},
            ).all(),
            "unsupplied": conn.execute(
                text("SELECT approval_no, status FROM unsupplied_results WHERE run_id = :r"),
                {"r": run["id"]},
            ).all(),
            "low_efficiency": conn.execute(
                text(
                    "SELECT parcel_no, reason_codes FROM low_efficiency_results WHERE run_id = :r"
                ),
                {"r": run["id"]},
            ).all(),
        }
    return planted, run, results


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
